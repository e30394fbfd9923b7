"""Per-stage kernel timing of one ping-pong run, from tracepoints in a private tracefs instance.

:func:`measure_stages` runs the C harness (``harness.c``) under ftrace and cuts the
recorded events into per-message intervals named after kernel stages.  Tracing happens
in a *private* instance ``<tracefs>/instances/lbsim-<pid>`` filtered to the harness's
own processes (``set_event_pid`` = harness pid, ``options/event-fork`` = 1 so the forked
echo peer is followed).  The top-level tracing settings are never touched; the instance
is removed, and tracefs unmounted again if this module mounted it (at a private
temporary mount point), in ``finally`` -- also on errors and Ctrl-C.

How the pid is known before the ping-pong starts: the harness is started through a
forked Python child that blocks on a pipe and ``execve()``s the harness only after the
instance is configured and enabled, so pid(child) == pid(harness parent).

The modules behind it: :mod:`.stages_tracefs` (finding or mounting tracefs, the private
instance, enabling the tracepoints, reading the buffer, restoring the state),
:mod:`.stages_parse` (buffer lines -> :class:`Ev` records) and :mod:`.stages_intervals`
(records -> per-stage intervals and medians; the interval definitions are its docstring).
This module starts the harness under the trace and puts the result together.

Timestamps: the instance uses the ``mono`` trace clock (global across CPUs, needed for
cross-CPU wake-up intervals).  The text ``trace`` output prints microseconds only, so
the buffer is read twice -- once as text (event fields) and once with ``options/raw``
(``pid cpu ts_ns type: id``) -- and the two listings are zipped line by line (they are
the same frozen buffer; cpu and the rounded microsecond are cross-checked).

The round trip ``rtt`` and the tracing overhead per event are defined with the intervals, in
:mod:`.stages_intervals`.
"""

from __future__ import annotations

import os
import signal
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .harness import PROGRAM_NAME, TRANSPORTS, HarnessError, build_harness, run_harness
from .stages_intervals import (  # noqa: F401 - re-exported: the public names of this module
    DEVICE_STAGES,
    STAGE_DOC,
    STAGE_ORDER,
    _Acc,
    _first,
    _is_sleep,
    _pct,
    _phases,
    _Syscall,
    _syscalls,
    analyze,
)
from .stages_parse import Ev, parse_trace  # noqa: F401
from .stages_tracefs import (  # noqa: F401
    _PRIVATE_PREFIX,
    DEFAULT_BUFFER_KB,
    EVENT_FILTERS,
    EVENTS,
    INSTANCE_PREFIX,
    REQUIRED_EVENTS,
    StagesUnavailable,
    _buffer_stats,
    _configure,
    _event_ids,
    _Instance,
    _libc,
    _mount_tracefs,
    _read_buffer,
    _remove_stale_instances,
    _start,
    _Tracefs,
    _tracefs_mounts,
    _umount,
    _write,
    tracefs_available,
)

__all__ = [
    "StagesUnavailable",
    "tracefs_available",
    "measure_stages",
    "parse_trace",
    "analyze",
    "EVENTS",
    "STAGE_ORDER",
    "STAGE_DOC",
    "DEVICE_STAGES",
    "PLACEMENTS",
]

PLACEMENTS = {"same": (0, 0), "cross": (0, 1)}


def _die_with_parent() -> None:
    try:
        _libc().prctl(1, signal.SIGKILL)   # PR_SET_PDEATHSIG
    except Exception:  # pragma: no cover - best effort
        pass


class _WaitingHarness:
    """Fork a child that execs the harness only after :meth:`go` (its pid is known before)."""

    def __init__(self, exe: Path, args: Sequence[str], env: dict):
        self._out = tempfile.TemporaryFile()
        self._err = tempfile.TemporaryFile()
        r, w = os.pipe()
        argv = [PROGRAM_NAME, *args]
        pid = os.fork()
        if pid == 0:   # child: wait for "go", then become the harness
            code = 127
            try:
                os.close(w)
                _die_with_parent()
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                nul = os.open(os.devnull, os.O_RDONLY)
                os.dup2(nul, 0)
                os.dup2(self._out.fileno(), 1)
                os.dup2(self._err.fileno(), 2)
                if os.read(r, 1) == b"g":
                    os.execve(str(exe), argv, env)
                code = 1
            except BaseException:  # noqa: BLE001 - never return into the caller
                pass
            finally:
                os._exit(code)
        os.close(r)
        self.pid = pid
        self._go = w
        self.returncode: int | None = None

    def go(self) -> None:
        os.write(self._go, b"g")
        os.close(self._go)
        self._go = -1

    def wait(self, timeout: float) -> int:
        end = time.monotonic() + timeout
        while self.returncode is None:
            p, st = os.waitpid(self.pid, os.WNOHANG)
            if p == self.pid:
                self.returncode = os.waitstatus_to_exitcode(st)
                break
            if time.monotonic() > end:
                raise HarnessError(f"traced harness timed out after {timeout:.0f} s")
            time.sleep(0.005)
        return self.returncode

    def output(self) -> tuple[str, str]:
        res = []
        for f in (self._out, self._err):
            f.seek(0)
            res.append(f.read().decode(errors="replace"))
        return res[0], res[1]

    def close(self) -> None:
        if self._go >= 0:
            os.close(self._go)   # child reads EOF and exits without running the harness
            self._go = -1
        if self.returncode is None:
            for sig, wait_s in ((signal.SIGTERM, 2.0), (signal.SIGKILL, 5.0)):
                try:
                    os.kill(self.pid, sig)
                except ProcessLookupError:
                    pass
                try:
                    self.wait(wait_s)
                    break
                except HarnessError:
                    continue
                except ChildProcessError:
                    break
        self._out.close()
        self._err.close()


# ------------------------------------------------------------------ measuring

def _parse_result(out: str) -> dict | None:
    import json
    for ln in reversed([x for x in out.splitlines() if x.strip()]):
        try:
            r = json.loads(ln)
            return r if isinstance(r, dict) else None
        except ValueError:
            return None
    return None



def _check_args(transport: str, size, placement: str, count) -> tuple[int, int, int, int]:
    """Raise ValueError for bad arguments; return (count, size, cpu_a, cpu_b)."""
    if transport not in TRANSPORTS:
        raise ValueError(f"unknown transport {transport!r} (expected one of {TRANSPORTS})")
    if placement not in PLACEMENTS:
        raise ValueError(f"unknown placement {placement!r} (expected {tuple(PLACEMENTS)})")
    count, size = int(count), int(size)
    if count < 1 or size < 1:
        raise ValueError("count and size must be >= 1")
    cpu_a, cpu_b = PLACEMENTS[placement]
    ncpu = os.cpu_count() or 1
    if max(cpu_a, cpu_b) >= ncpu:
        raise ValueError(f"placement {placement!r} needs CPU {max(cpu_a, cpu_b)}, "
                         f"host has {ncpu}")
    return count, size, cpu_a, cpu_b


def _traced_run(exe: Path, args: list[str], buffer_size_kb: int, max_seconds: float) -> dict:
    """Run the harness once inside a private instance; return the raw material for the
    analysis (buffer text/raw, event ids, buffer stats, harness result, ...).  The instance
    and a private tracefs mount are removed on every way out."""
    t: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="lbsim-run-") as td, _Tracefs() as tfs:
        assert tfs.root is not None
        t["stale"] = _remove_stale_instances(tfs.root)
        inst = _Instance(tfs.root)
        t["instance"] = inst.name
        proc: _WaitingHarness | None = None
        try:
            t["clock"], t["used"], t["missing"] = _configure(inst, buffer_size_kb)
            env = dict(os.environ, TMPDIR=td)
            proc = _WaitingHarness(exe, args, env)
            _start(inst, proc.pid)
            proc.go()
            rc = proc.wait(float(max_seconds) + 40)
            inst.set("tracing_on", "0")
            out, err = proc.output()
            res = _parse_result(out)
            if isinstance(res, dict) and "error" in res:
                raise HarnessError(f"harness error: {res['error']}", rc, res, err)
            if rc != 0 or not isinstance(res, dict):
                raise HarnessError(f"traced harness exited with code {rc}: "
                                   f"{(out + err).strip()[:2000]}", rc, res, err)
            t_read = time.monotonic()
            t["text"], t["raw"] = _read_buffer(inst)
            t["bstats"] = _buffer_stats(inst)
            t["ids"] = _event_ids(inst.path / "events", t["used"])
            t["res"], t["client_pid"] = res, proc.pid
        finally:
            try:
                if proc is not None:
                    proc.close()
            finally:
                inst.remove()
    t["read_seconds"] = time.monotonic() - t_read
    t["tracefs"] = str(tfs.root) if not tfs.mounted_by_us else "private mount"
    return t


def _notes(transport: str, ana: dict, lost: int) -> list[str]:
    """What the reader of this run's table should know (see the stages_intervals docstring)."""
    notes = []
    if transport == "udp":
        notes.append("udp_recvmsg copies linear skbs with copy_linear_skb() (no "
                     "skb_copy_datagram_iovec tracepoint): no switch_in_to_copy/copy_to_exit")
    if ana["unmatched"].get("sched_switch_in"):
        notes.append("some sched_switch(next=receiver) records are missing from the buffer "
                     "(idle->task switches on some CPUs are not traced here); "
                     "waking_to_running covers those wake-ups")
    if transport == "unix_stream" and ana["spurious_sleeps"]:
        notes.append("unix_stream: consuming an skb wakes the peer sleeping in recvfrom "
                     "(sock_wfree -> unix_write_space); it sleeps again (spurious_sleeps)")
    if lost:
        notes.append(f"{lost} events lost/overwritten: increase buffer_size_kb")
    return notes


def measure_stages(transport: str, size: int = 64, placement: str = "same", count: int = 2000,
                   busy: bool = False, *, warmup: int | None = None,
                   max_seconds: float = 10.0, buffer_size_kb: int | None = None,
                   untraced: bool = True) -> dict:
    """Trace one ping-pong run of the C harness and return per-stage medians (ns).

    ``placement`` ``same`` pins client and peer to CPU 0, ``cross`` to CPUs 0 and 1;
    ``busy`` runs a nice-19 spinner on the peer's CPU.  Raises :class:`StagesUnavailable`
    when tracing is not possible (see :func:`tracefs_available`), ``HarnessError`` when
    the harness fails, ``ValueError`` for bad arguments.  The run without tracing
    (``rtt_untraced_median_ns``, skipped with ``untraced=False``) happens first.

    Main keys of the result: ``stages`` ({name: {median_ns, p10_ns, p90_ns, mean_ns,
    count, per_rtt}}, names in :data:`STAGE_ORDER`, definitions in :data:`STAGE_DOC`;
    a stage that never occurred is absent), ``medians`` ({name: median_ns}),
    ``unmatched`` ({what: messages where it could not be found}), ``wakeups``,
    ``spurious_sleeps``, ``switch_after``, ``events_used``/``events_missing``,
    ``lost_events``/``overrun``/``dropped_events``, ``rtt_traced_median_ns``,
    ``rtt_traced_harness_p50_ns``, ``rtt_untraced_median_ns``, ``events_per_rtt``,
    ``overhead_ns_per_event``, ``notes``.
    """
    count, size, cpu_a, cpu_b = _check_args(transport, size, placement, count)
    if warmup is None:
        warmup = min(100, max(5, count // 10))
    busy_cpus = (cpu_b,) if busy else ()
    ok, why = tracefs_available()
    if not ok:
        raise StagesUnavailable(why)
    exe = build_harness()

    untraced_res = None
    if untraced:
        untraced_res = run_harness(transport, "pingpong", size, count, warmup, cpu_a, cpu_b,
                                   max_seconds=max_seconds, busy_cpus=busy_cpus)

    args = ["--transport", transport, "--workload", "pingpong", "--size", str(size),
            "--count", str(count), "--warmup", str(warmup), "--cpu-a", str(cpu_a),
            "--cpu-b", str(cpu_b), "--max-seconds", repr(float(max_seconds))]
    for c in busy_cpus:
        args += ["--busy-cpu", str(c)]
    if buffer_size_kb is None:
        # ~30 events of ~50 B per round trip, all on one CPU when placement is "same"
        buffer_size_kb = min(65536, max(DEFAULT_BUFFER_KB, 3 * (count + warmup)))

    t0 = time.monotonic()
    t = _traced_run(exe, args, buffer_size_kb, max_seconds)
    events, pinfo = parse_trace(t["text"], t["raw"], t["ids"])
    ana = analyze(events, t["client_pid"], transport, warmup=warmup)

    res_traced_p50 = float(t["res"]["p50_ns"])
    untraced_p50 = float(untraced_res["p50_ns"]) if untraced_res else None
    overhead = None
    if untraced_p50 is not None and ana["events_per_rtt"] > 0:
        overhead = (res_traced_p50 - untraced_p50) / ana["events_per_rtt"]
    bstats = t["bstats"]
    lost = pinfo["lost_events"] + bstats["overrun"] + bstats["dropped_events"]
    return {
        "transport": transport, "size": size, "placement": placement, "cpu_a": cpu_a,
        "cpu_b": cpu_b, "busy": bool(busy), "count": count, "warmup": warmup,
        "kernel": os.uname().release, "tracefs": t["tracefs"],
        "instance": t["instance"], "stale_instances_removed": t["stale"],
        "trace_clock": t["clock"], "buffer_size_kb": int(buffer_size_kb),
        "events_used": [f"{s}:{e}" for s, e in t["used"]], "events_missing": t["missing"],
        "syscalls_traced": ["sendto", "recvfrom"],
        "client_pid": t["client_pid"],
        **{k: ana[k] for k in ("peer_pid", "round_trips", "messages", "stages", "medians",
                                "unmatched", "wakeups", "spurious_sleeps", "switch_after",
                                "events_in_window", "events_per_rtt")},
        "events_total": len(events),
        "lost_events": pinfo["lost_events"], "overrun": bstats["overrun"],
        "dropped_events": bstats["dropped_events"],
        "ts_resolution_ns": pinfo["ts_resolution_ns"], "mismatched_lines": pinfo["mismatched"],
        "rtt_traced_median_ns": ana["rtt_traced_median_ns"],
        "rtt_traced_harness_p50_ns": res_traced_p50,
        "rtt_untraced_median_ns": untraced_p50,
        "overhead_ns_per_event": overhead,
        "notes": _notes(transport, ana, lost),
        "seconds": round(time.monotonic() - t0, 3), "read_seconds": round(t["read_seconds"], 3),
    }
