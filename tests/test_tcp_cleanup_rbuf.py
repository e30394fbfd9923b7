"""tcp_cleanup_rbuf's ACK after a read (net/ipv4/tcp.c __tcp_cleanup_rbuf): a pending ACK goes out
when more than one rcv_mss is un-ACKed, or when a pushed segment is pending (not in ping-pong
mode) **and the read emptied the receive queue** (``!atomic_read(&sk->sk_rmem_alloc)``).  A host
count motivated the second half: across CPUs the kernel sends 0.50-0.55 pure ACKs per 1 KiB
message, one per two segments (tools/cross-cpu/tcp_acks.py, docs/notes/knob-effects.md)."""

from __future__ import annotations

import sys

import pytest

from lbsim.model import tcp_output


@pytest.mark.parametrize("costs", ["default", "amd-epyc-v1300-2026-12-06"])
def test_a_read_acks_a_pushed_segment_only_when_it_empties_the_queue(monkeypatch, simulate_tcp, costs):
    seen: list[tuple[int, bool]] = []
    send_ack = tcp_output.TcpOutput.send_ack

    def spy(self, cpu, in_task):
        if sys._getframe(1).f_code.co_name == "recvmsg":  # the ACK of tcp_cleanup_rbuf
            seen.append((self.rmem, self.rcv_nxt - self.rcv_wup > self.rcv_mss))
        return send_ack(self, cpu, in_task)

    monkeypatch.setattr(tcp_output.TcpOutput, "send_ack", spy)
    res, _ = simulate_tcp(transport="tcp", workload="stream", msg_bytes=1024, messages=2000,
                          placement="cross", seed=1, costs=costs)
    assert len(seen) > 200  # the reader does ACK
    # every read-time ACK either had more than a segment un-ACKed or left the queue empty
    assert all(over or rmem == 0 for rmem, over in seen)
    # and both kinds occur: the rule is exercised, not bypassed
    assert any(over for _, over in seen) and any(not over for _, over in seen)
