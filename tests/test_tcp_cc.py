"""TCP congestion control: BBR v1's window rules (net/ipv4/tcp_bbr.c), the windowed max of
lib/win_minmax.c, and how lbsim picks the algorithm (kernel profile, config, measured data)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import lbsim
from lbsim.calibrate import kernel_fields
from lbsim.model.tcp_cc import BBR_CWND_MIN_TARGET, PROBE_BW, Bbr, MinMax
from lbsim.validate import MeasuredDataError, check_measured, host_columns, with_host_columns

LO_MSS = 65483  # min(65536 - 40, 65495) - 12


def _bbr(mss: int = LO_MSS) -> Bbr:
    return Bbr(np.random.default_rng(0), 0.0, 10, mss)


def test_minmax_keeps_the_best_sample_until_it_leaves_the_window():
    m = MinMax(0, 0.0)
    m.running_max(10, 0, 5.0)
    for t in range(1, 11):
        assert m.running_max(10, t, 1.0) == 5.0  # 5.0 is 10 rounds old at most: still the max
    assert m.running_max(10, 11, 1.0) == 1.0  # now 11 rounds old: the later sub-window's best
    assert m.running_max(10, 12, 7.0) == 7.0  # a new max replaces everything


def test_bdp_is_rounded_up_and_the_initial_window_before_any_rtt():
    b = _bbr()
    assert b.bdp(0.5, 2.0) == 10  # no RTT sample yet: TCP_INIT_CWND
    b.min_rtt_us = 10
    assert b.bdp(0.25, 2.0) == 5
    assert b.bdp(0.26, 2.0) == 6  # 5.2 -> 6: ceil, "to avoid a negative feedback loop"


def test_tso_segs_goal_and_quantization_budget():
    b = _bbr()
    # on lo one skb of 64 KiB is one MSS: bbr_min_tso_segs (2) decides
    assert b.tso_segs_goal(LO_MSS) == 2
    assert b.quantization_budget(5, LO_MSS) == 12  # 5 + 3 x 2 = 11, rounded up to even
    b.mode, b.cycle_idx = PROBE_BW, 0
    assert b.quantization_budget(5, LO_MSS) == 14  # +2 in the first gain-cycle phase
    # at MTU 1500 the pacing rate's 1 ms worth of bytes fits 45 segments under GSO_MAX_SIZE
    assert b.tso_segs_goal(1448) == (65536 - 1 - 320) // 1448
    b.pacing_rate = 100_000.0  # below bbr_min_tso_rate (1.2 Mbit/s): one segment
    assert b.tso_segs_goal(1448) == 1


def _stream_socks(simulate_tcp, cc: str, n: int = 4096, messages: int = 8000):
    res, socks = simulate_tcp(transport="tcp", workload="stream", msg_bytes=n, messages=messages, placement="same",
                              seed=3, tcp_congestion_control=cc)
    sender = next(s for s in socks if s.delivered or s.snd_nxt)
    return res, sender


def test_bbr_window_on_lo_stays_small_and_cubic_grows(simulate_tcp):
    res_bbr, s = _stream_socks(simulate_tcp, "bbr")
    cc = s.cc
    assert cc is not None and cc.full_bw_reached and cc.mode == PROBE_BW
    bw = cc.bw.get()
    # DRAIN set ssthresh to bbr_inflight(max_bw, 1.0) at the time; cwnd follows the target
    assert cc.ssthresh >= BBR_CWND_MIN_TARGET
    target = cc.quantization_budget(cc.bdp(bw, 2.0) + max(cc.extra_acked), s.mss())
    assert BBR_CWND_MIN_TARGET <= s.cwnd <= target
    # BBR's sndbuf: 3 x max(cwnd, 10) x per-MSS memory (mss_clamp 65483: 131072 + 256), capped
    # at tcp_wmem[2]; it only grows, so it is at least what the last cwnd asks for
    per_mss = 131072 + 256
    assert min(s.wmem_max, 3 * max(10, s.cwnd) * per_mss) <= s.sndbuf <= s.wmem_max
    assert s.sndbuf > 2 * 10 * per_mss  # more than CUBIC's x 2 at the initial window
    res_cubic, c = _stream_socks(simulate_tcp, "cubic")
    assert c.cc is None and c.cwnd > 4 * s.cwnd  # slow start never ends on lo without loss
    # the writer coalesces more under BBR: fewer, larger packets
    assert res_bbr.counters["tcp_data_packets"] < res_cubic.counters["tcp_data_packets"]


def test_bbr_runs_are_repeatable():
    a = lbsim.simulate(transport="tcp", workload="stream", msg_bytes=1024, messages=3000, seed=5,
                       tcp_congestion_control="bbr")
    b = lbsim.simulate(transport="tcp", workload="stream", msg_bytes=1024, messages=3000, seed=5,
                       tcp_congestion_control="bbr")
    assert a.throughput == b.throughput and a.counters == b.counters


def test_the_kernel_profile_default_is_cubic_and_the_config_overrides_it():
    cfg = lbsim.make_config(transport="tcp")
    assert cfg.kernel_params().tcp_congestion_control == "cubic"  # net/ipv4/Kconfig DEFAULT_TCP_CONG
    assert lbsim.make_config(tcp_congestion_control="bbr").kernel_params().tcp_congestion_control == "bbr"
    with pytest.raises(lbsim.ConfigError, match="tcp_congestion_control"):
        lbsim.make_config(tcp_congestion_control="vegas")


def _csv(tmp_path, host: dict | None, column: str | None = None):
    rows = [{"transport": "tcp", "workload": "pingpong", "placement": "same", "msg_bytes": 64,
             "metric": "rtt_p50_us", "value": 20.0}]
    if column is not None:
        rows[0]["tcp_congestion_control"] = column
    path = tmp_path / "m.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    if host is not None:
        (tmp_path / "m.csv.host.json").write_text(json.dumps(host))
    return path


def test_measured_data_names_its_congestion_control(tmp_path):
    recorded = _csv(tmp_path, {"sysctl": {"net.ipv4.tcp_congestion_control": "bbr"}})
    assert host_columns(recorded) == {"tcp_congestion_control": "bbr"}
    (tmp_path / "m.csv.host.json").write_text(json.dumps(
        {"sysctl": {}, "assumed": {"net.ipv4.tcp_congestion_control": {"value": "reno", "why": "test"}}}))
    assert host_columns(recorded) == {"tcp_congestion_control": "reno"}
    df = with_host_columns(pd.read_csv(recorded), recorded)
    assert list(df["tcp_congestion_control"]) == ["reno"]
    assert kernel_fields(df) == {"tcp_congestion_control": "reno"}
    # a column in the CSV wins over the host file
    own = _csv(tmp_path, None, column="cubic")
    assert list(with_host_columns(pd.read_csv(own), own)["tcp_congestion_control"]) == ["cubic"]
    assert host_columns(tmp_path / "none.csv") == {}


def test_bad_congestion_control_is_one_line_and_mixed_data_is_refused(tmp_path):
    path = _csv(tmp_path, None, column="vegas")
    with pytest.raises(MeasuredDataError) as e:
        check_measured(pd.read_csv(path), str(path))
    msg = str(e.value)
    assert "\n" not in msg and "tcp_congestion_control" in msg and "allowed: cubic, reno, bbr" in msg
    mixed = pd.DataFrame({"tcp_congestion_control": ["bbr", "cubic"]})
    with pytest.raises(ValueError, match="column tcp_congestion_control: the rows mix"):
        kernel_fields(mixed)


def test_moving_tcp_cost_between_call_and_packet_stages_keeps_the_split_calls():
    """calibrate's per-call / per-packet share: the split (one packet per call) fits only the sum,
    and the share it searches keeps the split's zero-load total where the main fit put it."""
    from lbsim import calibrate as cal

    model = lbsim.load_costs("default")

    def total(m):
        return sum(sum(cal._sim_split_us(m, "tcp", n)) for n in (64, 4096))

    t0 = total(model)
    call = total(cal.with_tcp_call_share(model, 2.0, 1.0)) - t0
    packet = total(cal.with_tcp_call_share(model, 1.0, 2.0)) - t0
    assert call > 0 and packet > 0
    k = 1.5
    moved = cal.with_tcp_call_share(model, k, 1.0 - (k - 1.0) * call / packet)
    assert total(moved) == pytest.approx(t0, rel=1e-9)
    assert moved.stages["tcp_sendmsg"].fixed_ns == pytest.approx(1.5 * model.stages["tcp_sendmsg"].fixed_ns)
    # skb_gso_segment follows tcp_transmit_skb (SHARED_RULES)
    assert moved.stages["skb_gso_segment"].fixed_ns == moved.stages["tcp_transmit_skb"].fixed_ns
