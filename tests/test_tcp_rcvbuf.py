"""A small locked SO_RCVBUF: the unscaled receive window (net/ipv4/tcp_output.c
tcp_select_initial_window, __tcp_select_window; lbsim/model/tcp_recv.py)."""

from __future__ import annotations

from lbsim.model.skb import truesize_tcp


def _socks(simulate_tcp, **kw):
    """The TcpSocks of a 200-message 1 KiB stream across CPUs (client first)."""
    return simulate_tcp(transport="tcp", workload="stream", msg_bytes=1024, messages=200, placement="cross",
                        seed=1, **kw)[1]


def test_default_buffer_keeps_a_scaled_window(simulate_tcp):
    s = _socks(simulate_tcp)[0]
    assert not s.user_rcvbuf and s.rcv_wscale > 0  # tcp_rmem[2] / rmem_max of MiB: a scale


def test_tiny_rcvbuf_window_is_unscaled_clamped_and_closes_below_one_mss(simulate_tcp):
    socks = _socks(simulate_tcp, so_rcvbuf=1)
    r = socks[1]  # the server end reads the stream
    assert r.rcvbuf == 2304 and r.user_rcvbuf  # SOCK_MIN_RCVBUF
    full = int(2304 * r.ratio)
    assert r.rcv_wscale == 0 and r.window_clamp == full  # tcp_full_space
    # the sender's largest window is the full space, so its MSS is half of it
    assert r.peer.max_window == full and r.peer.mss() == full // 2
    # an empty queue offers the free space rounded down to rcv_mss (a fresh round)
    r.rmem = r.backlog_bytes = 0
    r.rcv_mss = full // 2
    r.rcv_wup = r.rcv_nxt
    r.rcv_wnd = 0
    assert r.window() == full // 2 * 2
    # one queued segment of rcv_mss (truesize len + 832) leaves less than one MSS: zero window
    r.rmem = truesize_tcp(full // 2)
    r.rcv_wnd = 0
    r.quick = 3
    assert r.window() == 0
    assert r.quick == 0  # below half the full space: quick-ack mode ends
    # never shrink a window already offered
    r.rcv_wnd = 500
    assert r.window() == 500
