"""The base cost table: each stage's fixed cost from kernel tracepoint intervals measured on the
host (``lbsim.measure.stages``), split among the stages inside each interval by the rule beside
each stage.  The fit's scales then multiply these (:mod:`lbsim.calibrate.params`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lbsim.calibrate.params import base_model
from lbsim.costs import CostModel, StageCost


def cache_bytes_of(host: dict[str, Any] | None) -> int:
    """The measured host's per-core L2 (``l2_bytes`` in the data's ``.host.json``, written by
    ``lbsim measure``), else this machine's: the fit reproduces on any machine only when the data
    says it."""
    from lbsim.measure.host import l2_bytes

    v = (host or {}).get("l2_bytes")
    if isinstance(v, int) and not isinstance(v, bool) and v > 0:
        return v
    return l2_bytes() or (2 << 20)


def _T(med: dict[str, float], key: str, ov: float, floor: float = 10.0) -> float:
    """A tracepoint interval's median minus the tracing overhead of one event."""
    v = med.get(key)
    if v is None or v != v:
        raise KeyError(key)
    return max(float(v) - ov, floor)


@dataclass
class _Intervals:
    """The stage file's runs, and the fixed costs (``f``) and rules read from them so far (in
    the order they were read: the rules go into the cost file's provenance in that order)."""

    runs: dict[tuple[str, str, int], Any]
    f: dict[str, float] = field(default_factory=dict)
    rule: dict[str, str] = field(default_factory=dict)

    def med(self, tr: str, pl: str = "same", size: int = 64) -> tuple[dict[str, float], float]:
        """A run's interval medians and its tracing overhead per event (0..250 ns)."""
        r = self.runs[(tr, pl, size)]
        ov = min(max(float(r.get("overhead_ns_per_event") or 0.0), 0.0), 250.0)
        return r["medians"], ov

    def put(self, stage: str, value: float, why: str) -> None:
        self.f[stage] = max(float(value), 5.0)
        self.rule[stage] = why


def _net_path(b: _Intervals) -> None:
    """The loopback transmit and NET_RX path that TCP and UDP share."""
    (mt, ot), (mu, ou) = b.med("tcp"), b.med("udp")
    lo = (_T(mt, "dev_to_netif_rx", ot) + _T(mu, "dev_to_netif_rx", ou)) / 2
    b.put("dev_queue_xmit", lo / 2, "net_dev_queue -> netif_rx_entry (tcp, udp), half")
    b.put("loopback_xmit", lo / 2, "net_dev_queue -> netif_rx_entry (tcp, udp), half")
    b.put("netif_rx", (_T(mt, "netif_rx_to_softirq", ot) + _T(mu, "netif_rx_to_softirq", ou)) / 2,
          "netif_rx_entry -> softirq_entry (tcp, udp)")
    sq = (_T(mt, "softirq_to_receive_skb", ot) + _T(mu, "softirq_to_receive_skb", ou)) / 2
    tail = (_T(mt, "softirq_tail", ot) + _T(mu, "softirq_tail", ou)) / 2
    b.put("net_rx_action", sq / 2 + tail,
          "half of softirq_entry -> netif_receive_skb, plus sched_wakeup -> softirq_exit")
    b.put("process_backlog", sq / 2, "half of softirq_entry -> netif_receive_skb")
    mu, ou = b.med("udp")
    rx_udp = _T(mu, "receive_skb_to_waking", ou)
    b.put("ip_rcv", rx_udp / 3, "a third of netif_receive_skb -> sched_waking (udp)")
    b.put("udp_rcv", rx_udp / 3, "a third of netif_receive_skb -> sched_waking (udp)")
    b.put("sock_def_readable", rx_udp / 3, "a third of netif_receive_skb -> sched_waking (udp)")


def _sched(b: _Intervals) -> None:
    """The scheduler's stages on a same-CPU hand-over: the mean over all four transports."""
    quads = [b.med(tr) for tr in ("tcp", "udp", "unix_stream", "unix_dgram")]
    wake = [_T(m, "waking_to_wakeup", o) for m, o in quads]
    b.put("try_to_wake_up", float(np.mean(wake)), "sched_waking -> sched_wakeup, same CPU (all transports)")
    b.put("schedule", float(np.mean([_T(m, "switch", o) for m, o in quads])),
          "last event on the CPU -> sched_switch to the woken task (all transports)")
    b.put("schedule_timeout", float(np.mean([_T(m, "recv_entry_to_switch_out", o) for m, o in quads])),
          "sys_enter_recvfrom -> sched_switch out of the task going to sleep (all transports)")


def _udp_calls(b: _Intervals) -> None:
    mu, ou = b.med("udp")
    tx_udp = _T(mu, "send_to_dev", ou)
    b.put("ip_output", tx_udp / 2, "half of sys_enter_sendto -> net_dev_queue (udp)")
    b.put("udp_sendmsg", tx_udp / 2 + _T(mu, "after_softirq_to_exit", ou),
          "half of sys_enter_sendto -> net_dev_queue, plus softirq_exit -> sys_exit_sendto (udp)")
    b.put("udp_recvmsg", _T(mu, "switch_in_to_exit", ou), "sched_switch in -> sys_exit_recvfrom (udp)")


def _tcp(b: _Intervals) -> None:
    mt, ot = b.med("tcp")
    f = b.f
    tx_tcp = max(_T(mt, "send_to_dev", ot) - f["ip_output"], 30.0)
    b.put("tcp_sendmsg", 0.5 * tx_tcp + _T(mt, "after_softirq_to_exit", ot),
          "half of send_to_dev beyond ip_output, plus softirq_exit -> sys_exit_sendto (tcp)")
    b.put("tcp_stream_alloc_skb", 0.2 * tx_tcp, "a fifth of send_to_dev beyond ip_output (tcp)")
    b.put("tcp_transmit_skb", 0.3 * tx_tcp, "three tenths of send_to_dev beyond ip_output (tcp)")
    b.put("tcp_send_ack", f["tcp_transmit_skb"], "as tcp_transmit_skb: a pure ACK is built and transmitted alike")
    rx_tcp = max(_T(mt, "receive_skb_to_waking", ot) - f["ip_rcv"] - f["sock_def_readable"], 30.0)
    b.put("tcp_v4_rcv", rx_tcp * 2 / 3, "two thirds of netif_receive_skb -> sched_waking beyond ip_rcv (tcp)")
    b.put("tcp_ack", rx_tcp / 3, "a third of netif_receive_skb -> sched_waking beyond ip_rcv (tcp)")
    b.put("tcp_recvmsg", _T(mt, "switch_in_to_copy", ot), "sched_switch in -> skb_copy_datagram_iovec (tcp)")
    b.put("tcp_cleanup_rbuf", _T(mt, "copy_to_exit", ot), "skb_copy_datagram_iovec -> sys_exit_recvfrom (tcp)")


def _unix(b: _Intervals) -> None:
    for tr in ("unix_stream", "unix_dgram"):
        m, o = b.med(tr)
        send = (_T(m, "send_to_waking", o) + _T(m, "waking_to_exit", o) - b.f["try_to_wake_up"]
                - b.f["sock_def_readable"])
        b.put(f"{tr}_sendmsg", send, f"sys_enter_sendto -> sys_exit_sendto less the wake-up ({tr})")
        b.put(f"{tr}_recvmsg", _T(m, "switch_in_to_copy", o) + _T(m, "copy_to_exit", o),
              f"sched_switch in -> sys_exit_recvfrom ({tr})")


def _cross_wake(b: _Intervals) -> None:
    """The waker's side of a cross-CPU wake-up: sched_waking -> end of the waking context."""
    cross = []
    for tr, key in (("tcp", "softirq_tail"), ("udp", "softirq_tail"), ("unix_stream", "waking_to_exit"),
                    ("unix_dgram", "waking_to_exit")):
        m, o = b.med(tr, "cross")
        if key in m and m[key] == m[key]:
            cross.append(_T(m, key, o))
    b.put("ttwu_queue_wakelist", b.f["try_to_wake_up"],
          "as try_to_wake_up: queueing on a running CPU's wakelist (its IPI is the busy wake-up delay)")
    b.put("send_call_function_single_ipi", float(np.median(cross)) - b.f["ttwu_queue_wakelist"],
          "sched_waking -> softirq_exit / sys_exit_sendto across CPUs into an idle CPU (IPI to a halted vCPU, "
          "VM exit), median of transports, less ttwu_queue_wakelist")


def _copy_out_per_byte(b: _Intervals) -> float:
    """Copy #2 per byte: copy_to_exit grows with the size copied (tcp and unix_stream, 64 B and
    64 KiB; 0.05 ns/B without a 64 KiB run)."""
    slopes = []
    for tr in ("tcp", "unix_stream"):
        if (tr, "same", 65536) in b.runs:
            big, ob = b.med(tr, "same", 65536)
            small, osm = b.med(tr, "same", 64)
            key = "copy_to_exit"
            slopes.append((_T(big, key, ob) - _T(small, key, osm)) / (65536 - 64))
    b.rule["skb_copy_datagram_msg"] = ("slope of skb_copy_datagram_iovec -> sys_exit_recvfrom, 64 B vs 64 KiB "
                                       "(tcp, unix_stream)")
    return max(float(np.mean(slopes)), 0.0) if slopes else 0.05


def base_from_stage_intervals(stages: dict[str, Any]) -> tuple[dict[str, float], dict[str, float], dict[str, str]]:
    """Stage fixed costs (ns) and per-byte copy-out cost from tracepoint intervals.

    Returns (fixed_ns by stage, per_byte_ns by stage, the rule used for each stage).  Every
    interval is its median minus the measured tracing overhead per event of its run; the split
    of an interval among the stages inside it is the stated rule beside each stage.
    """
    b = _Intervals({(r["transport"], r["placement"], r["size"]): r["result"] for r in stages["runs"]})
    b.put("syscall", stages["null_syscall_ns"], "getppid() round trip (entry_SYSCALL_64 .. sysret), per call")
    for part in (_net_path, _sched, _udp_calls, _tcp, _unix, _cross_wake):
        part(b)
    ep = stages.get("epoll")  # harness --micro-epoll: the optional ep_* stages, absent from older files
    if ep:
        b.put("ep_send_events", ep["ep_send_events_ns"], "--micro-epoll: epoll_wait on a readable socket "
              "less the null syscall")
        b.put("ep_poll_callback", ep["ep_poll_callback_ns"], "--micro-epoll: a watched socket's send + "
              "epoll_wait + recv less the unwatched send + recv and epoll_wait")
    lookup = stages.get("unix_lookup")  # harness --micro-unix-lookup
    if lookup:
        b.put("unix_find_other", lookup["unix_find_other_ns"], "--micro-unix-lookup: a unix_dgram sendto(path) + "
              "recv less the same send on a connected socket + recv")
    else:  # said in the profile's provenance: a 0 here is a missing measurement, not a free lookup
        b.f["unix_find_other"] = 0.0  # (not put(): its 5 ns floor is for intervals)
        b.rule["unix_find_other"] = ("not in this stage file (lbsim measure writes it from model 7 on): 0, as "
                                     "the models before 7 charged")
    per_byte = {"skb_copy_datagram_msg": _copy_out_per_byte(b)}
    return b.f, per_byte, b.rule


def tracepoint_base(stages: dict[str, Any], host: dict[str, Any] | None) -> tuple[CostModel, dict[str, str]]:
    """The base cost model from a stage file (its fixed and copy-out costs, no spread, the
    measured host's cache size) and the rule of each stage."""
    fixed, per_byte, rules = base_from_stage_intervals(stages)
    base = base_model(fixed, name="tracepoint base", cache_bytes=cache_bytes_of(host))
    base = CostModel(name=base.name, stages={s: StageCost(c.fixed_ns, per_byte.get(s, 0.0), 0.0)
                                             for s, c in base.stages.items()},
                     delays=base.delays, provenance={}, cache_bytes=base.cache_bytes)
    return base, rules
