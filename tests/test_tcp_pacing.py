"""TCP internal pacing under BBR on lo (net/ipv4/tcp_output.c tcp_pacing_check,
tcp_update_skb_after_send, tcp_pace_kick; lbsim/model/tcp_pacing.py)."""

from __future__ import annotations

import lbsim
from lbsim.model import tcp_pacing


def test_pacing_delay_is_length_over_rate_less_half_at_most():
    # 1000 B at 1e9 B/s: 1000 ns; no credit -> all of it
    assert tcp_pacing.pacing_delay_ns(1000, 1e9, 0.0) == 1000
    # a credit below half is subtracted, above half only half is
    assert tcp_pacing.pacing_delay_ns(1000, 1e9, 300.0) == 700
    assert tcp_pacing.pacing_delay_ns(1000, 1e9, 10_000.0) == 500
    # div64_ul: whole nanoseconds, rounded down
    assert tcp_pacing.pacing_delay_ns(1, 3e9, 0.0) == 0


def _fires(monkeypatch, **kw):
    n = [0]
    orig = tcp_pacing._PaceTimer.timer

    def count(self, cpu, ctx, item):
        n[0] += 1
        return orig(self, cpu, ctx, item)

    monkeypatch.setattr(tcp_pacing._PaceTimer, "timer", count)
    args = dict(transport="tcp", workload="stream", msg_bytes=1024, messages=2000, placement="cross", seed=1,
                costs="amd-epyc-v1300-2026-12-06")
    args.update(kw)
    res = lbsim.simulate(**args)
    assert res.status == "ok"
    return n[0], res


def test_cubic_never_paces(monkeypatch):
    fires, _ = _fires(monkeypatch, tcp_congestion_control="cubic", so_rcvbuf=1)
    assert fires == 0  # SK_PACING_NONE: tcp_needs_internal_pacing is false


def test_bbr_tiny_rcvbuf_paces_about_once_per_segment(monkeypatch):
    # host (docs/notes/tcp-pacing.md): 1.79 tcp_pace_kick per 1 KiB message, 576-B MSS = 2
    # segments per message; the model must pace most segments: more than one kick per message,
    # and not many more than one per segment (a kick may find the window shut and re-arm later)
    fires, res = _fires(monkeypatch, tcp_congestion_control="bbr", so_rcvbuf=1)
    segs_per_msg = res.counters["tcp_out_segs"] / 2000
    assert 1.5 < segs_per_msg <= 2.0
    assert 1.0 < fires / 2000 < 1.25 * segs_per_msg


def test_bbr_default_stream_rarely_paces(monkeypatch):
    # host: 0.007-0.008 per message in the default 1 KiB stream; the writer's own cost per
    # message is longer than 1 KiB at BBR's rate, so the stamp is rarely ahead of the clock
    fires, _ = _fires(monkeypatch, tcp_congestion_control="bbr")
    assert fires / 2000 < 0.05


def test_bbr_pingpong_never_paces(monkeypatch):
    fires, _ = _fires(monkeypatch, tcp_congestion_control="bbr", workload="pingpong", messages=500)
    assert fires == 0  # one skb per tcp_write_xmit and a reply in between: never ahead


def test_a_kick_on_an_owned_socket_is_sent_by_release_sock(monkeypatch):
    # tcp_tsq_handler: the socket owned by its task -> TCP_TSQ_DEFERRED, and tcp_release_cb
    # sends; if release_sock dropped it, the paced skb would wait for the next ACK or write
    owned = [0]
    socks = []
    orig = tcp_pacing._PaceTimer.timer

    def count(self, cpu, ctx, item):
        owned[0] += self.sk.owned
        if self.sk not in socks:
            socks.append(self.sk)
        return orig(self, cpu, ctx, item)

    monkeypatch.setattr(tcp_pacing._PaceTimer, "timer", count)
    res = lbsim.simulate(transport="tcp", workload="stream", msg_bytes=1024, messages=2000, placement="cross",
                         seed=1, costs="amd-epyc-v1300-2026-12-06", tcp_congestion_control="bbr", so_rcvbuf=1)
    assert res.status == "ok" and res.counters["messages_delivered"] == 2000
    assert owned[0] > 0  # the deferred path was taken (330 of 3606 kicks at seed 1)
    assert all(not s.deferred_tsq and not s.write_q for s in socks)


def test_each_pacing_timer_costs_two_trapped_tsc_deadline_writes(monkeypatch):
    # host (docs/notes/tcp-small-rcvbuf.md): msr:write_msr on MSR_IA32_TSC_DEADLINE counted
    # exactly twice per tcp_pace_kick (hrtimer_reprogram when armed, hrtimer_interrupt when it
    # expires); each is charged as send_call_function_single_ipi, once per arming and once per expiry
    from lbsim.model.stages import SID

    wrmsr = SID["send_call_function_single_ipi"]
    charged = [0]
    arms = [0]
    orig_arm = tcp_pacing.TcpPacing.arm_work

    def arm(self):
        arms[0] += 1
        work = orig_arm(self)
        charged[0] += sum(1 for sid, _ in work[1] if sid == wrmsr)
        return work

    monkeypatch.setattr(tcp_pacing.TcpPacing, "arm_work", arm)
    fires, _ = _fires(monkeypatch, tcp_congestion_control="bbr", so_rcvbuf=1)
    assert arms[0] > 2000 and charged[0] == arms[0]  # one WRMSR per arming
    assert fires == arms[0]  # every armed timer expires (each expiry charges the second)


def test_tiny_rcvbuf_stream_is_slowed_by_the_timer_exits():
    # host: so_rcvbuf=1 1 KiB cross stream at 0.12-0.14 of the default (knob grids
    # amd-epyc-2026-12-06/07); 0.64 without the timer's cost.  The bound 0.3 leaves room for
    # the seed and the message count, and fails if the cost is not charged
    def mbps(**kw):
        res = lbsim.simulate(transport="tcp", workload="stream", msg_bytes=1024, messages=3000, placement="cross",
                             seed=1, costs="amd-epyc-v1300-2026-12-06", tcp_congestion_control="bbr", **kw)
        assert res.status == "ok"
        return res.throughput["bytes_per_s"]

    assert mbps(so_rcvbuf=1) / mbps() < 0.3
