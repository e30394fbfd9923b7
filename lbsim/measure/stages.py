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

Timestamps: the instance uses the ``mono`` trace clock (global across CPUs, needed for
cross-CPU wake-up intervals).  The text ``trace`` output prints microseconds only, so
the buffer is read twice -- once as text (event fields) and once with ``options/raw``
(``pid cpu ts_ns type: id``) -- and the two listings are zipped line by line (they are
the same frozen buffer; cpu and the rounded microsecond are cross-checked).

The harness uses ``send()``/``recv()``, which glibc issues as the ``sendto`` and
``recvfrom`` system calls (checked with ``strace -f -c``: the ping-pong makes no other
socket I/O calls; read/write only touch the control pipes outside the measured loop),
so those are the syscall tracepoints used.

Interval definitions (all per message; "S" is the sender, "R" the receiver):

sender, loopback (tcp/udp), inside S's ``sendto``:
  ``send_syscall``               sys_enter_sendto -> sys_exit_sendto (everything, incl. the softirq)
  ``send_to_dev``                sys_enter_sendto -> net_dev_queue (syscall entry, tcp/udp_sendmsg
                                 with copy #1, IP output)
  ``dev_to_netif_rx``            net_dev_queue -> netif_rx_entry of the same skb (dev_queue_xmit,
                                 loopback_xmit)
  ``netif_rx_to_softirq``        netif_rx_entry -> softirq_entry(NET_RX) (enqueue_to_backlog,
                                 rest of dev_queue_xmit, local_bh_enable -> do_softirq)
  ``softirq_to_receive_skb``     softirq_entry -> netif_receive_skb of the same skb (net_rx_action,
                                 process_backlog)
  ``receive_skb_to_waking``      netif_receive_skb -> sched_waking(R) (ip_rcv, tcp_v4_rcv/udp_rcv,
                                 sock_def_readable)
  ``receive_skb_to_softirq_exit`` netif_receive_skb -> softirq_exit when R was not asleep
                                 (no wake-up)
  ``softirq_tail``               same CPU: sched_wakeup(R) -> softirq_exit; cross CPU:
                                 sched_waking(R) -> softirq_exit (includes ttwu_queue_wakelist and
                                 the IPI send) -- the rest of the softirq
  ``softirq``                    softirq_entry -> softirq_exit (whole NET_RX run)
  ``after_softirq_to_exit``      softirq_exit -> sys_exit_sendto (return path, release_sock)

sender, AF_UNIX (no device, no softirq):
  ``send_syscall``, ``send_to_waking`` (sys_enter_sendto -> sched_waking(R)),
  ``waking_to_exit`` (sched_waking(R) -> sys_exit_sendto)

wake-up of R (only when S's send woke R):
  ``waking_to_wakeup``           same CPU: sched_waking -> sched_wakeup (try_to_wake_up)
  ``remote_wakeup``              cross CPU: sched_waking on CPU A -> sched_wakeup on CPU B
                                 (IPI delivery, idle exit, sched_ttwu_pending)
  ``wakeup_to_switch``           sched_wakeup(R) -> sched_switch(next=R)
  ``switch``                     the last traced event on R's CPU before sched_switch(next=R)
                                 (not earlier than R's sched_wakeup) -> sched_switch(next=R):
                                 the way into __schedule of the task that gives up the CPU
  ``wakeup_latency``             sched_waking(R) -> sched_switch(next=R) (cross CPU: IPI + idle
                                 exit + schedule; same CPU: also the rest of the waker's run)
  ``waking_to_running``          sched_waking(R) -> R's first own event afterwards (also available
                                 when the sched_switch(next=R) record is missing)

receiver, R's first ``recvfrom`` of the message:
  ``recv_entry_to_switch_out``   sys_enter_recvfrom -> first sched_switch(prev=R, state S/D)
  ``switch_in_to_copy``          last sched_switch(next=R) before the copy ->
                                 skb_copy_datagram_iovec
  ``switch_in_to_exit``          last sched_switch(next=R) -> sys_exit_recvfrom
  ``copy_to_exit``               skb_copy_datagram_iovec -> sys_exit_recvfrom
  ``recv_entry_to_copy``         sys_enter_recvfrom -> skb_copy_datagram_iovec (did not sleep)
  ``recv_syscall``               sys_enter_recvfrom -> sys_exit_recvfrom (did not sleep)

round trip: ``rtt`` -- the client's first sys_enter_sendto -> its last sys_exit_recvfrom of the
reply.  It misses what happens in user space and after the syscall-exit tracepoint (e.g. a
preemption on the way out), so it can be below the harness's own p50; the tracing overhead
is therefore computed from the harness's p50 with and without tracing (same clock):
``overhead_ns_per_event = (rtt_traced_harness_p50_ns - rtt_untraced_median_ns) /
events_per_rtt``, where events_per_rtt counts every recorded event in the measured window.
Across CPUs the round trip is dominated by IPI/idle-exit latency whose run-to-run spread is
far larger than the tracing cost, so that estimate is noisy there.

What the trace of this kind of run shows and how it is handled:

* On the same CPU the receiver is often *not* asleep when data arrives (the woken peer
  preempts the client at its sendto's return; its reply is queued before the client
  reaches recvfrom), so many messages have no wake-up: counted in ``wakeups['none']``;
  their receive side is ``recv_syscall``/``recv_entry_to_copy`` instead of the
  switch intervals, and their softirq ``receive_skb_to_softirq_exit``.
* TCP in a ping-pong sends no separate ACKs (they ride on the replies); the first
  net_dev_queue of the sendto and the skb address are followed through the softirq.
* Cross CPU, the send to a sleeping peer on an idle CPU costs the *sender* the IPI
  (``softirq_tail``/``waking_to_exit``: ttwu_queue_wakelist + the IPI, tens of us in a VM).
* AF_UNIX stream: consuming an skb calls sock_wfree -> unix_write_space, which wakes
  the *other* task if it sleeps in recvfrom (the wait queue entry ignores the poll key):
  a spurious wake-up (it is inside the consumer's recvfrom, so ``copy_to_exit`` of
  unix_stream includes it).  If the woken task gets the CPU before the data arrives it
  sleeps again (an extra sleep inside one recvfrom: ``spurious_sleeps``); if not (the
  usual case across CPUs, where the remote wake-up takes longer than the next send),
  the sender's sendto finds it already runnable and wakes nobody: the message then
  rides on that earlier wake-up, counted as ``wakeups['early']`` and used for the
  wake-up intervals (``remote_wakeup``, ``wakeup_latency``, ...) but not for
  ``send_to_waking``/``waking_to_exit``.
* ``wakeups`` per message: ``local``/``remote`` (the sender's sendto woke R on its own
  / another CPU), ``early`` (see above), ``none`` (R was not asleep: on one CPU the
  woken peer usually preempts the client, whose reply is then queued before the client
  reaches recvfrom), ``before_switch_out`` (woken while still on its way to sleep).
* UDP copies linear skbs with copy_linear_skb(), which has no tracepoint: no
  skb_copy_datagram_iovec for udp, only ``switch_in_to_exit``/``recv_syscall``.
* A sched_switch(next=R) may be absent from the buffer (seen on some kernels/VMs for
  idle -> task switches on one CPU); counted in ``unmatched['sched_switch_in']``.
"""

from __future__ import annotations

import bisect
import ctypes
import errno
import os
import re
import signal
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional, Sequence

from .harness import PROGRAM_NAME, TRANSPORTS, HarnessError, build_harness, run_harness

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

# system, event
EVENTS: tuple[tuple[str, str], ...] = (
    ("syscalls", "sys_enter_sendto"),
    ("syscalls", "sys_exit_sendto"),
    ("syscalls", "sys_enter_recvfrom"),
    ("syscalls", "sys_exit_recvfrom"),
    ("net", "net_dev_queue"),
    ("net", "netif_rx_entry"),
    ("net", "netif_rx"),
    ("irq", "softirq_entry"),
    ("irq", "softirq_exit"),
    ("net", "netif_receive_skb"),
    ("skb", "skb_copy_datagram_iovec"),
    ("sched", "sched_waking"),
    ("sched", "sched_wakeup"),
    ("sched", "sched_switch"),
)
REQUIRED_EVENTS = ("sys_enter_sendto", "sys_exit_sendto", "sys_enter_recvfrom",
                   "sys_exit_recvfrom", "sched_switch", "sched_waking", "sched_wakeup")
EVENT_FILTERS = {"softirq_entry": "vec == 3", "softirq_exit": "vec == 3"}   # NET_RX only

STAGE_ORDER: tuple[str, ...] = (
    "send_syscall", "send_to_dev", "dev_to_netif_rx", "netif_rx_to_softirq",
    "softirq_to_receive_skb", "receive_skb_to_waking", "receive_skb_to_softirq_exit",
    "softirq_tail", "softirq", "after_softirq_to_exit", "send_to_waking", "waking_to_exit",
    "waking_to_wakeup", "remote_wakeup", "wakeup_to_switch", "switch", "wakeup_latency",
    "waking_to_running", "recv_entry_to_switch_out", "switch_in_to_copy", "switch_in_to_exit",
    "copy_to_exit", "recv_entry_to_copy", "recv_syscall", "rtt",
)
STAGE_DOC: dict[str, str] = {
    "send_syscall": "sys_enter_sendto -> sys_exit_sendto (whole send, incl. the softirq it runs)",
    "send_to_dev": "sys_enter_sendto -> net_dev_queue (entry, tcp/udp_sendmsg + copy #1, IP out)",
    "dev_to_netif_rx": "net_dev_queue -> netif_rx_entry, same skb (dev_queue_xmit, loopback_xmit)",
    "netif_rx_to_softirq": "netif_rx_entry -> softirq_entry NET_RX (enqueue_to_backlog, bh enable)",
    "softirq_to_receive_skb": "softirq_entry -> netif_receive_skb, same skb (net_rx_action, "
                              "process_backlog)",
    "receive_skb_to_waking": "netif_receive_skb -> sched_waking(receiver) (ip_rcv, tcp_v4_rcv/"
                             "udp_rcv, sock_def_readable)",
    "receive_skb_to_softirq_exit": "netif_receive_skb -> softirq_exit, receiver not asleep",
    "softirq_tail": "sched_wakeup (same CPU) / sched_waking (cross CPU, incl. IPI send) -> "
                    "softirq_exit",
    "softirq": "softirq_entry -> softirq_exit (NET_RX run inside the sendto)",
    "after_softirq_to_exit": "softirq_exit -> sys_exit_sendto (return path, release_sock)",
    "send_to_waking": "AF_UNIX: sys_enter_sendto -> sched_waking(receiver)",
    "waking_to_exit": "AF_UNIX: sched_waking(receiver) -> sys_exit_sendto",
    "waking_to_wakeup": "same CPU: sched_waking -> sched_wakeup (try_to_wake_up)",
    "remote_wakeup": "cross CPU: sched_waking on A -> sched_wakeup on B (IPI, idle exit)",
    "wakeup_to_switch": "sched_wakeup(R) -> sched_switch(next=R)",
    "switch": "last event on R's CPU (>= wakeup) -> sched_switch(next=R)",
    "wakeup_latency": "sched_waking(R) -> sched_switch(next=R)",
    "waking_to_running": "sched_waking(R) -> R's first own event afterwards",
    "recv_entry_to_switch_out": "sys_enter_recvfrom -> sched_switch(prev=R, S/D)",
    "switch_in_to_copy": "last sched_switch(next=R) -> skb_copy_datagram_iovec",
    "switch_in_to_exit": "last sched_switch(next=R) -> sys_exit_recvfrom",
    "copy_to_exit": "skb_copy_datagram_iovec -> sys_exit_recvfrom",
    "recv_entry_to_copy": "sys_enter_recvfrom -> skb_copy_datagram_iovec (did not sleep)",
    "recv_syscall": "sys_enter_recvfrom -> sys_exit_recvfrom (did not sleep)",
    "rtt": "client sys_enter_sendto -> its sys_exit_recvfrom of the reply",
}

DEVICE_STAGES = ("send_to_dev", "dev_to_netif_rx", "netif_rx_to_softirq",
                 "softirq_to_receive_skb", "receive_skb_to_waking",
                 "receive_skb_to_softirq_exit", "softirq_tail", "softirq",
                 "after_softirq_to_exit")

INSTANCE_PREFIX = "lbsim-"
DEFAULT_BUFFER_KB = 8192
_MS_NOSUID, _MS_NODEV, _MS_NOEXEC, _MNT_DETACH = 2, 4, 8, 2


class StagesUnavailable(RuntimeError):
    """Kernel tracing cannot be used here (not root, no tracefs, no instances, ...)."""


# ------------------------------------------------------------------ tracefs

def _tracefs_mounts() -> list[str]:
    """Mount points of tracefs in this mount namespace (``/sys/kernel/tracing`` first)."""
    out = []
    try:
        with open("/proc/self/mountinfo") as f:
            for ln in f:
                pre, _, post = ln.partition(" - ")
                if post.split(" ", 1)[0] == "tracefs":
                    mp = pre.split()[4].replace("\\040", " ")
                    out.append(mp)
    except OSError:
        return []
    out.sort(key=lambda p: (p != "/sys/kernel/tracing", p))
    return out


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def _mount_tracefs(target: str) -> None:
    libc = _libc()
    r = libc.mount(b"nodev", target.encode(), b"tracefs",
                   ctypes.c_ulong(_MS_NOSUID | _MS_NODEV | _MS_NOEXEC), None)
    if r != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"mount -t tracefs nodev {target}: {os.strerror(e)}")


def _umount(target: str) -> None:
    libc = _libc()
    for _ in range(50):
        if libc.umount2(target.encode(), 0) == 0:
            return
        e = ctypes.get_errno()
        if e != errno.EBUSY:
            raise OSError(e, f"umount {target}: {os.strerror(e)}")
        time.sleep(0.02)
    # still busy (someone opened a file in it): detach it from the namespace
    if libc.umount2(target.encode(), _MNT_DETACH) != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"umount -l {target}: {os.strerror(e)}")


class _Tracefs:
    """Context manager yielding a tracefs root; mounts a private one if none is mounted."""

    def __init__(self) -> None:
        self.root: Optional[Path] = None
        self.mounted_by_us = False
        self._tmpdir: Optional[str] = None

    def __enter__(self) -> "_Tracefs":
        mounts = _tracefs_mounts()
        if mounts:
            self.root = Path(mounts[0])
            return self
        self._tmpdir = tempfile.mkdtemp(prefix="lbsim-tracefs-")
        try:
            _mount_tracefs(self._tmpdir)
        except OSError as e:
            os.rmdir(self._tmpdir)
            self._tmpdir = None
            raise StagesUnavailable(f"cannot mount tracefs: {e.strerror or e}") from e
        self.mounted_by_us = True
        self.root = Path(self._tmpdir)
        return self

    def __exit__(self, *exc) -> None:
        if self.mounted_by_us and self._tmpdir:
            try:
                _umount(self._tmpdir)
            finally:
                self.mounted_by_us = False
                try:
                    os.rmdir(self._tmpdir)
                except OSError:
                    pass
                self._tmpdir = None


def tracefs_available() -> tuple[bool, str]:
    """(True, how) if per-stage tracing can run here, else (False, reason).

    Needs Linux, root, a mounted or mountable tracefs with ``instances`` and the syscall
    tracepoints of sendto/recvfrom.  Leaves the mount state as it found it.
    """
    if not os.uname().sysname == "Linux":
        return False, f"not Linux ({os.uname().sysname})"
    if os.geteuid() != 0:
        return False, "not root (tracefs instances need root)"
    try:
        with _Tracefs() as t:
            assert t.root is not None
            if not (t.root / "instances").is_dir():
                return False, f"tracefs at {t.root} has no instances/ (kernel too old)"
            missing = [e for s, e in EVENTS if e in REQUIRED_EVENTS
                       and not (t.root / "events" / s / e).is_dir()]
            if missing:
                return False, ("required tracepoints missing: " + ", ".join(missing)
                               + " (CONFIG_FTRACE_SYSCALLS?)")
            how = ("tracefs mountable (private mount)" if t.mounted_by_us
                   else f"tracefs at {t.root}")
    except StagesUnavailable as e:
        return False, str(e)
    except OSError as e:
        return False, f"tracefs: {e}"
    return True, how


def _write(path: Path, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def _remove_stale_instances(root: Path) -> list[str]:
    """Remove ``lbsim-<pid>[-n]`` instances left by a process of this module that died
    without cleaning up (SIGKILL); instances of live processes are left alone."""
    removed = []
    try:
        names = os.listdir(root / "instances")
    except OSError:
        return removed
    for n in names:
        m = re.fullmatch(re.escape(INSTANCE_PREFIX) + r"(\d+)(?:-\d+)?", n)
        if not m or int(m.group(1)) == os.getpid() or Path(f"/proc/{m.group(1)}").exists():
            continue
        try:
            os.rmdir(root / "instances" / n)
            removed.append(n)
        except OSError:
            pass
    return removed


class _Instance:
    """A private ftrace instance ``instances/lbsim-<pid>`` (removed by :meth:`remove`)."""

    def __init__(self, root: Path):
        base = root / "instances"
        name = f"{INSTANCE_PREFIX}{os.getpid()}"
        path = base / name
        n = 0
        while True:
            try:
                os.mkdir(path)
                break
            except FileExistsError:
                n += 1
                if n > 100:
                    raise
                path = base / f"{name}-{n}"
            except OSError as e:
                raise StagesUnavailable(f"cannot create tracefs instance {path}: "
                                        f"{e.strerror}") from e
        self.path = path
        self.name = path.name
        self.removed = False

    def set(self, rel: str, value: str) -> None:
        _write(self.path / rel, value)

    def get(self, rel: str) -> str:
        return (self.path / rel).read_text()

    def remove(self) -> None:
        if self.removed:
            return
        try:
            self.set("tracing_on", "0")
        except OSError:
            pass
        last: Optional[OSError] = None
        for _ in range(100):
            try:
                os.rmdir(self.path)
                self.removed = True
                return
            except FileNotFoundError:
                self.removed = True
                return
            except OSError as e:   # EBUSY while a reader still holds a file
                last = e
                time.sleep(0.02)
        raise OSError(last.errno if last else errno.EBUSY,
                      f"cannot remove tracefs instance {self.path}: {last}")


# ------------------------------------------------------------------ harness

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
        self.returncode: Optional[int] = None

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


# ------------------------------------------------------------------ parsing

@dataclass(slots=True)
class Ev:
    """One trace event: timestamp (ns), cpu, pid (current task), event name, fields."""
    ts: int
    cpu: int
    pid: int
    name: str
    f: dict
    i: int = 0   # index in the global (time-ordered) event list


_TEXT_RE = re.compile(r"\[(\d+)\]\s+(?:\S+\s+)?(\d+)\.(\d+): (.*)$")
_RAW_RE = re.compile(r"^\s*(-?\d+) (\d+) (\d+) type: (\d+)")
_LOST_RE = re.compile(r"^CPU:(\d+) \[LOST (\d+)? ?EVENTS\]")
_SKB_RE = re.compile(r"skbaddr=(?:0x)?([0-9a-f]+)")
_LEN_RE = re.compile(r"\blen=(\d+)")
_SW_RE = re.compile(r"prev_pid=(-?\d+) prev_prio=-?\d+ prev_state=(\S+) ==> .*next_pid=(-?\d+)")
_WK_RE = re.compile(r" pid=(-?\d+) prio=-?\d+ target_cpu=(\d+)")
_VEC_RE = re.compile(r"vec=(\d+)")
_RET_RE = re.compile(r"-> (0x[0-9a-f]+|-?\d+)")


def _fields(name: str, rest: str) -> dict:
    if name == "sched_switch":
        m = _SW_RE.search(rest)
        if m:
            return {"prev_pid": int(m.group(1)), "prev_state": m.group(2),
                    "next_pid": int(m.group(3))}
    elif name in ("sched_waking", "sched_wakeup"):
        m = _WK_RE.search(rest)
        if m:
            return {"pid": int(m.group(1)), "target_cpu": int(m.group(2))}
    elif name.startswith("sys_exit_"):
        m = _RET_RE.search(rest)
        if m:
            v = int(m.group(1), 0)
            if v >= 1 << 63:
                v -= 1 << 64
            return {"ret": v}
    elif name.startswith("softirq_"):
        m = _VEC_RE.search(rest)
        if m:
            return {"vec": int(m.group(1))}
    elif name.startswith("sys_enter_"):
        return {}
    else:
        m = _SKB_RE.search(rest)
        ln = _LEN_RE.search(rest)
        return {"skb": m.group(1) if m else None, "len": int(ln.group(1)) if ln else None}
    return {}


def parse_trace(text: str, raw: str, ids: dict[int, str]) -> tuple[list[Ev], dict]:
    """Zip the text and the ``options/raw`` listing of the same buffer into events.

    ``ids`` maps event type ids to names.  Returns (events, info) where info has
    ``lost_events`` (sum of ``[LOST n EVENTS]`` markers), ``lost_markers``,
    ``mismatched`` (line pairs whose cpu/time disagree; then the text's microsecond
    time is used) and ``ts_resolution_ns``.
    """
    tl = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
    rl = [ln for ln in raw.splitlines() if ln and not ln.startswith("#")]
    info = {"lost_events": 0, "lost_markers": 0, "mismatched": 0, "ts_resolution_ns": 1,
            "unknown_lines": 0}
    if len(tl) != len(rl):
        info["mismatched"] = abs(len(tl) - len(rl))
    evs: list[Ev] = []
    for k in range(min(len(tl), len(rl))):
        t, r = tl[k], rl[k]
        lm = _LOST_RE.match(t)
        if lm:
            info["lost_markers"] += 1
            info["lost_events"] += int(lm.group(2) or 0)
            continue
        rm = _RAW_RE.match(r)
        tm = _TEXT_RE.search(t)
        if not rm or not tm:
            info["unknown_lines"] += 1
            continue
        name = ids.get(int(rm.group(4)))
        if name is None:
            info["unknown_lines"] += 1
            continue
        cpu, ts = int(rm.group(2)), int(rm.group(3))
        us = int(tm.group(2)) * 1_000_000 + int(tm.group(3))
        if int(tm.group(1)) != cpu or abs((ts + 500) // 1000 - us) > 1:
            info["mismatched"] += 1
            ts = us * 1000
            cpu = int(tm.group(1))
        rest = tm.group(4)
        evs.append(Ev(ts, cpu, int(rm.group(1)), name, _fields(name, rest)))
    if info["mismatched"]:
        info["ts_resolution_ns"] = 1000
    evs.sort(key=lambda e: e.ts)   # already merged by time; stable for equal stamps
    for i, e in enumerate(evs):
        e.i = i
    return evs, info


# ------------------------------------------------------------------ analysis

@dataclass
class _Syscall:
    name: str          # "sendto" / "recvfrom"
    enter: Ev
    exit: Ev
    inner: list        # the task's own events strictly between enter and exit

    @property
    def ret(self) -> int:
        return self.exit.f.get("ret", 0)


@dataclass
class _Acc:
    samples: dict = field(default_factory=dict)
    unmatched: dict = field(default_factory=dict)
    counts: dict = field(default_factory=dict)

    def add(self, key: str, a: Optional[Ev], b: Optional[Ev]) -> None:
        if a is None or b is None:
            return
        self.samples.setdefault(key, []).append(b.ts - a.ts)

    def miss(self, key: str, n: int = 1) -> None:
        self.unmatched[key] = self.unmatched.get(key, 0) + n

    def count(self, key: str, sub: str, n: int = 1) -> None:
        d = self.counts.setdefault(key, {})
        d[sub] = d.get(sub, 0) + n


def _syscalls(own: list[Ev], acc: _Acc) -> list[_Syscall]:
    out: list[_Syscall] = []
    cur: Optional[Ev] = None
    inner: list[Ev] = []
    for e in own:
        if e.name.startswith("sys_enter_"):
            if cur is not None:
                acc.miss("sys_exit")
            cur, inner = e, []
        elif e.name.startswith("sys_exit_"):
            if cur is not None and e.name[9:] == cur.name[10:]:
                out.append(_Syscall(cur.name[10:], cur, e, inner))
            elif cur is None:
                pass   # exit of a syscall entered before tracing started
            else:
                acc.miss("sys_exit")
            cur, inner = None, []
        elif cur is not None:
            inner.append(e)
    return out


def _phases(calls: list[_Syscall]) -> list[tuple[str, list[_Syscall]]]:
    """Maximal runs of successful sendto (or recvfrom) calls; ret <= 0 ends a run."""
    out: list[tuple[str, list[_Syscall]]] = []
    for c in calls:
        if c.ret <= 0:
            out.append(("end", [c]))
            continue
        if out and out[-1][0] == c.name:
            out[-1][1].append(c)
        else:
            out.append((c.name, [c]))
    return [p for p in out if p[0] != "end"]


def _first(seq: Iterable[Ev], name: str, after: Optional[Ev] = None, **match) -> Optional[Ev]:
    for e in seq:
        if e.name != name or (after is not None and e.i <= after.i):
            continue
        if all(e.f.get(k) == v for k, v in match.items()):
            return e
    return None


def _is_sleep(e: Ev, pid: int) -> bool:
    """sched_switch(prev=pid) that puts pid to sleep (state S or D, not a preemption)."""
    return (e.name == "sched_switch" and e.f.get("prev_pid") == pid
            and e.f.get("prev_state", "R")[:1] in ("S", "D"))


def _pct(xs: list, q: float) -> float:
    s = sorted(xs)
    if len(s) == 1:
        return float(s[0])
    k = (len(s) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return float(s[lo] + (s[hi] - s[lo]) * (k - lo))


def analyze(events: list[Ev], client_pid: int, transport: str, warmup: int = 0) -> dict:
    """Cut a parsed trace into per-message stage intervals (see the module docstring).

    ``warmup`` client round trips at the start are skipped.  Returns a dict with
    ``stages`` ({name: {median_ns, p10_ns, p90_ns, mean_ns, count, per_rtt}}),
    ``medians`` ({name: median_ns}), ``unmatched``, ``wakeups``, ``rtt_traced_median_ns``,
    ``round_trips``, ``messages``, ``events_per_rtt``, ``peer_pid``.
    """
    loopback = transport in ("tcp", "udp")
    acc = _Acc()
    by_pid: dict[int, list[Ev]] = {}
    by_cpu: dict[int, list[Ev]] = {}
    for e in events:
        by_pid.setdefault(e.pid, []).append(e)
        by_cpu.setdefault(e.cpu, []).append(e)
    cpu_pos = {id(e): k for lst in by_cpu.values() for k, e in enumerate(lst)}

    sends = {p: sum(1 for e in lst if e.name == "sys_enter_sendto")
             for p, lst in by_pid.items() if p not in (client_pid, 0)}
    sends = {p: n for p, n in sends.items() if n > 0}
    if client_pid not in by_pid or not sends:
        raise ValueError("trace has no ping-pong (no sendto by the harness client and a peer)")
    peer_pid = max(sends, key=sends.get)
    pids = (client_pid, peer_pid)
    calls = {p: _syscalls(by_pid[p], acc) for p in pids}
    phases = {p: _phases(calls[p]) for p in pids}

    # ---- round trips (client send phase -> next client recv phase)
    cph = phases[client_pid]
    rtts: list[tuple[Ev, Ev]] = []
    for k, (kind, cs) in enumerate(cph):
        if kind == "sendto" and k + 1 < len(cph) and cph[k + 1][0] == "recvfrom":
            rtts.append((cs[0].enter, cph[k + 1][1][-1].exit))
    rtts = rtts[warmup:]
    if not rtts:
        raise ValueError("no complete round trip in the trace")
    t_start, t_end = rtts[0][0].ts, rtts[-1][1].ts
    for a, b in rtts:
        acc.add("rtt", a, b)
    n_rtt = len(rtts)

    # ---- messages: a send phase of S paired with the next recv phase of R
    msgs = []
    for s, r in (pids, pids[::-1]):
        rph = [cs for kind, cs in phases[r] if kind == "recvfrom"]
        j = 0
        for kind, sp in phases[s]:
            if kind != "sendto":
                continue
            while j < len(rph) and rph[j][-1].exit.ts < sp[0].enter.ts:
                j += 1
            if j >= len(rph):
                acc.miss("recv_phase")
                continue
            rp = rph[j]
            j += 1
            if sum(c.ret for c in sp) != sum(c.ret for c in rp):
                acc.miss("byte_count_mismatch")
            if t_start <= sp[0].enter.ts <= t_end:
                msgs.append((s, r, sp, rp))
    msgs.sort(key=lambda m: m[2][0].enter.ts)

    pid_idx = {p: [e.i for e in by_pid[p]] for p in pids}

    def first_own_after(pid: int, ev: Ev) -> Optional[Ev]:
        k = bisect.bisect_right(pid_idx[pid], ev.i)
        return by_pid[pid][k] if k < len(pid_idx[pid]) else None

    def last_own_before(pid: int, ev: Ev) -> Optional[Ev]:
        k = bisect.bisect_left(pid_idx[pid], ev.i) - 1
        return by_pid[pid][k] if k >= 0 else None

    def switch_in(r: int, after: Ev, before: Optional[Ev]) -> Optional[Ev]:
        for e in events[after.i + 1: before.i if before is not None else len(events)]:
            if e.name == "sched_switch" and e.f.get("next_pid") == r:
                return e
        return None

    for s, r, sp, rp in msgs:
        sc = sp[0]
        inner = sc.inner
        acc.add("send_syscall", sc.enter, sc.exit)
        wk: Optional[Ev] = None
        if loopback:
            dq = _first(inner, "net_dev_queue")
            if dq is None:
                acc.miss("net_dev_queue")
            else:
                acc.add("send_to_dev", sc.enter, dq)
                rxe = _first(inner, "netif_rx_entry", dq, skb=dq.f.get("skb"))
                if rxe is None:
                    acc.miss("netif_rx_entry")
                else:
                    acc.add("dev_to_netif_rx", dq, rxe)
                    se = _first(inner, "softirq_entry", rxe)
                    if se is None:
                        acc.miss("softirq_entry")   # NET_RX ran elsewhere (ksoftirqd, irq exit)
                    else:
                        acc.add("netif_rx_to_softirq", rxe, se)
                        sx = _first(inner, "softirq_exit", se)
                        within = [e for e in inner if se.i < e.i and (sx is None or e.i < sx.i)]
                        rcv = _first(within, "netif_receive_skb", skb=dq.f.get("skb"))
                        if rcv is None:
                            acc.miss("netif_receive_skb")
                        else:
                            acc.add("softirq_to_receive_skb", se, rcv)
                            wk = _first(within, "sched_waking", rcv, pid=r)
                        if sx is None:
                            acc.miss("softirq_exit")
                        else:
                            acc.add("softirq", se, sx)
                            acc.add("after_softirq_to_exit", sx, sc.exit)
                            if rcv is not None and wk is None:
                                acc.add("receive_skb_to_softirq_exit", rcv, sx)
                        if wk is not None:
                            acc.add("receive_skb_to_waking", rcv, wk)
                            wu_local = _first(within, "sched_wakeup", wk, pid=r)
                            if sx is not None:
                                acc.add("softirq_tail", wu_local or wk, sx)
            if wk is None:
                # a wake-up outside the softirq (e.g. backlog processed at release_sock)
                wk = _first(inner, "sched_waking", pid=r)
        else:
            wk = _first(inner, "sched_waking", pid=r)
            if wk is not None:
                acc.add("send_to_waking", sc.enter, wk)
                acc.add("waking_to_exit", wk, sc.exit)

        # ---- the wake-up of R
        rcpu = rp[0].enter.cpu
        early = False
        if wk is None:
            # R asleep but already woken before the send (AF_UNIX stream: the write-space
            # wake-up from S's previous recvfrom); the data then rides on that wake-up
            last = last_own_before(r, sc.enter)
            if last is not None and _is_sleep(last, r):
                for e in reversed(events[last.i + 1: sc.enter.i]):
                    if e.name == "sched_waking" and e.f.get("pid") == r:
                        wk, early = e, True
                        break
        if wk is None:
            acc.count("wakeups", "none")
        else:
            remote = wk.cpu != rcpu
            acc.count("wakeups", "early" if early else "remote" if remote else "local")
            fe = first_own_after(r, wk)
            wu = _first(events[wk.i + 1: fe.i if fe is not None else len(events)],
                        "sched_wakeup", pid=r)
            if wu is None:
                acc.miss("sched_wakeup")
            else:
                acc.add("remote_wakeup" if remote else "waking_to_wakeup", wk, wu)
            sw = switch_in(r, wu or wk, fe)
            if sw is None:
                last = last_own_before(r, wk)
                if last is not None and _is_sleep(last, r):
                    acc.miss("sched_switch_in")   # R was switched out, switch-in not recorded
                else:
                    acc.count("wakeups", "before_switch_out")   # R had not gone to sleep yet
            else:
                acc.add("wakeup_to_switch", wu, sw)
                acc.add("wakeup_latency", wk, sw)
                lst = by_cpu[sw.cpu]
                k = cpu_pos[id(sw)]
                prev = lst[k - 1] if k > 0 else None
                start = wu if wu is not None else wk
                if prev is not None and prev.i > start.i:
                    start = prev
                    acc.count("switch_after", prev.name)
                elif wu is not None:
                    acc.count("switch_after", "sched_wakeup")
                acc.add("switch", start, sw)
            if fe is not None:
                acc.add("waking_to_running", wk, fe)

        # ---- receiver side
        rc = rp[0]
        outs = [e for e in rc.inner if _is_sleep(e, r)]
        copy_call = next((c for c in rp if _first(c.inner, "skb_copy_datagram_iovec")), None)
        if copy_call is None:
            acc.miss("skb_copy_datagram_iovec")
        if outs:
            acc.add("recv_entry_to_switch_out", rc.enter, outs[0])
            if len(outs) > 1:
                acc.count("spurious_sleeps", "extra", len(outs) - 1)
            sw_in = switch_in(r, outs[-1], first_own_after(r, outs[-1]))
            if sw_in is None:
                acc.miss("switch_in_receiver")
            else:
                acc.add("switch_in_to_exit", sw_in, rc.exit)
                if copy_call is rc:
                    cp = _first(rc.inner, "skb_copy_datagram_iovec", outs[-1])
                    acc.add("switch_in_to_copy", sw_in, cp)
        else:
            acc.add("recv_syscall", rc.enter, rc.exit)
            if copy_call is rc:
                acc.add("recv_entry_to_copy", rc.enter,
                        _first(rc.inner, "skb_copy_datagram_iovec"))
        if copy_call is not None:
            cps = [e for e in copy_call.inner if e.name == "skb_copy_datagram_iovec"]
            acc.add("copy_to_exit", cps[-1], copy_call.exit)

    stages = {}
    for key in STAGE_ORDER:
        xs = acc.samples.get(key)
        if not xs:
            continue
        stages[key] = {"median_ns": float(statistics.median(xs)), "p10_ns": _pct(xs, 0.1),
                       "p90_ns": _pct(xs, 0.9), "mean_ns": float(statistics.fmean(xs)),
                       "count": len(xs), "per_rtt": len(xs) / n_rtt}
    n_ev = sum(1 for e in events if t_start <= e.ts <= t_end)
    wake = {"local": 0, "remote": 0, "early": 0, "none": 0, "before_switch_out": 0}
    wake.update(acc.counts.get("wakeups", {}))
    return {
        "peer_pid": peer_pid,
        "round_trips": n_rtt,
        "messages": len(msgs),
        "stages": stages,
        "medians": {k: v["median_ns"] for k, v in stages.items()},
        "unmatched": dict(sorted(acc.unmatched.items())),
        "wakeups": wake,
        "spurious_sleeps": acc.counts.get("spurious_sleeps", {}).get("extra", 0),
        "switch_after": dict(sorted(acc.counts.get("switch_after", {}).items())),
        "rtt_traced_median_ns": stages["rtt"]["median_ns"],
        "events_in_window": n_ev,
        "events_per_rtt": n_ev / n_rtt,
    }


# ------------------------------------------------------------------ measuring

def _event_ids(inst_events: Path, used: list[tuple[str, str]]) -> dict[int, str]:
    ids = {}
    for s, e in used:
        try:
            ids[int((inst_events / s / e / "id").read_text())] = e
        except (OSError, ValueError):
            pass
    return ids


def _buffer_stats(inst: _Instance) -> dict:
    tot = {"overrun": 0, "commit_overrun": 0, "dropped_events": 0, "entries": 0}
    keys = {"overrun": "overrun", "commit overrun": "commit_overrun",
            "dropped events": "dropped_events", "entries": "entries"}
    for d in sorted((inst.path / "per_cpu").glob("cpu*")):
        try:
            for ln in (d / "stats").read_text().splitlines():
                k, _, v = ln.partition(":")
                if k.strip() in keys:
                    tot[keys[k.strip()]] += int(v.split()[0])
        except (OSError, ValueError, IndexError):
            continue
    return tot


def _parse_result(out: str) -> Optional[dict]:
    import json
    for ln in reversed([x for x in out.splitlines() if x.strip()]):
        try:
            r = json.loads(ln)
            return r if isinstance(r, dict) else None
        except ValueError:
            return None
    return None


def measure_stages(transport: str, size: int = 64, placement: str = "same", count: int = 2000,
                   busy: bool = False, *, warmup: Optional[int] = None,
                   max_seconds: float = 10.0, buffer_size_kb: Optional[int] = None,
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

    used: list[tuple[str, str]] = []
    missing: list[str] = []
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="lbsim-run-") as td, _Tracefs() as tfs:
        assert tfs.root is not None
        stale = _remove_stale_instances(tfs.root)
        inst = _Instance(tfs.root)
        proc: Optional[_WaitingHarness] = None
        try:
            inst.set("tracing_on", "0")
            clocks = inst.get("trace_clock")
            if re.search(r"\bmono\b", clocks):
                inst.set("trace_clock", "mono")
            clock = re.search(r"\[(\S+)\]", inst.get("trace_clock"))
            inst.set("buffer_size_kb", str(int(buffer_size_kb)))
            inst.set("options/event-fork", "1")
            for s, e in EVENTS:
                d = inst.path / "events" / s / e
                if not d.is_dir():
                    missing.append(f"{s}:{e}")
                    continue
                if e in EVENT_FILTERS:
                    _write(d / "filter", EVENT_FILTERS[e])
                _write(d / "enable", "1")
                used.append((s, e))
            names = {e for _, e in used}
            lack = [e for e in REQUIRED_EVENTS if e not in names]
            if lack:
                raise StagesUnavailable("required tracepoints missing: " + ", ".join(lack))

            env = dict(os.environ, TMPDIR=td)
            proc = _WaitingHarness(exe, args, env)
            inst.set("set_event_pid", str(proc.pid))
            _write(inst.path / "trace", "")
            inst.set("tracing_on", "1")
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
            text = inst.get("trace")
            inst.set("options/raw", "1")
            raw = inst.get("trace")
            inst.set("options/raw", "0")
            bstats = _buffer_stats(inst)
            ids = _event_ids(inst.path / "events", used)
            client_pid = proc.pid
        finally:
            try:
                if proc is not None:
                    proc.close()
            finally:
                inst.remove()
    t_read = time.monotonic() - t_read

    events, pinfo = parse_trace(text, raw, ids)
    ana = analyze(events, client_pid, transport, warmup=warmup)

    res_traced_p50 = float(res["p50_ns"])
    untraced_p50 = float(untraced_res["p50_ns"]) if untraced_res else None
    overhead = None
    if untraced_p50 is not None and ana["events_per_rtt"] > 0:
        overhead = (res_traced_p50 - untraced_p50) / ana["events_per_rtt"]
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
    lost = pinfo["lost_events"] + bstats["overrun"] + bstats["dropped_events"]
    if lost:
        notes.append(f"{lost} events lost/overwritten: increase buffer_size_kb")
    return {
        "transport": transport, "size": size, "placement": placement, "cpu_a": cpu_a,
        "cpu_b": cpu_b, "busy": bool(busy), "count": count, "warmup": warmup,
        "kernel": os.uname().release,
        "tracefs": str(tfs.root) if not tfs.mounted_by_us else "private mount",
        "instance": inst.name, "stale_instances_removed": stale,
        "trace_clock": clock.group(1) if clock else None,
        "buffer_size_kb": int(buffer_size_kb),
        "events_used": [f"{s}:{e}" for s, e in used], "events_missing": missing,
        "syscalls_traced": ["sendto", "recvfrom"],
        "client_pid": client_pid,
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
        "notes": notes,
        "seconds": round(time.monotonic() - t0, 3), "read_seconds": round(t_read, 3),
    }
