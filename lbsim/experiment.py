"""Experiment files: a TOML description of a parameter sweep, validated and expanded into runs.

An experiment file names a base configuration, the factors to vary (their Cartesian
product), groups of keys that vary together (``[[zip]]``) and a smaller ``[smoke]``
variant::

    name = "latency_vs_size"
    seed = 1
    replications = 3
    [base]                      # any SimConfig field, fixed for every run
    workload = "pingpong"
    [factors]                   # every combination of these levels
    transport = ["tcp", "udp"]
    msg_bytes = [16, 64]
    [[zip]]                     # these keys move together: one dimension of the product
    tcp_rmem = [[4096, 131072, 6291456], [4096, 1048576, 6291456]]
    rmem_default = [212992, 1048576]
    [smoke]                     # overrides for the test-sized variant (``--smoke``)
    messages = 500
    "factors.msg_bytes" = [64]

Everything is checked against :class:`lbsim.config.SimConfig` itself before anything runs;
a problem is reported as one line naming the file and the key path
(``experiments/x.toml: factors.msg_bytes[2]: ...``) in an :class:`ExperimentError`.

:func:`lbsim.expansion.expand` (importable from here too) turns an :class:`Experiment` into
:class:`RunSpec` s: one per combination and replication, each with a content-derived
``run_id``, a readable ``name`` and its seed.  See ``docs/guide/experiments.md``.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from lbsim.config import SimConfig
from lbsim.jsonsafe import plain

if TYPE_CHECKING:  # imported lazily by __getattr__ below (lbsim.expansion imports this module)
    from lbsim.expansion import expand, replication_seeds, run_id_for

__all__ = ["Experiment", "RunSpec", "ExperimentError", "load_experiment", "parse_experiment", "expand",
           "experiment_to_toml", "replication_seeds", "run_id_for", "TOP_LEVEL_KEYS"]

#: keys allowed at the top level of an experiment file
TOP_LEVEL_KEYS: tuple[str, ...] = ("name", "seed", "replications", "base", "factors", "zip", "smoke")
#: keys of ``[smoke]`` besides SimConfig fields (which override ``[base]``)
SMOKE_KEYS: tuple[str, ...] = ("replications", "seed", "base", "factors", "zip")

_FIELDS: tuple[str, ...] = tuple(SimConfig.model_fields)
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _is_int(v: Any, lo: int, hi: float = math.inf) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi


#: the top-level scalars: key -> (check, what is allowed)
_TOP_RULES: dict[str, tuple[Any, str]] = {
    "name": (lambda v: isinstance(v, str) and bool(_NAME_RE.match(v)),
             "a name is letters, digits, '_', '.', '-' (it names the results folder)"),
    "seed": (lambda v: _is_int(v, 0), "an integer >= 0"),
    "replications": (lambda v: _is_int(v, 1, 100_000), "an integer 1..100000"),
}


class ExperimentError(ValueError):
    """A bad experiment file: one line naming the file, the key path, the value and what is allowed."""


@dataclass(frozen=True)
class Experiment:
    """A validated experiment (after ``[smoke]`` overrides when ``smoke`` is true)."""

    name: str
    seed: int
    replications: int
    #: SimConfig fields fixed for every run
    base: dict[str, Any]
    #: key -> levels; the runs are the Cartesian product of the factors and the zip groups
    factors: dict[str, list[Any]]
    #: groups of keys whose levels move together (each group: key -> levels, equal lengths)
    zips: tuple[dict[str, list[Any]], ...]
    #: the experiment file's text, verbatim
    source: str
    #: where it was read from ("" for text parsed directly)
    path: str = ""
    #: whether the ``[smoke]`` overrides were applied
    smoke: bool = False


@dataclass(frozen=True)
class RunSpec:
    """One run of an experiment: a fully resolved configuration and its replication."""

    #: sha256 (16 hex digits) of the canonical JSON of the resolved config + replication index
    run_id: str
    #: ``transport[key=value,...]#rN``: the transport, then the values of the varying keys
    name: str
    experiment: str
    replication: int
    seed: int
    #: ``SimConfig.model_dump(mode="json")`` (for a skipped run: the fields as given, on top of
    #: the defaults, since the configuration cannot be built)
    config: dict[str, Any]
    #: "pending" or "skipped"
    status: str = "pending"
    #: why a run is skipped ("" otherwise)
    reason: str = ""
    #: the varying keys and their values at this point
    point: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON- and pickle-friendly) for workers and the results store."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RunSpec:
        return cls(**dict(d))


# --------------------------------------------------------------------------------------------
# loading and validation
# --------------------------------------------------------------------------------------------

def _did_you_mean(key: str, allowed: Iterable[str]) -> str:
    allowed = list(allowed)
    close = difflib.get_close_matches(key, allowed, n=1)
    return f" (did you mean {close[0]!r}?)" if close else f"; allowed: {', '.join(allowed)}"


def _with_value(msg: str, value: Any) -> str:
    """``msg (got VALUE)``, unless the message already shows the (list) value."""
    if isinstance(value, (list, tuple)) and repr(list(value)) in msg:
        return msg
    return f"{msg} (got {value!r})"


def _field_error(key: str, value: Any) -> str | None:
    """The message if ``value`` is not allowed for SimConfig field ``key`` on its own, else None.

    Checked by SimConfig itself (types, ranges, field validators); errors that depend on
    other fields (model-level checks) are left to the check of each combination in
    :func:`expand`.
    """
    try:
        SimConfig(**{key: value})
    except ValidationError as e:
        errs = [err for err in e.errors() if err["loc"] and err["loc"][0] == key]
        if not errs:
            return None
        if isinstance(value, (list, tuple)):  # a union (placement, background): the list branch
            listy = [err for err in errs if any("list" in str(p) or "tuple" in str(p) for p in err["loc"][1:])]
            errs = listy or errs
        msg = errs[0]["msg"]
        return msg[len("Value error, "):] if msg.startswith("Value error, ") else msg
    return None


class _Draft:
    """A mutable experiment under construction; ``label`` records where each key came from."""

    def __init__(self, src: str) -> None:
        self.src = src
        self.name = ""
        self.seed = 0
        self.replications = 1
        self.base: dict[str, Any] = {}
        self.base_label: dict[str, str] = {}
        self.factors: dict[str, list[Any]] = {}
        self.factor_label: dict[str, str] = {}
        self.zips: list[dict[str, list[Any]]] = []
        self.zip_label: list[dict[str, str]] = []
        self.zip_name: list[str] = []

    def fail(self, where: str, msg: str) -> ExperimentError:
        return ExperimentError(f"{self.src}: {where}: {msg}" if where else f"{self.src}: {msg}")

    # -- pieces --------------------------------------------------------------------------------
    def check_key(self, key: str, where: str) -> None:
        if key not in _FIELDS:
            raise self.fail(where, f"unknown key {key!r}{_did_you_mean(key, _FIELDS)}")
        if key == "seed":
            raise self.fail(where, "the seed of each run comes from the top-level seed and the replication "
                                   "(one seed per replication, shared by all points); set seed = N at the top")

    def check_levels(self, key: str, levels: Any, where: str, *, unique: bool = True) -> list[Any]:
        if not isinstance(levels, list) or not levels:
            raise self.fail(where, f"expected a non-empty list of levels (got {levels!r}); "
                                   "put a value that does not vary in [base]")
        seen: list[Any] = []
        for i, v in enumerate(levels):
            msg = _field_error(key, v)
            if msg is not None:
                raise self.fail(f"{where}[{i}]", _with_value(msg, v))
            if unique and v in seen:
                raise self.fail(f"{where}[{i}]", f"duplicate level {v!r}")
            seen.append(v)
        return list(levels)

    def set_top(self, key: str, value: Any, where: str) -> None:
        ok, allowed = _TOP_RULES[key]
        if not ok(value):
            raise self.fail(where, f"{value!r} is not allowed; {allowed}")
        setattr(self, key, value)

    def set_base(self, key: str, value: Any, where: str, *, override: bool = False) -> None:
        self.check_key(key, where)
        msg = _field_error(key, value)
        if msg is not None:
            raise self.fail(where, _with_value(msg, value))
        if override:  # a [smoke] value fixes the key for every run: it no longer varies
            self.factors.pop(key, None)
            self.factor_label.pop(key, None)
            for g, lab in zip(self.zips, self.zip_label):
                g.pop(key, None)
                lab.pop(key, None)
            self._drop_empty_zips()
        self.base[key] = value
        self.base_label[key] = where

    def set_factor(self, key: str, levels: Any, where: str, *, override: bool = False) -> None:
        self.check_key(key, where)
        levels = self.check_levels(key, levels, where)
        if override:
            self.base.pop(key, None)
            self.base_label.pop(key, None)
        self.factors[key] = levels
        self.factor_label[key] = where

    def set_zip_key(self, i: int, key: str, levels: Any, where: str) -> None:
        self.check_key(key, where)
        self.zips[i][key] = self.check_levels(key, levels, where, unique=False)
        self.zip_label[i][key] = where
        if not self.zip_name[i].endswith("(with [smoke] overrides)"):
            self.zip_name[i] += " (with [smoke] overrides)"

    def add_zip(self, group: Any, where: str) -> None:
        if not isinstance(group, dict) or not group:
            raise self.fail(where, f"expected a table of key = [levels] (got {group!r})")
        i = len(self.zips)
        self.zips.append({})
        self.zip_label.append({})
        self.zip_name.append(where)
        for key, levels in group.items():
            self.check_key(key, f"{where}.{key}")
            self.zips[i][key] = self.check_levels(key, levels, f"{where}.{key}", unique=False)
            self.zip_label[i][key] = f"{where}.{key}"

    def _drop_empty_zips(self) -> None:
        keep = [j for j, g in enumerate(self.zips) if g]
        self.zips = [self.zips[j] for j in keep]
        self.zip_label = [self.zip_label[j] for j in keep]
        self.zip_name = [self.zip_name[j] for j in keep]

    # -- whole ---------------------------------------------------------------------------------
    def check_whole(self) -> None:
        """Cross-section rules: a key lives in one place; zip groups have equal lengths."""
        owner: dict[str, str] = {k: self.base_label[k] for k in self.base}
        for k in self.factors:
            if k in owner:
                raise self.fail(self.factor_label[k], f"{k!r} is also set at {owner[k]}; a key is either "
                                                      "fixed in [base] or varied in [factors] or one [[zip]]")
            owner[k] = self.factor_label[k]
        for g, lab, gname in zip(self.zips, self.zip_label, self.zip_name):
            for k in g:
                if k in owner:
                    raise self.fail(lab[k], f"{k!r} is also set at {owner[k]}; a key is either fixed in [base] "
                                            "or varied in [factors] or one [[zip]]")
                owner[k] = lab[k]
            lengths = {k: len(v) for k, v in g.items()}
            if len(set(lengths.values())) > 1:
                shown = ", ".join(f"{k} has {n}" for k, n in lengths.items())
                raise self.fail(gname, f"zip group lengths differ ({shown}); every key of a group needs "
                                       "the same number of levels")
            rows = list(zip(*g.values()))
            for j, row in enumerate(rows):
                if row in rows[:j]:
                    raise self.fail(gname, f"level {j} repeats level {rows.index(row)} ({dict(zip(g, row))})")

    def build(self, text: str, path: str, smoke: bool) -> Experiment:
        self.check_whole()
        return Experiment(name=self.name, seed=self.seed, replications=self.replications, base=dict(self.base),
                          factors={k: list(v) for k, v in self.factors.items()},
                          zips=tuple({k: list(v) for k, v in g.items()} for g in self.zips),
                          source=text, path=path, smoke=smoke)


def _smoke_ops(smoke: Any, d: _Draft) -> list[tuple[str, Any, Any, str]]:
    """Normalise ``[smoke]`` into (kind, where-in-draft, value, label) operations.

    Accepted forms: a SimConfig field (fixes it for every run), ``replications`` / ``seed``,
    ``"factors.KEY"`` or a ``[smoke.factors]`` table, ``"base.KEY"`` or ``[smoke.base]``,
    ``"zip.N.KEY"`` or ``[smoke.zip.N]`` (levels of one key of zip group N), and
    ``[[smoke.zip]]`` (replaces all zip groups).
    """
    if not isinstance(smoke, dict):
        raise d.fail("smoke", f"expected a table (got {smoke!r})")
    ops: list[tuple[str, Any, Any, str]] = []

    def zip_index(text: str, where: str) -> int:
        if not text.isdigit():
            raise d.fail(where, f"{text!r} is not a zip group number; allowed 0..{len(d.zips) - 1}")
        i = int(text)
        if i >= len(d.zips):
            raise d.fail(where, f"no [[zip]] group {i}; the file has {len(d.zips)}"
                                + (f" (0..{len(d.zips) - 1})" if d.zips else ""))
        return i

    for key, value in smoke.items():
        where = f"smoke.{key}"
        parts = key.split(".")
        head = parts[0]
        if len(parts) == 1 and head in ("replications", "seed"):
            ops.append(("top", head, value, where))
        elif len(parts) == 1 and head in ("factors", "base"):
            if not isinstance(value, dict):
                raise d.fail(where, f"expected a table of {head} (got {value!r})")
            for k, v in value.items():
                ops.append((head, k, v, f"{where}.{k}"))
        elif len(parts) == 1 and head == "zip":
            if isinstance(value, list):
                ops.append(("zip_all", None, value, where))
            elif isinstance(value, dict):
                for n, group in value.items():
                    i = zip_index(n, f"{where}.{n}")
                    if not isinstance(group, dict):
                        raise d.fail(f"{where}.{n}", f"expected a table of key = [levels] (got {group!r})")
                    for k, v in group.items():
                        ops.append(("zip", (i, k), v, f"{where}.{n}.{k}"))
            else:
                raise d.fail(where, f"expected [[smoke.zip]] tables or zip.N.KEY keys (got {value!r})")
        elif len(parts) == 2 and head in ("factors", "base"):
            ops.append((head, parts[1], value, where))
        elif len(parts) == 2 and head == "zip" and isinstance(value, dict):
            i = zip_index(parts[1], where)
            for k, v in value.items():
                ops.append(("zip", (i, k), v, f"{where}.{k}"))
        elif len(parts) == 3 and head == "zip":
            ops.append(("zip", (zip_index(parts[1], where), parts[2]), value, where))
        elif len(parts) == 1 and head in _FIELDS:
            ops.append(("field", head, value, where))
        else:
            allowed = [*SMOKE_KEYS, "factors.KEY", "base.KEY", "zip.N.KEY", *_FIELDS]
            close = difflib.get_close_matches(key, [*SMOKE_KEYS, *_FIELDS], n=1)
            if not close and head in ("factors", "base") and len(parts) == 2:
                close = difflib.get_close_matches(parts[1], _FIELDS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f"; allowed: {', '.join(allowed[:5])} or a " \
                                                                  "SimConfig field"
            raise d.fail(where, f"unknown key {key!r}{hint}")
    return ops


def _apply_smoke(d: _Draft, ops: list[tuple[str, Any, Any, str]]) -> None:
    for kind, target, value, where in ops:
        if kind == "top":
            d.set_top(target, value, where)
        elif kind in ("field", "base"):
            d.set_base(target, value, where, override=True)
        elif kind == "factors":
            d.set_factor(target, value, where, override=True)
        elif kind == "zip":
            i, key = target
            d.set_zip_key(i, key, value, where)
        elif kind == "zip_all":
            d.zips, d.zip_label, d.zip_name = [], [], []
            for j, group in enumerate(value):
                d.add_zip(group, f"{where}[{j}]")


def parse_experiment(text: str, source: str = "", *, smoke: bool = False, name_default: str = "") -> Experiment:
    """Parse and validate experiment TOML ``text`` (``source`` names it in error messages).

    The ``[smoke]`` section is always checked; it is applied only when ``smoke`` is true.
    Every combination is then built once with :func:`lbsim.config.make_config` (see
    :func:`expand`), so an impossible combination is reported before anything runs.
    """
    src = source or "<experiment>"
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ExperimentError(f"{src}: not valid TOML: {e}") from None

    def draft() -> _Draft:
        d = _Draft(src)
        d.name = name_default
        for key in data:
            if key not in TOP_LEVEL_KEYS:
                raise d.fail(key, f"unknown top-level key {key!r}{_did_you_mean(key, TOP_LEVEL_KEYS)}")
        for key in ("name", "seed", "replications"):
            if key in data:
                d.set_top(key, data[key], key)
        if not d.name:
            raise d.fail("name", "missing; give name = \"...\" (it names the results folder)")
        base = data.get("base", {})
        if not isinstance(base, dict):
            raise d.fail("base", f"expected a table (got {base!r})")
        for key, value in base.items():
            d.set_base(key, value, f"base.{key}")
        factors = data.get("factors", {})
        if not isinstance(factors, dict):
            raise d.fail("factors", f"expected a table (got {factors!r})")
        for key, levels in factors.items():
            d.set_factor(key, levels, f"factors.{key}")
        zips = data.get("zip", [])
        if isinstance(zips, dict):  # a single [zip] table: one group
            zips = [zips]
        if not isinstance(zips, list):
            raise d.fail("zip", f"expected [[zip]] tables (got {zips!r})")
        for i, group in enumerate(zips):
            d.add_zip(group, f"zip[{i}]")
        return d

    full = draft()
    full_exp = full.build(text, source, smoke=False)
    smoke_exp = None
    if "smoke" in data:
        sd = draft()
        _apply_smoke(sd, _smoke_ops(data["smoke"], sd))
        smoke_exp = sd.build(text, source, smoke=True)
    if not smoke:
        exp = full_exp
    else:  # without a [smoke] section the smoke variant is the experiment itself
        exp = smoke_exp if smoke_exp is not None else dataclasses.replace(full_exp, smoke=True)
    from lbsim.expansion import expand

    expand(exp)  # every combination must build (or be a recognised skip)
    return exp


def load_experiment(path: str | Path, smoke: bool = False) -> Experiment:
    """Read, validate and (with ``smoke``) apply the ``[smoke]`` overrides of an experiment file."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise ExperimentError(f"{p}: cannot read experiment file ({e.strerror})") from None
    return parse_experiment(text, str(path), smoke=smoke, name_default="")


# --------------------------------------------------------------------------------------------
# writing back
# --------------------------------------------------------------------------------------------

def experiment_to_toml(exp: Experiment, header: str = "") -> str:
    """The resolved experiment as canonical TOML (loadable by :func:`load_experiment`),
    followed by the original file as comments."""
    import tomli_w

    doc: dict[str, Any] = {"name": exp.name, "seed": exp.seed, "replications": exp.replications,
                           "base": plain(exp.base), "factors": plain(exp.factors)}
    if exp.zips:
        doc["zip"] = [plain(group) for group in exp.zips]
    lines = [f"# {h}" for h in header.splitlines()] if header else []
    lines += [tomli_w.dumps(doc), f"# ---- the experiment file as written ({exp.path or 'text'}"
                                  f"{', [smoke] applied above' if exp.smoke else ''}) ----"]
    lines += [f"# {line}".rstrip() for line in exp.source.splitlines()]
    return "\n".join(lines) + "\n"


def __getattr__(name: str) -> Any:
    """The expansion (:func:`expand`, :func:`replication_seeds`, :func:`run_id_for`) lives in
    :mod:`lbsim.expansion`; it is importable from here as before."""
    if name in ("expand", "replication_seeds", "run_id_for"):
        from lbsim import expansion

        return getattr(expansion, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
