"""TCP segmentation by MSS on lo: what a smaller lo MTU changes per skb (net/ipv4/tcp_output.c)."""

from __future__ import annotations

import pytest

import lbsim
from lbsim.model.netdev import Net


def _data_skbs(monkeypatch, **kw):
    """(segs, sender cwnd, sender packets_out after the send) of every data skb put on lo."""
    seen: list[tuple[int, int, int]] = []
    rx = Net.netif_rx

    def spy(self, cpu, pkt):
        sock = pkt[0]
        if getattr(sock, "cwnd", None) is not None and pkt[6] > 0 and pkt[7] > 0:
            s = sock.peer
            seen.append((pkt[7], s.cwnd, s.packets_out))
        return rx(self, cpu, pkt)

    monkeypatch.setattr(Net, "netif_rx", spy)
    res = lbsim.simulate(transport="tcp", workload="stream", messages=600, seed=2, **kw)
    assert res.status == "ok"
    return seen


@pytest.mark.parametrize("cc", ["bbr", "cubic"])
@pytest.mark.parametrize("mtu", [16436, 9000, 1500])
def test_an_skb_carries_no_more_segments_than_the_cwnd_quota(monkeypatch, cc, mtu):
    # tcp_write_xmit: limit = tcp_mss_split_point(.., min(tcp_cwnd_test(), max_segs)); tcp_cwnd_test
    # (4.x+) gives at most max(cwnd / 2, 1) and never more than cwnd - in_flight
    seen = _data_skbs(monkeypatch, msg_bytes=65536, placement="same", mtu=mtu, tcp_congestion_control=cc)
    assert seen and max(s for s, _, _ in seen) > 1  # GSO skbs of several segments were sent
    for segs, cwnd, out in seen:
        assert segs <= max(cwnd >> 1, 1)
        assert out <= cwnd  # the send never took packets_out past cwnd
