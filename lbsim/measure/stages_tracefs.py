"""tracefs access for the per-stage timing (:mod:`lbsim.measure.stages`).

Finds or privately mounts tracefs, creates a private ftrace instance
``<tracefs>/instances/lbsim-<pid>``, enables the tracepoints of :data:`EVENTS` in it,
reads its buffer back (text and ``options/raw``) and removes it again.  The top-level
tracing settings are never touched; :class:`_Tracefs` unmounts what it mounted and
:meth:`_Instance.remove` removes the instance, both from ``finally`` blocks of the
caller, so errors, Ctrl-C and SIGTERM (turned into SystemExit while tracefs is in use) restore
the state too.  Instances left by a process that was SIGKILLed are removed by
:func:`_remove_stale_instances` on the next run.

The kernel side is kernel/trace/trace.c (instances, trace_clock, options/raw,
set_event_pid, options/event-fork) and kernel/trace/trace_events.c (events/*/enable,
filter).  Needs root; :func:`tracefs_available` says why not where it cannot run.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import re
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = [
    "StagesUnavailable",
    "tracefs_available",
    "EVENTS",
    "REQUIRED_EVENTS",
    "EVENT_FILTERS",
    "INSTANCE_PREFIX",
    "DEFAULT_BUFFER_KB",
    "event_trace",
]

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

INSTANCE_PREFIX = "lbsim-"
DEFAULT_BUFFER_KB = 8192
_MS_NOSUID, _MS_NODEV, _MS_NOEXEC, _MNT_DETACH = 2, 4, 8, 2


class StagesUnavailable(RuntimeError):
    """Kernel tracing cannot be used here (not root, no tracefs, no instances, ...)."""


#: the name of a private temporary tracefs mount point (tempfile.mkdtemp's prefix)
_PRIVATE_PREFIX = "lbsim-tracefs-"


def _tracefs_mounts(mountinfo: str = "/proc/self/mountinfo") -> list[str]:
    """Mount points of tracefs in this mount namespace (``/sys/kernel/tracing`` first), less the
    private ones another lbsim process made (``lbsim-tracefs-*``): it unmounts its own when done,
    maybe while this one still reads it (two test workers checking at once saw an empty directory)."""
    out = []
    try:
        with open(mountinfo) as f:
            for ln in f:
                pre, _, post = ln.partition(" - ")
                if post.split(" ", 1)[0] == "tracefs":
                    mp = pre.split()[4].replace("\\040", " ")
                    if not os.path.basename(mp).startswith(_PRIVATE_PREFIX):
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


def _exit_on_sigterm(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)


class _Tracefs:
    """Context manager yielding a tracefs root; mounts a private one if none is mounted.

    While it is open, SIGTERM (``timeout``, ``kill``) raises SystemExit in the main thread, so the
    callers' ``finally`` blocks remove their instance and this unmounts what it mounted, as on
    Ctrl-C; the previous handler comes back on exit."""

    def __init__(self) -> None:
        self.root: Path | None = None
        self.mounted_by_us = False
        self._tmpdir: str | None = None
        self._old_sigterm: Any = None

    def __enter__(self) -> _Tracefs:
        try:
            self._old_sigterm = signal.signal(signal.SIGTERM, _exit_on_sigterm)
        except ValueError:  # not the main thread: the finally blocks still run on errors
            self._old_sigterm = None
        try:
            return self._open()
        except BaseException:
            self._restore_sigterm()
            raise

    def _restore_sigterm(self) -> None:
        if self._old_sigterm is not None:
            signal.signal(signal.SIGTERM, self._old_sigterm)
            self._old_sigterm = None

    def _open(self) -> _Tracefs:
        mounts = _tracefs_mounts()
        if mounts:
            self.root = Path(mounts[0])
            return self
        self._tmpdir = tempfile.mkdtemp(prefix=_PRIVATE_PREFIX)
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
        try:
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
        finally:
            self._restore_sigterm()


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
    removed: list[str] = []
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
        last: OSError | None = None
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


def _configure(inst: _Instance, buffer_size_kb: int) -> tuple[str | None, list, list]:
    """Stop the instance, pick the ``mono`` clock, size the buffer, follow forks and enable
    :data:`EVENTS`.  Returns (trace clock, [(system, event)] enabled, ["system:event"]
    missing); raises :class:`StagesUnavailable` if a :data:`REQUIRED_EVENTS` is missing."""
    used: list[tuple[str, str]] = []
    missing: list[str] = []
    inst.set("tracing_on", "0")
    clocks = inst.get("trace_clock")
    if re.search(r"\bmono\b", clocks):
        inst.set("trace_clock", "mono")   # global across CPUs: cross-CPU wake-up intervals
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
    return (clock.group(1) if clock else None), used, missing


def _start(inst: _Instance, pid: int) -> None:
    """Trace only ``pid`` (and, with event-fork, its children) from an empty buffer on."""
    inst.set("set_event_pid", str(pid))
    _write(inst.path / "trace", "")
    inst.set("tracing_on", "1")


def _read_buffer(inst: _Instance) -> tuple[str, str]:
    """The frozen buffer twice: as text (event fields, microseconds) and with
    ``options/raw`` (``pid cpu ts_ns type: id``), for :func:`parse_trace` to zip."""
    text = inst.get("trace")
    inst.set("options/raw", "1")
    raw = inst.get("trace")
    inst.set("options/raw", "0")
    return text, raw


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


class _EventTrace:
    """What :func:`event_trace` yields: the events it enabled, and :meth:`around`."""

    def __init__(self, inst: _Instance, events: list[tuple[str, str, str | None]]):
        self.inst = inst
        self.events = events

    def _enable(self, on: str) -> None:
        for sub, ev, _ in self.events:
            self.inst.set(f"events/{sub}/{ev}/enable", on)

    def around(self, run):
        """Clear the buffer, enable the events, call ``run()``, disable them: (its result, the
        trace text)."""
        self.inst.set("trace", "")
        self._enable("1")
        try:
            out = run()
        finally:
            self._enable("0")
        return out, self.inst.get("trace")


@contextlib.contextmanager
def event_trace(events, buffer_size_kb: int = DEFAULT_BUFFER_KB):
    """A private ftrace instance for counting ``events`` (system, event, filter or None) around
    commands: the tools under tools/ that count kernel events (no timing).  Events this kernel
    lacks are left out (``.events`` lists the ones used); the instance is removed on exit, on
    error and on Ctrl-C, like the stage tracer's."""
    with _Tracefs() as t:
        assert t.root is not None
        inst = _Instance(t.root)
        trace = _EventTrace(inst, [])
        try:
            trace.events = [(sub, ev, flt) for sub, ev, flt in events
                            if (inst.path / "events" / sub / ev).exists()]
            inst.set("buffer_size_kb", str(buffer_size_kb))
            for sub, ev, flt in trace.events:
                if flt:
                    inst.set(f"events/{sub}/{ev}/filter", flt)
            yield trace
        finally:
            try:
                trace._enable("0")
            except OSError:
                pass
            inst.remove()
