"""Calibrate this machine in one command: measure, fit, validate, install as its cost profile.

What ``lbsim calibrate`` with no data argument runs (:func:`calibrate_this_host`):

1. check that the machine is quiet (:func:`lbsim.calibrate_checks.check_quiet`; ``force`` skips it);
2. measure the host grid and, where root and tracefs allow, the tracepoint stages
   (:func:`lbsim.measure.grid.measure_host_grid`) into the data folder, by default
   ``$XDG_DATA_HOME/lbsim/hosts/<profile name>/``;
3. fit the costs (:func:`lbsim.calibrate.calibrate_from_files`) into ``costs.json`` there;
4. validate them on the measured points (:func:`lbsim.validate.validate`), ``validate.json``;
5. install them as this host's profile (:func:`lbsim.profiles.install_user_profile`), with the
   held-out errors, the data's SHA-256 and the data folder, so that ``--costs auto`` picks them.

Without tracing (not root, no tracefs) the fit has no base cost table of its own: every stage's
fixed cost comes from a tracepoint interval (:mod:`lbsim.calibrate.base`).  It then borrows the
stage file of the shipped profile ``auto`` would pick for this host (:func:`borrowed_stages`),
says so in one line, and records it in the profile's notes: the fit's scales (per transport, the
IP path, the scheduler) adapt that base to this host's measured grid, but the split between the
stages inside each scale is the other machine's.

The measuring, fitting and validating steps are module-level hooks (:data:`MEASURE`, :data:`FIT`,
:data:`VALIDATE`, :data:`TRACING`) or arguments, so that tests run the orchestration on committed
data without measuring the host.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from lbsim.calibrate_checks import CalibrationInputError, check_quiet, check_stages, fit_coverage, read_measured
from lbsim.hostid import HostId

__all__ = ["Progress", "Outcome", "calibrate_this_host", "borrowed_stages", "default_profile_name",
           "hosts_dir", "format_summary", "MEASURE", "FIT", "VALIDATE", "TRACING", "QUIET", "PHASES"]

log = logging.getLogger("lbsim.calibrate")

PHASES = ("measure", "fit", "validate", "install")


class Progress(Protocol):
    """What the steps report: a phase begins (``total`` steps, None: unknown), a step is done."""

    def phase(self, name: str, total: int | None) -> None: ...

    def tick(self, text: str = "") -> None: ...

    def close(self) -> None: ...


class _LogProgress:
    def phase(self, name: str, total: int | None) -> None:
        log.info("lbsim calibrate: %s", name)

    def tick(self, text: str = "") -> None:
        log.debug("%s", text)

    def close(self) -> None:
        pass


# --------------------------------------------------------------------------------------------
# the steps (hooks: tests replace them)
# --------------------------------------------------------------------------------------------

def _measure(out: Path, progress: Callable[[str], None], *, reps: int, stages: bool) -> Any:
    from lbsim.measure.grid import measure_host_grid

    return measure_host_grid(out, reps=reps, stages=stages, progress=progress)


def _measure_total(reps: int, stages: bool) -> int:
    from lbsim.measure.grid import grid_runs, stage_runs

    return grid_runs(reps=reps) + (len(stage_runs()) if stages else 0)


def _fit(measured: Path, stages: Path, out: Path, fit_sizes: Iterable[int],
         progress: Callable[[float], None]) -> Any:
    from lbsim.calibrate import calibrate_from_files

    return calibrate_from_files(measured, stages, out, fit_sizes=fit_sizes, progress=progress)


def _validate(measured: Path, costs: Path, progress: Callable[[str], None]) -> dict[str, Any]:
    from lbsim.costs import load_costs
    from lbsim.validate import validate

    return validate(measured, load_costs(str(costs)), progress=progress).to_dict()


def _tracing() -> tuple[bool, str]:
    from lbsim.measure.stages import tracefs_available

    return tracefs_available()


#: measure(out_dir, progress, reps=, stages=) -> an object with .csv, .stages (None: not traced),
#: .stages_unavailable (measure_host_grid's HostData)
MEASURE: Callable[..., Any] = _measure
#: fit(measured_csv, stages_json, out_json, fit_sizes, progress) -> the fit (calibrate_from_files)
FIT: Callable[..., Any] = _fit
#: validate(measured_csv, costs_json, progress) -> the report as a dict (ValidationReport.to_dict())
VALIDATE: Callable[..., dict[str, Any]] = _validate
#: () -> (tracing possible, why not)
TRACING: Callable[[], tuple[bool, str]] = _tracing
#: () -> None if the machine is quiet, else why not
QUIET: Callable[[], str | None] = check_quiet


# --------------------------------------------------------------------------------------------
# names and places
# --------------------------------------------------------------------------------------------

def hosts_dir() -> Path:
    """``$XDG_DATA_HOME/lbsim/hosts``: the measured data of the user's own profiles."""
    from lbsim.profiles import user_dir

    return user_dir().parent / "hosts"


def default_profile_name(host: HostId, date: str) -> str:
    """``amd-25-17-1-v1300-2026-12-06``: vendor, family-model-stepping, kernel build, date (as
    :func:`lbsim.profiles.install_user_profile` names it), with ``-2``, ``-3`` ... when taken."""
    from lbsim.profiles import list_profiles

    vendor = {"AuthenticAMD": "amd", "GenuineIntel": "intel"}.get(host.vendor_id or "", "cpu")
    build = host.kernel_build
    base = (f"{vendor}-{host.cpu_family}-{host.model}-{host.stepping}-"
            f"{('v' + str(build)) if build is not None else (host.kernel or 'kernel')}-{date[:10]}")
    taken = {p.name for p in list_profiles()}
    name, i = base, 1
    while name in taken or (hosts_dir() / name).exists():
        i += 1
        name = f"{base}-{i}"
    return name


def borrowed_stages(host: HostId) -> tuple[Path, str]:
    """A stage file to fit with when this host cannot be traced: the data of the shipped profile
    ``auto`` picks for ``host`` when that data is at hand (a source checkout's ``data/hosts/``),
    else the stage file shipped in the package.  Returns (path, what it is)."""
    from importlib import resources

    from lbsim.profiles import DEFAULT_PROFILE, list_profiles, pick_auto

    shipped = list_profiles(user=False)
    repo = Path(__file__).resolve().parent.parent
    try:
        prof, _, _ = pick_auto(host, shipped)
        data = str((prof.block or {}).get("data") or "")
        candidate = repo / data / "stages-host.json"
        if data and candidate.is_file():
            return candidate, f"the shipped profile {prof.name}"
    except Exception:  # noqa: BLE001 - any failure here falls back to the packaged file below
        pass
    packaged = Path(str(resources.files("lbsim").joinpath("data", "stages-host.json")))
    return packaged, f"the shipped profile {DEFAULT_PROFILE}"


# --------------------------------------------------------------------------------------------
# the whole job
# --------------------------------------------------------------------------------------------

@dataclass
class Outcome:
    """What :func:`calibrate_this_host` did: where everything is, the held-out errors, the
    seconds of each phase and the notices it gave."""

    profile_name: str
    profile: Path
    data_dir: Path
    costs: Path
    heldout: dict[str, Any] | None
    seconds: dict[str, float] = field(default_factory=dict)
    notices: list[str] = field(default_factory=list)
    stages_source: str = ""


class _Clock:
    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.seconds: dict[str, float] = {}

    def run(self, name: str, total: int | None, fn: Callable[[], Any]) -> Any:
        self.progress.phase(name, total)
        t0 = time.monotonic()
        try:
            return fn()
        finally:
            self.seconds[name] = time.monotonic() - t0


def _data_folder(out_dir: str | Path | None, name: str) -> Path:
    folder = Path(out_dir) if out_dir is not None else hosts_dir() / name
    if folder.exists() and not folder.is_dir():
        raise CalibrationInputError(f"{folder}: exists and is not a folder")
    folder.mkdir(parents=True, exist_ok=True)
    if not os.access(folder, os.W_OK):
        raise CalibrationInputError(f"{folder}: cannot write there")
    return folder


def _borrow(host: HostId, why: str | None, notice: Callable[[str], None]) -> tuple[Path, str, str]:
    """The borrowed stage file, where it is from, and the note for the profile (said once)."""
    path, what = borrowed_stages(host)
    note = (f"no tracepoint stages on this host: {why}; the fit uses the stage base of {what} ({path}); "
            "the fit's scales adapt it to this host's grid, the split between stages is that machine's")
    notice(f"lbsim calibrate: {note}")
    return path, what, note


def _stages_for_fit(data: Any, borrowed: tuple[Path, str, str] | None, host: HostId, why: str,
                    notice: Callable[[str], None]) -> tuple[Path, str, str | None]:
    """(stage file, where it is from, the note for the profile or None)."""
    if data.stages is not None:
        check_stages(data.stages, data.csv)
        return Path(data.stages), "this host's tracepoints", None
    return borrowed or _borrow(host, data.stages_unavailable or why, notice)


def calibrate_this_host(*, out_dir: str | Path | None = None, name: str | None = None, force: bool = False,
                        reps: int = 3, fit_sizes: Iterable[int] = (64, 4096, 65536), overwrite: bool = False,
                        progress: Progress | None = None,
                        notice: Callable[[str], None] = log.warning) -> Outcome:
    """Measure, fit, validate and install this host's cost profile (see the module docstring).

    Raises :class:`CalibrationInputError` (one line) when the machine is busy (unless ``force``),
    the profile name is taken (unless ``overwrite``), or the measured data cannot be used.
    """
    from lbsim.profiles import heldout_from_validate, install_user_profile, list_profiles

    prog = progress or _LogProgress()
    host = HostId.current()
    date = datetime.now(UTC).isoformat(timespec="seconds")
    if name and any(p.name == name and p.shipped for p in list_profiles()):  # refused before measuring
        raise CalibrationInputError(f"profile {name!r} is a shipped one; choose another --name")
    if name and not overwrite and any(p.name == name for p in list_profiles()):
        raise CalibrationInputError(f"profile {name!r} exists; choose another --name or pass --overwrite")
    name = name or default_profile_name(host, date)
    if not force:
        why = QUIET()
        if why:
            raise CalibrationInputError(f"{why}; measure on a quiet machine, or pass --force to go on anyway")
    folder = _data_folder(out_dir, name)
    trace_ok, trace_why = TRACING()
    # said before the measurement, not after it: the user may rather run it as root
    borrowed = None if trace_ok else _borrow(host, trace_why, notice)
    clock = _Clock(prog)
    sizes = list(fit_sizes)
    try:
        data = clock.run("measure", _measure_total(reps, trace_ok),
                         lambda: MEASURE(folder, prog.tick, reps=reps, stages=trace_ok))
        df = read_measured(data.csv)  # a broken measurement fails here, in one line, not in the fit
        gap = fit_coverage(df, data.csv, sizes)
        if gap:  # a point the harness could not measure: the fit leaves what it reads unfitted
            notice(f"lbsim calibrate: {gap}")
        stages, source, note = _stages_for_fit(data, borrowed, host, trace_why, notice)
        costs = folder / "costs.json"
        clock.run("fit", None, lambda: FIT(data.csv, stages, costs, sizes, lambda rms: prog.tick(f"rms {rms:.4g}")))
        report = clock.run("validate", None, lambda: VALIDATE(data.csv, costs, prog.tick))
        (folder / "validate.json").write_text(json.dumps(report) + "\n")
        heldout = heldout_from_validate(report, f"{folder / 'validate.json'}: own fit")

        def install() -> Path:
            cost_data = json.loads(costs.read_text())
            return install_user_profile(
                cost_data, name=name, host=host, date=date, heldout=heldout, data=str(folder),
                data_sha256=hashlib.sha256(Path(data.csv).read_bytes()).hexdigest(),
                notes=[f"lbsim calibrate on this host, {reps} repetitions; stages: {source}"]
                + ([note] if note else []) + ([gap] if gap else []), overwrite=overwrite)

        profile = clock.run("install", 0, install)  # 0 steps: no bar
    finally:
        prog.close()
    out = Outcome(name, profile, folder, costs, heldout, clock.seconds, [note] if note else [], source)
    (folder / "summary.txt").write_text(format_summary(out) + "\n")
    return out


def _secs(s: float) -> str:
    return f"{s:.1f} s" if s < 10 else f"{s:.0f} s"


def _pct(v: Any) -> str:
    return "-" if v is None else f"{float(v):.1f} %"


def format_summary(o: Outcome) -> str:
    """The lines the command prints at the end: held-out errors, phase times, where things are."""
    h = o.heldout or {}
    pairs = (f"{h.get('pairs_ok')}/{h.get('pairs_total')}" if h.get("pairs_total") is not None else "-")
    times = ", ".join(f"{k} {_secs(o.seconds[k])}" for k in PHASES if k in o.seconds)
    lines = [f"profile {o.profile_name}: {o.profile}",
             f"held-out median |error|: p50 round trip {_pct(h.get('rtt_p50_median_pct'))}, "
             f"throughput {_pct(h.get('throughput_median_pct'))}; transport pairs in the measured order {pairs}",
             f"time: {times} (total {_secs(sum(o.seconds.values()))})",
             f"measured data, costs.json, validate.json: {o.data_dir}",
             f"stage base: {o.stages_source}"]
    lines += [f"note: {n}" for n in o.notices]
    return "\n".join(lines)
