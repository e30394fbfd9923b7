"""TCP's internal pacing under BBR (net/ipv4/tcp_output.c tcp_pacing_check, tcp_update_skb_after_send,
tcp_pace_kick) and what it does to software GSO on lo with TSO off."""

from __future__ import annotations

import pytest

import lbsim
from lbsim.model import tcp as tcp_model

# tso-mtu1500 `tso=off` of the knob grid: one CPU, 64 KiB writes, software GSO cuts each skb into
# 45 segments of 1448 bytes that all enter the sending CPU's backlog (net/core/dev.c netif_rx)
GSO_SEGS = (65536 - 1 - 320) // 1448


def _tso_off(cc: str, messages: int = 256):
    socks = []
    init = tcp_model.TcpSock.__init__

    def keep(self, *a, **k):
        init(self, *a, **k)
        socks.append(self)

    tcp_model.TcpSock.__init__ = keep  # type: ignore[method-assign]
    try:
        res = lbsim.simulate(transport="tcp", workload="stream", msg_bytes=65536, messages=messages,
                             placement="same", mtu=1500, tso=False, seed=1, tcp_congestion_control=cc)
    finally:
        tcp_model.TcpSock.__init__ = init  # type: ignore[method-assign]
    assert res.status == "ok"
    return res, socks


def test_bbr_paces_one_gso_skb_at_a_time_and_the_backlog_never_overflows():
    res, socks = _tso_off("bbr")
    c = res.counters
    # as measured on the host (softnet_dropped 0, tcp_retrans_segs 0, time_squeeze 0): each
    # tcp_write_xmit call sends one skb, whose segments NET_RX drains before the pacing timer
    # lets the next one go; the backlog holds one skb's segments and the ACKs between them
    assert c["softnet_dropped"] == 0
    assert c["tcp_retrans_segs"] == 0
    assert c["softnet_time_squeeze"] == 0
    assert GSO_SEGS <= c["backlog_max_qlen"] <= 2 * GSO_SEGS
    sender = next(s for s in socks if s.snd_nxt)
    assert sender.wstamp_ns > 0  # the departure time did advance


def test_cubic_does_not_pace():
    # sk_pacing_status stays SK_PACING_NONE without BBR (and lo has no fq qdisc)
    _, socks = _tso_off("cubic", messages=32)
    assert all(s.wstamp_ns == 0.0 and not s.pace_armed for s in socks)


class _Cc:
    pacing_rate = 1e9  # bytes/s: 1 ns per byte


def _sock():
    s = tcp_model.TcpSock.__new__(tcp_model.TcpSock)
    s.wstamp_ns = 0.0
    s.out_segs = 0
    return s


def test_departure_time_follows_tcp_update_skb_after_send():
    s = _sock()
    s.out_segs = 9  # data_segs_out < 10: "Original sch_fq does not pace first 10 MSS"
    s._paced(1000, 5000.0, _Cc.pacing_rate)
    assert s.wstamp_ns == 5000.0  # only max(tcp_wstamp_ns, tcp_clock_cache)
    s.out_segs = 10
    # the flow lagged 5000 ns behind its schedule: up to half of len_ns is forgiven
    s.wstamp_ns = 0.0
    s._paced(1000, 5000.0, _Cc.pacing_rate)
    assert s.wstamp_ns == pytest.approx(5000.0 + 1000 - 500)
    # on schedule (no credit): the whole len / rate
    s._paced(2000, 5000.0, _Cc.pacing_rate)
    assert s.wstamp_ns == pytest.approx(5500.0 + 2000)
    # an unset rate does not pace (rate == 0)
    before = s.wstamp_ns
    s._paced(2000, 5000.0, 0.0)
    assert s.wstamp_ns == before
