"""Names, limits and errors shared by the C harness (:mod:`.harness`), its build
(:mod:`.harness_build`), its pure-Python fallback (:mod:`.harness_fallback`) and the stage
tracer (:mod:`.stages`).

The datagram limits: ``UDP_MAX_PAYLOAD`` is the IPv4 total length (65535) less the IPv4
and UDP headers, and a unix_dgram write must fit ``sk_sndbuf - 32``
(net/unix/af_unix.c unix_dgram_sendmsg).
"""

from __future__ import annotations

from pathlib import Path

from lbsim.config import SPLIT_MAX_BYTES

__all__ = [
    "HarnessError",
    "HarnessUnavailable",
    "TRANSPORTS",
    "HARNESS_TRANSPORTS",
    "WORKLOADS",
    "UDP_MAX_PAYLOAD",
    "UNIX_DGRAM_OVERHEAD",
    "SPLIT_MAX_SIZE",
    "PROGRAM_NAME",
    "max_dgram_size",
]

TRANSPORTS = ("tcp", "udp", "unix_stream", "unix_dgram")
#: what the harness runs: the measured grid's TRANSPORTS and unix_seqpacket (a knob setting of
#: unix_dgram runs, knob ``socktype``: docs/notes/seqpacket.md)
HARNESS_TRANSPORTS = (*TRANSPORTS, "unix_seqpacket")
WORKLOADS = ("pingpong", "stream", "split")
#: split: one thread writes a message and then reads it, so a write must fit the default socket
#: buffers with no reader running (harness.c SPLIT_MAX_SIZE; the simulator's limit is the same)
SPLIT_MAX_SIZE = SPLIT_MAX_BYTES
UDP_MAX_PAYLOAD = 65507          # 65535 - 20 (IPv4) - 8 (UDP)
UNIX_DGRAM_OVERHEAD = 32         # unix_dgram_sendmsg(): len > sk_sndbuf - 32 -> EMSGSIZE
PROGRAM_NAME = "lbsim-harness"   # argv[0] of the running harness (pgrep -f lbsim-harness)


class HarnessUnavailable(RuntimeError):
    """The C harness cannot be built (no C compiler, or compilation failed)."""


class HarnessError(RuntimeError):
    """A harness run failed (error JSON, non-zero exit, timeout, bad output).

    ``returncode`` is the harness exit code (2: bad argument / size not
    carriable by the transport, 3: SCHED_FIFO not permitted, or no perf events for
    ``--micro-hrtimer``, 1: other),
    ``result`` the parsed JSON if any, ``stderr`` the captured stderr.
    """

    def __init__(self, message: str, returncode: int | None = None,
                 result: dict | None = None, stderr: str = ""):
        super().__init__(message)
        self.returncode = returncode
        self.result = result
        self.stderr = stderr


def _check_common(transport: str, workload: str) -> None:
    if transport not in HARNESS_TRANSPORTS:
        raise HarnessError(f"unknown transport {transport!r} (expected one of {HARNESS_TRANSPORTS})", 2)
    if workload not in WORKLOADS:
        raise HarnessError(f"unknown workload {workload!r} (expected one of {WORKLOADS})", 2)


def max_dgram_size(transport: str) -> int | None:
    """Largest payload a datagram transport can carry with default buffers
    (None for stream transports)."""
    if transport == "udp":
        return UDP_MAX_PAYLOAD
    if transport in ("unix_dgram", "unix_seqpacket"):  # unix_seqpacket_sendmsg -> unix_dgram_sendmsg
        try:
            wmem = int(Path("/proc/sys/net/core/wmem_default").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            wmem = 212992
        return wmem - UNIX_DGRAM_OVERHEAD
    return None
