"""Socket buffer sizes clamped as the kernel clamps them, per transport (issue 28), beyond the
SO_RCVBUF / SO_SNDBUF requests of tests/test_clamp.py: the defaults each transport starts from,
a raised net.core.{r,w}mem_max letting a large request through into the model's sockets, TCP's
growth capped by tcp_rmem[2] / tcp_wmem[2], UDP's SO_SNDBUF inert on lo, the sysctls' own floors
and the 2.6.32 minimums."""

from __future__ import annotations

import pytest

from lbsim.config import ConfigError, make_config
from lbsim.simulate import simulate

BIG = 4194304  # a request above the default rmem_max / wmem_max (212992)


def test_defaults_per_transport(socket_buffers):
    """net/core/sock.c sock_init_data: sk_rcvbuf = rmem_default, sk_sndbuf = wmem_default (UDP,
    AF_UNIX); TCP starts from tcp_rmem[1] (net/ipv4/tcp.c tcp_init_sock) and its send buffer is
    set by tcp_sndbuf_expand at connect, at most tcp_wmem[2]."""
    assert socket_buffers("udp", rmem_default=65536)["rcvbuf"] == 65536
    for tr in ("unix_stream", "unix_dgram"):
        assert socket_buffers(tr, wmem_default=65536)["sndbuf"] == 65536
    assert socket_buffers("tcp", tcp_rmem=(4096, 65536, 6291456))["rcvbuf"] == 65536


@pytest.mark.parametrize("transport,field,attr", [
    ("tcp", "so_rcvbuf", "rcvbuf"), ("tcp", "so_sndbuf", "sndbuf"), ("udp", "so_rcvbuf", "rcvbuf"),
    ("unix_stream", "so_sndbuf", "sndbuf"), ("unix_dgram", "so_sndbuf", "sndbuf")])
def test_raised_max_lets_a_large_request_into_the_socket(transport, field, attr, socket_buffers):
    """sk_setsockopt clamps at the sysctl: default max -> 2 x 212992; raised -> 2 x the request."""
    assert socket_buffers(transport, **{field: BIG})[attr] == 2 * 212992
    raised = socket_buffers(transport, **{field: BIG}, rmem_max=2 * BIG, wmem_max=2 * BIG)
    assert raised[attr] == 2 * BIG


def test_tcp_send_buffer_expansion_capped_by_tcp_wmem_max(socket_buffers):
    """net/ipv4/tcp_input.c tcp_sndbuf_expand: sndmem = min(2 x max(cwnd, TCP_INIT_CWND) x
    per_mss, tcp_wmem[2]); with a 64 KiB MSS the expansion wants ~2.6 MB."""
    assert socket_buffers("tcp")["sndbuf"] > 65536
    assert socket_buffers("tcp", tcp_wmem=(4096, 16384, 65536))["sndbuf"] == 65536


def test_tcp_receive_buffer_growth_capped_by_tcp_rmem_max():
    """net/ipv4/tcp_input.c tcp_rcv_space_adjust (DRS) grows sk_rcvbuf up to tcp_rmem[2]: a
    cross-CPU stream of 64 KiB writes grows it past 196608 by default, and stops there when
    tcp_rmem[2] = 196608."""
    kw = dict(transport="tcp", workload="stream", msg_bytes=65536, messages=300, placement="cross", costs="default")
    grown = simulate(make_config(**kw)).counters["tcp_final_rcvbuf"]
    capped = simulate(make_config(tcp_rmem=(4096, 131072, 196608), **kw)).counters["tcp_final_rcvbuf"]
    assert grown > 196608
    assert capped == 196608


def test_udp_so_sndbuf_is_inert_on_lo():
    """The request is clamped as for every socket, but on lo at the default mtu (one skb per
    datagram) it limits nothing: loopback_xmit (drivers/net/loopback.c) orphans the skb inside
    udp_sendmsg, so sk_wmem_alloc is back to 0 before the next send's sock_alloc_send_skb
    (net/ipv4/ip_output.c __ip_append_data) looks at sk_sndbuf."""
    kw = dict(transport="udp", workload="stream", msg_bytes=1024, messages=200, placement="cross",
              costs="default", deterministic=True)
    assert make_config(so_sndbuf=1, **kw).sk_sndbuf() == 4608
    small = simulate(make_config(so_sndbuf=1, **kw))
    default = simulate(make_config(**kw))
    assert small.throughput == default.throughput
    assert small.counters == default.counters


@pytest.mark.parametrize("field,floor", [("rmem_max", 2304), ("rmem_default", 2304), ("wmem_max", 4608),
                                         ("wmem_default", 4608)])
def test_sysctl_floors(field, floor):
    """net/core/sysctl_net_core.c: net.core.{r,w}mem_{max,default} have extra1 = min_rcvbuf /
    min_sndbuf (SOCK_MIN_RCVBUF / SOCK_MIN_SNDBUF): a smaller write is refused."""
    assert getattr(make_config(**{field: floor}), field) == floor
    with pytest.raises(ConfigError):
        make_config(**{field: floor - 1})


def test_linux_2_6_32_minimums():
    """2.6.32 include/net/sock.h SOCK_MIN_RCVBUF 256, SOCK_MIN_SNDBUF 2048; sysctl_rmem_max =
    sysctl_wmem_max = 124928 there."""
    cfg = make_config(kernel="linux-2.6.32", transport="tcp", so_rcvbuf=1, so_sndbuf=1)
    assert (cfg.sk_rcvbuf(), cfg.sk_sndbuf()) == (256, 2048)
    cfg = make_config(kernel="linux-2.6.32", transport="tcp", so_rcvbuf=BIG, so_sndbuf=BIG)
    assert (cfg.sk_rcvbuf(), cfg.sk_sndbuf()) == (2 * 124928, 2 * 124928)
