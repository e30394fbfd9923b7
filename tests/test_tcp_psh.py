"""PSH and the delayed ACK of one full segment (net/ipv4/tcp.c tcp_sendmsg_locked, tcp_push;
net/ipv4/tcp_input.c tcp_measure_rcv_mss, 6.7+).  A full skb leaves in the middle of a write
without PSH (``tcp_push_one``); ``tcp_push`` marks the write's last unsent skb.  A segment of at
least ``rcv_mss`` sets ICSK_ACK_PUSHED only with PSH, so a reader that reads exactly one such
segment does not ACK it (not more than one ``rcv_mss`` un-ACKed) and the ACK waits for the
delayed-ACK timer.  Traced on the host (docs/notes/tcp-small-rcvbuf.md): with ``tcp_wmem`` 4096
8192 32768 and 64 KiB writes the writer, whose send buffer holds one 65483-byte segment, waits
41 ms at a time for that timer and the stream runs at 0.01-0.02 of its default rate."""

from __future__ import annotations

from lbsim.model import tcp_input

SMALL_WMEM = (4096, 8192, 32768)


def _segments(monkeypatch, simulate_tcp, **kw) -> list[tuple[int, int, bool]]:
    """(end seq, length, PSH) of every in-order data segment the reader queues."""
    seen: list[tuple[int, int, bool]] = []
    queue = tcp_input.TcpInput._queue_data

    def spy(self, length, segs, msg, psh):
        seen.append((self.rcv_nxt + length, length, psh))
        return queue(self, length, segs, msg, psh)

    monkeypatch.setattr(tcp_input.TcpInput, "_queue_data", spy)
    simulate_tcp(transport="tcp", workload="stream", placement="cross", seed=1, **kw)
    return seen


def test_full_segments_in_the_middle_of_a_write_carry_no_psh(monkeypatch, simulate_tcp):
    """64 KiB writes at lo's MTU 65536: each write is a 65483-byte skb sent at once and a 53-byte
    tail.  Only segments that end a write carry PSH, and the full ones sent mid-write none."""
    seen = _segments(monkeypatch, simulate_tcp, msg_bytes=65536, messages=200)
    assert len(seen) > 200
    mid_full = [s for s in seen if s[1] == 65483 and s[0] % 65536]
    assert mid_full and not any(psh for _, _, psh in mid_full)
    tails = [s for s in seen if s[0] % 65536 == 0]
    assert tails and sum(psh for _, _, psh in tails) >= 0.9 * len(tails)


def test_one_unpushed_full_segment_waits_for_the_delayed_ack(simulate_tcp):
    """The host's collapse (0.01-0.02 of the default rate): with a send buffer that holds one
    segment, each write waits for the reader's delayed ACK (40 ms at HZ 250, TCP_DELACK_MIN).
    Model 9, which gave every full segment PSH, predicted 0.30."""
    base, _ = simulate_tcp(transport="tcp", workload="stream", placement="cross", seed=1, msg_bytes=65536,
                           messages=300)
    small, _ = simulate_tcp(transport="tcp", workload="stream", placement="cross", seed=1, msg_bytes=65536,
                            messages=300, tcp_wmem=SMALL_WMEM)
    ratio = small.throughput["bytes_per_s"] / base.throughput["bytes_per_s"]
    assert ratio < 0.05
