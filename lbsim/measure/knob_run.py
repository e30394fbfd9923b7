"""Running a knob grid (:mod:`.knob_grid`): each run with its knob values, as long-format rows.

Every run of a grid goes through one private network namespace when root and ``unshare``
allow (:mod:`.netns_run`): the host's values of the per-namespace knobs are copied in first
(a fresh namespace would start from the kernel's own defaults, e.g. max_dgram_qlen 10, not
the host's), then the setting's.  Global knobs are changed through :class:`KnobJournal`,
restored at the end of the grid (and on errors and signals).  A row records every knob's
value in its own column (the default where the run did not change it), the kernel counters'
deltas, the ``setting`` id, the ``knob`` and the ``group``, so a default row and its knob rows
pair up.  Root-only knobs are skipped with a one-line notice when not root; settings the
kernel or the harness refuse (exit 2) are skipped with the reason.
"""

from __future__ import annotations

import logging
import os
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from .harness import HarnessError, _result, build_harness, harness_argv
from .host import PLACEMENTS, _loadavg1, _rows, host_info
from .knob_grid import Grid, Run, estimate_seconds, plan
from .knob_journal import KnobJournal
from .knobs import KNOBS, PROC_SYS, Value, can_netns, counter_delta, is_root, read_counters, read_sysctl
from .netns_run import get_tso, netns_argv
from .stages_tracefs import event_trace

__all__ = ["run_grid", "KNOB_COLUMNS", "COUNTER_COLUMNS", "ROW_COLUMNS", "host_defaults"]

_log = logging.getLogger("lbsim.measure")

KNOB_COLUMNS = ("mtu", "tso", "rps_cpus", "netdev_max_backlog", "dev_weight", "netdev_budget",
                "rps_sock_flow_entries", "unix_max_dgram_qlen", "so_rcvbuf", "so_sndbuf",
                "tcp_nodelay", "flows", "senders", "background", "policy", "rmem_default",
                "wmem_default", "rmem_max", "wmem_max", "tcp_rmem", "tcp_wmem", "so_busy_poll",
                "busy_read", "tcp_autocorking", "zerocopy", "rps_flow_cnt", "socktype",
                "batch", "receiver")
COUNTER_COLUMNS = ("softnet_dropped", "softnet_time_squeeze", "udp_rcvbuf_errors", "udp_in_errors",
                   "tcp_retrans_segs", "tcp_autocork_events", "busy_poll_rx_packets",
                   "sleeps_per_msg_sender", "sleeps_per_msg_receiver",
                   "msgs_sent", "msgs_received", "rcvbuf_kept", "sndbuf_kept",
                   "zc_sends", "zc_completed", "zc_copied")
ROW_COLUMNS = ("transport", "workload", "placement", "msg_bytes", "metric", "value", "rep",
               "harness", "loadavg", "kernel", "tcp_congestion_control", "setting", "knob",
               "group", "netns", *KNOB_COLUMNS, *COUNTER_COLUMNS)


def host_defaults(proc_sys: Path = PROC_SYS) -> dict:
    """Every knob's value as found on the host (by name; sysctls from ``proc_sys``)."""
    d: dict[str, Value | None] = {n: k.default for n, k in KNOBS.items() if k.default is not None}
    for n, k in KNOBS.items():
        if k.sysctl:
            d[n] = read_sysctl(k.sysctl, proc_sys)
    try:
        d["mtu"] = int(Path("/sys/class/net/lo/mtu").read_text())
        d["rps_cpus"] = Path("/sys/class/net/lo/queues/rx-0/rps_cpus").read_text().strip()
    except (OSError, ValueError):
        d["mtu"], d["rps_cpus"] = None, None
    try:
        d["rps_flow_cnt"] = int(Path("/sys/class/net/lo/queues/rx-0/rps_flow_cnt").read_text())
    except (OSError, ValueError):
        d["rps_flow_cnt"] = None
    try:
        d["tso"] = get_tso()
    except OSError:
        d["tso"] = None
    return d


def _mask(v, cpu_b: int) -> str:
    if v == "receiver":
        return format(1 << cpu_b, "x")
    if v == "all":
        return format((1 << (os.cpu_count() or 1)) - 1, "x")
    return "0" if v == "off" else str(v)


def _settings(run: Run, defaults: dict) -> dict:
    """Every knob's value for this run: the defaults, the group's fixed ones, the knob's."""
    s = dict(defaults)
    s.update(dict(run.group.fixed))
    if run.value != "default":
        s[run.group.knob] = run.value
    return s


def _argv(run: Run, s: dict, count: int, warm: int, a: int, b: int) -> list:
    # socktype seqpacket: the unix_dgram run's point with a SOCK_SEQPACKET pair (knob_grid checks the transport)
    seqpacket = s.get("socktype") == "seqpacket" and run.transport == "unix_dgram"
    transport = "unix_seqpacket" if seqpacket else run.transport
    def size_or_0(k: str) -> int:  # "default": the socket option left unset
        return 0 if s[k] == "default" else int(s[k])

    return harness_argv(transport, run.workload, run.size, count, warm, a, b, run.group.max_seconds,
                        (b,) if s["background"] == "busy" else (), str(s["policy"]),
                        rcvbuf=size_or_0("so_rcvbuf"), sndbuf=size_or_0("so_sndbuf"),
                        nagle=run.transport == "tcp" and s["tcp_nodelay"] == 0, flows=int(s["flows"]),
                        senders=int(s["senders"]),
                        busy_poll=None if s["so_busy_poll"] == "default" else int(s["so_busy_poll"]),
                        epoll=s.get("receiver") == "epoll", zerocopy=s.get("zerocopy") == "on",
                        batch=int(s.get("batch", 1)))


def _netns_knobs(s: dict, b: int) -> dict:
    sysctl = {KNOBS[n].sysctl: s[n] for n in ("tcp_rmem", "tcp_wmem", "max_dgram_qlen", "tcp_autocorking")
              if s.get(n) is not None}
    return {"mtu": s.get("mtu"), "tso": s.get("tso"),
            "rps_cpus": _mask(s["rps_cpus"], b) if s.get("rps_cpus") is not None else None,
            # a fresh namespace's rx-0 has no flow table (0): written only when it is to have one
            "rps_flow_cnt": s.get("rps_flow_cnt") or None,
            "sysctl": sysctl}


def _run_one(exe: Path, argv: list, knobs: dict | None, timeout: float) -> dict:
    with tempfile.TemporaryDirectory(prefix="lbsim-run-") as td:
        env = dict(os.environ, TMPDIR=td)
        cmd = netns_argv(knobs, str(exe), argv) if knobs is not None else argv
        c0 = read_counters() if knobs is None else None
        try:
            p = subprocess.run(cmd, executable=None if knobs is not None else str(exe),
                               capture_output=True, text=True, timeout=timeout, env=env)
        except subprocess.TimeoutExpired as e:
            raise HarnessError(f"timed out after {timeout:.0f} s: {' '.join(argv)}") from e
        res = _result(p)
        if c0 is not None:
            res["counters"] = counter_delta(c0, read_counters())
    return res


def trace_harness_command(events, exe: Path, argv: list, knobs: dict | None = None, *,
                          buffer_size_kb: int = 32768, timeout: float = 60) -> tuple[dict, str]:
    """One harness run as a grid runs it (:func:`_run_one`: ``knobs`` in a private network
    namespace, a private TMPDIR, HarnessError on failure) with ``events`` traced around it
    (:func:`.stages_tracefs.event_trace`): its result and the trace's text.  For the tools under
    tools/ that follow a run event by event."""
    with event_trace(events, buffer_size_kb) as tr:
        return tr.around(lambda: _run_one(exe, argv, knobs, timeout))


def _row_extra(res: dict, run: Run, s: dict, b: int) -> dict:
    c = res.get("counters") or {}
    pp = run.workload == "pingpong"
    extra = {col: s.get(name) for name, col in ((n, KNOBS[n].column) for n in KNOBS)}
    if extra["rps_cpus"] is not None:
        extra["rps_cpus"] = _mask(extra["rps_cpus"], b)
    for k, side in (("so_rcvbuf", "rcvbuf_server"), ("so_sndbuf", "sndbuf_client"),
                    ("so_busy_poll", "busy_poll_server")):
        if extra[k] == "default":   # the default: what the socket got unset
            extra[k] = res.get(side)
    extra.update({k: c.get(k) for k in ("softnet_dropped", "softnet_time_squeeze",
                                        "udp_rcvbuf_errors", "udp_in_errors", "tcp_retrans_segs",
                                        "tcp_autocork_events", "busy_poll_rx_packets")})
    extra.update(sleeps_per_msg_sender=res.get("sleeps_per_msg_sender"),
                 sleeps_per_msg_receiver=res.get("sleeps_per_msg_receiver"),
                 msgs_sent=res.get("count") if pp else res.get("sent"),
                 msgs_received=res.get("count") if pp else res.get("received"),
                 rcvbuf_kept=res.get("rcvbuf_server"), sndbuf_kept=res.get("sndbuf_client"),
                 zc_sends=res.get("zc_sends"), zc_completed=res.get("zc_completed"),
                 zc_copied=res.get("zc_copied"))
    return extra


def _usable(grid: Grid, netns: bool, say) -> Grid:
    """The grid without the groups this host cannot set (each said in one line)."""
    keep = []
    for g in grid.groups:
        scopes = {KNOBS[g.knob].scope} | {KNOBS[k].scope for k, _ in g.fixed}
        roots = [g.knob] + [k for k, _ in g.fixed]
        if any(KNOBS[k].root for k in roots) and not is_root():
            say(f"skip group {g.name}: knob {g.knob} needs root")
        elif "netns" in scopes and not netns:
            say(f"skip group {g.name}: knob {g.knob} needs a private network namespace (unshare)")
        else:
            keep.append(g)
    return Grid(grid.name, tuple(keep), grid.reps, grid.max_minutes, grid.source)


def run_grid(grid: Grid, progress: Callable[[str], None] | None = _log.info, *,
             proc_sys: Path = PROC_SYS, journal: Path | None = None,
             netns: bool | None = None, partial: Path | None = None) -> pd.DataFrame:
    """Run ``grid`` and return its long-format rows (ROW_COLUMNS); see the module docstring.

    ``partial``: a CSV that gets each finished run's rows at once, so that a killed grid keeps
    them (the caller removes it once the whole grid is written).  A run the harness cannot
    finish (a timeout, a warm-up that does not end: e.g. a stream stalled by a tiny buffer) is
    a result too: one ``run_failed`` row, and its later repetitions are not tried."""
    say = progress or (lambda _m: None)
    netns = can_netns() if netns is None else netns
    grid = _usable(grid, netns, say)
    runs = plan(grid)
    say(f"knob grid {grid.name}: {len(runs)} runs, about {estimate_seconds(runs) / 60:.1f} min "
        f"(bound {grid.max_minutes:g} min){'' if netns else '; no private namespace'}")
    exe, info = build_harness(), host_info()
    defaults = host_defaults(proc_sys)
    kernel, cc = info["kernel"], info["sysctl"].get("net.ipv4.tcp_congestion_control")
    records, skipped, t_end = [], set(), time.monotonic() + grid.max_minutes * 60
    with KnobJournal(journal, proc_sys) as jr:
        for i, run in enumerate(runs, 1):
            if time.monotonic() > t_end:
                say(f"wall-time bound of {grid.max_minutes:g} min reached: {len(runs) - i + 1} runs left out")
                break
            key = (run.setting, run.transport, run.workload, run.size, run.placement)
            if key in skipped:
                continue
            s = _settings(run, defaults)
            for n in [run.group.knob] + [k for k, _ in run.group.fixed]:
                if KNOBS[n].scope == "global":
                    jr.set(KNOBS[n].sysctl, s[n])  # type: ignore[arg-type]  # a global knob is a sysctl
            a, b = PLACEMENTS[run.placement]
            g = run.group
            count = g.count_pingpong if run.workload == "pingpong" else g.count_stream
            warm = max(10, count // 10) if run.workload == "pingpong" else max(5, count // 20)
            argv = _argv(run, s, count, warm, a, b)
            say(f"[{i}/{len(runs)}] {run.setting} {run.transport} {run.workload} {run.size} B "
                f"{run.placement} rep {run.rep}")
            la = _loadavg1()
            try:
                res = _run_one(exe, argv, _netns_knobs(s, b) if netns else None,
                               g.max_seconds * max(1, s["flows"]) + 40)
            except HarnessError as e:
                say(f"  {'skip' if e.returncode == 2 else 'failed'} {run.setting} {run.transport} "
                    f"{run.workload} {run.size} B: {e}")
                skipped.add(key)
                if e.returncode == 2:  # the harness refused the configuration: nothing measured
                    continue
                res, rows = {}, [("run_failed", 1.0)]
            else:
                rows = list(_rows(res, run.workload))
            extra = _row_extra(res, run, s, b)
            new = []
            for metric, value in rows:
                new.append({"transport": run.transport, "workload": run.workload,
                                "placement": run.placement, "msg_bytes": run.size, "metric": metric,
                                "value": float(value), "rep": run.rep, "harness": "c", "loadavg": la,
                                "kernel": kernel, "tcp_congestion_control": cc,
                                "setting": run.setting, "knob": run.group.knob,
                                "group": run.group.name, "netns": bool(netns), **extra})
            records += new
            if partial is not None and new:
                pd.DataFrame.from_records(new, columns=list(ROW_COLUMNS)).to_csv(
                    partial, mode="a", header=not partial.exists() or partial.stat().st_size == 0, index=False)
    df = pd.DataFrame.from_records(records, columns=list(ROW_COLUMNS))
    df.attrs["host"] = dict(info, knob_defaults=defaults, grid=grid.source)
    return df

