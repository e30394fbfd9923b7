"""Cost profiles: one cost file per machine kind and kernel build, and which one fits this host.

What a loopback round trip costs differs between machines more than the model's errors: the
project's VM comes up on Intel Xeon and on AMD EPYC guests, and the default costs (one Intel
guest) make round trips on the AMD ones 2.5-2.7x too fast.  The kernel build matters too: the
cross-CPU wake-up (try_to_wake_up -> IPI -> idle exit, kernel/sched/core.c) is ~20 us on the
Intel guest's 6.18.44-fc-v769 against ~3 us on v1272.

A profile is a cost file (:mod:`lbsim.costs`, schema 2) whose ``provenance.profile`` block says
where it was measured::

    "profile": {"name": "amd-epyc-v1272-2026-12-06", "host": "vm",
                "cpu": {"vendor_id": "AuthenticAMD", "family": null, "model": null, "stepping": null,
                        "model_name": "AMD EPYC"},
                "kernel": "6.18.44-fc-v1272", "date": "2026-12-06", "data_sha256": "...",
                "heldout": {"rtt_p50_median_pct": 7.4, "throughput_median_pct": 6.0,
                            "pairs_ok": 87, "pairs_total": 87, "source": "..."},
                "data": "docs/hosts/amd-epyc-2026-12-06", "notes": [...]}

Profiles live in two places: those shipped in the package (``lbsim/data/profiles/``, made by
``tools/profiles/make_shipped.py`` from the committed measurements) and the user's own
(``$XDG_DATA_HOME/lbsim/profiles/*.json``, by default ``~/.local/share/lbsim/profiles``), which
:func:`install_user_profile` writes (``lbsim calibrate``).

:func:`resolve` turns a ``--costs`` value into a cost model: ``default`` (the Intel Xeon guest,
v1272: the costs shipped before profiles), a profile name, a file path, or ``auto``, which picks

1. the user's own calibration of this host (same CPU vendor, family, model, stepping and the same
   kernel release; the newest measurement wins);
2. else the shipped profile of the same CPU vendor, family and model (a notice if its kernel differs);
3. else the nearest shipped profile: the same vendor first, then the nearest kernel build number,
   then the newest; with a one-line notice that this host has none of its own.

Environment: ``LBSIM_COSTS``, when set (to a profile name, ``default`` or a cost file path),
replaces what ``auto`` resolves to, whatever host it runs on: for reproducible scripts and tests.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from lbsim.costs import AUTO_COSTS, DEFAULT_COSTS, SCHEMA, CostFileError, CostModel, load_costs
from lbsim.hostid import HostId, kernel_build

__all__ = ["Profile", "Choice", "ENV_VAR", "DEFAULT_PROFILE", "CALIBRATE_HINT", "shipped_dir", "user_dir",
           "list_profiles", "profile_names", "find_profile", "unknown_profile_error", "pick_auto", "resolve",
           "make_profile", "heldout_from_validate", "install_user_profile", "format_profiles_table",
           "match_host_json", "resolve_run", "choice_of_model", "noticed", "mark_noticed"]

log = logging.getLogger("lbsim.profiles")

ENV_VAR = "LBSIM_COSTS"
#: what ``default`` stands for: the numbers of lbsim/data/costs-default.json
DEFAULT_PROFILE = "xeon-v1272-2026-12-06"
CALIBRATE_HINT = "`lbsim calibrate` measures it and makes one (about 3 minutes, as root for the kernel stages)"
_FAR = 10**9  # kernel distance between different trees or unknown builds


@dataclass(frozen=True)
class Profile:
    """A cost file as listed: its name, where it is, and the machine it was measured on."""

    name: str
    path: Path
    shipped: bool
    block: dict[str, Any] | None  # provenance.profile; None: unknown provenance

    @property
    def host(self) -> HostId:
        b = self.block or {}
        return HostId.from_cpu_dict(b.get("cpu") or {}, kernel=b.get("kernel"), hostname=b.get("host"))

    @property
    def date(self) -> str:
        return str((self.block or {}).get("date") or "")

    @property
    def heldout(self) -> dict[str, Any] | None:
        return (self.block or {}).get("heldout")


@dataclass(frozen=True)
class Choice:
    """What a ``--costs`` value resolved to, and why."""

    name: str
    path: str | None
    reason: str
    notice: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    #: a few words for output lines: ``auto: same CPU and kernel``, ``LBSIM_COSTS``, ``by name``
    how: str = ""

    @property
    def label(self) -> str:
        """``amd-epyc-v1300-2026-12-06 (auto: same CPU and kernel)``: what outputs name."""
        return f"{self.name} ({self.how})" if self.how else self.name


def shipped_dir() -> Path:
    return Path(str(resources.files("lbsim").joinpath("data", "profiles")))


def user_dir() -> Path:
    """``$XDG_DATA_HOME/lbsim/profiles`` (XDG base directory spec; ~/.local/share when unset)."""
    base = os.environ.get("XDG_DATA_HOME") or ""
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".local" / "share"
    return root / "lbsim" / "profiles"


#: unreadable profile files already warned about (the folder is listed several times a run)
_SKIPPED: set[Path] = set()


def _read_profile(path: Path, shipped: bool) -> Profile | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        if path not in _SKIPPED:
            _SKIPPED.add(path)
            log.warning("%s: not a readable cost file, skipped (%s)", path, e)
        return None
    prov = data.get("provenance") if isinstance(data, dict) else None
    block = prov.get("profile") if isinstance(prov, dict) else None
    block = block if isinstance(block, dict) else None
    name = str(block.get("name") or path.stem) if block else path.stem
    return Profile(name=name, path=path, shipped=shipped, block=block)


def list_profiles(*, shipped: bool = True, user: bool = True) -> list[Profile]:
    """The user's own profiles then the shipped ones, each sorted by name."""
    out: list[Profile] = []
    for folder, is_shipped, want in ((user_dir(), False, user), (shipped_dir(), True, shipped)):
        if want and folder.is_dir():
            found = (_read_profile(p, is_shipped) for p in sorted(folder.glob("*.json")))
            out.extend(sorted((p for p in found if p is not None), key=lambda p: p.name))
    return out


def profile_names() -> list[str]:
    return [p.name for p in list_profiles()]


def find_profile(name: str) -> Path | None:
    """The file of the profile called ``name`` (shipped names first: they cannot be shadowed)."""
    for p in sorted(list_profiles(), key=lambda p: not p.shipped):
        if p.name == name:
            return p.path
    return None


def _kernel_distance(a: str | None, b: str | None) -> int:
    if a and a == b:
        return 0
    (ta, na), (tb, nb) = kernel_build(a), kernel_build(b)
    if ta and ta == tb and na is not None and nb is not None:
        return abs(na - nb)
    return _FAR


def _newest(profiles: list[Profile]) -> Profile:
    return _by_date(profiles)[0]


def _describe(p: Profile) -> str:
    h = p.host
    return f"{h.model_name or h.vendor_id or 'unknown CPU'}, {h.kernel or 'unknown kernel'}"


def pick_auto(host: HostId, profiles: list[Profile]) -> tuple[Profile, str, str | None]:
    """What ``auto`` picks for ``host`` among ``profiles``: (profile, reason, notice or None)."""
    own = [p for p in profiles if not p.shipped and p.block and host.same_cpu(p.host) and
           host.kernel is not None and p.host.kernel == host.kernel]
    if own:
        return _newest(own), "the user's own calibration of this host (same CPU and kernel)", None
    shipped = [p for p in profiles if p.shipped and p.block]
    if not shipped:
        raise CostFileError(f"no shipped cost profiles found in {shipped_dir()}: reinstall lbsim")
    same = [p for p in shipped if host.same_cpu(p.host, stepping=False)]
    if same:
        best = min(_by_date(same), key=lambda p: _kernel_distance(host.kernel, p.host.kernel))
        notice = None
        if best.host.kernel != host.kernel:
            notice = (f"this host ({host.label()}) has no profile of its own; using {best.name}, measured on the "
                      f"same CPU model with kernel {best.host.kernel}; {CALIBRATE_HINT}")
        return best, "the shipped profile of the same CPU vendor, family and model", notice

    def rank(p: Profile) -> tuple[int, int]:
        other_vendor = int(host.vendor_id is None or p.host.vendor_id != host.vendor_id)
        return other_vendor, _kernel_distance(host.kernel, p.host.kernel)

    best = min(_by_date(shipped), key=rank)  # min keeps the first of equals: the newest
    reason = ("the nearest shipped profile (same CPU vendor, nearest kernel build)"
              if host.vendor_id is not None and best.host.vendor_id == host.vendor_id
              else "the nearest shipped profile (no profile of this CPU vendor; nearest kernel build)")
    notice = (f"this host ({host.label()}) has no profile of its own; {CALIBRATE_HINT}; "
              f"using {best.name} ({_describe(best)})")
    return best, reason, notice


def _by_date(profiles: list[Profile]) -> list[Profile]:
    """Newest first (dates are ISO 8601 strings, which sort as text)."""
    return sorted(profiles, key=lambda p: (p.date, p.name), reverse=True)


def unknown_profile_error(spec: str) -> CostFileError:
    """The one-line error for a --costs value that is neither a file nor a profile name."""
    return CostFileError(f"unknown cost profile {spec!r}; available: {', '.join(profile_names())} "
                         f"(or {DEFAULT_COSTS}, {AUTO_COSTS}, a cost file path)")


def resolve(spec: str | Path | None = AUTO_COSTS, host: HostId | None = None) -> tuple[CostModel, Choice]:
    """A ``--costs`` value -> (cost model, what was chosen and why).

    ``spec``: ``auto`` (``$LBSIM_COSTS`` if set, else the profile for ``host``, by default this
    machine), ``default``, a profile name, or a cost file path.
    """
    key = str(spec or AUTO_COSTS)
    if key == AUTO_COSTS:
        env = os.environ.get(ENV_VAR, "").strip()
        if env and env != AUTO_COSTS:
            try:
                model, choice = resolve(env)
            except CostFileError as e:  # the user gave no --costs: say where the value came from
                raise CostFileError(f"{ENV_VAR}={env} (set in the environment): {e}") from None
            return model, Choice(choice.name, choice.path, f"{ENV_VAR}={env}: {choice.reason}", how=ENV_VAR)
        host = host or HostId.current()
        prof, reason, notice = pick_auto(host, list_profiles())
        try:
            model = load_costs(str(prof.path))
        except CostFileError as e:  # it would fail every run: say which profile and what to do
            if prof.shipped:
                raise
            raise CostFileError(f"{e} (auto picked it: your profile of this host; repair or remove it, or run "
                                "`lbsim calibrate` again)") from None
        return model, Choice(prof.name, str(prof.path), reason, notice, {"host": host.to_dict()},
                             how=_how_auto(host, prof))
    if key == DEFAULT_COSTS:
        path = find_profile(DEFAULT_PROFILE)
        if path is None:
            return load_costs(DEFAULT_COSTS), Choice(DEFAULT_COSTS, None, "the default costs (no profile file)",
                                                     how=DEFAULT_COSTS)
        return load_costs(str(path)), Choice(DEFAULT_PROFILE, str(path),
                                             "default: the Intel Xeon guest, 6.18.44-fc-v1272 (the costs "
                                             "shipped before profiles)", how=DEFAULT_COSTS)
    path = Path(key)
    if path.exists():
        model = load_costs(key)
        block = (model.provenance or {}).get("profile") or {}
        return model, Choice(str(block.get("name") or path.stem), str(path), "a cost file given by path",
                             how=f"file {path}")
    found = find_profile(key)
    if found is None:
        if "/" in key or key.endswith(".json"):
            load_costs(key)  # raises the file's own error (cannot read ...)
        raise unknown_profile_error(key)
    return load_costs(str(found)), Choice(key, str(found), "a profile given by name", how="by name")


def _how_auto(host: HostId, prof: Profile) -> str:
    """The short form of pick_auto's reason, for output lines."""
    if not prof.shipped:
        return "auto: own calibration of this host"
    if host.same_cpu(prof.host, stepping=False):
        same_kernel = prof.host.kernel == host.kernel
        return "auto: same CPU and kernel" if same_kernel else f"auto: same CPU, kernel {prof.host.kernel}"
    return "auto: nearest; no profile of this host"


#: notices already logged by this process (resolve_run says each once, not once per run)
_NOTICED: set[str] = set()


def resolve_run(spec: str | Path | None = AUTO_COSTS) -> tuple[CostModel, Choice]:
    """:func:`resolve` for one simulation run: its notice, if any, is logged once per process as a
    warning on the ``lbsim`` logger (a sweep of a thousand runs says it once)."""
    model, choice = resolve(spec)
    if choice.notice and choice.notice not in _NOTICED:
        _NOTICED.add(choice.notice)
        logging.getLogger("lbsim").warning("%s", choice.notice)
    return model, choice


def noticed() -> set[str]:
    """The notices this process has logged."""
    return set(_NOTICED)


def mark_noticed(notices: list[str]) -> None:
    """Count ``notices`` as logged (a worker process of a run that has said them already)."""
    _NOTICED.update(notices)


def choice_of_model(model: CostModel) -> Choice:
    """What to call a cost model given as an object (``simulate(costs=model)``): its profile's name."""
    block = (model.provenance or {}).get("profile") or {}
    return Choice(str(block.get("name") or model.name), None, "a cost model given by the caller", how="given")


def make_profile(costs: dict[str, Any], *, name: str, host: HostId, date: str, data_sha256: str | None,
                 heldout: dict[str, Any] | None, data: str | None, notes: list[str] | None = None) -> dict[str, Any]:
    """A schema-2 cost file: ``costs``'s numbers unchanged, named ``name``, with the profile block."""
    out: dict[str, Any] = {"schema": SCHEMA}
    out.update({k: v for k, v in costs.items() if k != "schema"})
    out["name"] = name
    prov = dict(out.get("provenance") or {})
    prov["profile"] = {"name": name, "host": host.hostname, "cpu": host.cpu_dict(), "kernel": host.kernel,
                       "date": date, "data_sha256": data_sha256, "heldout": heldout, "data": data,
                       "notes": list(notes or [])}
    out["provenance"] = prov
    return out


def heldout_from_validate(report: dict[str, Any], source: str | None = None) -> dict[str, Any] | None:
    """The own-fit held-out figures of a ``lbsim validate --json`` report (validate.json)."""
    by_metric = {h.get("metric"): h.get("held_out_median_abs_error_pct") for h in report.get("headline") or []}
    order = report.get("order") or {}
    if not by_metric and not order:
        return None
    out = {"rtt_p50_median_pct": by_metric.get("rtt_p50_us"),
           "throughput_median_pct": by_metric.get("throughput_MBps"),
           "pairs_ok": order.get("agreed"), "pairs_total": order.get("checked")}
    if source:
        out["source"] = source
    return out


def install_user_profile(costs: dict[str, Any], *, name: str | None = None, host: HostId | None = None,
                         date: str | None = None, data_sha256: str | None = None,
                         heldout: dict[str, Any] | None = None, data: str | None = None,
                         notes: list[str] | None = None, overwrite: bool = False) -> Path:
    """Write a cost file into the user's profile folder; returns its path.

    ``costs`` that already carry a profile block are written as they are (``name`` may rename
    them); otherwise the block is made from the other arguments (``host`` by default this machine,
    ``date`` by default now).  Shipped names are refused: a user profile cannot shadow one.
    """
    block = ((costs.get("provenance") or {}).get("profile")) if isinstance(costs, dict) else None
    if isinstance(block, dict):
        data_out = dict(costs, schema=SCHEMA)
        if name:
            data_out["name"] = name
            data_out["provenance"] = dict(costs["provenance"], profile=dict(block, name=name))
    else:
        from datetime import UTC, datetime

        host = host or HostId.current()
        date = date or datetime.now(UTC).isoformat(timespec="seconds")
        if not name:
            vendor = {"AuthenticAMD": "amd", "GenuineIntel": "intel"}.get(host.vendor_id or "", "cpu")
            build = host.kernel_build
            name = f"{vendor}-{host.cpu_family}-{host.model}-{host.stepping}-" \
                   f"{('v' + str(build)) if build is not None else (host.kernel or 'kernel')}-{date[:10]}"
        data_out = make_profile(costs, name=name, host=host, date=date, data_sha256=data_sha256,
                                heldout=heldout, data=data, notes=notes)
    pname = str(data_out["provenance"]["profile"]["name"])
    if any(p.name == pname for p in list_profiles(user=False)):
        raise CostFileError(f"{pname}: a shipped profile has this name; choose another")
    from lbsim.costs import cost_model_from_dict

    cost_model_from_dict(data_out, pname)  # refuse to install what cannot be loaded
    folder = user_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{pname}.json"
    if path.exists() and not overwrite:
        raise CostFileError(f"{path}: a profile of this name exists; pass overwrite=True to replace it")
    path.write_text(json.dumps(data_out, indent=2) + "\n")
    from lbsim import costs as _costs

    _costs._CACHE.pop(pname, None)
    _costs._CACHE.pop(str(path), None)
    return path


def _fmt_pct(v: Any) -> str:
    return "-" if v is None else f"{float(v):.1f}%"


def format_profiles_table(host: HostId | None = None) -> str:
    """The ``lbsim profiles`` listing: every profile, and which one ``auto`` picks on ``host``."""
    host = host or HostId.current()
    profiles = list_profiles()
    picked = None
    try:
        picked, reason, notice = pick_auto(host, profiles)
    except CostFileError as e:
        reason, notice = str(e), None
    rows = [("", "name", "from", "host", "CPU", "kernel", "date", "held-out p50", "throughput", "order")]
    for p in profiles:
        h, ho = p.host, p.heldout or {}
        fms = "/".join("?" if v is None else str(v) for v in (h.cpu_family, h.model, h.stepping))
        cpu = f"{h.model_name or h.vendor_id or '?'} ({h.vendor_id or '?'} {fms})" if p.block else "unknown"
        order = (f"{ho['pairs_ok']}/{ho['pairs_total']}" if ho.get("pairs_ok") is not None
                 and ho.get("pairs_total") is not None else "-")
        rows.append(("*" if picked is not None and p.path == picked.path else "", p.name,
                     "shipped" if p.shipped else "user", h.hostname or "?", cpu, h.kernel or "?", p.date or "?",
                     _fmt_pct(ho.get("rtt_p50_median_pct")), _fmt_pct(ho.get("throughput_median_pct")), order))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.append("")
    lines.append(f"this host: {host.label()}")
    env = os.environ.get(ENV_VAR, "").strip()
    if env and env != AUTO_COSTS:
        lines.append(f"auto: {ENV_VAR}={env} (set in the environment)")
    elif picked is not None:
        lines.append(f"auto (*): {picked.name}, {reason}")
    else:
        lines.append(f"auto: {reason}")
    if notice and not (env and env != AUTO_COSTS):
        lines.append(notice)
    lines.append(f"user profiles: {user_dir()}")
    return "\n".join(lines)


def match_host_json(path: str | Path) -> Choice:
    """Which profile ``auto`` would pick for the machine a measurement's ``.host.json`` describes
    (``$LBSIM_COSTS`` is not consulted: the question is about that machine)."""
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise CostFileError(f"{p}: cannot read host file ({e})") from None
    if not isinstance(data, dict):
        raise CostFileError(f"{p}: not a measurement's .host.json (need a JSON object; lbsim measure writes "
                            "one beside its CSV)")
    host = HostId.from_host_json(data)
    if host.vendor_id is None and host.kernel is None:  # another JSON file: any answer would be a guess
        raise CostFileError(f"{p}: names neither a CPU nor a kernel: not a measurement's .host.json "
                            "(lbsim measure writes one beside its CSV)")
    prof, reason, notice = pick_auto(host, list_profiles())
    return Choice(prof.name, str(prof.path), reason, notice, {"host": host.to_dict()})
