"""Send buffers of the datagram and AF_UNIX sockets, and where rmem_default / wmem_default go.

Kernel rules pinned here (6.x):

* net/core/sock.c ``sock_init_data``: every socket starts with ``sk_rcvbuf = rmem_default``
  and ``sk_sndbuf = wmem_default``; net/ipv4/tcp.c ``tcp_init_sock`` then sets TCP's to
  ``tcp_rmem[1]`` / ``tcp_wmem[1]``.  AF_UNIX charges only the sender's ``sk_sndbuf``
  (net/unix/af_unix.c never reads ``sk_rcvbuf``); UDP checks ``sk_rcvbuf`` on receive.
* net/core/sock.c ``sock_alloc_send_pskb``: the sender waits (``sock_wait_for_wmem``) while
  ``sk_wmem_alloc >= sk_sndbuf``; AF_UNIX's ``unix_write_space`` wakes it only once
  ``sk_wmem_alloc * 4 <= sk_sndbuf`` (``unix_writable``).
* drivers/net/loopback.c ``loopback_xmit``: ``skb_orphan`` uncharges a UDP skb inside the send
  call, so a UDP sender over lo never waits for ``sk_sndbuf`` (measured: sleeps_per_msg_sender
  0.000 in every udp run of data/knobs/amd-epyc-2026-12-0{6,7}-v1300, SO_SNDBUF 1 .. 4194304).
"""

from __future__ import annotations

from typing import Any

import pytest

from lbsim.config import make_config
from lbsim.model import host as model_host
from lbsim.simulate import simulate


def _buffers(transport: str, **kw: Any) -> dict[str, int]:
    """The rcvbuf / sndbuf the model's first socket of a run holds."""
    cfg = make_config(transport=transport, workload="stream", msg_bytes=64, messages=20, placement="same", **kw)
    seen: dict[str, int] = {}
    orig = model_host._build_flow

    def spy(*args: Any) -> Any:
        flow = orig(*args)
        for attr in ("rcvbuf", "sndbuf"):
            if hasattr(flow.socks[0], attr):
                seen[attr] = getattr(flow.socks[0], attr)
        return flow

    model_host._build_flow = spy  # type: ignore[assignment]
    try:
        assert simulate(cfg).status == "ok"
    finally:
        model_host._build_flow = orig  # type: ignore[assignment]
    return seen


def test_rmem_default_sets_udps_receive_buffer_only():
    assert _buffers("udp", rmem_default=16384)["rcvbuf"] == 16384
    assert _buffers("udp")["rcvbuf"] == 212992
    # tcp_init_sock: TCP starts from tcp_rmem[1] / tcp_wmem[1], not the core defaults
    assert _buffers("tcp", rmem_default=16384, wmem_default=1 << 20) == _buffers("tcp")


@pytest.mark.parametrize("transport", ["unix_stream", "unix_dgram"])
def test_wmem_default_sets_af_unix_send_buffer(transport):
    assert _buffers(transport, wmem_default=16384)["sndbuf"] == 16384
    assert _buffers(transport, wmem_default=1 << 20)["sndbuf"] == 1 << 20
    assert _buffers(transport)["sndbuf"] == 212992


def _stream(transport: str, messages: int = 1000, **kw: Any) -> Any:
    cfg = make_config(transport=transport, workload="stream", msg_bytes=1024, messages=messages,
                      placement="cross", seed=3, **kw)
    res = simulate(cfg)
    assert res.status == "ok"
    return res


@pytest.mark.parametrize("transport", ["unix_stream", "unix_dgram"])
def test_af_unix_writer_waits_once_per_sndbuf_worth(transport):
    """1 KiB skbs have truesize 2304 (lbsim.model.skb).  SO_SNDBUF 1 -> sk_sndbuf 4608: two
    skbs are charged before the check fails; the writer is woken at wmem * 4 <= 4608, i.e. when
    the reader has freed both, so it sleeps once per 2 writes whatever the costs (host: 0.497
    sleeps per message in both knob data sets).  SO_SNDBUF 4096 -> 8192: four skbs (0, 2304,
    4608, 6912 < 8192), woken at wmem <= 2048, i.e. with none left: at most once per 4 writes
    (host: 0.21-0.23; how often the reader lets four pile up depends on the costs).  Exact but
    for the last cycle, hence the tolerance of one block."""
    n = 1000
    tiny = _stream(transport, n, so_sndbuf=1).counters["unix_sender_blocked"]
    assert abs(tiny - n / 2) <= 1
    small = _stream(transport, n, so_sndbuf=4096).counters["unix_sender_blocked"]
    assert 0 < small <= n / 4 + 1
    assert _stream(transport, n).counters["unix_sender_blocked"] < small


def test_udp_sender_never_waits_for_its_send_buffer():
    """skb_orphan in loopback_xmit: the smallest SO_SNDBUF and wmem_default leave a UDP run
    bit-identical to the default one (nothing waits, nothing else reads sk_sndbuf)."""
    base = _stream("udp", 500)
    for kw in ({"so_sndbuf": 1}, {"wmem_default": 4608}):
        other = _stream("udp", 500, **kw)
        assert other.throughput == base.throughput
        assert other.counters["sender_blocked_count"] == 0
        assert other.latency_us == base.latency_us
