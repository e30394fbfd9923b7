"""Pure-Python fallback of the C harness, for hosts without a C compiler.

:func:`python_fallback_pingpong`, :func:`python_fallback_stream` and
:func:`python_fallback_split` return the same result dictionary as
:func:`lbsim.measure.harness.run_harness` (with ``"harness": "python"``), slower and
noisier.  The client and the peer are forked processes (:mod:`.harness_roles`) pinned to
``cpu_a``/``cpu_b``; split runs in this process.  Only 127.0.0.1 and UNIX sockets under
a private temporary directory are used.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Iterable, Sequence

from .harness_base import SPLIT_MAX_SIZE, HarnessError, _check_common, max_dgram_size
from .harness_roles import _Fail, _LineReader, _pct, _py_client, _py_peer, _recv_exact

__all__ = ["python_fallback_pingpong", "python_fallback_stream", "python_fallback_split"]


def _die_with_parent() -> None:
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:  # pragma: no cover - best effort
        pass


def _fork_role(fn, args: tuple = (), close: Sequence = ()) -> int:
    """Fork; the child closes ``close`` (fds or sockets), runs fn(*args) and exits."""
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            _die_with_parent()
            for k in close:
                if isinstance(k, int):
                    os.close(k)
                else:
                    k.close()
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGPIPE, signal.SIG_IGN)  # EPIPE, not death, whatever the caller set
            code = fn(*args) or 0
        except BaseException:  # noqa: BLE001 - child must never return into the caller
            import traceback

            traceback.print_exc()
            code = 1
        finally:
            os._exit(code)
    return pid


def _spinner(cpu: int, end: float) -> int:
    os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    os.setpriority(os.PRIO_PROCESS, 0, 19)
    os.sched_setaffinity(0, {cpu})
    x = 0
    while time.monotonic() < end:
        for _ in range(100000):
            x += 1
    return 0


def _py_sockets(transport: str, tmpdir: str | None):
    """Return (client_sock, server_sock, client_addr_for_replies)."""
    if transport == "tcp":
        lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        lst.bind(("127.0.0.1", 0))
        lst.listen(1)
        c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        c.connect(lst.getsockname())
        s, _ = lst.accept()
        lst.close()
        for k in (c, s):
            k.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return c, s, None
    if transport == "udp":
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        c.bind(("127.0.0.1", 0))
        c.connect(s.getsockname())
        s.connect(c.getsockname())
        return c, s, None
    assert tmpdir is not None
    spath = os.path.join(tmpdir, "s")
    if transport == "unix_stream":
        lst = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        lst.bind(spath)
        lst.listen(1)
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        c.connect(spath)
        s, _ = lst.accept()
        lst.close()
        os.unlink(spath)
        return c, s, None
    # unix_dgram: bound server, bound client connected to it, server not connected back
    cpath = os.path.join(tmpdir, "c")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(spath)
    c = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    c.bind(cpath)
    c.connect(spath)
    os.unlink(spath)
    return c, s, cpath


def _kill_wait(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def _py_split(o: dict, c: socket.socket, s: socket.socket) -> dict:
    """split in this process: write ``size`` bytes on the client end, read them on the server
    end, each call timed apart (pinned to ``cpu_a`` meanwhile; the caller's affinity is restored)."""
    before = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, {o["cpu_a"]})
    except OSError as e:
        raise HarnessError(f"cannot pin to CPU {o['cpu_a']}: {e.strerror}", 2) from None
    try:
        return _py_split_pinned(o, c, s)
    finally:
        os.sched_setaffinity(0, before)


def _py_split_pinned(o: dict, c: socket.socket, s: socket.socket) -> dict:
    size = o["size"]
    stream = o["transport"] in ("tcp", "unix_stream")
    msg = b"x" * size
    deadline = time.monotonic_ns() + int(o["max_seconds"] * 1e9)
    ws: list = []
    rs: list = []
    for i in range(o["warmup"] + o["count"]):
        t0 = time.monotonic_ns()
        if t0 >= deadline:
            break
        if stream:
            c.sendall(msg)
        else:
            c.send(msg)
        t1 = time.monotonic_ns()
        if stream:
            if _recv_exact(s, size) is None:
                raise HarnessError("recv: unexpected EOF", 1)
        elif len(s.recv(size)) != size:
            raise HarnessError("recv: short datagram", 1)
        t2 = time.monotonic_ns()
        if i >= o["warmup"]:
            ws.append(t1 - t0)
            rs.append(t2 - t1)
    if not ws:
        raise HarnessError(f"no write/read recorded within max-seconds={o['max_seconds']}", 1)
    n = len(ws)
    wmean, rmean = sum(ws) / n, sum(rs) / n
    ws.sort()
    rs.sort()
    return {"transport": o["transport"], "workload": "split", "size": size, "count": n,
            "write_mean_ns": wmean, "write_p50_ns": _pct(ws, 500), "write_p90_ns": _pct(ws, 900),
            "read_mean_ns": rmean, "read_p50_ns": _pct(rs, 500), "read_p90_ns": _pct(rs, 900),
            "warmup": o["warmup"], "cpu_a": o["cpu_a"], "cpu_b": o["cpu_b"], "policy": o["policy"],
            "busy_cpus": list(o["busy_cpus"])}


def _options(transport: str, workload: str, size: int, count: int, warmup: int, cpu_a: int,
             cpu_b: int, max_seconds: float, busy_cpus: Iterable[int], policy: str) -> dict:
    """The run's arguments checked as harness.c checks them (HarnessError code 2)."""
    _check_common(transport, workload)
    size, count, warmup = int(size), int(count), int(warmup)
    cpu_a, cpu_b, max_seconds = int(cpu_a), int(cpu_b), float(max_seconds)
    busy_cpus = [int(c) for c in busy_cpus]
    if policy not in ("other", "fifo"):
        raise HarnessError(f"invalid policy {policy!r}", 2)
    if not 1 <= size <= 64 * 1024 * 1024 or count < 1 or warmup < 0 or not max_seconds > 0:
        raise HarnessError("invalid size/count/warmup/max_seconds", 2)
    lim = max_dgram_size(transport)
    if lim is not None and size > lim:
        raise HarnessError(f"harness error: size {size} exceeds the {transport} datagram limit "
                           f"of {lim} bytes", 2, {"error": f"size {size} > {lim}"})
    o = dict(transport=transport, workload=workload, size=size, count=count, warmup=warmup,
             cpu_a=cpu_a, cpu_b=cpu_b, max_seconds=max_seconds, busy_cpus=busy_cpus,
             policy=policy)
    if workload == "split" and size > SPLIT_MAX_SIZE:
        raise HarnessError(f"harness error: split: size {size} exceeds {SPLIT_MAX_SIZE} bytes", 2,
                           {"error": f"size {size} > {SPLIT_MAX_SIZE}"})
    return o


#: include/uapi/asm-generic/socket.h (Python's socket module may lack the name)
SO_BUSY_POLL = getattr(socket, "SO_BUSY_POLL", 46)


def _busy_poll(sk: socket.socket) -> int:
    """SO_BUSY_POLL read back (net.core.busy_read's value here), -1 if the kernel lacks it."""
    try:
        return sk.getsockopt(socket.SOL_SOCKET, SO_BUSY_POLL)
    except OSError:
        return -1


def _buf_keys(transport: str, c: socket.socket, s: socket.socket) -> dict:
    """The socket-buffer and shape keys the C harness reports (no knobs set here)."""
    return {"busy_poll_client": _busy_poll(c), "busy_poll_server": _busy_poll(s),
            "rcvbuf_client": c.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF),
            "rcvbuf_server": s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF),
            "sndbuf_client": c.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF),
            "sndbuf_server": s.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF),
            "tcp_nodelay": 1 if transport == "tcp" else -1, "flows": 1, "senders": 1,
            "batch": 1,  # the C harness's --batch (not in the fallback: one message per call)
            "receiver": "blocking"}  # (no --epoll here)


def _run_roles(o: dict, c: socket.socket, s: socket.socket, caddr, pids: list,
               fds: list) -> dict:
    """Fork the peer and the client over (c, s) and wait for the client's result; the forked
    pids and the fds still open are appended to ``pids``/``fds`` for the caller to clean up."""
    res_r, res_w = os.pipe()   # peer -> client
    ctl_r, ctl_w = os.pipe()   # client -> peer
    out_r, out_w = os.pipe()   # client -> caller
    fds += [res_r, res_w, ctl_r, ctl_w, out_r, out_w]
    pids.append(_fork_role(_py_peer, (o, s, caddr, res_w, ctl_r),
                           close=(c, res_r, ctl_w, out_r, out_w)))
    pids.append(_fork_role(_py_client, (o, c, res_r, ctl_w, out_w),
                           close=(s, res_w, ctl_r, out_r)))
    for fd in (res_w, ctl_r, res_r, ctl_w, out_w):
        os.close(fd)
        fds.remove(fd)
    c.close()
    s.close()
    reader = _LineReader(out_r)
    try:
        m = reader.read(time.monotonic() + o["max_seconds"] + 20)
    except _Fail:
        raise HarnessError("python fallback timed out", None) from None
    if m is None:
        raise HarnessError("python fallback client exited without a result", 1)
    if m.get("kind") == "error":
        raise HarnessError(f"harness error: {m.get('msg')}", int(m.get("code") or 1),
                           {"error": m.get("msg")})
    return m["result"]


def _python_run(transport: str, workload: str, size: int, count: int, warmup: int, cpu_a: int,
                cpu_b: int, max_seconds: float, busy_cpus: Iterable[int], policy: str) -> dict:
    o = _options(transport, workload, size, count, warmup, cpu_a, cpu_b, max_seconds,
                 busy_cpus, policy)
    tmpdir = tempfile.mkdtemp(prefix="lbsim-py-") if transport.startswith("unix") else None
    pids: list = []
    fds: list = []
    socks: list = []
    try:
        end = time.monotonic() + o["max_seconds"] + 30
        for cpu in o["busy_cpus"]:
            if cpu not in range(os.cpu_count() or 1):
                raise HarnessError(f"cannot start busy spinner on CPU {cpu} (invalid CPU?)", 2)
            pids.append(_fork_role(_spinner, (cpu, end)))
        if o["busy_cpus"]:
            time.sleep(0.02)
        c, s, caddr = _py_sockets(transport, tmpdir)
        socks += [c, s]
        extra = _buf_keys(transport, c, s)
        if workload == "split":
            res = _py_split(o, c, s)
        else:
            res = _run_roles(o, c, s, caddr, pids, fds)
            # the C harness's --flows/--senders/getrusage keys; sleeps are not measured here
            extra.update(sleeps_per_msg_sender=None, sleeps_per_msg_receiver=None,
                         flow_received=[res.get("count") if workload == "pingpong"
                                        else res.get("received")],
                         # the C harness's --zerocopy keys: never set here
                         zerocopy=0, zc_sends=0, zc_completed=0, zc_copied=0)
            if workload == "stream":  # each side's CPU time: not measured here either
                extra.update(cpu_busy_sender=None, cpu_busy_receiver=None)
            if workload == "pingpong":
                el = res.get("elapsed_ns") or 0
                extra["round_trips_per_s"] = res["count"] * 1e9 / el if el > 0 else 0.0
        res.update(extra)
        res["harness"] = "python"
        return res
    finally:
        for pid in pids:
            _kill_wait(pid)
        for fd in fds:
            try:
                os.close(fd)
            except OSError:
                pass
        for k in socks:
            k.close()
        if tmpdir:
            shutil.rmtree(tmpdir, ignore_errors=True)


def python_fallback_pingpong(transport: str, size: int, count: int, warmup: int, cpu_a: int,
                             cpu_b: int, max_seconds: float = 10, busy_cpus: Iterable[int] = (),
                             policy: str = "other") -> dict:
    """Pure-Python ping-pong (same result keys as the C harness, ``harness='python'``)."""
    return _python_run(transport, "pingpong", size, count, warmup, cpu_a, cpu_b, max_seconds,
                       busy_cpus, policy)


def python_fallback_stream(transport: str, size: int, count: int, warmup: int, cpu_a: int,
                           cpu_b: int, max_seconds: float = 10, busy_cpus: Iterable[int] = (),
                           policy: str = "other") -> dict:
    """Pure-Python streaming run (same result keys as the C harness, ``harness='python'``)."""
    return _python_run(transport, "stream", size, count, warmup, cpu_a, cpu_b, max_seconds,
                       busy_cpus, policy)


def python_fallback_split(transport: str, size: int, count: int, warmup: int, cpu_a: int,
                          cpu_b: int, max_seconds: float = 10, busy_cpus: Iterable[int] = (),
                          policy: str = "other") -> dict:
    """Pure-Python split run: one thread writes then reads each message (same result keys as
    the C harness, ``harness='python'``)."""
    return _python_run(transport, "split", size, count, warmup, cpu_a, cpu_b, max_seconds,
                       busy_cpus, policy)
