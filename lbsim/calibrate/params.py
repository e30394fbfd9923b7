"""The fitted parameters (names, bounds, start values) and the cost-model edits each makes:
which stages a scale multiplies, which stage a per-byte cost sets, and the rules for stages no
measured path exercises."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from lbsim.costs import DELAYS, CostModel, StageCost, cost_model_from_dict
from lbsim.model.stages import OPTIONAL_STAGES, STAGES

#: stages scaled with each transport's own protocol work
TRANSPORT_STAGES: dict[str, tuple[str, ...]] = {
    "tcp": ("tcp_sendmsg", "tcp_stream_alloc_skb", "tcp_transmit_skb", "tcp_v4_rcv", "tcp_ack", "tcp_send_ack",
            "tcp_recvmsg", "tcp_cleanup_rbuf", "tcp_add_backlog", "tcp_delack_timer", "tcp_retransmit_timer"),
    "udp": ("udp_sendmsg", "udp_rcv", "udp_recvmsg"),
    "unix_stream": ("unix_stream_sendmsg", "unix_stream_recvmsg"),
    "unix_dgram": ("unix_dgram_sendmsg", "unix_dgram_recvmsg"),
}

#: the scheduler's own stages on a same-CPU hand-over (a wake-up, going to sleep, the switch),
#: scaled together: tracepoint intervals bound them only loosely
SCHED_STAGES: tuple[str, ...] = ("try_to_wake_up", "schedule_timeout", "schedule")

#: the IP and loopback path that TCP and UDP share (transmit down to netif_rx, NET_RX up to ip_rcv),
#: scaled together: their bases come from tracepoint intervals that each tracepoint lengthens
NET_STAGES: tuple[str, ...] = ("ip_output", "dev_queue_xmit", "loopback_xmit", "netif_rx", "net_rx_action",
                               "process_backlog", "ip_rcv")

#: stages no measured path exercises on an unmodified host: cost = the named stage's, and why
SHARED_RULES: dict[str, tuple[str, str]] = {
    "ip_fragment": ("ip_output", "per fragment ip_do_fragment builds an IP header and re-enters ip_finish_output2"),
    "ip_defrag": ("ip_rcv", "per fragment ip_defrag does a hash lookup and queue insert, like ip_rcv's header work"),
    "skb_gso_segment": ("tcp_transmit_skb", "per segment, skb_segment clones the skb and rewrites the TCP header"),
    "net_rps_send_ipi": ("ttwu_queue_wakelist", "both send one IPI to another CPU"),
    "tcp_delack_timer": ("tcp_send_ack", "the timer's work is building and sending the ACK"),
    "tcp_retransmit_timer": ("tcp_send_ack", "the timer re-enters tcp_transmit_skb like an ACK"),
    "tcp_add_backlog": ("process_backlog", "one skb appended to a queue under a lock"),
    "kick_defer_list_purge": ("ttwu_queue_wakelist", "both send one IPI to another CPU"),
}

#: the stages each IP fragment runs besides ip_fragment and ip_defrag (lbsim/model/udp.py: one
#: dev_queue_xmit -> loopback_xmit -> netif_rx, and the NET_RX run its local_bh_enable starts:
#: net_rx_action, process_backlog, ip_rcv); tests/test_ip_fragment_cost.py checks them against a run
FRAGMENT_PATH: tuple[str, ...] = ("dev_queue_xmit", "loopback_xmit", "netif_rx", "net_rx_action",
                                  "process_backlog", "ip_rcv")


def with_fragment_cost(model: CostModel, per_fragment_ns: float,
                       fragments: int) -> tuple[CostModel, dict[str, str]]:
    """``model`` with ip_fragment and ip_defrag taken from the host's measured price of one more
    fragment (the stage file's ``ip_fragment`` entry, lbsim.measure.micro_ipfrag, measured on a
    datagram of ``fragments`` fragments): what is left of it once the fragment's other stages
    (:data:`FRAGMENT_PATH`, fitted at default settings) are paid, split between the two in the
    ratio of the stages they were borrowed from, and at least 0 (where those stages already cost
    more than the host's whole fragment, both are free).  The two run on every fragment, the first
    too, the others once a datagram whole or not: n of them are in the n - 1 extra fragments'
    price.  Returns the model and the rule of each of the two stages."""
    rest = sum(model.stages[s].fixed_ns for s in FRAGMENT_PATH)
    own = max(per_fragment_ns - rest, 0.0) * (fragments - 1) / fragments
    donors = {s: model.stages[SHARED_RULES[s][0]].fixed_ns for s in ("ip_fragment", "ip_defrag")}
    total = sum(donors.values())
    rules = {}
    for s, d in donors.items():
        model = with_stage_fixed(model, s, own * d / total if total > 0 else own / 2)
        rules[s] = (f"measured: the stage file's ip_fragment entry, {per_fragment_ns:.0f} ns per fragment, less "
                    f"the fragment's other stages ({rest:.0f} ns: {', '.join(FRAGMENT_PATH)}), floored at 0, "
                    f"split with the other in the ratio of {SHARED_RULES[s][0]}'s cost")
    return model, rules


#: the fitted parameters: name -> (lower bound, upper bound, unit)
PARAMS: dict[str, tuple[float, float, str]] = {
    "scale_tcp": (0.2, 5.0, "x"),
    "scale_udp": (0.05, 5.0, "x"),
    "scale_unix_stream": (0.2, 5.0, "x"),
    "scale_unix_dgram": (0.2, 5.0, "x"),
    "scale_sched": (0.2, 5.0, "x"),
    "scale_net": (0.05, 5.0, "x"),
    "copy_from_user_tcp_ns_per_byte": (0.0, 2.0, "ns/B"),
    "copy_from_user_udp_ns_per_byte": (0.0, 2.0, "ns/B"),
    "copy_from_user_unix_ns_per_byte": (0.0, 2.0, "ns/B"),
    "copy_to_user_ns_per_byte": (0.0, 2.0, "ns/B"),
    "wakeup_remote_idle_ns": (0.0, 200000.0, "ns"),
    "wakeup_remote_busy_ns": (0.0, 200000.0, "ns"),
}
X0 = {"scale_sched": 1.0, "scale_net": 1.0, "scale_tcp": 1.0, "scale_udp": 1.0, "scale_unix_stream": 1.0,
      "scale_unix_dgram": 1.0,
      "copy_from_user_tcp_ns_per_byte": 0.05, "copy_from_user_udp_ns_per_byte": 0.05,
      "copy_from_user_unix_ns_per_byte": 0.05, "copy_to_user_ns_per_byte": 0.03,
      "wakeup_remote_idle_ns": 20000.0, "wakeup_remote_busy_ns": 10000.0}

#: the copy stage whose per-byte cost each copy parameter is
COPY_STAGE = {
    "copy_from_user_tcp_ns_per_byte": ("skb_copy_to_page_nocache",),
    "copy_from_user_udp_ns_per_byte": ("ip_generic_getfrag",),
    "copy_from_user_unix_ns_per_byte": ("skb_copy_datagram_from_iter",),
    "copy_to_user_ns_per_byte": ("skb_copy_datagram_msg",),
}

#: the cross-CPU wake-up delays, fitted again once every stage cost is final
WAKEUP_DELAYS = ("wakeup_remote_idle_ns", "wakeup_remote_busy_ns")

#: TCP's stages run once per system call, and those run once per packet.  A ping-pong and a split
#: run one packet per call, so they fit only the sum; a stream on one CPU, whose writes coalesce
#: into a few large skbs, tells the two apart.
TCP_CALL_STAGES = ("tcp_sendmsg", "tcp_recvmsg", "tcp_cleanup_rbuf")
TCP_PACKET_STAGES = ("tcp_stream_alloc_skb", "tcp_transmit_skb", "tcp_v4_rcv", "tcp_ack", "tcp_send_ack")

#: every copy stage: their out-of-cache per-byte cost is fitted as one value
COPY_STAGES = ("skb_copy_to_page_nocache", "ip_generic_getfrag", "skb_copy_datagram_from_iter", "skb_copy_datagram_msg")


def at_bound(name: str, value: float) -> bool:
    """Whether a PARAMS value sits at its bound (others never do)."""
    if name not in PARAMS:
        return False
    lo, hi, _ = PARAMS[name]
    return value <= lo * (1 + 1e-6) + 1e-9 or value >= hi * (1 - 1e-6)


def apply_params(base: CostModel, p: dict[str, float], *, cv: float, delay_cv: float) -> CostModel:
    """``base`` with the PARAMS values ``p`` applied (each scale on its stages' fixed costs, each
    per-byte cost on its copy stage, the SHARED_RULES stages copied, the two wake-up delays) and
    the spread ``cv`` on every stage, ``delay_cv`` on the delays."""
    stages: dict[str, StageCost] = {}
    scale_of = {s: p[f"scale_{t}"] for t, ss in TRANSPORT_STAGES.items() for s in ss}
    scale_of.update({s: p["scale_sched"] for s in SCHED_STAGES})
    scale_of.update({s: p["scale_net"] for s in NET_STAGES})
    per_byte = {s: p[name] for name, ss in COPY_STAGE.items() for s in ss}
    for s in STAGES:
        if s not in base.stages:
            continue  # an optional stage the stage file did not measure
        b = base.stages[s]
        fixed = b.fixed_ns * scale_of.get(s, 1.0)
        stages[s] = StageCost(fixed, per_byte.get(s, b.per_byte_ns), cv)
    for s, (src, _) in SHARED_RULES.items():
        stages[s] = StageCost(stages[src].fixed_ns, 0.0, cv)
    delays = {"wakeup_remote_idle_ns": StageCost(p["wakeup_remote_idle_ns"], 0.0, delay_cv),
              "wakeup_remote_busy_ns": StageCost(p["wakeup_remote_busy_ns"], 0.0, delay_cv)}
    return CostModel(name=base.name, stages=stages, delays=delays, provenance=dict(base.provenance),
                     cache_bytes=base.cache_bytes)


def with_stages(model: CostModel, names: Iterable[str], **fields: Any) -> CostModel:
    """``model`` with the given StageCost fields replaced in each named stage."""
    stages = dict(model.stages)
    for s in names:
        stages[s] = replace(stages[s], **fields)
    return replace(model, stages=stages)


def with_stage_fixed(model: CostModel, stage: str, fixed_ns: float) -> CostModel:
    """``model`` with one stage's fixed cost replaced."""
    return with_stages(model, (stage,), fixed_ns=fixed_ns)


def with_delays(model: CostModel, delays: dict[str, float]) -> CostModel:
    """``model`` with the named wake-up delays' fixed costs replaced (their spread kept)."""
    new = dict(model.delays)
    for name, v in delays.items():
        new[name] = replace(new[name], fixed_ns=v)
    return replace(model, delays=new)


def with_pages(model: CostModel, alloc_ns: float, free_ns: float) -> CostModel:
    """``model`` with the page-allocator call costs (floored at 0: a step within noise)."""
    m = with_stage_fixed(model, "__alloc_pages", max(float(alloc_ns), 0.0))
    return with_stage_fixed(m, "__free_pages", max(float(free_ns), 0.0))


def with_tcp_call_share(model: CostModel, call: float, packet: float) -> CostModel:
    """``model`` with TCP's per-call stages x ``call`` and its per-packet stages x ``packet``
    (and the SHARED_RULES stages that copy a per-packet one)."""
    stages = dict(model.stages)
    for names, k in ((TCP_CALL_STAGES, call), (TCP_PACKET_STAGES, packet)):
        for s in names:
            stages[s] = replace(stages[s], fixed_ns=stages[s].fixed_ns * k)
    for s, (src, _) in SHARED_RULES.items():
        if src in TCP_PACKET_STAGES:
            stages[s] = replace(stages[s], fixed_ns=stages[src].fixed_ns)
    return replace(model, stages=stages)


#: the receive calls whose traced interval holds the free of the skb they consume
#: (tcp_eat_recv_skb, skb_consume_udp), which skb_attempt_defer_free may run on another CPU
KFREE_HOSTS = ("tcp_recvmsg", "udp_recvmsg")


def split_kfree_skb(model: CostModel, kfree: float) -> CostModel:
    """Move ``kfree`` ns of tcp_recvmsg's and udp_recvmsg's fixed costs (each tracepoint interval
    holds its call and the free) to ``__kfree_skb``, which skb_attempt_defer_free may run on
    another CPU."""
    m = with_stage_fixed(model, "__kfree_skb", kfree)
    for s in KFREE_HOSTS:
        m = with_stage_fixed(m, s, model.stages[s].fixed_ns - kfree)
    return m


def with_cold_copies(model: CostModel, cold: float) -> CostModel:
    """``model`` with the out-of-cache per-byte cost of every copy stage (at least its in-cache one)."""
    stages = dict(model.stages)
    for s in COPY_STAGES:
        stages[s] = replace(stages[s], per_byte_cold_ns=max(cold, stages[s].per_byte_ns))
    return replace(model, stages=stages)


def base_model(stage_fixed_ns: dict[str, float], name: str = "base", cache_bytes: int = 2 << 20) -> CostModel:
    """A cost model with the given fixed costs (others 0), no per-byte costs, no spread."""
    stages = {s: {"fixed_ns": float(stage_fixed_ns.get(s, 0.0))} for s in STAGES
              if s not in OPTIONAL_STAGES or s in stage_fixed_ns}  # an optional stage only when measured
    return cost_model_from_dict({"name": name, "stages": stages, "cache_bytes": cache_bytes,
                                 "delays": {d: {"mean_ns": 0.0} for d in DELAYS}})
