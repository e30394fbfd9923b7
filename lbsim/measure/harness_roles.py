"""The two roles of the pure-Python fallback harness (:mod:`.harness_fallback`): the echo
peer / receiver (:func:`_py_peer`) and the client / sender (:func:`_py_client`), each run
in a forked process, and the line-of-JSON protocol they talk over pipes.

They do what harness.c does, with the same result keys: ping-pong round trips, or a
stream of messages counted by the receiver (datagrams: until 200 ms after the sender is
done, the losses read from the kernel's Udp RcvbufErrors (/proc/net/snmp) and softnet
backlog drops (/proc/net/softnet_stat, net/core/net-procfs.c)).
"""

from __future__ import annotations

import errno
import json
import os
import select
import socket
import time
from collections.abc import Sequence
from pathlib import Path

__all__: list[str] = []

_DGRAM_IDLE_S = 0.2              # receiver stops 200 ms after the sender is done
_DGRAM_POLL_S = 0.05


def _read_udp_rcvbuf_errors() -> int | None:
    try:
        lines = [ln.split() for ln in Path("/proc/net/snmp").read_text().splitlines()
                 if ln.startswith("Udp:")]
        hdr, val = lines[0], lines[1]
        return int(val[hdr.index("RcvbufErrors")])
    except (OSError, ValueError, IndexError):
        return None


def _read_softnet_dropped() -> int | None:
    try:
        tot = 0
        for ln in Path("/proc/net/softnet_stat").read_text().splitlines():
            f = ln.split()
            if len(f) >= 2:
                tot += int(f[1], 16)
        return tot
    except (OSError, ValueError):
        return None


def _delta(a: int | None, b: int | None) -> int | None:
    return None if a is None or b is None else b - a


def _pct(sorted_samples: Sequence[int], permille: int) -> int:
    n = len(sorted_samples)
    rank = max(1, min(n, (permille * n + 999) // 1000))
    return sorted_samples[rank - 1]


def _set_fifo() -> None:
    os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))


class _Fail(Exception):
    def __init__(self, msg: str, code: int = 1):
        super().__init__(msg)
        self.code = code


def _recv_exact(sock: socket.socket, n: int) -> bytes | None:
    """Read exactly n bytes from a stream socket; None on clean EOF."""
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        r = sock.recv_into(view[got:], n - got)
        if r == 0:
            if got == 0:
                return None
            raise _Fail("EOF in the middle of a message")
        got += r
    return bytes(buf)


def _send_msg(fd: int, obj: dict) -> None:
    os.write(fd, (json.dumps(obj) + "\n").encode())


class _LineReader:
    def __init__(self, fd: int):
        self.fd = fd
        self.buf = b""

    def read(self, deadline: float) -> dict | None:
        """Next JSON message, None on EOF; raises _Fail on timeout."""
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise _Fail("timeout waiting for peer")
            r, _, _ = select.select([self.fd], [], [], left)
            if not r:
                continue
            chunk = os.read(self.fd, 65536)
            if not chunk:
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)


def _expect(reader: _LineReader, kind: str, deadline: float, what: str) -> dict:
    m = reader.read(deadline)
    if m is None:
        raise _Fail(f"peer exited unexpectedly ({what})")
    if m.get("kind") == "error":
        raise _Fail(f"peer: {m.get('msg')}", int(m.get("code") or 1))
    if m.get("kind") != kind:
        raise _Fail(f"protocol error: unexpected {m.get('kind')!r} from peer ({what})")
    return m


# ------------------------------------------------------------------ peer / receiver

def _peer_pingpong(o: dict, s: socket.socket, caddr, stream: bool) -> list:
    """Echo every message until EOF (stream) or an empty datagram; [rounds, 0, 0, 0]."""
    size = o["size"]
    rounds = 0
    while True:
        if stream:
            m = _recv_exact(s, size)
            if m is None:
                break
            s.sendall(m)
        else:
            m = s.recv(size)
            if len(m) == 0:
                break
            if len(m) != size:
                raise _Fail(f"got {len(m)} bytes, expected {size}")
            if caddr is None:
                s.send(m)
            else:
                s.sendto(m, caddr)
        rounds += 1
    return [rounds, 0, 0, 0]


def _peer_stream(o: dict, s: socket.socket, res_w: int) -> list:
    """Read the warm-up bytes (then say "warm") and the measured ones until EOF;
    [messages, bytes, time of the last measured byte, 0]."""
    size, count, warmup = o["size"], o["count"], o["warmup"]
    t_last = 0
    warm_bytes, total = warmup * size, (warmup + count) * size
    got, acked = 0, warmup == 0
    while got < total:
        r = s.recv(min(size, total - got))
        if not r:
            break
        got += len(r)
        if got > warm_bytes:
            t_last = time.monotonic_ns()
        if not acked and got >= warm_bytes:
            _send_msg(res_w, {"kind": "warm"})
            acked = True
    meas = max(0, got - warm_bytes)
    return [meas // size, meas, t_last, 0]


def _peer_dgram(o: dict, s: socket.socket, res_w: int, ctl_r: int) -> list:
    """Count warm-up ("W") and measured ("M") datagrams until ``count`` arrived or the
    sender is done and nothing came for _DGRAM_IDLE_S; [messages, bytes, t_last, warm-up]."""
    size, count, warmup = o["size"], o["count"], o["warmup"]
    t_last = 0
    s.settimeout(_DGRAM_POLL_S)
    warm = meas = nbytes = 0
    acked, warm_sent, done = warmup == 0, False, False
    t_any, t_done = time.monotonic(), 0.0
    hard_end = time.monotonic() + o["max_seconds"] + 10
    while True:
        try:
            m = s.recv(size)
        except (TimeoutError, BlockingIOError):
            m = None
        if m is not None:
            t_any = time.monotonic()
            if len(m) != size:
                raise _Fail(f"got {len(m)} bytes, expected {size}")
            if m[:1] == b"W":
                warm += 1
                if not acked and warm >= warmup:
                    _send_msg(res_w, {"kind": "warm"})
                    acked = True
            else:
                meas += 1
                nbytes += len(m)
                t_last = time.monotonic_ns()
                if meas >= count:
                    break
            continue
        t = time.monotonic()
        try:
            data = os.read(ctl_r, 64)
            if data == b"" and not done:
                done, t_done = True, t
        except BlockingIOError:
            data = b""
        if b"w" in data:
            warm_sent = True
        if b"d" in data and not done:
            done, t_done = True, t
        if not acked and warm_sent:
            _send_msg(res_w, {"kind": "warm"})
            acked = True
        if done and t - max(t_any, t_done) >= _DGRAM_IDLE_S:
            break
        if t > hard_end:
            break
    return [meas, nbytes, t_last, warm]


def _py_peer(o: dict, s: socket.socket, caddr, res_w: int, ctl_r: int) -> int:
    """Peer/receiver role; writes "ready", "warm" and its result (or error) to res_w."""
    try:
        os.sched_setaffinity(0, {o["cpu_b"]})
    except OSError as e:
        _send_msg(res_w, {"kind": "error", "code": 2,
                          "msg": f"cannot pin peer to CPU {o['cpu_b']}: {e.strerror}"})
        return 2
    if o["policy"] == "fifo":
        try:
            _set_fifo()
        except OSError as e:
            _send_msg(res_w, {"kind": "error", "code": 3,
                              "msg": f"cannot set SCHED_FIFO for peer: {e.strerror}"})
            return 3
    os.set_blocking(ctl_r, False)
    stream = o["transport"] in ("tcp", "unix_stream")
    _send_msg(res_w, {"kind": "ready"})
    try:
        if o["workload"] == "pingpong":
            v = _peer_pingpong(o, s, caddr, stream)
        elif stream:
            v = _peer_stream(o, s, res_w)
        else:
            v = _peer_dgram(o, s, res_w, ctl_r)
        _send_msg(res_w, {"kind": "result", "v": v})
        return 0
    except _Fail as e:
        _send_msg(res_w, {"kind": "error", "code": e.code, "msg": str(e)})
        return e.code
    except OSError as e:
        _send_msg(res_w, {"kind": "error", "code": 1, "msg": f"peer: {e}"})
        return 1


# ------------------------------------------------------------------ client / sender

def _client_pingpong(o: dict, c: socket.socket, reader: _LineReader, ctl_w: int,
                     deadline: int, stream: bool) -> dict:
    """Timed round trips after the warm-up; the percentiles of their times."""
    size, count, warmup = o["size"], o["count"], o["warmup"]
    msg = b"x" * size
    samples = []
    rec_start = rec_end = 0
    for i in range(warmup + count):
        t0 = time.monotonic_ns()
        if t0 >= deadline:
            break
        if i == warmup:
            rec_start = t0
        if stream:
            c.sendall(msg)
            if _recv_exact(c, size) is None:
                raise _Fail("recv: unexpected EOF from peer")
        else:
            c.send(msg)
            r = c.recv(size)
            if len(r) != size:
                raise _Fail(f"recv: got {len(r)} bytes, expected {size}")
        t1 = time.monotonic_ns()
        if i >= warmup:
            samples.append(t1 - t0)
            rec_end = t1
    if stream:
        c.shutdown(socket.SHUT_WR)
    else:
        try:
            c.send(b"")
        except OSError:
            pass
    try:
        os.write(ctl_w, b"d")
    except OSError:
        pass
    try:
        m = reader.read(time.monotonic() + 2)
    except _Fail:
        m = None   # peer result is only needed to surface its errors
    if m is not None and m.get("kind") == "error":
        raise _Fail(f"peer: {m.get('msg')}", int(m.get("code") or 1))
    if not samples:
        raise _Fail(f"no round trip recorded within max-seconds={o['max_seconds']}")
    samples.sort()
    return dict(count=len(samples), mean_ns=sum(samples) / len(samples),
                p50_ns=_pct(samples, 500), p90_ns=_pct(samples, 900),
                p99_ns=_pct(samples, 990), p999_ns=_pct(samples, 999),
                min_ns=samples[0], max_ns=samples[-1], elapsed_ns=rec_end - rec_start)


def _client_stream(o: dict, c: socket.socket, reader: _LineReader, ctl_w: int,
                   deadline: int, stream: bool) -> dict:
    """Warm-up messages ("W", waited for until the receiver read them), then ``count``
    measured ones ("M"); throughput from the receiver's count and last-byte time."""
    size, count, warmup = o["size"], o["count"], o["warmup"]
    rb0, sd0 = _read_udp_rcvbuf_errors(), _read_softnet_dropped()
    wmsg = b"W" + b"x" * (size - 1)
    mmsg = b"M" + b"x" * (size - 1)
    for _ in range(warmup):
        if time.monotonic_ns() >= deadline:
            raise _Fail(f"warmup did not finish within max-seconds={o['max_seconds']}")
        if stream:
            c.sendall(wmsg)
        else:
            try:
                c.send(wmsg)
            except OSError as e:
                if e.errno not in (errno.ENOBUFS, errno.EAGAIN):
                    raise
    if warmup > 0:
        try:
            os.write(ctl_w, b"w")
        except OSError:
            pass   # receiver gone: _expect() reports its error
        _expect(reader, "warm", time.monotonic() + (deadline - time.monotonic_ns()) / 1e9,
                "warmup drain")
    sent = send_errors = 0
    t0 = time.monotonic_ns()
    for _ in range(count):
        if time.monotonic_ns() >= deadline:
            break
        if stream:
            c.sendall(mmsg)
        else:
            try:
                c.send(mmsg)
            except OSError as e:
                if e.errno in (errno.ENOBUFS, errno.EAGAIN):
                    send_errors += 1
                    continue
                raise
        sent += 1
    if stream:
        c.shutdown(socket.SHUT_WR)
    try:
        os.write(ctl_w, b"d")
    except OSError:
        pass   # receiver may already be done and gone
    m = _expect(reader, "result", time.monotonic() + o["max_seconds"] + 5, "receiver result")
    rb1, sd1 = _read_udp_rcvbuf_errors(), _read_softnet_dropped()
    received, nbytes, t_last = m["v"][0], m["v"][1], m["v"][2]
    elapsed = t_last - t0 if (nbytes > 0 and t_last > t0) else 0
    secs = elapsed / 1e9
    return dict(sent=sent, received=received, bytes_received=nbytes,
                elapsed_ns=elapsed, throughput_Bps=nbytes / secs if secs > 0 else 0.0,
                msgs_per_s=received / secs if secs > 0 else 0.0,
                rcvbuf_errors=_delta(rb0, rb1), softnet_dropped=_delta(sd0, sd1),
                send_errors=send_errors)


def _py_client(o: dict, c: socket.socket, res_r: int, ctl_w: int, out_w: int) -> int:
    """Client/sender role; writes the final result (or error) dict to out_w."""
    reader = _LineReader(res_r)
    try:
        try:
            os.sched_setaffinity(0, {o["cpu_a"]})
        except OSError as e:
            raise _Fail(f"cannot pin client to CPU {o['cpu_a']}: {e.strerror}", 2) from e
        if o["policy"] == "fifo":
            try:
                _set_fifo()
            except OSError as e:
                raise _Fail(f"cannot set SCHED_FIFO priority 1: {e.strerror}", 3) from e
        _expect(reader, "ready", time.monotonic() + 5, "startup")
        stream = o["transport"] in ("tcp", "unix_stream")
        start = time.monotonic_ns()
        deadline = start + int(o["max_seconds"] * 1e9)
        base = {"transport": o["transport"], "workload": o["workload"], "size": o["size"]}
        tail = {"warmup": o["warmup"], "cpu_a": o["cpu_a"], "cpu_b": o["cpu_b"],
                "policy": o["policy"], "busy_cpus": list(o["busy_cpus"])}
        run = _client_pingpong if o["workload"] == "pingpong" else _client_stream
        res = dict(base, **run(o, c, reader, ctl_w, deadline, stream), **tail)
        _send_msg(out_w, {"kind": "result", "result": res})
        return 0
    except _Fail as e:
        _send_msg(out_w, {"kind": "error", "code": e.code, "msg": str(e)})
        return e.code
    except OSError as e:
        _send_msg(out_w, {"kind": "error", "code": 1, "msg": f"client: {e}"})
        return 1
