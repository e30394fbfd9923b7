"""What ``lbsim calibrate`` checks before it measures or fits: a quiet machine, a readable measured
CSV, a stage file traced on the machine the CSV was measured on.

Each check raises :class:`CalibrationInputError` (a ValueError) with one line naming the file and
the problem; the command reports it and exits 2.  A fit on bad input would not fail: it would give
worse costs without saying so, which is why these run first.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

__all__ = ["CalibrationInputError", "check_quiet", "read_measured", "fit_coverage", "check_stages",
           "stage_host_facts"]

log = logging.getLogger("lbsim.calibrate")

#: the 1-min loadavg a quiet machine stays under, per CPU this process may run on
LOAD_PER_CPU = 0.5
#: a process using more than this share of one CPU (percent) while we look makes the machine busy
BUSY_PCT = 20.0


class CalibrationInputError(ValueError):
    """Input ``lbsim calibrate`` cannot use: the message is one line naming the file or the cause."""


# --------------------------------------------------------------------------------------------
# a quiet machine
# --------------------------------------------------------------------------------------------

def _cpu_times(proc: Path) -> dict[int, tuple[str, int]]:
    """pid -> (command name, utime + stime in clock ticks) from /proc/<pid>/stat (proc(5))."""
    out: dict[int, tuple[str, int]] = {}
    for d in proc.iterdir():
        if not d.name.isdigit():
            continue
        try:
            text = (d / "stat").read_text()
        except OSError:  # the process ended meanwhile
            continue
        head, _, rest = text.rpartition(")")
        fields = rest.split()
        if len(fields) < 13:
            continue
        # after "pid (comm)": state is field 3; utime and stime are fields 14 and 15
        out[int(d.name)] = (head.partition("(")[2], int(fields[11]) + int(fields[12]))
    return out


def _ncpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def check_quiet(*, proc: str | Path = "/proc", per_cpu: float = LOAD_PER_CPU, busy_pct: float = BUSY_PCT,
                sample_s: float = 1.0, cpus: int | None = None) -> str | None:
    """None if the machine looks quiet, else one line saying why not.

    Quiet: the 1-min loadavg at most ``per_cpu`` per CPU, and no other process using more than
    ``busy_pct`` % of a CPU over ``sample_s`` seconds (its utime + stime in /proc/<pid>/stat).
    """
    root = Path(proc)
    n = cpus or _ncpus()
    try:
        load = float((root / "loadavg").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        load = None
    if load is not None and load > per_cpu * n:
        return (f"the machine is not quiet: 1-min loadavg {load:.2f} is above {per_cpu * n:.2f} "
                f"({per_cpu:g} per CPU x {n})")
    before = _cpu_times(root)
    time.sleep(sample_s)
    after = _cpu_times(root)
    hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    me = {os.getpid(), os.getppid()}
    busiest = None
    for pid, (name, ticks) in after.items():
        if pid in me or pid not in before or before[pid][0] != name:
            continue
        pct = 100.0 * (ticks - before[pid][1]) / hz / max(sample_s, 1e-3)
        if pct > busy_pct and (busiest is None or pct > busiest[2]):
            busiest = (pid, name, pct)
    if busiest is not None:
        pid, name, pct = busiest
        return (f"the machine is not quiet: process {pid} ({name}) used {pct:.0f}% of a CPU "
                f"over {sample_s:g} s")
    return None


# --------------------------------------------------------------------------------------------
# the measured CSV
# --------------------------------------------------------------------------------------------

def _truncated(path: Path, text: str) -> str | None:
    """Why the file looks cut off (it ends mid-line, short of the header's fields), else None."""
    if not text or text.endswith("\n"):
        return None
    lines = text.splitlines()
    if len(lines) < 2:
        return None
    want, got = lines[0].count(",") + 1, lines[-1].count(",") + 1
    if got < want:
        return (f"{path}: truncated: line {len(lines)} has {got} of the header's {want} fields and the "
                "file ends mid-line (an interrupted copy or measurement?)")
    return None


def read_measured(path: str | Path) -> Any:
    """The long-format measured CSV as :func:`lbsim.fitdata.load_measured` reads it, after the
    checks ``lbsim validate`` makes (columns, values, points the simulator accepts)."""
    import pandas as pd

    from lbsim.fitdata import kernel_fields, load_measured
    from lbsim.validate import MeasuredDataError, check_measured

    p = Path(path)
    if not p.is_file():
        raise CalibrationInputError(f"{p}: no such measured-data file")
    try:
        raw = p.read_bytes()
        text = raw.decode()
    except UnicodeDecodeError:
        raise CalibrationInputError(f"{p}: not a text CSV (not UTF-8)") from None
    if not text.strip():
        raise CalibrationInputError(f"{p}: empty file; need the long-format CSV lbsim measure writes "
                                    "(docs/guide/measured-data.md)")
    why = _truncated(p, text)
    if why:
        raise CalibrationInputError(why)
    try:
        df = load_measured(p)
    except (ValueError, pd.errors.ParserError) as e:  # EmptyDataError, tokenizer errors, missing columns
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CalibrationInputError(msg if str(p) in msg else f"{p}: not a measured-data CSV ({msg})") from None
    try:
        check_measured(df, str(p))
        kernel_fields(df)  # one kernel profile and one congestion control: what the fit simulates
    except MeasuredDataError as e:
        msg = str(e).splitlines()[0]
        raise CalibrationInputError(msg if str(p) in msg else f"{p}: {msg}") from None
    return df


#: the transports and placements whose ping-pongs the fit's scales are read from (lbsim.calibrate.steps)
FIT_TRANSPORTS = ("tcp", "udp", "unix_stream", "unix_dgram")


def fit_coverage(df: Any, path: str | Path, fit_sizes: Any = (64, 4096, 65536)) -> str | None:
    """One line if the measured data lacks what the fit reads, else None: the idle ping-pong p50
    of each transport, placement and fit size (a file cut at a line end passes :func:`read_measured`
    but leaves the costs of what it lost unfitted), or a last point with fewer repetitions than
    the others (the same cut, inside a point)."""
    from lbsim.fitdata import UDP_MAX_PAYLOAD, at_fit_size

    pp = df[(df["workload"] == "pingpong") & (df["metric"] == "rtt_p50_us")]
    if "background" in pp.columns:
        pp = pp[pp["background"].fillna("idle") == "idle"]
    have = {(str(t), str(p), int(n)) for t, p, n in zip(pp["transport"], pp["placement"], pp["msg_bytes"])}
    # UDP ping-pongs stop at its largest datagram; lbsim measure's grid has none of 64 KiB
    missing = [f"{tr} {pl} {n} B" for tr in FIT_TRANSPORTS for pl in ("same", "cross") for n in fit_sizes
               if not (tr == "udp" and n > UDP_MAX_PAYLOAD)
               and not any(t == tr and p == pl and at_fit_size(tr, m, [n]) for t, p, m in have)]
    if missing:
        more = f" and {len(missing) - 4} more" if len(missing) > 4 else ""
        return (f"{path}: no idle ping-pong p50 at {', '.join(missing[:4])}{more}: the fit cannot pin the costs "
                "those points read (not identified; a file cut short?)")
    # rows per point (every metric of every repetition): the last point against the others of its workload
    keys = [k for k in ("transport", "workload", "placement", "background", "msg_bytes") if k in df.columns]
    rows = df.groupby(keys, sort=False).size()
    if len(rows) > 1:
        last, wl = rows.index[-1], rows.index[-1][keys.index("workload")]
        others = rows.iloc[:-1][[k[keys.index("workload")] == wl for k in rows.index[:-1]]]
        if len(others) and rows.iloc[-1] < others.max():
            return (f"{path}: its last point ({' '.join(str(v) for v in last)} B) has {rows.iloc[-1]} rows where "
                    f"the other {wl} points have {others.max()} (a file cut short?)")
    return None


# --------------------------------------------------------------------------------------------
# the stage file
# --------------------------------------------------------------------------------------------

def stage_host_facts(stages: dict[str, Any]) -> tuple[set[str], dict[str, Any] | None]:
    """The kernels a stage file's runs were traced on, and its CPU block (files written by
    :mod:`lbsim.measure.grid` record one under ``host``; older ones only the kernel per run)."""
    kernels = {str(r["result"]["kernel"]) for r in stages.get("runs") or []
               if isinstance(r, dict) and isinstance(r.get("result"), dict) and r["result"].get("kernel")}
    host = stages.get("host") if isinstance(stages.get("host"), dict) else None
    if host and host.get("kernel"):
        kernels.add(str(host["kernel"]))
    cpu = host.get("cpu") if host and isinstance(host.get("cpu"), dict) else None
    return kernels, cpu


def check_stages(stages_path: str | Path, measured_path: str | Path) -> dict[str, Any]:
    """The stage file's content, if it has traced runs and was traced on the machine the measured
    CSV's ``.host.json`` describes (the same kernel release; the same CPU where both record it)."""
    from lbsim.hostid import HostId

    sp, mp = Path(stages_path), Path(measured_path)
    try:
        stages = json.loads(sp.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CalibrationInputError(f"{sp}: not a JSON stage file ({str(e).splitlines()[0]})") from None
    if not isinstance(stages, dict) or not isinstance(stages.get("runs"), list):
        raise CalibrationInputError(f"{sp}: not a stage file: need a JSON object with a 'runs' list "
                                    "(written by lbsim measure --stages)")
    if not stages["runs"]:
        why = stages.get("unavailable")
        raise CalibrationInputError(f"{sp}: no traced runs" + (f" (tracing was unavailable: {why})" if why else "")
                                    + "; the fit needs them for its base cost table")
    host_file = Path(str(mp) + ".host.json")
    try:
        host = json.loads(host_file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        # nothing to compare with: data from elsewhere may come without one; said, not refused
        log.warning("%s: no readable %s: cannot check that the stage file was traced on the machine "
                    "it was measured on", sp, host_file.name)
        return stages
    measured = HostId.from_host_json(host) if isinstance(host, dict) else None
    kernels, cpu = stage_host_facts(stages)
    if measured is not None and measured.kernel and kernels and kernels != {measured.kernel}:
        raise CalibrationInputError(
            f"{sp}: traced on kernel {', '.join(sorted(kernels))} but {mp} was measured on {measured.kernel} "
            f"(its .host.json): a stage file from another host; give the one measured with this CSV")
    if measured is not None and cpu is not None:
        traced = HostId.from_cpu_dict(cpu)
        differs = (measured.same_cpu(measured) and traced.same_cpu(traced) and not measured.same_cpu(traced)) or \
                  (measured.vendor_id and traced.vendor_id and measured.vendor_id != traced.vendor_id)
        if differs:
            raise CalibrationInputError(
                f"{sp}: traced on a {traced.label()} CPU but {mp} was measured on {measured.label()} "
                f"(its .host.json): a stage file from another host; give the one measured with this CSV")
    return stages
