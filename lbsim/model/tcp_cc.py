"""TCP congestion control on lo: what sets the congestion window (``net.ipv4.tcp_congestion_control``).

The window matters on lo even though nothing is lost: when both ends share a CPU, the writer
runs alone until its slice ends, and what it may send in that time is ``cwnd`` packets; the
rest it coalesces into the write queue (the "deep" pattern of a one-CPU stream).

``cubic`` (net/ipv4/Kconfig ``DEFAULT_TCP_CONG`` = "cubic", the upstream default): slow start
(``tcp_slow_start``: cwnd += acked) while cwnd-limited (``tcp_is_cwnd_limited``: cwnd < 2 x the
packets out); lo never loses, so ssthresh stays infinite.  HyStart is left out.  This is
written inline in ``TcpSock._process_ack``.

``bbr`` (net/ipv4/tcp_bbr.c, BBR v1; the default of kernels built with ``CONFIG_DEFAULT_BBR``,
as the 6.18.44-fc kernels measured here are): :class:`Bbr` below, driven by the delivery-rate
samples of net/ipv4/tcp_rate.c that ``TcpSock`` keeps per skb.  cwnd = ``bbr_bdp`` (windowed
max delivery rate x windowed min RTT x cwnd_gain, rounded up) + the ACK-aggregation allowance
+ ``bbr_quantization_budget`` (3 x ``bbr_tso_segs_goal``, rounded up to even, +2 in the first
PROBE_BW phase), at least 4; STARTUP -> DRAIN -> PROBE_BW (8-phase gain cycle) and PROBE_RTT
(cwnd 4 for 200 ms once the 10 s min-RTT window expires).  Its ``pacing_rate``
(``sk_pacing_rate``) drives TCP's internal pacing (lbsim.model.tcp_pacing: lo has no fq
qdisc).  Left out: the long-term "policer" bandwidth (it starts only after a loss), and loss
recovery's packet conservation.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

__all__ = ["Bbr", "CONGESTION_CONTROLS"]

#: the values of ``net.ipv4.tcp_congestion_control`` modelled ("reno" runs as "cubic": on lo both
#: only slow-start); the one list config, kernels and validate check against
CongestionControl = Literal["cubic", "reno", "bbr"]
CONGESTION_CONTROLS: tuple[str, ...] = get_args(CongestionControl)

# ---- net/ipv4/tcp_bbr.c constants (gains as fractions; the kernel's are x/256)
BBR_HIGH_GAIN = (256 * 2885 // 1000 + 1) / 256  # bbr_high_gain = 2/ln(2), 740/256
BBR_DRAIN_GAIN = (256 * 1000 // 2885) / 256  # bbr_drain_gain, 88/256
BBR_CWND_GAIN = 2.0  # bbr_cwnd_gain
BBR_PACING_GAIN = (1.25, 0.75, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0)  # bbr_pacing_gain[], CYCLE_LEN 8
BBR_CYCLE_RAND = 7  # bbr_cycle_rand: the first PROBE_BW phase is drawn from 8 - 1 - [0, 7)
BBR_BW_RTTS = 10  # bbr_bw_rtts = CYCLE_LEN + 2: the max-bandwidth filter's window, in rounds
BBR_MIN_RTT_WIN_US = 10_000_000  # bbr_min_rtt_win_sec = 10
BBR_PROBE_RTT_MODE_US = 200_000  # bbr_probe_rtt_mode_ms = 200
BBR_CWND_MIN_TARGET = 4  # bbr_cwnd_min_target
BBR_FULL_BW_THRESH = 1.25  # bbr_full_bw_thresh
BBR_FULL_BW_CNT = 3  # bbr_full_bw_cnt
BBR_MIN_TSO_RATE = 1_200_000  # bbr_min_tso_rate, bit/s
BBR_PACING_MARGIN = 0.99  # bbr_pacing_margin_percent = 1
BBR_EXTRA_ACKED_GAIN = 1.0  # bbr_extra_acked_gain = BBR_UNIT
BBR_EXTRA_ACKED_WIN_RTTS = 5  # bbr_extra_acked_win_rtts
BBR_ACK_EPOCH_ACKED_RESET = 1 << 20  # bbr_ack_epoch_acked_reset_thresh
BBR_EXTRA_ACKED_MAX_US = 100_000  # bbr_extra_acked_max_us
TCP_INIT_CWND = 10  # include/net/tcp.h
SK_PACING_SHIFT = 10  # sk->sk_pacing_shift default (net/core/sock.c sock_init_data)
GSO_MAX_SIZE = 65536  # include/linux/netdevice.h, as tcp_bbr.c's bbr_tso_segs_goal uses it
MAX_TCP_HEADER = 320

STARTUP, DRAIN, PROBE_BW, PROBE_RTT = range(4)
MODE_NAMES = ("STARTUP", "DRAIN", "PROBE_BW", "PROBE_RTT")


class MinMax:
    """lib/win_minmax.c: a windowed running max kept as three samples (best, 2nd, 3rd best of
    later sub-windows), each ``(t, v)``."""

    __slots__ = ("s",)

    def __init__(self, t: float, v: float) -> None:
        self.s = [(t, v), (t, v), (t, v)]

    def get(self) -> float:
        return self.s[0][1]

    def reset(self, t: float, v: float) -> float:
        self.s = [(t, v), (t, v), (t, v)]
        return v

    def running_max(self, win: float, t: float, v: float) -> float:
        s = self.s
        if v >= s[0][1] or t - s[2][0] > win:
            return self.reset(t, v)  # a new max, or nothing left in the window
        if v >= s[1][1]:
            s[2] = s[1] = (t, v)
        elif v >= s[2][1]:
            s[2] = (t, v)
        # minmax_subwin_update
        dt = t - s[0][0]
        if dt > win:
            s[0], s[1], s[2] = s[1], s[2], (t, v)
            if t - s[0][0] > win:
                s[0], s[1], s[2] = s[1], s[2], (t, v)
        elif s[1][0] == s[0][0] and dt > win / 4:
            s[2] = s[1] = (t, v)
        elif s[2][0] == s[1][0] and dt > win / 2:
            s[2] = (t, v)
        return s[0][1]


class Bbr:
    """BBR v1's state for one socket (struct bbr).  Bandwidth in packets per microsecond,
    times in microseconds (the kernel's tcp_mstamp resolution)."""

    __slots__ = ("rng", "min_rtt_us", "min_rtt_stamp", "probe_rtt_done_stamp", "probe_rtt_round_done",
                 "bw", "rtt_cnt", "next_rtt_delivered", "cycle_mstamp", "mode", "round_start",
                 "idle_restart", "pacing_gain", "cwnd_gain", "full_bw_reached", "full_bw", "full_bw_cnt",
                 "cycle_idx", "has_seen_rtt", "prior_cwnd", "ack_epoch_mstamp", "ack_epoch_acked",
                 "extra_acked", "extra_acked_win_rtts", "extra_acked_win_idx", "pacing_rate", "ssthresh")

    #: tcp_sndbuf_expand's factor (bbr_sndbuf_expand: "BBR may slow-start even during recovery")
    SNDBUF_EXPAND = 3

    def __init__(self, rng: Any, now_us: float, cwnd: int, mss: int) -> None:
        """bbr_init."""
        self.rng = rng
        self.prior_cwnd = 0
        self.ssthresh = float("inf")
        self.rtt_cnt = 0
        self.next_rtt_delivered = 0
        self.probe_rtt_done_stamp = 0.0
        self.probe_rtt_round_done = False
        self.min_rtt_us = float("inf")  # tcp_min_rtt(tp) of a new connection: ~0U
        self.min_rtt_stamp = now_us
        self.bw = MinMax(0, 0.0)
        self.has_seen_rtt = False
        # bbr_init_pacing_rate_from_rtt with no RTT sample: cwnd / 1 ms x high_gain
        self.pacing_rate = self._rate(cwnd / 1000.0, BBR_HIGH_GAIN, mss)
        self.round_start = False
        self.idle_restart = False
        self.full_bw_reached = False
        self.full_bw = 0.0
        self.full_bw_cnt = 0
        self.cycle_mstamp = 0.0
        self.cycle_idx = 0
        self.mode = STARTUP
        self.pacing_gain = BBR_HIGH_GAIN
        self.cwnd_gain = BBR_HIGH_GAIN
        self.ack_epoch_mstamp = now_us
        self.ack_epoch_acked = 0
        self.extra_acked_win_rtts = 0
        self.extra_acked_win_idx = 0
        self.extra_acked = [0, 0]

    # ---------------------------------------------------------------- helpers
    @staticmethod
    def _rate(bw: float, gain: float, mss: int) -> float:
        """bbr_rate_bytes_per_sec: packets/us -> bytes/s with a gain, 1 % under."""
        return bw * mss * gain * 1e6 * BBR_PACING_MARGIN

    def bdp(self, bw: float, gain: float) -> int:
        """bbr_bdp: ceil(bw x min_rtt x gain); TCP_INIT_CWND before any RTT sample."""
        if self.min_rtt_us == float("inf"):
            return TCP_INIT_CWND
        x = bw * self.min_rtt_us * gain
        n = int(x)
        return n if n == x else n + 1

    def tso_segs_goal(self, mss: int) -> int:
        """bbr_tso_segs_goal: the skb size the pacing rate allows, in MSS, at least
        bbr_min_tso_segs (2 above 1.2 Mbit/s), at most 127."""
        nbytes = min(int(self.pacing_rate) >> SK_PACING_SHIFT, GSO_MAX_SIZE - 1 - MAX_TCP_HEADER)
        min_segs = 1 if self.pacing_rate < BBR_MIN_TSO_RATE / 8 else 2
        return min(max(nbytes // mss, min_segs), 0x7F)

    def quantization_budget(self, cwnd: int, mss: int) -> int:
        cwnd += 3 * self.tso_segs_goal(mss)
        cwnd = (cwnd + 1) & ~1
        if self.mode == PROBE_BW and self.cycle_idx == 0:
            cwnd += 2
        return cwnd

    def inflight(self, bw: float, gain: float, mss: int) -> int:
        return self.quantization_budget(self.bdp(bw, gain), mss)

    def _reset_probe_bw_mode(self, delivered_mstamp: float) -> None:
        self.mode = PROBE_BW
        self.cycle_idx = 8 - 1 - int(self.rng.integers(BBR_CYCLE_RAND))
        self._advance_cycle_phase(delivered_mstamp)

    def _advance_cycle_phase(self, delivered_mstamp: float) -> None:
        self.cycle_idx = (self.cycle_idx + 1) & 7
        self.cycle_mstamp = delivered_mstamp

    def _reset_mode(self, delivered_mstamp: float) -> None:
        if not self.full_bw_reached:
            self.mode = STARTUP
        else:
            self._reset_probe_bw_mode(delivered_mstamp)

    # ---------------------------------------------------------------- bbr_main
    def on_ack(self, sk: Any, now_us: float, acked: int, delivered: int, interval_us: float, rtt_us: float,
               prior_delivered: int, is_app_limited: bool, prior_in_flight: int) -> None:
        """bbr_main for one ACK that delivered ``acked`` packets: the rate sample is
        ``delivered`` packets over ``interval_us`` (invalid when <= 0), ``rtt_us`` of the last
        packet it ACKed (-1: none).  Sets ``sk.cwnd``."""
        mss = sk.mss()
        # (one helper per function of net/ipv4/tcp_bbr.c, called in bbr_main's order)
        valid = self._update_bw(sk, delivered, interval_us, prior_delivered, is_app_limited)
        max_bw = self.bw.get()
        if valid and acked > 0:
            self._update_ack_aggregation(sk, acked, max_bw)
        if self.mode == PROBE_BW:
            self._update_cycle_phase(sk, max_bw, mss, prior_in_flight)
        self._check_full_bw_reached(max_bw, is_app_limited)
        self._check_drain(sk, max_bw, mss)
        self._update_min_rtt(sk, now_us, rtt_us)
        if delivered > 0:
            self.idle_restart = False
        self._update_gains()
        self._set_pacing_rate(sk, max_bw, mss)
        self._set_cwnd(sk, acked, max_bw, mss)

    def _update_bw(self, sk: Any, delivered: int, interval_us: float, prior_delivered: int,
                   is_app_limited: bool) -> bool:
        """bbr_update_bw: a new round starts when a packet sent after the last round's start is
        ACKed; the max filter takes the sample unless app-limited and lower.  Returns whether
        the sample is valid."""
        self.round_start = False
        valid = delivered >= 0 and interval_us > 0
        if valid:
            if prior_delivered >= self.next_rtt_delivered:
                self.next_rtt_delivered = sk.delivered
                self.rtt_cnt += 1
                self.round_start = True
            bw = delivered / interval_us
            if not is_app_limited or bw >= self.bw.get():
                self.bw.running_max(BBR_BW_RTTS, self.rtt_cnt, bw)
        return valid

    def _update_ack_aggregation(self, sk: Any, acked: int, max_bw: float) -> None:
        """bbr_update_ack_aggregation: the most data ACKed beyond what max_bw explains."""
        if self.round_start:
            self.extra_acked_win_rtts = min(0x1F, self.extra_acked_win_rtts + 1)
            if self.extra_acked_win_rtts >= BBR_EXTRA_ACKED_WIN_RTTS:
                self.extra_acked_win_rtts = 0
                self.extra_acked_win_idx ^= 1
                self.extra_acked[self.extra_acked_win_idx] = 0
        epoch_us = sk.delivered_mstamp - self.ack_epoch_mstamp
        expected = int(max_bw * epoch_us)
        if self.ack_epoch_acked <= expected or self.ack_epoch_acked + acked >= BBR_ACK_EPOCH_ACKED_RESET:
            self.ack_epoch_acked = 0
            self.ack_epoch_mstamp = sk.delivered_mstamp
            expected = 0
        self.ack_epoch_acked = min(0xFFFFF, self.ack_epoch_acked + acked)
        extra = min(self.ack_epoch_acked - expected, sk.cwnd)
        if extra > self.extra_acked[self.extra_acked_win_idx]:
            self.extra_acked[self.extra_acked_win_idx] = extra

    def _update_cycle_phase(self, sk: Any, max_bw: float, mss: int, prior_in_flight: int) -> None:
        """bbr_update_cycle_phase in PROBE_BW."""
        full_length = sk.delivered_mstamp - self.cycle_mstamp > self.min_rtt_us
        g = self.pacing_gain
        if g == 1.0:
            nxt = full_length
        elif g > 1.0:
            nxt = full_length and prior_in_flight + self.tso_segs_goal(mss) >= self.inflight(max_bw, g, mss)
        else:
            nxt = full_length or prior_in_flight <= self.inflight(max_bw, 1.0, mss)
        if nxt:
            self._advance_cycle_phase(sk.delivered_mstamp)

    def _check_full_bw_reached(self, max_bw: float, is_app_limited: bool) -> None:
        """bbr_check_full_bw_reached: STARTUP ends after BBR_FULL_BW_CNT rounds without 25 % growth."""
        if not self.full_bw_reached and self.round_start and not is_app_limited:
            if max_bw >= self.full_bw * BBR_FULL_BW_THRESH:
                self.full_bw = max_bw
                self.full_bw_cnt = 0
            else:
                self.full_bw_cnt += 1
                self.full_bw_reached = self.full_bw_cnt >= BBR_FULL_BW_CNT

    def _check_drain(self, sk: Any, max_bw: float, mss: int) -> None:
        """bbr_check_drain: STARTUP -> DRAIN -> PROBE_BW once the queue is drained."""
        if self.mode == STARTUP and self.full_bw_reached:
            self.mode = DRAIN
            self.ssthresh = self.inflight(max_bw, 1.0, mss)
        if self.mode == DRAIN and sk.packets_out <= self.inflight(max_bw, 1.0, mss):
            self._reset_probe_bw_mode(sk.delivered_mstamp)

    def _update_min_rtt(self, sk: Any, now_us: float, rtt_us: float) -> None:
        """bbr_update_min_rtt: the min-RTT filter; PROBE_RTT when it expired, and its exit."""
        expired = now_us > self.min_rtt_stamp + BBR_MIN_RTT_WIN_US
        if rtt_us >= 0 and (rtt_us <= self.min_rtt_us or expired):
            self.min_rtt_us = rtt_us
            self.min_rtt_stamp = now_us
        if expired and not self.idle_restart and self.mode != PROBE_RTT:
            self.prior_cwnd = sk.cwnd  # bbr_save_cwnd (not in loss recovery or PROBE_RTT)
            self.mode = PROBE_RTT
            self.probe_rtt_done_stamp = 0.0
        if self.mode == PROBE_RTT:
            sk.app_limited = (sk.delivered + sk.packets_out) or 1  # ignore low-rate samples
            if not self.probe_rtt_done_stamp and sk.packets_out <= BBR_CWND_MIN_TARGET:
                self.probe_rtt_done_stamp = now_us + BBR_PROBE_RTT_MODE_US
                self.probe_rtt_round_done = False
                self.next_rtt_delivered = sk.delivered
            elif self.probe_rtt_done_stamp:
                if self.round_start:
                    self.probe_rtt_round_done = True
                if self.probe_rtt_round_done and now_us > self.probe_rtt_done_stamp:
                    # bbr_check_probe_rtt_done
                    self.min_rtt_stamp = now_us
                    sk.cwnd = max(sk.cwnd, self.prior_cwnd)
                    self._reset_mode(sk.delivered_mstamp)

    def _update_gains(self) -> None:
        """bbr_update_gains: the pacing and cwnd gains of the mode."""
        if self.mode == STARTUP:
            self.pacing_gain, self.cwnd_gain = BBR_HIGH_GAIN, BBR_HIGH_GAIN
        elif self.mode == DRAIN:
            self.pacing_gain, self.cwnd_gain = BBR_DRAIN_GAIN, BBR_HIGH_GAIN
        elif self.mode == PROBE_BW:
            self.pacing_gain, self.cwnd_gain = BBR_PACING_GAIN[self.cycle_idx], BBR_CWND_GAIN
        else:
            self.pacing_gain, self.cwnd_gain = 1.0, 1.0

    def _set_pacing_rate(self, sk: Any, max_bw: float, mss: int) -> None:
        """bbr_set_pacing_rate (bbr_init_pacing_rate_from_rtt once an RTT is known)."""
        if not self.has_seen_rtt and self.min_rtt_us != float("inf"):
            # bbr_init_pacing_rate_from_rtt once srtt exists: after one sample, srtt is that sample
            self.has_seen_rtt = True
            self.pacing_rate = self._rate(sk.cwnd / max(self.min_rtt_us, 1.0), BBR_HIGH_GAIN, mss)
        rate = self._rate(max_bw, self.pacing_gain, mss)
        if self.full_bw_reached or rate > self.pacing_rate:
            self.pacing_rate = rate

    def _set_cwnd(self, sk: Any, acked: int, max_bw: float, mss: int) -> None:
        """bbr_set_cwnd: toward gain x BDP plus the ACK aggregation allowance; sets ``sk.cwnd``."""
        cwnd = sk.cwnd
        if acked:
            target = self.bdp(max_bw, self.cwnd_gain)
            if self.full_bw_reached:  # bbr_ack_aggregation_cwnd
                target += min(int(BBR_EXTRA_ACKED_GAIN * max(self.extra_acked)),
                              int(max_bw * BBR_EXTRA_ACKED_MAX_US))
            target = self.quantization_budget(target, mss)
            if self.full_bw_reached:
                cwnd = min(cwnd + acked, target)
            elif cwnd < target or sk.delivered < TCP_INIT_CWND:
                cwnd = cwnd + acked
            cwnd = max(cwnd, BBR_CWND_MIN_TARGET)
        if self.mode == PROBE_RTT:
            cwnd = min(cwnd, BBR_CWND_MIN_TARGET)
        sk.cwnd = cwnd

    def tx_start(self, sk: Any, now_us: float) -> None:
        """bbr_cwnd_event(CA_EVENT_TX_START): sending again from idle while app-limited."""
        if sk.app_limited:
            self.idle_restart = True
            self.ack_epoch_mstamp = now_us
            self.ack_epoch_acked = 0
            if self.mode == PROBE_BW:
                rate = self._rate(self.bw.get(), 1.0, sk.mss())
                if self.full_bw_reached or rate > self.pacing_rate:
                    self.pacing_rate = rate
