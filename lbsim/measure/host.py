"""Host description and measurement grid driver for the real-kernel harness.

:func:`host_info` describes the machine (kernel, CPU, L2, HZ, the networking sysctls of
net/core/sysctl_net_core.c, net/ipv4/sysctl_net_ipv4.c and net/unix/sysctl_net_unix.c);
:func:`measure` runs the harness over a grid and returns the long-format DataFrame of
docs/guide/measured-data.md; :func:`write_csv` stores it with ``<path>.host.json``.
Progress goes to the ``lbsim.measure`` logger (level INFO) unless a callback is given.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import platform
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

from lbsim.hostid import HostId

from .harness import (
    SPLIT_MAX_SIZE,
    TRANSPORTS,
    WORKLOADS,
    HarnessError,
    HarnessUnavailable,
    build_harness,
    max_dgram_size,
    python_fallback_pingpong,
    python_fallback_split,
    python_fallback_stream,
    run_harness,
)

__all__ = ["host_info", "l2_bytes", "measure", "write_csv", "stream_count", "STREAM_BYTES", "COLUMNS",
           "PINGPONG_METRICS", "STREAM_METRICS", "SPLIT_METRICS", "PLACEMENTS"]

COLUMNS = ["transport", "workload", "placement", "msg_bytes", "metric", "value", "rep",
           "harness", "background", "policy", "loadavg", "kernel", "tcp_congestion_control"]
PINGPONG_METRICS = ("rtt_mean_us", "rtt_p50_us", "rtt_p90_us", "rtt_p99_us", "rtt_p999_us")
STREAM_METRICS = ("throughput_MBps", "msgs_per_s", "loss_pct", "rcvbuf_drop_pct", "backlog_drop_pct",
                  "cpu_busy_sender", "cpu_busy_receiver")
#: split: one thread writes a message and reads it back, each call timed apart (median and mean)
SPLIT_METRICS = ("write_p50_us", "read_p50_us", "write_mean_us", "read_mean_us")
PLACEMENTS = {"same": (0, 0), "cross": (0, 1)}

SYSCTLS = (
    "net.core.rmem_default", "net.core.wmem_default", "net.core.rmem_max",
    "net.core.wmem_max", "net.core.netdev_max_backlog", "net.core.netdev_budget",
    "net.core.netdev_budget_usecs", "net.core.dev_weight",
    "net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem", "net.unix.max_dgram_qlen",
    "net.ipv4.tcp_congestion_control",
)


_log = logging.getLogger("lbsim.measure")


def _log_progress(msg: str) -> None:
    _log.info(msg)


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def _sysctl(name: str) -> int | list | str | None:
    raw = _read("/proc/sys/" + name.replace(".", "/"))
    if raw is None:
        return None
    parts = raw.split()
    try:
        vals = [int(p) for p in parts]
    except ValueError:
        return raw
    return vals[0] if len(vals) == 1 else vals


def _cpu_model() -> str | None:
    txt = _read("/proc/cpuinfo") or ""
    for key in ("model name", "Hardware", "Processor", "cpu model", "uarch"):
        for line in txt.splitlines():
            k, _, v = line.partition(":")
            if k.strip() == key and v.strip():
                return v.strip()
    return platform.processor() or None


def _config_hz(release: str) -> int | None:
    texts = []
    try:
        with gzip.open("/proc/config.gz", "rt") as f:
            texts.append(f.read())
    except OSError:
        pass
    boot = _read(f"/boot/config-{release}")
    if boot:
        texts.append(boot)
    for t in texts:
        for line in t.splitlines():
            if line.startswith("CONFIG_HZ="):
                try:
                    return int(line.split("=", 1)[1])
                except ValueError:
                    pass
    return None


def _loadavg() -> list | None:
    raw = _read("/proc/loadavg")
    if not raw:
        return None
    try:
        return [float(x) for x in raw.split()[:3]]
    except ValueError:
        return None


def _loadavg1() -> float:
    la = _loadavg()
    return la[0] if la else float("nan")


def l2_bytes(cpu_dir: str = "/sys/devices/system/cpu/cpu0/cache") -> int | None:
    """This host's per-core L2 size from sysfs (the cache a socket's queued data spills out of;
    lbsim calibrate sets the cost model's ``cache_bytes`` from it); None where sysfs does not say."""
    for idx in sorted(Path(cpu_dir).glob("index*")):
        try:
            if (idx / "level").read_text().strip() == "2":
                txt = (idx / "size").read_text().strip().upper()
                mult = {"K": 1024, "M": 1024 * 1024}.get(txt[-1], 1)
                return int(txt.rstrip("KM")) * mult
        except (OSError, ValueError):
            continue
    return None


def host_info() -> dict:
    """Describe the host: kernel, CPU (and its L2 size), loopback MTU, HZ, networking sysctls,
    loadavg."""
    release = os.uname().release
    sysctl = {name: _sysctl(name) for name in SYSCTLS}
    mtu = _read("/sys/class/net/lo/mtu")
    try:
        allowed = sorted(os.sched_getaffinity(0))
    except OSError:
        allowed = None

    # netdev_budget_usecs defaults to 2 * USEC_PER_SEC / HZ (only valid if never tuned)
    bu = sysctl.get("net.core.netdev_budget_usecs")
    hz_budget = None
    if isinstance(bu, int) and bu > 0 and 2_000_000 % bu == 0:
        cand = 2_000_000 // bu
        if cand in (100, 128, 200, 250, 256, 300, 500, 1000, 1024):
            hz_budget = cand
    hz_cfg = _config_hz(release)
    hz, hz_source = (hz_cfg, "kernel config") if hz_cfg else (
        (hz_budget, "netdev_budget_usecs (assumes default 2s/HZ)") if hz_budget else (None, None))

    try:
        harness_c = str(build_harness())
    except HarnessUnavailable:
        harness_c = None

    return {
        "kernel": release,
        "uname": " ".join(os.uname()),
        "cpu_model": _cpu_model(),
        # vendor, family, model, stepping: what lbsim.profiles matches cost profiles by
        "cpu": HostId.current().cpu_dict(),
        "l2_bytes": l2_bytes(),
        "nproc": os.cpu_count(),
        "cpus_allowed": allowed,
        "lo_mtu": int(mtu) if mtu and mtu.isdigit() else None,
        "hz": hz,
        "hz_source": hz_source,
        "hz_from_netdev_budget_usecs": hz_budget,
        "sysctl": sysctl,
        "loadavg": _loadavg(),
        "python": platform.python_version(),
        "harness": "c" if harness_c else "python",
        "harness_binary": harness_c,
    }


#: bytes written in one stream run (lbsim validate simulates the same by default)
STREAM_BYTES = 64 << 20


def stream_count(size: int, stream_bytes: int = STREAM_BYTES) -> int:
    """Messages per stream run: bounded volume (``stream_bytes``) and count (50 to 20000)."""
    return int(min(20000, max(50, int(stream_bytes) // int(size))))


def _runner(use_c: bool):
    if use_c:
        return run_harness, "c"

    def py(transport, workload, *args, **kw):
        f = {"pingpong": python_fallback_pingpong, "stream": python_fallback_stream,
             "split": python_fallback_split}[workload]
        return f(transport, *args, **kw)
    return py, "python"


def _rows(res: dict, workload: str) -> list:
    if workload == "split":
        return [(m, res[k] / 1e3) for m, k in zip(
            SPLIT_METRICS, ("write_p50_ns", "read_p50_ns", "write_mean_ns", "read_mean_ns"))]
    if workload == "pingpong":
        return [(m, res[k] / 1e3) for m, k in zip(
            PINGPONG_METRICS, ("mean_ns", "p50_ns", "p90_ns", "p99_ns", "p999_ns"))]
    sent, received = res["sent"], res["received"]
    loss = 100.0 * (sent - received) / sent if sent > 0 else float("nan")
    rows = [("throughput_MBps", res["throughput_Bps"] / 1e6),
            ("msgs_per_s", float(res["msgs_per_s"])),
            ("loss_pct", max(0.0, loss))]
    # where the kernel dropped them, from its own counters (system-wide deltas over the run)
    if sent > 0 and res.get("rcvbuf_errors") is not None:
        rows.append(("rcvbuf_drop_pct", 100.0 * res["rcvbuf_errors"] / sent))
    if sent > 0 and res.get("softnet_dropped") is not None:
        rows.append(("backlog_drop_pct", 100.0 * res["softnet_dropped"] / sent))
    # each side's CPU time over the measured window (C harness only)
    rows += [(m, float(res[m])) for m in ("cpu_busy_sender", "cpu_busy_receiver") if res.get(m) is not None]
    return rows


def _check_grid(transports: Sequence[str], workloads: Sequence[str],
                placements: Sequence[str]) -> None:
    for t in transports:
        if t not in TRANSPORTS:
            raise ValueError(f"unknown transport {t!r}")
    for w in workloads:
        if w not in WORKLOADS:
            raise ValueError(f"unknown workload {w!r}")
    for p in placements:
        if p not in PLACEMENTS:
            raise ValueError(f"unknown placement {p!r} (expected {tuple(PLACEMENTS)})")


def _use_c(harness: str, say: Callable[[str], None]) -> bool:
    """Whether to run the C harness: ``auto`` falls back to Python without a compiler."""
    if harness == "python":
        return False
    try:
        build_harness()
        return True
    except HarnessUnavailable as e:
        if harness == "c":
            raise
        say(f"lbsim.measure: C harness unavailable ({e}); using the Python fallback")
        return False


def _grid_points(transports: Sequence[str], workloads: Sequence[str], sizes: Sequence[int],
                 placements: Sequence[str], backgrounds: list, say: Callable[[str], None]) -> list:
    """The grid's runs (transport, workload, size, placement, cpu_a, cpu_b, busy), without
    those the transport or the host cannot do (each skip said)."""
    ncpu = os.cpu_count() or 1
    points = []
    for t in transports:
        lim = max_dgram_size(t)
        for w in workloads:
            for size in sizes:
                size = int(size)
                if lim is not None and size > lim:
                    say(f"skip {t} {w} {size} B: exceeds the {t} datagram limit of {lim} B")
                    continue
                if w == "split" and size > SPLIT_MAX_SIZE:
                    say(f"skip {t} split {size} B: one thread cannot write more than {SPLIT_MAX_SIZE} B "
                        "before it reads")
                    continue
                for pl in placements:
                    if w == "split" and pl != "same":
                        continue  # one thread: no placement but its own CPU (recorded as same)
                    a, b = PLACEMENTS[pl]
                    if max(a, b) >= ncpu:
                        say(f"skip placement {pl}: needs CPU {max(a, b)}, host has {ncpu}")
                        continue
                    for bg in backgrounds:
                        if w == "split" and bg:
                            continue  # a spinner would only share the one thread's CPU
                        points.append((t, w, size, pl, a, b, bool(bg)))
    return points


def _count_warmup(w: str, size: int, count_pingpong: int,
                  count_stream: int | Callable[[int], int] | None,
                  warmup_pingpong: int | None, warmup_stream: int | None) -> tuple[int, int]:
    """(messages, warm-up messages) of one run of workload ``w``."""
    if w in ("pingpong", "split"):
        count = int(count_pingpong)
        warm = warmup_pingpong if warmup_pingpong is not None else max(10, count // 10)
        return count, warm
    if count_stream is None:
        count = stream_count(size)
    elif callable(count_stream):
        count = int(count_stream(size))
    else:
        count = int(count_stream)
    warm = warmup_stream if warmup_stream is not None else max(5, count // 20)
    return count, warm


def measure(transports: Sequence[str] = TRANSPORTS,
            workloads: Sequence[str] = WORKLOADS,
            sizes: Sequence[int] = (64, 1024, 16384),
            placements: Sequence[str] = ("same", "cross"),
            reps: int = 3,
            count_pingpong: int = 2000,
            count_stream: int | Callable[[int], int] | None = None,
            busy: bool | Sequence[bool] = False,
            progress: Callable[[str], None] | None = _log_progress,
            *,
            warmup_pingpong: int | None = None,
            warmup_stream: int | None = None,
            max_seconds: float = 5.0,
            policy: str = "other",
            on_error: str = "raise",
            harness: str = "auto") -> pd.DataFrame:
    """Run a measurement grid and return a long-format DataFrame (see COLUMNS).

    placement ``same`` pins client and peer to CPU 0, ``cross`` to CPUs 0 and 1.
    ``busy=True`` runs a nice-19 spinner on the peer's CPU (cpu_b) during each
    run (``background='busy'``); a list like ``[False, True]`` runs both.
    ``count_stream`` defaults to :func:`stream_count` (per size); it may be an
    int or a callable ``size -> count``.  Repetitions are interleaved (the
    whole grid is run once per rep).  Sizes a datagram transport cannot carry
    (UDP > 65507, UNIX dgram > wmem_default - 32) are skipped.
    ``on_error``: ``"raise"`` (default) or ``"skip"`` (report via progress).
    ``harness``: ``"auto"`` (C, falling back to Python without a compiler),
    ``"c"`` or ``"python"``.
    """
    if on_error not in ("raise", "skip"):
        raise ValueError("on_error must be 'raise' or 'skip'")
    say = progress or (lambda _m: None)
    _check_grid(transports, workloads, placements)
    backgrounds = list(busy) if isinstance(busy, (list, tuple)) else [bool(busy)]
    run, harness_name = _runner(_use_c(harness, say))
    kernel = os.uname().release
    points = _grid_points(transports, workloads, sizes, placements, backgrounds, say)

    info = host_info()
    congestion = info["sysctl"].get("net.ipv4.tcp_congestion_control")  # a column: validate simulates it
    records = []
    total = len(points) * reps
    i = 0
    for rep in range(reps):
        for (t, w, size, pl, a, b, bg) in points:
            i += 1
            count, warm = _count_warmup(w, size, count_pingpong, count_stream, warmup_pingpong,
                                        warmup_stream)
            background = "busy" if bg else "idle"
            la = _loadavg1()
            say(f"[{i}/{total}] rep {rep} {t} {w} {size} B {pl} {background} {policy}")
            try:
                res = run(t, w, size, count, warm, a, b, max_seconds=max_seconds,
                          busy_cpus=(b,) if bg else (), policy=policy)
            except HarnessError as e:
                if on_error == "raise":
                    raise
                say(f"  error (skipped): {e}")
                continue
            for metric, value in _rows(res, w):
                records.append((t, w, pl, size, metric, float(value), rep,
                                res.get("harness", harness_name), background, policy, la,
                                kernel, congestion))
    df = pd.DataFrame.from_records(records, columns=COLUMNS)
    df.attrs["host"] = info
    return df


def write_csv(df: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write ``df`` as plain CSV (header row, no comments, no index) and the host
    description as JSON next to it, at ``<path>.host.json``.  Returns the CSV path."""
    path = Path(path)
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, index=False)
    info = df.attrs.get("host") or host_info()
    with open(str(path) + ".host.json", "w") as f:
        json.dump(info, f, indent=2, sort_keys=True)
        f.write("\n")
    return path
