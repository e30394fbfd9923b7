"""Build and run the real-kernel measurement harness (``harness.c``).

The C harness is compiled on demand with ``$CC`` (default ``cc``) into
``${XDG_CACHE_HOME:-~/.cache}/lbsim/harness-<sha256[:12] of the source>``
(:mod:`.harness_build`).  When no C compiler is available, :func:`python_fallback_pingpong`,
:func:`python_fallback_stream` and :func:`python_fallback_split` (:mod:`.harness_fallback`)
provide a (slower, noisier) pure-Python implementation returning the same result
dictionary.  Every result dict carries ``"harness": "c"`` or ``"harness": "python"``.
Names, limits and errors shared by all of them are in :mod:`.harness_base`; this module
runs the compiled harness and reads its JSON result, and re-exports the rest.

Only 127.0.0.1 and UNIX sockets under a private temporary directory are used.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Iterable

from .harness_base import (  # noqa: F401 - re-exported: the public names of this module
    PROGRAM_NAME,
    SPLIT_MAX_SIZE,
    TRANSPORTS,
    UDP_MAX_PAYLOAD,
    UNIX_DGRAM_OVERHEAD,
    WORKLOADS,
    HarnessError,
    HarnessUnavailable,
    _check_common,
    max_dgram_size,
)
from .harness_build import CFLAGS, SOURCE, _cache_dir, _source_digest, build_harness  # noqa: F401
from .harness_fallback import (  # noqa: F401
    _python_run,
    python_fallback_pingpong,
    python_fallback_split,
    python_fallback_stream,
)
from .micro_ipfrag import micro_ipfrag

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
    "micro_epoll",
    "micro_unix_lookup",
    "micro_hrtimer",
    "stage_file_micros",
    "SPLIT_MAX_SIZE",
]


def _run_micro(flag: str, calls: int, timeout: float) -> dict[str, float]:
    """One of the harness's micro-benchmark modes (``--null-syscalls``, ``--micro-epoll``,
    ``--micro-unix-lookup``, ``--micro-hrtimer``) with ``calls`` iterations per loop: its JSON line,
    as floats."""
    exe = build_harness()
    r = subprocess.run([str(exe), flag, str(calls)], capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise HarnessError(f"harness {flag} run failed (exit {r.returncode}): {r.stdout.strip()} {r.stderr.strip()}",
                           r.returncode)
    return {k: float(v) for k, v in json.loads(r.stdout).items()}


def null_syscall_ns(calls: int = 3_100_000) -> float:
    """Median cost of one getppid() syscall on this host (entry + exit, with mitigations)."""
    return _run_micro("--null-syscalls", calls, 120)["null_syscall_ns"]


def micro_epoll(calls: int = 3_100_000) -> dict[str, float]:
    """What epoll adds to a receive on this host, at default settings (harness ``--micro-epoll``):
    ``ep_send_events_ns`` (epoll_wait on an always-readable socket less the null syscall) and
    ``ep_poll_callback_ns`` (what watching a socket adds to its send); the stage file's ``epoll``
    entry, read by lbsim.calibrate.base into the ep_send_events and ep_poll_callback stages."""
    return _run_micro("--micro-epoll", calls, 300)


def micro_unix_lookup(calls: int = 1_000_000) -> dict[str, float]:
    """What a unix_dgram send to a path costs more than one on a connected socket, on this host,
    at default settings (harness ``--micro-unix-lookup``): ``unix_find_other_ns``, the stage file's
    ``unix_lookup`` entry, read by lbsim.calibrate.base into the unix_find_other stage (charged to
    the unix_dgram ping-pong server's replies, which go to the client's path).  A million calls per
    loop take about 8 s and agree with three million's (docs/notes/unix-lookup.md)."""
    return _run_micro("--micro-unix-lookup", calls, 300)


def micro_hrtimer(calls: int = 62_000) -> dict[str, float] | None:
    """What an hrtimer costs a busy CPU on this host, at default settings (harness
    ``--micro-hrtimer``, about 5 s): ``hrtimer_reprogram_ns`` (one programming of the clock event,
    a trapped TSC-deadline write in a KVM guest) and ``hrtimer_interrupt_ns`` (one expiry: the
    timer interrupt, the expiry loop and the next event programmed); the stage file's ``hrtimer``
    entry, which the calibration does not read yet: the model still charges the IPI's exit for both
    (docs/notes/hrtimer-cost.md says why).  None where this host allows no perf event (the harness's exit
    3: perf_event_paranoid 3, a seccomp filter): the stage file then says ``null``."""
    try:
        return _run_micro("--micro-hrtimer", calls, 120)
    except HarnessError as e:
        if e.returncode == 3:
            return None
        raise


def stage_file_micros() -> dict[str, dict[str, float] | None]:
    """The micro-benchmark entries of a stage file (``lbsim measure --stages``, ``lbsim calibrate``):
    ``epoll`` (the optional ep_* stages, lbsim.model.eventpoll), ``unix_lookup`` (the
    unix_find_other stage, lbsim.model.unix) and ``hrtimer`` (TCP's pacing timer's price,
    docs/notes/hrtimer-cost.md) and ``ip_fragment`` (one more IP fragment's price, the ip_fragment and
    ip_defrag stages: lbsim.measure.micro_ipfrag; None without a private network namespace)."""
    return {"epoll": micro_epoll(), "unix_lookup": micro_unix_lookup(), "hrtimer": micro_hrtimer(),
            "ip_fragment": micro_ipfrag()}


def _result(p: subprocess.CompletedProcess) -> dict:
    """The harness's JSON result (its last non-empty stdout line), or HarnessError."""
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


def harness_argv(transport: str, workload: str, size: int, count: int, warmup: int, cpu_a: int, cpu_b: int,
                 max_seconds: float = 10, busy_cpus: Iterable[int] = (), policy: str = "other", *,
                 rcvbuf: int = 0, sndbuf: int = 0, nagle: bool = False, flows: int = 1, senders: int = 1,
                 busy_poll: int | None = None, epoll: bool = False, zerocopy: bool = False,
                 batch: int = 1) -> list[str]:
    """The harness's command line (argv[0] its program name) for one run: the one builder that
    :func:`run_harness` and the knob runs (lbsim/measure/knob_run.py) use.  ``zerocopy`` sends
    with MSG_ZEROCOPY, ``batch`` > 1 sends and receives that many per call (``sendmmsg`` /
    ``recvmmsg``, ``MSG_MORE`` on TCP); the others as :func:`run_harness` says."""
    argv = [PROGRAM_NAME, "--transport", transport, "--workload", workload,
            "--size", str(int(size)), "--count", str(int(count)), "--warmup", str(int(warmup)),
            "--cpu-a", str(int(cpu_a)), "--cpu-b", str(int(cpu_b)),
            "--max-seconds", repr(float(max_seconds)), "--policy", str(policy)]
    for c in busy_cpus:
        argv += ["--busy-cpu", str(int(c))]
    for opt, v in (("--rcvbuf", rcvbuf), ("--sndbuf", sndbuf)):
        if v:
            argv += [opt, str(int(v))]
    if nagle:
        argv.append("--nagle")
    if flows != 1:
        argv += ["--flows", str(int(flows))]
    if senders != 1:
        argv += ["--senders", str(int(senders))]
    if busy_poll is not None:
        argv += ["--busy-poll", str(int(busy_poll))]
    if zerocopy:
        argv.append("--zerocopy")
    if batch != 1:
        argv += ["--batch", str(int(batch))]
    if epoll:  # every receiving side waits in epoll_wait, then recv (docs/notes/epoll.md)
        argv.append("--epoll")
    return argv


def run_harness(transport: str, workload: str, size: int, count: int, warmup: int,
                cpu_a: int, cpu_b: int, max_seconds: float = 10, busy_cpus: Iterable[int] = (),
                policy: str = "other", *, rcvbuf: int = 0, sndbuf: int = 0, nagle: bool = False,
                flows: int = 1, senders: int = 1, busy_poll: int | None = None, epoll: bool = False) -> dict:
    """Run the compiled C harness once and return its parsed JSON result.

    ``rcvbuf``/``sndbuf`` (> 0) set SO_RCVBUF/SO_SNDBUF on every socket, ``nagle`` leaves
    TCP_NODELAY off, ``flows`` runs that many pairs at once, ``senders=2`` adds a second
    sender (udp/unix_dgram streams), ``busy_poll`` (us) sets SO_BUSY_POLL on every socket (it
    changes nothing on lo: docs/notes/noop-switches.md), ``epoll`` makes every receiver wait in
    epoll_wait before each recv (``receiver`` in the result).  Every result also carries ``sleeps_per_msg_sender``,
    ``sleeps_per_msg_receiver``, the buffers the kernel kept (``rcvbuf_client`` ...),
    ``tcp_nodelay``, ``flows``, ``senders``, ``busy_poll_client``/``_server`` (SO_BUSY_POLL read
    back) and ``flow_received`` (harness.c's header).

    Raises :class:`HarnessError` on an error JSON, a non-zero exit, a timeout
    (``max_seconds + 30``) or unparsable output, and
    :class:`HarnessUnavailable` if the harness cannot be built.
    """
    _check_common(transport, workload)
    exe = build_harness()
    argv = harness_argv(transport, workload, size, count, warmup, cpu_a, cpu_b, max_seconds, busy_cpus, policy,
                        rcvbuf=rcvbuf, sndbuf=sndbuf, nagle=nagle, flows=flows, senders=senders,
                        busy_poll=busy_poll, epoll=epoll)
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
    return _result(p)
