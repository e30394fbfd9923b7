"""Build and run the real-kernel measurement harness (``harness.c``).

The C harness is compiled on demand with ``$CC`` (default ``cc``) into
``${XDG_CACHE_HOME:-~/.cache}/lbsim/harness-<sha256[:12] of the source>``.
When no C compiler is available, :func:`python_fallback_pingpong`,
:func:`python_fallback_stream` and :func:`python_fallback_split` provide a (slower, noisier)
pure-Python implementation returning the same result dictionary.  Every result dict
carries ``"harness": "c"`` or ``"harness": "python"``.

Only 127.0.0.1 and UNIX sockets under a private temporary directory are used.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import select
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterable, Optional, Sequence

from lbsim.config import SPLIT_MAX_BYTES

__all__ = [
    "HarnessError",
    "HarnessUnavailable",
    "TRANSPORTS",
    "WORKLOADS",
    "UDP_MAX_PAYLOAD",
    "UNIX_DGRAM_OVERHEAD",
    "SOURCE",
    "build_harness",
    "run_harness",
    "python_fallback_pingpong",
    "python_fallback_stream",
    "python_fallback_split",
    "max_dgram_size",
    "SPLIT_MAX_SIZE",
]

SOURCE = Path(__file__).with_name("harness.c")
TRANSPORTS = ("tcp", "udp", "unix_stream", "unix_dgram")
WORKLOADS = ("pingpong", "stream", "split")
#: split: one thread writes a message and then reads it, so a write must fit the default socket
#: buffers with no reader running (harness.c SPLIT_MAX_SIZE; the simulator's limit is the same)
SPLIT_MAX_SIZE = SPLIT_MAX_BYTES
UDP_MAX_PAYLOAD = 65507          # 65535 - 20 (IPv4) - 8 (UDP)
UNIX_DGRAM_OVERHEAD = 32         # unix_dgram_sendmsg(): len > sk_sndbuf - 32 -> EMSGSIZE
CFLAGS = ("-std=c11", "-O2", "-Wall")
PROGRAM_NAME = "lbsim-harness"   # argv[0] of the running harness (pgrep -f lbsim-harness)

_DGRAM_IDLE_S = 0.2              # receiver stops 200 ms after the sender is done
_DGRAM_POLL_S = 0.05


class HarnessUnavailable(RuntimeError):
    """The C harness cannot be built (no C compiler, or compilation failed)."""


class HarnessError(RuntimeError):
    """A harness run failed (error JSON, non-zero exit, timeout, bad output).

    ``returncode`` is the harness exit code (2: bad argument / size not
    carriable by the transport, 3: SCHED_FIFO not permitted, 1: other),
    ``result`` the parsed JSON if any, ``stderr`` the captured stderr.
    """

    def __init__(self, message: str, returncode: Optional[int] = None,
                 result: Optional[dict] = None, stderr: str = ""):
        super().__init__(message)
        self.returncode = returncode
        self.result = result
        self.stderr = stderr


# --------------------------------------------------------------------- build

def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "lbsim"


def _source_digest() -> str:
    return hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:12]


def build_harness(force: bool = False) -> Path:
    """Compile harness.c (cached by source hash) and return the binary's path.

    Raises :class:`HarnessUnavailable` if there is no usable C compiler or the
    compilation fails.
    """
    if not SOURCE.is_file():
        raise HarnessUnavailable(f"harness source not found: {SOURCE}")
    digest = _source_digest()
    cache = _cache_dir()
    exe = cache / f"harness-{digest}"
    if not force and exe.is_file() and os.access(exe, os.X_OK):
        return exe

    cc = shlex.split(os.environ.get("CC", "cc")) or ["cc"]
    if shutil.which(cc[0]) is None:
        raise HarnessUnavailable(
            f"no C compiler found (CC={os.environ.get('CC', 'cc')!r}); install gcc/clang "
            "or use python_fallback_pingpong/python_fallback_stream")
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise HarnessUnavailable(f"cannot create cache directory {cache}: {e}") from e
    tmp = cache / f".harness-{digest}.{os.getpid()}.tmp"
    cmd = [*cc, *CFLAGS, "-o", str(tmp), str(SOURCE)]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as e:
        tmp.unlink(missing_ok=True)
        raise HarnessUnavailable(f"running the C compiler failed: {' '.join(cmd)}: {e}") from e
    if r.returncode != 0 or not tmp.is_file():
        tmp.unlink(missing_ok=True)
        raise HarnessUnavailable(
            f"compiling {SOURCE.name} failed (exit {r.returncode}): {' '.join(cmd)}\n"
            f"{r.stderr.strip()}")
    os.chmod(tmp, 0o755)
    os.replace(tmp, exe)   # atomic: concurrent builders are fine
    return exe


# ----------------------------------------------------------------------- run

def null_syscall_ns(calls: int = 3_100_000) -> float:
    """Median cost of one getppid() syscall on this host (entry + exit, with mitigations)."""
    exe = build_harness()
    r = subprocess.run([str(exe), "--null-syscalls", str(calls)], capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise HarnessError(f"null-syscall run failed (exit {r.returncode}): {r.stdout.strip()} {r.stderr.strip()}",
                           r.returncode)
    return float(json.loads(r.stdout)["null_syscall_ns"])


def _check_common(transport: str, workload: str) -> None:
    if transport not in TRANSPORTS:
        raise HarnessError(f"unknown transport {transport!r} (expected one of {TRANSPORTS})", 2)
    if workload not in WORKLOADS:
        raise HarnessError(f"unknown workload {workload!r} (expected one of {WORKLOADS})", 2)


def run_harness(transport: str, workload: str, size: int, count: int, warmup: int,
                cpu_a: int, cpu_b: int, max_seconds: float = 10, busy_cpus: Iterable[int] = (),
                policy: str = "other") -> dict:
    """Run the compiled C harness once and return its parsed JSON result.

    Raises :class:`HarnessError` on an error JSON, a non-zero exit, a timeout
    (``max_seconds + 30``) or unparsable output, and
    :class:`HarnessUnavailable` if the harness cannot be built.
    """
    _check_common(transport, workload)
    exe = build_harness()
    argv = [PROGRAM_NAME, "--transport", transport, "--workload", workload,
            "--size", str(int(size)), "--count", str(int(count)), "--warmup", str(int(warmup)),
            "--cpu-a", str(int(cpu_a)), "--cpu-b", str(int(cpu_b)),
            "--max-seconds", repr(float(max_seconds)), "--policy", str(policy)]
    for c in busy_cpus:
        argv += ["--busy-cpu", str(int(c))]
    # private TMPDIR: UNIX socket paths vanish even if the harness is SIGKILLed
    with tempfile.TemporaryDirectory(prefix="lbsim-run-") as td:
        env = dict(os.environ, TMPDIR=td)
        try:
            p = subprocess.run(argv, executable=str(exe), capture_output=True, text=True,
                               timeout=float(max_seconds) + 30, env=env)
        except subprocess.TimeoutExpired as e:
            raise HarnessError(f"harness timed out after {float(max_seconds) + 30:.0f} s: "
                               f"{' '.join(argv)}", None, None,
                               (e.stderr or b"").decode(errors="replace")
                               if isinstance(e.stderr, bytes) else (e.stderr or "")) from e
    lines = [ln for ln in p.stdout.splitlines() if ln.strip()]
    result = None
    if lines:
        try:
            result = json.loads(lines[-1])
        except json.JSONDecodeError:
            result = None
    if isinstance(result, dict) and "error" in result:
        raise HarnessError(f"harness error: {result['error']}", p.returncode, result, p.stderr)
    if p.returncode != 0:
        raise HarnessError(f"harness exited with code {p.returncode}: "
                           f"{(p.stdout + p.stderr).strip()[:2000]}", p.returncode, result,
                           p.stderr)
    if not isinstance(result, dict):
        raise HarnessError(f"harness printed no JSON result: {p.stdout!r} {p.stderr!r}",
                           p.returncode, None, p.stderr)
    result["harness"] = "c"
    return result


# ------------------------------------------------------------ python fallback

def max_dgram_size(transport: str) -> Optional[int]:
    """Largest payload a datagram transport can carry with default buffers
    (None for stream transports)."""
    if transport == "udp":
        return UDP_MAX_PAYLOAD
    if transport == "unix_dgram":
        try:
            wmem = int(Path("/proc/sys/net/core/wmem_default").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            wmem = 212992
        return wmem - UNIX_DGRAM_OVERHEAD
    return None


def _read_udp_rcvbuf_errors() -> Optional[int]:
    try:
        lines = [ln.split() for ln in Path("/proc/net/snmp").read_text().splitlines()
                 if ln.startswith("Udp:")]
        hdr, val = lines[0], lines[1]
        return int(val[hdr.index("RcvbufErrors")])
    except (OSError, ValueError, IndexError):
        return None


def _read_softnet_dropped() -> Optional[int]:
    try:
        tot = 0
        for ln in Path("/proc/net/softnet_stat").read_text().splitlines():
            f = ln.split()
            if len(f) >= 2:
                tot += int(f[1], 16)
        return tot
    except (OSError, ValueError):
        return None


def _delta(a: Optional[int], b: Optional[int]) -> Optional[int]:
    return None if a is None or b is None else b - a


def _pct(sorted_samples: Sequence[int], permille: int) -> int:
    n = len(sorted_samples)
    rank = max(1, min(n, (permille * n + 999) // 1000))
    return sorted_samples[rank - 1]


def _die_with_parent() -> None:
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:  # pragma: no cover - best effort
        pass


def _set_fifo() -> None:
    os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))


class _Fail(Exception):
    def __init__(self, msg: str, code: int = 1):
        super().__init__(msg)
        self.code = code


def _recv_exact(sock: socket.socket, n: int) -> Optional[bytes]:
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


def _send_msg(fd: int, obj: dict) -> None:
    os.write(fd, (json.dumps(obj) + "\n").encode())


class _LineReader:
    def __init__(self, fd: int):
        self.fd = fd
        self.buf = b""

    def read(self, deadline: float) -> Optional[dict]:
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


def _py_sockets(transport: str, tmpdir: Optional[str]):
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


def _py_peer(o: dict, s: socket.socket, caddr, res_w: int, ctl_r: int) -> int:
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
    size, count, warmup = o["size"], o["count"], o["warmup"]
    stream = o["transport"] in ("tcp", "unix_stream")
    _send_msg(res_w, {"kind": "ready"})
    try:
        if o["workload"] == "pingpong":
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
            _send_msg(res_w, {"kind": "result", "v": [rounds, 0, 0, 0]})
            return 0

        t_last = 0
        if stream:
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
            _send_msg(res_w, {"kind": "result", "v": [meas // size, meas, t_last, 0]})
            return 0

        s.settimeout(_DGRAM_POLL_S)
        warm = meas = nbytes = 0
        acked, warm_sent, done = warmup == 0, False, False
        t_any, t_done = time.monotonic(), 0.0
        hard_end = time.monotonic() + o["max_seconds"] + 10
        while True:
            try:
                m = s.recv(size)
            except (socket.timeout, BlockingIOError):
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
        _send_msg(res_w, {"kind": "result", "v": [meas, nbytes, t_last, warm]})
        return 0
    except _Fail as e:
        _send_msg(res_w, {"kind": "error", "code": e.code, "msg": str(e)})
        return e.code
    except OSError as e:
        _send_msg(res_w, {"kind": "error", "code": 1, "msg": f"peer: {e}"})
        return 1


def _expect(reader: _LineReader, kind: str, deadline: float, what: str) -> dict:
    m = reader.read(deadline)
    if m is None:
        raise _Fail(f"peer exited unexpectedly ({what})")
    if m.get("kind") == "error":
        raise _Fail(f"peer: {m.get('msg')}", int(m.get("code") or 1))
    if m.get("kind") != kind:
        raise _Fail(f"protocol error: unexpected {m.get('kind')!r} from peer ({what})")
    return m


def _py_client(o: dict, c: socket.socket, res_r: int, ctl_w: int, out_w: int) -> int:
    """Client/sender role; writes the final result (or error) dict to out_w."""
    reader = _LineReader(res_r)
    try:
        try:
            os.sched_setaffinity(0, {o["cpu_a"]})
        except OSError as e:
            raise _Fail(f"cannot pin client to CPU {o['cpu_a']}: {e.strerror}", 2)
        if o["policy"] == "fifo":
            try:
                _set_fifo()
            except OSError as e:
                raise _Fail(f"cannot set SCHED_FIFO priority 1: {e.strerror}", 3)
        _expect(reader, "ready", time.monotonic() + 5, "startup")
        size, count, warmup = o["size"], o["count"], o["warmup"]
        stream = o["transport"] in ("tcp", "unix_stream")
        start = time.monotonic_ns()
        deadline = start + int(o["max_seconds"] * 1e9)
        base = {"transport": o["transport"], "workload": o["workload"], "size": size}
        tail = {"warmup": warmup, "cpu_a": o["cpu_a"], "cpu_b": o["cpu_b"],
                "policy": o["policy"], "busy_cpus": list(o["busy_cpus"])}

        if o["workload"] == "pingpong":
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
            res = dict(base, count=len(samples), mean_ns=sum(samples) / len(samples),
                       p50_ns=_pct(samples, 500), p90_ns=_pct(samples, 900),
                       p99_ns=_pct(samples, 990), p999_ns=_pct(samples, 999),
                       min_ns=samples[0], max_ns=samples[-1], elapsed_ns=rec_end - rec_start,
                       **tail)
        else:
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
            m = _expect(reader, "result", time.monotonic() + o["max_seconds"] + 5,
                        "receiver result")
            rb1, sd1 = _read_udp_rcvbuf_errors(), _read_softnet_dropped()
            received, nbytes, t_last = m["v"][0], m["v"][1], m["v"][2]
            elapsed = t_last - t0 if (nbytes > 0 and t_last > t0) else 0
            secs = elapsed / 1e9
            res = dict(base, sent=sent, received=received, bytes_received=nbytes,
                       elapsed_ns=elapsed, throughput_Bps=nbytes / secs if secs > 0 else 0.0,
                       msgs_per_s=received / secs if secs > 0 else 0.0,
                       rcvbuf_errors=_delta(rb0, rb1), softnet_dropped=_delta(sd0, sd1),
                       send_errors=send_errors, **tail)
        _send_msg(out_w, {"kind": "result", "result": res})
        return 0
    except _Fail as e:
        _send_msg(out_w, {"kind": "error", "code": e.code, "msg": str(e)})
        return e.code
    except OSError as e:
        _send_msg(out_w, {"kind": "error", "code": 1, "msg": f"client: {e}"})
        return 1


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


def _python_run(transport: str, workload: str, size: int, count: int, warmup: int, cpu_a: int,
                cpu_b: int, max_seconds: float, busy_cpus: Iterable[int], policy: str) -> dict:
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

    tmpdir = tempfile.mkdtemp(prefix="lbsim-py-") if transport.startswith("unix") else None
    pids: list = []
    fds: list = []
    socks: list = []
    try:
        end = time.monotonic() + max_seconds + 30
        for cpu in busy_cpus:
            if cpu not in range(os.cpu_count() or 1):
                raise HarnessError(f"cannot start busy spinner on CPU {cpu} (invalid CPU?)", 2)
            pids.append(_fork_role(_spinner, (cpu, end)))
        if busy_cpus:
            time.sleep(0.02)
        c, s, caddr = _py_sockets(transport, tmpdir)
        socks += [c, s]
        if workload == "split":
            res = _py_split(o, c, s)
            res["harness"] = "python"
            return res
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
            m = reader.read(time.monotonic() + max_seconds + 20)
        except _Fail:
            raise HarnessError("python fallback timed out", None) from None
        if m is None:
            raise HarnessError("python fallback client exited without a result", 1)
        if m.get("kind") == "error":
            raise HarnessError(f"harness error: {m.get('msg')}", int(m.get("code") or 1),
                               {"error": m.get("msg")})
        res = m["result"]
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
