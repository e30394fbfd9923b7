"""SO_RCVBUF / SO_SNDBUF as the kernel stores them (net/core/sock.c sk_setsockopt,
__sock_set_rcvbuf): min(request, rmem_max / wmem_max) x 2, at least SOCK_MIN_RCVBUF /
SOCK_MIN_SNDBUF (include/net/sock.h: 2304 / 4608 on x86-64), for every transport."""

from __future__ import annotations

import pytest

from lbsim.config import make_config
from lbsim.kernels import KERNELS, setsockopt_buf
from lbsim.simulate import simulate

RMEM_MAX = WMEM_MAX = 212992  # net/core/sock.c sysctl_{r,w}mem_max = SK_{R,W}MEM_MAX


def kernel_rcvbuf(request: int, rmem_max: int = RMEM_MAX) -> int:
    return max(2 * min(request, rmem_max), 2304)


def kernel_sndbuf(request: int, wmem_max: int = WMEM_MAX) -> int:
    return max(2 * min(request, wmem_max), 4608)


#: below the minimum, small, the kernel default, above the maximum
REQUESTS = [1, 4096, 212992, 4194304]


def test_profile_defaults_cite_the_kernel():
    k = KERNELS["linux-6.12"]
    assert (k.rmem_max, k.wmem_max, k.sock_min_rcvbuf, k.sock_min_sndbuf) == (212992, 212992, 2304, 4608)
    old = KERNELS["linux-2.6.32"]
    assert (old.sock_min_rcvbuf, old.sock_min_sndbuf) == (256, 2048)
    assert setsockopt_buf(2**31 - 1, 2**32 - 1, 2304) == 2 * ((2**31 - 1) // 2)  # INT_MAX / 2 cap


@pytest.mark.parametrize("request_", REQUESTS)
def test_tcp_rcvbuf_and_sndbuf_clamped(request_, socket_buffers):
    got = socket_buffers("tcp", so_rcvbuf=request_, so_sndbuf=request_)
    assert got["rcvbuf"] == kernel_rcvbuf(request_)
    assert got["sndbuf"] == kernel_sndbuf(request_)  # user-locked: tcp_sndbuf_expand leaves it


@pytest.mark.parametrize("request_", REQUESTS)
def test_udp_rcvbuf_clamped(request_, socket_buffers):
    assert socket_buffers("udp", so_rcvbuf=request_)["rcvbuf"] == kernel_rcvbuf(request_)


@pytest.mark.parametrize("transport", ["unix_stream", "unix_dgram"])
@pytest.mark.parametrize("request_", REQUESTS)
def test_unix_charges_the_senders_sndbuf_clamped(transport, request_, socket_buffers):
    """Both AF_UNIX types charge the sender's sk_sndbuf (af_unix.c sock_alloc_send_pskb);
    SO_RCVBUF changes nothing."""
    got = socket_buffers(transport, so_sndbuf=request_)
    assert got["sndbuf"] == kernel_sndbuf(request_)
    assert socket_buffers(transport, so_rcvbuf=request_) == socket_buffers(transport)


def test_raised_max_lets_a_large_request_through():
    cfg = make_config(transport="tcp", so_rcvbuf=4194304, so_sndbuf=4194304, rmem_max=4194304, wmem_max=4194304)
    assert (cfg.sk_rcvbuf(), cfg.sk_sndbuf()) == (8388608, 8388608)


def test_unix_dgram_size_limit_follows_the_clamped_sndbuf():
    assert make_config(transport="unix_dgram", so_sndbuf=1, msg_bytes=4608 - 32).sndbuf_unix() == 4608
    with pytest.raises(ValueError):
        make_config(transport="unix_dgram", so_sndbuf=1, msg_bytes=4608 - 31)


@pytest.mark.parametrize("workload", ["stream", "pingpong"])
def test_tcp_with_so_rcvbuf_1_completes(workload):
    """Before the clamp, sk_rcvbuf = 2 bytes: the window never opened and the run timed out."""
    r = simulate(make_config(transport="tcp", workload=workload, msg_bytes=1024, messages=300, placement="cross",
                             so_rcvbuf=1))
    assert r.status == "ok"
    assert r.counters["messages_delivered"] == (300 if workload == "stream" else 600)


def test_tcp_so_sndbuf_1_is_not_faster_than_the_default():
    """Before the clamp, sk_sndbuf = 2 bytes and the stream ran faster than with the default."""
    kw = dict(transport="tcp", workload="stream", msg_bytes=1024, messages=2000, placement="cross")
    small = simulate(make_config(so_sndbuf=1, **kw)).throughput["bytes_per_s"]
    default = simulate(make_config(**kw)).throughput["bytes_per_s"]
    assert small <= default
