"""The host grid: everything ``lbsim calibrate`` fits a machine's costs to, measured in one go.

Three parts, written into one folder:

- ``measured-host.csv`` (+ ``.host.json``): ping-pong, stream and split runs of the C harness
  (:func:`lbsim.measure.host.measure`) over the sizes below;
- ``stages-host.json``: per-stage kernel tracepoint intervals of a ping-pong per transport and
  placement (:func:`lbsim.measure.stages.measure_stages`: root and tracefs), and the cost of a
  null syscall (``getppid``, entry_SYSCALL_64 .. sysret) -- the base cost table of the fit
  (:mod:`lbsim.calibrate.base`).  Where tracing is unavailable the file is not written and the
  reason is returned instead.

``scripts/measure_host.py`` and the no-argument ``lbsim calibrate`` both run
:func:`measure_host_grid`.  Run it on a quiet machine: the 1-min loadavg is recorded per run.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lbsim.measure.harness import null_syscall_ns, stage_file_micros
from lbsim.measure.host import _grid_points, measure
from lbsim.measure.stages import StagesUnavailable, measure_stages, tracefs_available

__all__ = ["TRANSPORTS", "CSV_NAME", "STAGES_NAME", "GridPart", "grid_parts", "stage_runs", "grid_runs",
           "HostData", "measure_host_grid", "loadavg1"]

log = logging.getLogger("lbsim.measure")

TRANSPORTS = ("tcp", "udp", "unix_stream", "unix_dgram")
CSV_NAME = "measured-host.csv"
STAGES_NAME = "stages-host.json"
UDP_MAX_PAYLOAD = 65507


@dataclass(frozen=True)
class GridPart:
    """One :func:`measure` call of the grid."""

    workload: str
    sizes: tuple[int, ...]
    placements: tuple[str, ...]
    busy: bool = False
    count_pingpong: int | None = 2000

    def kwargs(self) -> dict[str, Any]:
        kw: dict[str, Any] = {"busy": self.busy}
        if self.count_pingpong is not None:
            kw["count_pingpong"] = self.count_pingpong
        return kw


def grid_parts(quick: bool = False) -> list[GridPart]:
    """The grid the shipped data sets use (``quick``: a small one, for checking the set-up)."""
    pp_sizes = (64, 4096) if quick else (16, 64, 256, 1024, 4096, 16384, 65536, 262144)
    st_sizes = (1024,) if quick else (64, 256, 1024, 4096, 16384, 65536, 262144, 1048576)
    # the split (one thread writes, then reads back; same CPU, up to 64 KiB): lbsim calibrate
    # tells the copy in from the copy out by it; 65507 B is UDP's largest datagram (its 65536
    # is skipped as too large) and is measured on every transport to compare with it; 3776 and
    # 3840 B straddle SKB_MAX_HEAD(0), where a unix_stream skb's data moves into a page frag:
    # the step gives the page allocator's cost (lbsim.calibrate.page_step)
    sp_sizes = (64,) if quick else (16, 64, 256, 1024, 3776, 3840, 4096, 16384, 65507, 65536)
    return [GridPart("pingpong", pp_sizes, ("same", "cross")),
            GridPart("pingpong", (64, 4096, 65536), ("cross",), busy=True),
            GridPart("stream", st_sizes, ("same", "cross"), count_pingpong=None),
            GridPart("split", sp_sizes, ("same",), count_pingpong=None)]


def stage_runs(quick: bool = False) -> list[tuple[str, str, int]]:
    """The traced ping-pongs (transport, placement, size): 64 B everywhere, and 64 KiB on the same
    CPU for the copy-out slope (UDP: its largest datagram)."""
    out = []
    for tr in TRANSPORTS:
        for pl in ("same", "cross"):
            for size in ((64,) if pl == "cross" or quick else (64, 65536)):
                out.append((tr, pl, UDP_MAX_PAYLOAD if tr == "udp" and size > UDP_MAX_PAYLOAD else size))
    return out


def grid_runs(quick: bool = False, reps: int = 3) -> int:
    """How many harness runs the grid makes (for a progress bar; the skips said nothing)."""
    quiet: Callable[[str], None] = lambda _m: None  # noqa: E731
    return reps * sum(len(_grid_points(TRANSPORTS, (p.workload,), p.sizes, p.placements, [p.busy], quiet))
                      for p in grid_parts(quick))


def loadavg1(path: str | Path = "/proc/loadavg") -> str:
    """The 1-min loadavg as /proc/loadavg writes it ("?" where there is none)."""
    try:
        return Path(path).read_text().split()[0]
    except (OSError, IndexError):
        return "?"


@dataclass
class HostData:
    """What :func:`measure_host_grid` wrote: the CSV, the stage file (None: tracing unavailable,
    ``stages_unavailable`` says why) and the seconds each part took."""

    csv: Path
    stages: Path | None
    stages_unavailable: str | None = None
    seconds: dict[str, float] = field(default_factory=dict)


def _measure_grid(out: Path, quick: bool, reps: int, progress: Callable[[str], None]) -> Path:
    import pandas as pd

    frames = [measure(TRANSPORTS, (p.workload,), p.sizes, p.placements, reps=reps, progress=progress, **p.kwargs())
              for p in grid_parts(quick)]
    df = pd.concat(frames, ignore_index=True)
    # the CPU's vendor, family, model and stepping: profiles are matched by them (lbsim.hostid)
    df.attrs["host"] = dict(frames[0].attrs.get("host", {}), cpu=_host_facts()["cpu"])
    from lbsim.measure.host import write_csv

    return write_csv(df, out / CSV_NAME)


def _host_facts() -> dict[str, Any]:
    """This machine's CPU and kernel, recorded in the stage file: ``lbsim calibrate`` refuses a
    stage file traced on another machine than the CSV's."""
    from lbsim.hostid import HostId

    h = HostId.current()
    return {"cpu": h.cpu_dict(), "kernel": h.kernel, "hostname": h.hostname}


def _measure_stages(out: Path, quick: bool, progress: Callable[[str], None],
                    load0: str) -> tuple[Path | None, str | None]:
    """Trace the stage runs into ``out/stages-host.json``; (None, why) where tracing cannot run."""
    ok, why = tracefs_available()
    if not ok:
        return None, why
    stages: dict[str, Any] = {"null_syscall_ns": null_syscall_ns(), "runs": [], "host": _host_facts(),
                              **stage_file_micros()}
    try:
        for tr, pl, size in stage_runs(quick):
            r = measure_stages(tr, size=size, placement=pl, count=2000)
            stages["runs"].append({"transport": tr, "placement": pl, "size": size, "result": r})
            progress(f"stages {tr} {pl} {size} B: done")
    except StagesUnavailable as e:  # tracefs went away mid-way: the grid alone is still data
        return None, str(e)
    stages["loadavg_before"] = load0
    stages["loadavg_after"] = loadavg1()
    path = out / STAGES_NAME
    path.write_text(json.dumps(stages, indent=1, default=str) + "\n")
    return path, None


def measure_host_grid(out: str | Path, *, reps: int = 3, quick: bool = False, stages: bool = True,
                      progress: Callable[[str], None] | None = None) -> HostData:
    """Measure this host's grid into ``out`` (created), then its stages where tracing allows.

    ``progress`` gets one line per harness run (``[i/n] ...`` from :func:`measure`) and per
    traced run (``stages ...``).
    """
    say = progress or log.info
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    load0 = loadavg1()
    t0 = time.monotonic()
    csv = _measure_grid(folder, quick, reps, say)
    seconds = {"grid": time.monotonic() - t0}
    if not stages:
        return HostData(csv, None, "not asked for", seconds)
    t1 = time.monotonic()
    path, why = _measure_stages(folder, quick, say, load0)
    seconds["stages"] = time.monotonic() - t1
    return HostData(csv, path, why, seconds)
