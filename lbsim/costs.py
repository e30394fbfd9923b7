"""Cost models: what each stage costs on a given machine, and where the numbers came from.

A cost model is a JSON file::

    {
      "name": "...", "provenance": {...},          # host, kernel, how each value was derived
      "distribution": "lognormal",
      "stages": {"tcp_sendmsg": {"fixed_ns": 610.0, "per_byte_ns": 0.0, "cv": 0.3}, ...},
      "delays": {"wakeup_remote_idle_ns": {"mean_ns": 21000.0, "cv": 0.3}, ...}
    }

Every stage of :data:`lbsim.model.stages.STAGES` must be present, but for the optional ones
(:data:`lbsim.model.stages.OPTIONAL_STAGES`, absent from files measured before they existed).  ``delays`` are
latencies that are not CPU time (an IPI on its way, a CPU leaving its idle state):

``wakeup_remote_idle_ns``  try_to_wake_up on one CPU until the woken task can run on
                           another, *idle*, CPU (IPI + idle exit; large in VMs)
``wakeup_remote_busy_ns``  the same into a CPU that is running something else (resched
                           IPI into a running vCPU)

Stage costs are drawn from a log-normal distribution with the stage's mean and
coefficient of variation (cv): kernel path times are positive and right-skewed, and a
log-normal fitted by mean and cv reproduces the p50..p99 spread of the measured round
trips (see the README, "Where the costs come from", for the fit).  ``deterministic`` runs use the means.

Versions (the top-level ``"schema"`` field, :data:`SCHEMA`): schema 2 files may carry a
``provenance.profile`` block naming the machine they were measured on (CPU vendor, family, model,
stepping, kernel, date, data hash, held-out errors: see :mod:`lbsim.profiles`).  A file without
``"schema"`` was written by an older lbsim (schema 1) and is migrated on load: the numbers are
read as they are, and without a profile block its provenance counts as unknown (it is never
picked by ``auto`` for a host).  A file with a newer or unknown schema is refused, with the way
to make a current one (``lbsim calibrate``).

``load_costs`` takes ``default`` (lbsim/data/costs-default.json, unchanged), a file path, a
profile name (``lbsim profiles`` lists them) or ``auto`` (the profile for this host, see
:func:`lbsim.profiles.resolve`).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from lbsim.model.stages import LATE_CORE_STAGES, OPTIONAL_STAGES, STAGES

__all__ = ["StageCost", "CostModel", "load_costs", "DEFAULT_COSTS", "AUTO_COSTS", "DELAYS", "CostFileError",
           "SCHEMA", "cost_file_schema", "EDITABLE", "match_stages", "apply_stage_edits", "stage_edits_text"]

DELAYS: tuple[str, ...] = ("wakeup_remote_idle_ns", "wakeup_remote_busy_ns")
DEFAULT_COSTS = "default"
AUTO_COSTS = "auto"
#: the cost-file version this lbsim writes and the newest it reads (1: no "schema" field)
SCHEMA = 2

log = logging.getLogger("lbsim.costs")


class CostFileError(ValueError):
    """A cost file that cannot be used; the message names the file and the field."""


@dataclass(frozen=True, slots=True)
class StageCost:
    fixed_ns: float
    per_byte_ns: float = 0.0
    cv: float = 0.0
    #: per-byte cost when the flow's queued data no longer fits in the cache (see CostModel)
    per_byte_cold_ns: float | None = None

    def mean(self, nbytes: int = 0, cold: bool = False) -> float:
        pb = self.per_byte_cold_ns if (cold and self.per_byte_cold_ns is not None) else self.per_byte_ns
        return self.fixed_ns + pb * nbytes


@dataclass(frozen=True)
class CostModel:
    name: str
    stages: dict[str, StageCost]
    delays: dict[str, StageCost]
    provenance: dict[str, Any] = field(default_factory=dict)
    distribution: str = "lognormal"
    #: copies run at ``per_byte_cold_ns`` once the bytes queued on a flow exceed this (the
    #: per-core L2 of the measured host): streaming through megabytes of socket buffer
    #: misses the cache that a ping-pong keeps warm
    cache_bytes: int = 2 * 1024 * 1024

    def to_dict(self) -> dict[str, Any]:
        stages = {}
        for k, v in self.stages.items():
            d: dict[str, Any] = {"fixed_ns": v.fixed_ns, "per_byte_ns": v.per_byte_ns, "cv": v.cv}
            if v.per_byte_cold_ns is not None:
                d["per_byte_cold_ns"] = v.per_byte_cold_ns
            stages[k] = d
        return {
            "name": self.name,
            "provenance": self.provenance,
            "distribution": self.distribution,
            "cache_bytes": self.cache_bytes,
            "stages": stages,
            "delays": {k: {"mean_ns": v.fixed_ns, "cv": v.cv} for k, v in self.delays.items()},
        }

    @property
    def hash(self) -> str:
        """Hash of the numbers only (not the provenance): identifies the cost model in results."""
        d = self.to_dict()
        payload = {"stages": d["stages"], "delays": d["delays"], "distribution": self.distribution,
                   "cache_bytes": self.cache_bytes}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def _num(where: str, obj: dict[str, Any], key: str, default: float | None = None) -> float:
    if key not in obj:
        if default is not None:
            return default
        raise CostFileError(f"{where}: missing field {key!r}")
    v = obj[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0 or v != v:
        raise CostFileError(f"{where}.{key}: {v!r} is not allowed; need a number >= 0")
    return float(v)


def cost_file_schema(data: dict[str, Any], source: str = "<dict>") -> int:
    """The schema of a cost file's data: 1 when absent (an older lbsim); refuses newer or unknown ones."""
    if "schema" not in data:
        return 1
    v = data["schema"]
    if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= SCHEMA:
        raise CostFileError(f"{source}: cost-file schema {v!r} is not one this lbsim {_version()} reads (1..{SCHEMA}): "
                            "run `lbsim calibrate` to make a cost file for it, or upgrade lbsim")
    return v


def _version() -> str:
    try:
        from lbsim import __version__
    except ImportError:  # a partly initialised package (circular import at start-up)
        return ""
    return str(__version__)


def cost_model_from_dict(data: dict[str, Any], source: str = "<dict>") -> CostModel:
    if not isinstance(data, dict):
        raise CostFileError(f"{source}: top level must be an object")
    if cost_file_schema(data, source) == SCHEMA:
        return _model_from_dict(data, source)
    # schema 1 -> 2: the same fields; no profile block means unknown provenance
    log.debug("%s: no cost-file schema (older lbsim): read as schema %d without a profile", source, SCHEMA)
    try:
        return _model_from_dict(data, source)
    except CostFileError as e:  # e.g. a stage this lbsim renamed or added: the numbers cannot be mapped
        raise CostFileError(f"{e}; the file is from an older lbsim (no \"schema\" field): run `lbsim calibrate` "
                            "to make a current one") from None


def _model_from_dict(data: dict[str, Any], source: str) -> CostModel:
    allowed = {"schema", "name", "provenance", "distribution", "stages", "delays", "cache_bytes"}
    for k in data:
        if k not in allowed:
            raise CostFileError(f"{source}: unknown field {k!r}; allowed: {', '.join(sorted(allowed))}")
    dist = data.get("distribution", "lognormal")
    if dist not in ("lognormal",):
        raise CostFileError(f"{source}: distribution {dist!r} is not allowed; allowed: lognormal")
    raw_stages = data.get("stages")
    if not isinstance(raw_stages, dict):
        raise CostFileError(f"{source}: field 'stages' must be an object of stage -> cost")
    stages: dict[str, StageCost] = {}
    for name, spec in raw_stages.items():
        if name not in STAGES:
            raise CostFileError(f"{source}: stages.{name} is not a stage; allowed: {', '.join(STAGES)}")
        where = f"{source}: stages.{name}"
        if not isinstance(spec, dict):
            raise CostFileError(f"{where} must be an object with fixed_ns, per_byte_ns, cv")
        for key in spec:
            if key not in ("fixed_ns", "per_byte_ns", "cv", "per_byte_cold_ns"):
                raise CostFileError(f"{where}: unknown field {key!r}; allowed: fixed_ns, per_byte_ns, "
                                    "per_byte_cold_ns, cv")
        cold = _num(where, spec, "per_byte_cold_ns") if "per_byte_cold_ns" in spec else None
        stages[name] = StageCost(_num(where, spec, "fixed_ns"), _num(where, spec, "per_byte_ns", 0.0),
                                 _num(where, spec, "cv", 0.0), cold)
    for late, was in LATE_CORE_STAGES.items():
        if late in stages:
            continue
        if was is None:  # a file from before the stage, whose model charged nothing for it
            stages[late] = StageCost(0.0, 0.0, 0.0)
        elif was in stages:  # a file from before the stage: its cost was `was`'s
            stages[late] = stages[was]
    missing = [s for s in STAGES if s not in stages and s not in OPTIONAL_STAGES]
    if missing:
        raise CostFileError(f"{source}: stages missing: {', '.join(missing)}")
    raw_delays = data.get("delays", {})
    delays: dict[str, StageCost] = {}
    for name in DELAYS:
        if name not in raw_delays:
            raise CostFileError(f"{source}: delays.{name} missing")
        spec = raw_delays[name]
        where = f"{source}: delays.{name}"
        delays[name] = StageCost(_num(where, spec, "mean_ns"), 0.0, _num(where, spec, "cv", 0.0))
    for name in raw_delays:
        if name not in DELAYS:
            raise CostFileError(f"{source}: delays.{name} is not a delay; allowed: {', '.join(DELAYS)}")
    cache = data.get("cache_bytes", 2 * 1024 * 1024)
    if isinstance(cache, bool) or not isinstance(cache, int) or cache <= 0:
        raise CostFileError(f"{source}: cache_bytes: {cache!r} is not allowed; need an integer > 0")
    return CostModel(name=str(data.get("name", source)), stages=stages, delays=delays,
                     provenance=dict(data.get("provenance", {})), distribution=dist, cache_bytes=cache)


_CACHE: dict[str, CostModel] = {}


def _read_cost_text(path: Path, source: str) -> str:
    try:
        return path.read_text()
    except OSError as e:
        raise CostFileError(f"{source}: cannot read cost file ({e.strerror})") from None
    except UnicodeDecodeError:
        raise CostFileError(f"{source}: not a JSON cost file (not UTF-8 text)") from None


def _looks_like_path(key: str) -> bool:
    return "/" in key or "\\" in key or key.endswith(".json") or key.startswith(".")


def load_costs(spec: str | Path | None = None) -> CostModel:
    """Load ``default`` (the model shipped in the package), a cost file by path, a profile by name,
    or ``auto`` (the profile :func:`lbsim.profiles.resolve` picks for this host; its notice is
    logged once per process)."""
    key = str(spec or DEFAULT_COSTS)
    if key == AUTO_COSTS:
        from lbsim import profiles  # late: profiles imports this module

        return profiles.resolve_run(AUTO_COSTS)[0]
    if key in _CACHE:
        return _CACHE[key]
    if key == DEFAULT_COSTS:
        text = resources.files("lbsim").joinpath("data/costs-default.json").read_text()
        source = "lbsim/data/costs-default.json"
    else:
        path = Path(key)
        if not path.exists() and not _looks_like_path(key):
            from lbsim import profiles

            found = profiles.find_profile(key)
            if found is None:
                raise profiles.unknown_profile_error(key)
            path = found
        source = str(path)
        text = _read_cost_text(path, source)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise CostFileError(f"{source}: not valid JSON (line {e.lineno}: {e.msg})") from None
    model = cost_model_from_dict(data, source)
    _CACHE[key] = model
    return model


# --------------------------------------------------------------------------------------------
# stage edits: what a run would give if a stage (or a wake-up delay) cost more or less
# --------------------------------------------------------------------------------------------

#: what a stage edit may name: a stage (lbsim.model.stages.STAGES) or a wake-up delay (DELAYS)
EDITABLE: tuple[str, ...] = (*STAGES, *DELAYS)


def match_stages(pattern: str) -> list[str]:
    """The stages and delays a name or glob (``tcp_*``) names, in table order.  Raises
    ValueError (one line, with the close matches) when it names none."""
    import difflib
    import fnmatch

    if pattern in EDITABLE:
        return [pattern]
    found = [s for s in EDITABLE if fnmatch.fnmatchcase(s, pattern)]
    if found:
        return found
    bare = pattern.strip("*?[]")
    close = difflib.get_close_matches(pattern, EDITABLE, n=4, cutoff=0.6) or \
        difflib.get_close_matches(bare, [s[:len(bare)] for s in EDITABLE], n=1, cutoff=0.6)
    if close and close[0] not in EDITABLE:  # a prefix matched: show the names that start with it
        close = [s for s in EDITABLE if s.startswith(close[0])][:4]
    what = "is not a stage or delay" if not any(c in pattern for c in "*?[") else "matches no stage or delay"
    hint = f"; close: {', '.join(close)}" if close else "; `lbsim trace` prints the stages"
    raise ValueError(f"{pattern!r} {what}{hint}")


def _fmt_num(v: float) -> str:
    return f"{float(v):.12g}"


def stage_edits_text(scale: dict[str, float] | None = None, cost: dict[str, Any] | None = None,
                     remove: list[str] | tuple[str, ...] | None = None) -> str:
    """The canonical compact form of a run's stage edits (keys sorted), "" when none:
    ``scale(ip_rcv=0.7,tcp_*=0.9);cost(ip_rcv=100+0.01/B);remove(netif_rx)`` (ns)."""
    parts = []
    if scale:
        parts.append("scale(" + ",".join(f"{k}={_fmt_num(v)}" for k, v in sorted(scale.items())) + ")")
    if cost:
        items = []
        for k, v in sorted(cost.items()):
            d = v if isinstance(v, dict) else v.model_dump()
            pb = d.get("per_byte_ns", 0.0) or 0.0
            items.append(f"{k}={_fmt_num(d['fixed_ns'])}" + (f"+{_fmt_num(pb)}/B" if pb else ""))
        parts.append("cost(" + ",".join(items) + ")")
    if remove:
        parts.append("remove(" + ",".join(sorted(set(remove))) + ")")
    return ";".join(parts)


def apply_stage_edits(model: CostModel, scale: dict[str, float] | None = None, cost: dict[str, Any] | None = None,
                      remove: list[str] | tuple[str, ...] | None = None) -> CostModel:
    """``model`` with the edits applied, in this order: ``cost`` sets a stage's fixed_ns and
    per_byte_ns (a delay's mean: fixed_ns); ``scale`` multiplies fixed_ns, per_byte_ns and
    per_byte_cold_ns (a delay's mean) by the factor of every key that names it (glob factors
    multiply); ``remove`` makes the cost 0.  The cv stays: a stage keeps drawing from its own
    random stream (lbsim.model.sim.Sim), so an edit does not shift other stages' draws.
    Without edits, ``model`` itself is returned."""
    if not (scale or cost or remove):
        return model
    stages = dict(model.stages)
    delays = dict(model.delays)

    def put(name: str, new: StageCost) -> None:
        (delays if name in delays else stages)[name] = new

    def get(name: str) -> StageCost:
        if name in OPTIONAL_STAGES and name not in stages:
            return StageCost(0.0, 0.0, 0.0, None)  # an optional stage the file lacks: only a set cost adds it
        return stages[name] if name in stages else delays[name]

    def absent(name: str) -> bool:
        return name in OPTIONAL_STAGES and name not in stages

    for key, spec in (cost or {}).items():
        d = spec if isinstance(spec, dict) else spec.model_dump()
        for name in match_stages(key):
            old = get(name)
            pb = float(d.get("per_byte_ns", 0.0) or 0.0)
            if name in delays and pb:
                raise ValueError(f"stage_cost.{key}: {name} is a delay; it has no per_byte_ns")
            put(name, StageCost(float(d["fixed_ns"]), pb, old.cv, None))
    factors: dict[str, float] = {}
    for key, f in (scale or {}).items():
        for name in match_stages(key):
            factors[name] = factors.get(name, 1.0) * float(f)
    for name, f in factors.items():
        if absent(name):
            continue  # nothing to scale: the cost file lacks it
        old = get(name)
        cold = old.per_byte_cold_ns * f if old.per_byte_cold_ns is not None else None
        put(name, StageCost(old.fixed_ns * f, old.per_byte_ns * f, old.cv, cold))
    for key in remove or ():
        for name in match_stages(key):
            if absent(name):
                continue
            old = get(name)
            put(name, StageCost(0.0, 0.0, old.cv, 0.0 if old.per_byte_cold_ns is not None else None))
    text = stage_edits_text(scale, cost, remove)
    return CostModel(name=f"{model.name} [{text}]", stages=stages, delays=delays,
                     provenance={**model.provenance, "stage_edits": text}, distribution=model.distribution,
                     cache_bytes=model.cache_bytes)
