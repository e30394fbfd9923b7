"""Where every model parameter comes from (issue 28): "Every model parameter is one of three
things: a cited kernel constant, a value fitted on the default grid, or an interval measured at
default settings."  This module is that table, one entry per parameter, in five sections:

* :data:`SIMCONFIG`: every field of :class:`lbsim.config.SimConfig`;
* :data:`KERNEL_PARAMS`: every field of :class:`lbsim.kernels.KernelParams` (a kernel profile);
* :data:`STAGE_COSTS`: every stage of :data:`lbsim.model.stages.STAGES` (its fixed and per-byte cost);
* :data:`COST_MODEL`: the rest of a cost file (the wake-up delays, the spreads, the cache size);
* :data:`MODEL_CONSTANTS`: every module- or class-level ALL_CAPS name in ``lbsim/model/*.py`` whose
  value is written with a number (:func:`model_constants` finds them).

Each entry has a kind (:data:`KINDS`) and a source: the kernel file and symbol, the fit step of
:mod:`lbsim.calibrate.steps` and the fitted value it sets, or the tracepoint interval of
:mod:`lbsim.measure.stages_intervals` (split among stages by ``lbsim/calibrate/base.py``).
``tests/test_provenance.py`` fails on a parameter missing from the table, a kernel constant
without a kernel source path, a fitted value no fit step sets, and an entry named after a knob
that is not the knob itself (no knob-specific factor).  ``docs/guide/provenance.md`` is
:func:`render_markdown`'s output.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, replace
from pathlib import Path

__all__ = ["Param", "KINDS", "SIMCONFIG", "KERNEL_PARAMS", "STAGE_COSTS", "COST_MODEL", "MODEL_CONSTANTS",
           "NOT_PARAMETERS", "SECTIONS", "all_params", "model_constants", "render_markdown"]

#: the kinds of parameter, and what each means
KINDS: dict[str, str] = {
    "kernel": "a kernel constant or default, cited by kernel source file and symbol",
    "fitted": "fitted on the default-setting grid (measured-host.csv) by a step of lbsim/calibrate/steps.py; "
              "never on knob rows",
    "measured": "measured at default settings: a tracepoint interval (lbsim/measure/stages_intervals.py, split "
                "among the stages inside it by lbsim/calibrate/base.py) or a property of the measured host",
    "workload": "a setting of the run: what is simulated (the harness's own choices), not how the kernel behaves",
    "unsourced": "none of the above: an assumption, listed so that it stays visible until it gets a source",
}


@dataclass(frozen=True, slots=True)
class Param:
    """One parameter: its name, kind (a key of :data:`KINDS`), source and a short note.
    ``borrowed_from``: a stage no measured path exercises takes that stage's fitted cost
    (``lbsim.calibrate.params.SHARED_RULES``)."""

    name: str
    kind: str
    source: str
    note: str = ""
    borrowed_from: str | None = None


def _table(kind: str, rows: tuple[tuple[str, ...], ...]) -> tuple[Param, ...]:
    return tuple(Param(r[0], kind, r[1], r[2] if len(r) > 2 else "") for r in rows)


# --- the kernel profile ------------------------------------------------------------------------

KERNEL_PARAMS: tuple[Param, ...] = _table("kernel", (
    ("mtu", "drivers/net/loopback.c loopback_setup(): dev->mtu = 64 * 1024", "16436 in 2.6.32"),
    ("tso", "drivers/net/loopback.c gen_lo_setup(): NETIF_F_GSO_SOFTWARE", "ethtool -K lo tso off"),
    ("gso_max_size", "include/linux/netdevice.h GSO_LEGACY_MAX_SIZE = 65536"),
    ("rps_cpus", "net/core/net-sysfs.c store_rps_map(): empty map by default; net/core/dev.c get_rps_cpu()"),
    ("netdev_max_backlog", "net/core/hotdata.c .max_backlog = 1000; net/core/dev.c enqueue_to_backlog()"),
    ("dev_weight", "net/core/dev.c weight_p = 64"),
    ("netdev_budget", "net/core/hotdata.c .netdev_budget = 300"),
    ("netdev_budget_usecs", "net/core/hotdata.c .netdev_budget_usecs = 2 * USEC_PER_SEC / HZ"),
    ("hz", "kernel/Kconfig.hz CONFIG_HZ (250 in the measured VM's kernel config)"),
    ("max_softirq_restart", "kernel/softirq.c MAX_SOFTIRQ_RESTART = 10"),
    ("max_softirq_time_ns", "kernel/softirq.c MAX_SOFTIRQ_TIME = msecs_to_jiffies(2)"),
    ("skb_defer_max", "net/core/hotdata.c .sysctl_skb_defer_max = 64; net/core/skbuff.c skb_attempt_defer_free()",
     "0 (none) before 5.19"),
    ("sched_base_slice_ns", "kernel/sched/fair.c normalized_sysctl_sched_base_slice = 750000",
     "x (1 + ilog2(min(ncpus, 8))): SCHED_TUNABLESCALING_LOG (lbsim/model/sim.py)"),
    ("sched_delay_dequeue", "kernel/sched/features.h SCHED_FEAT(DELAY_DEQUEUE, true)"),
    ("rmem_default", "include/net/sock.h SK_RMEM_MAX = 212992; "
     "net/core/sock.c sock_init_data(): sk_rcvbuf = rmem_default"),
    ("wmem_default", "include/net/sock.h SK_WMEM_MAX = 212992; "
     "net/core/sock.c sock_init_data(): sk_sndbuf = wmem_default"),
    ("rmem_max", "net/core/sock.c sysctl_rmem_max = SK_RMEM_MAX", "the ceiling of SO_RCVBUF"),
    ("wmem_max", "net/core/sock.c sysctl_wmem_max = SK_WMEM_MAX", "the ceiling of SO_SNDBUF"),
    ("sock_min_rcvbuf", "include/net/sock.h SOCK_MIN_RCVBUF = TCP_SKB_MIN_TRUESIZE (2304 on x86-64)"),
    ("sock_min_sndbuf", "include/net/sock.h SOCK_MIN_SNDBUF = 2 * SOCK_MIN_RCVBUF"),
    ("tcp_rmem", "net/ipv4/tcp.c tcp_init(): 4096 131072 min(6 MiB, memory / 128)"),
    ("tcp_wmem", "net/ipv4/tcp.c tcp_init(): 4096 16384 min(4 MiB, memory / 128)"),
    ("tcp_autocorking", "net/ipv4/tcp_ipv4.c tcp_sk_init(): sysctl_tcp_autocorking = 1",
     "inert on lo: drivers/net/loopback.c loopback_xmit() orphans the skb"),
    ("busy_read", "net/core/sock.c sysctl_net_busy_read = 0; sock_init_data(): sk_ll_usec = busy_read",
     "inert on lo: include/net/busy_poll.h sk_busy_loop() needs sk_napi_id >= MIN_NAPI_ID"),
    ("rps_sock_flow_entries", "net/core/sysctl_net_core.c rps_sock_flow_sysctl(): no table until set (0)",
     "RFS: net/core/dev.c get_rps_cpu(), lbsim/model/rfs.py"),
    ("rps_flow_cnt", "net/core/net-sysfs.c store_rps_dev_flow_table_cnt(): no rx-queue flow table (0)",
     "RFS: net/core/dev.c get_rps_cpu(), lbsim/model/rfs.py"),
    ("tcp_congestion_control", "net/ipv4/Kconfig DEFAULT_TCP_CONG = \"cubic\""),
    ("tcp_init_cwnd", "include/net/tcp.h TCP_INIT_CWND = 10", "3 in 2.6.32 (RFC 3390)"),
    ("tcp_max_quickacks", "include/net/tcp.h TCP_MAX_QUICKACKS = 16"),
    ("tcp_delack_min_ns", "include/net/tcp.h TCP_DELACK_MIN = HZ / 25"),
    ("tcp_rto_min_us", "include/net/tcp.h TCP_RTO_MIN = HZ / 5"),
    ("tcp_limit_output_bytes", "net/ipv4/tcp_ipv4.c tcp_sk_init(): sysctl_tcp_limit_output_bytes",
     "inert on lo (TSQ: net/ipv4/tcp_output.c tcp_small_queue_check, skb orphaned in loopback_xmit)"),
    ("tcp_default_scaling_ratio", "include/net/tcp.h TCP_DEFAULT_SCALING_RATIO"),
    ("unix_max_dgram_qlen", "net/unix/af_unix.c unix_net_init(): max_dgram_qlen = 10"),
    ("unix_stream_max_skb_bytes",
     "net/unix/af_unix.c unix_stream_sendmsg(): SKB_MAX_HEAD(0) + UNIX_SKB_FRAGS_SZ = 3776 + 32768"),
    ("udp_rcvbuf_rule", "net/ipv4/udp.c __udp_enqueue_schedule_skb(): the sk_rcvbuf test",
     "6.18 accepts a packet into an empty queue"),
    ("udp_defer_free", "net/ipv4/udp.c skb_consume_udp() -> skb_attempt_defer_free() (6.18+)",
     "traced: skb:consume_skb from skb_defer_free_flush on the writer's CPU, docs/notes/udp-defer-free.md"),
    ("skb_truesize_overhead", "include/linux/skbuff.h SKB_TRUESIZE(0) = 256 + 320 on x86-64"),
))

_KERNEL_SOURCE = {p.name: p.source for p in KERNEL_PARAMS}

# --- the run's configuration -------------------------------------------------------------------

#: SimConfig fields that override the kernel profile: their default is the profile's (above)
_KERNEL_OVERRIDES = ("mtu", "tso", "rps_cpus", "netdev_max_backlog", "dev_weight", "netdev_budget",
                     "netdev_budget_usecs", "hz", "skb_defer_max", "rmem_default", "wmem_default", "rmem_max",
                     "wmem_max", "tcp_rmem", "tcp_wmem", "tcp_init_cwnd", "tcp_congestion_control",
                     "unix_max_dgram_qlen", "tcp_autocorking", "busy_read",
                     "rps_sock_flow_entries", "rps_flow_cnt")

SIMCONFIG: tuple[Param, ...] = _table("workload", (
    ("transport", "the socket type under test (lbsim measure's harness)"),
    ("workload", "the traffic pattern (lbsim measure's harness)"),
    ("msg_bytes", "the payload of one send()"),
    ("messages", "the length of the run"),
    ("flows", "concurrent sender/receiver pairs"),
    ("senders", "sender processes into one UDP socket (harness --senders: a second process on the sender's CPU)"),
    ("batch", "messages per batch call of a stream (harness --batch: sendmmsg/recvmmsg, MSG_MORE)"),
    ("rate_per_s", "poisson arrival rate"),
    ("burst_size", "burst: writes back to back"),
    ("burst_gap_ns", "burst: idle time between bursts"),
    ("cpus", "simulated CPUs"),
    ("placement", "where each flow's ends run (taskset in the harness)"),
    ("background", "nice-19 spinners (lbsim measure --busy)"),
    ("policy", "SCHED_OTHER or SCHED_FIFO of the measured tasks"),
    ("kernel", "which kernel profile (KernelParams, below)"),
    ("costs", "which cost file (its values: the stage and cost-model sections below)"),
    ("seed", "the random seed"),
    ("deterministic", "every cost at its mean"),
    ("trace", "keep a per-stage trace"),
    ("tcp_nodelay", "TCP_NODELAY, as the C harness sets it"),
    ("so_sndbuf", "the SO_SNDBUF request; stored as net/core/sock.c sk_setsockopt() stores it",
     "clamp: lbsim/kernels.py setsockopt_buf"),
    ("so_rcvbuf", "the SO_RCVBUF request; stored as net/core/sock.c __sock_set_rcvbuf() stores it",
     "clamp: lbsim/kernels.py setsockopt_buf"),
    ("so_busy_poll", "the SO_BUSY_POLL request (us); stored by net/core/sock.c sk_setsockopt() in sk_ll_usec",
     "inert on lo: include/net/busy_poll.h sk_busy_loop() needs sk_napi_id >= MIN_NAPI_ID"),
    ("zerocopy", "SO_ZEROCOPY + MSG_ZEROCOPY (net/ipv4/tcp.c tcp_sendmsg_locked, net/ipv4/ip_output.c "
     "__ip_append_data)", "on lo a deferred copy: net/core/dev.c skb_orphan_frags_rx (lbsim/model/zerocopy.py)"),
    ("receiver", "how receivers wait: blocking recv, or epoll_wait then recv (harness --epoll)",
     "fs/eventpoll.c ep_poll, ep_send_events, ep_poll_callback: lbsim/model/eventpoll.py"),
    ("max_sim_time_ns", "a guard: the run stops at this simulated time"),
    ("stage_scale", "a what-if edit (docs/guide/whatif.md): empty unless the user asks"),
    ("stage_cost", "a what-if edit (docs/guide/whatif.md): empty unless the user asks"),
    ("stage_remove", "a what-if edit (docs/guide/whatif.md): empty unless the user asks"),
)) + tuple(Param(f, "kernel", _KERNEL_SOURCE[f], "a knob: None takes the kernel profile's value")
           for f in _KERNEL_OVERRIDES)

# --- stage costs ---------------------------------------------------------------------------------

def _stage(name: str, kind: str, source: str, note: str = "") -> Param:
    return Param(name, kind, source, note)


def _borrowed(name: str, src: str, note: str) -> Param:
    """A stage that takes ``src``'s cost; its kind is set to ``src``'s by :func:`_lend`."""
    return Param(name, "", f"= {src}'s cost (lbsim/calibrate/params.py SHARED_RULES)", note, src)


def _lend(params: tuple[Param, ...]) -> tuple[Param, ...]:
    kind = {p.name: p.kind for p in params}
    return tuple(replace(p, kind=kind[p.borrowed_from]) if p.borrowed_from else p for p in params)


_TCP_CALL = "x scale_tcp (fit_main) x tcp_call_scale (fit_tcp_share)"
_TCP_PACKET = "x scale_tcp (fit_main) x tcp_packet_scale (fit_tcp_share)"
_COLD = "; out of cache: copy_cold_ns_per_byte (fit_cold)"

STAGE_COSTS: tuple[Param, ...] = _lend((
    _stage("syscall", "measured", "null_syscall_ns: getppid() round trip (lbsim/measure/harness.py)"),
    _stage("tcp_sendmsg", "fitted", f"interval send_to_dev beyond ip_output, half, + after_softirq_to_exit (tcp) "
           f"{_TCP_CALL}"),
    _stage("tcp_stream_alloc_skb", "fitted", f"interval send_to_dev beyond ip_output, a fifth (tcp) {_TCP_PACKET}"),
    _stage("skb_copy_to_page_nocache", "fitted", f"per byte: copy_from_user_tcp_ns_per_byte (fit_main){_COLD}"),
    _stage("tcp_transmit_skb", "fitted",
           f"interval send_to_dev beyond ip_output, three tenths (tcp) {_TCP_PACKET}"),
    _stage("ip_output", "fitted", "interval send_to_dev, half (udp) x scale_net (fit_main)"),
    _borrowed("ip_fragment", "ip_output", "runs only below the default mtu: no default-grid point exercises it; "
              "where the stage file has the ip_fragment micro-benchmark (lbsim.measure.micro_ipfrag), its measured "
              "interval per fragment less the fragment's other stages, floored at 0 (calibrate/params.py "
              "with_fragment_cost)"),
    _borrowed("skb_gso_segment", "tcp_transmit_skb", "runs only with tso off"),
    _stage("dev_queue_xmit", "fitted", "interval dev_to_netif_rx, half (tcp, udp) x scale_net (fit_main)"),
    _stage("loopback_xmit", "fitted", "interval dev_to_netif_rx, half (tcp, udp) x scale_net (fit_main)"),
    _stage("netif_rx", "fitted", "interval netif_rx_to_softirq (tcp, udp) x scale_net (fit_main)"),
    _borrowed("net_rps_send_ipi", "ttwu_queue_wakelist", "runs only with rps_cpus set"),
    _stage("net_rx_action", "fitted",
           "interval softirq_to_receive_skb, half, + softirq_tail (tcp, udp) x scale_net (fit_main)"),
    _stage("process_backlog", "fitted", "interval softirq_to_receive_skb, half (tcp, udp) x scale_net (fit_main)"),
    _stage("ip_rcv", "fitted", "interval receive_skb_to_waking, a third (udp) x scale_net (fit_main)"),
    _borrowed("ip_defrag", "ip_rcv", "runs only below the default mtu; measured with ip_fragment where the stage "
              "file has its micro-benchmark"),
    _stage("tcp_v4_rcv", "fitted", f"interval receive_skb_to_waking beyond ip_rcv, two thirds (tcp) {_TCP_PACKET}"),
    _stage("tcp_ack", "fitted", f"interval receive_skb_to_waking beyond ip_rcv, a third (tcp) {_TCP_PACKET}"),
    _borrowed("tcp_add_backlog", "process_backlog", "a socket owned by its reader when a packet arrives"),
    _stage("tcp_send_ack", "fitted", f"as tcp_transmit_skb: interval send_to_dev (tcp) {_TCP_PACKET}"),
    _stage("tcp_recvmsg", "fitted",
           f"interval switch_in_to_copy (tcp) {_TCP_CALL}, less kfree_skb_ns (fit_kfree)"),
    _stage("tcp_cleanup_rbuf", "fitted", f"interval copy_to_exit (tcp) {_TCP_CALL}"),
    _borrowed("tcp_delack_timer", "tcp_send_ack", "the timer's work is building and sending the ACK"),
    _borrowed("tcp_retransmit_timer", "tcp_send_ack", "no loss on lo at default settings"),
    _stage("udp_sendmsg", "fitted",
           "interval send_to_dev, half, + after_softirq_to_exit (udp) x scale_udp (fit_main)"),
    _stage("ip_generic_getfrag", "fitted", f"per byte: copy_from_user_udp_ns_per_byte (fit_main){_COLD}"),
    _stage("udp_rcv", "fitted", "interval receive_skb_to_waking, a third (udp) x scale_udp (fit_main)"),
    _stage("udp_recvmsg", "fitted", "interval switch_in_to_exit (udp) x scale_udp (fit_main)"),
    _stage("unix_stream_sendmsg", "fitted", "interval send_to_waking + waking_to_exit less try_to_wake_up and "
           "sock_def_readable (unix_stream) x scale_unix_stream (fit_main), then unix_stream_send_share of the send + "
           "receive total (fit_unix_share)"),
    _stage("unix_dgram_sendmsg", "fitted", "interval send_to_waking + waking_to_exit less try_to_wake_up and "
           "sock_def_readable (unix_dgram) x scale_unix_dgram (fit_main), then unix_dgram_send_share of the send + "
           "receive total (fit_unix_share)"),
    _stage("skb_copy_datagram_from_iter", "fitted", f"per byte: copy_from_user_unix_ns_per_byte (fit_main){_COLD}"),
    _stage("unix_stream_recvmsg", "fitted",
           "interval switch_in_to_copy + copy_to_exit (unix_stream) x scale_unix_stream (fit_main), then 1 - "
           "unix_stream_send_share of the send + receive total (fit_unix_share)"),
    _stage("unix_dgram_recvmsg", "fitted",
           "interval switch_in_to_copy + copy_to_exit (unix_dgram) x scale_unix_dgram (fit_main), then 1 - "
           "unix_dgram_send_share of the send + receive total (fit_unix_share)"),
    _stage("skb_copy_datagram_msg", "fitted", f"per byte: copy_to_user_ns_per_byte (fit_main){_COLD}",
           "its tracepoint base (the slope of interval copy_to_exit) is the fit's start only"),
    _stage("__kfree_skb", "fitted", "kfree_skb_ns (fit_kfree), taken out of tcp_recvmsg"),
    _borrowed("kick_defer_list_purge", "ttwu_queue_wakelist", "both send one IPI to another CPU"),
    _stage("__alloc_pages", "fitted", "alloc_pages_ns (seed_page_costs, fit_page_costs): the unix_stream "
           "split write's step across SKB_MAX_HEAD(0)"),
    _stage("__free_pages", "fitted", "free_pages_ns (seed_page_costs, fit_page_costs): the unix_stream "
           "split read's step across SKB_MAX_HEAD(0)"),
    _stage("sock_def_readable", "measured", "interval receive_skb_to_waking, a third (udp)"),
    _stage("try_to_wake_up", "fitted", "interval waking_to_wakeup (all transports) x scale_sched (fit_main)"),
    _stage("ttwu_queue_wakelist", "measured", "interval waking_to_wakeup (all transports), unscaled",
           "its IPI is the busy wake-up delay"),
    _stage("send_call_function_single_ipi", "measured", "interval softirq_tail (tcp, udp) / waking_to_exit "
           "(unix) across CPUs, median, less ttwu_queue_wakelist",
           "also the cost of each TSC-deadline WRMSR of TCP's pacing hrtimer (lbsim/model/tcp_pacing.py): "
           "both are WRMSR exits of a KVM guest (arch/x86/kvm/x86.c handle_fastpath_set_msr_irqoff)"),
    _stage("schedule_timeout", "fitted", "interval recv_entry_to_switch_out (all transports) x scale_sched "
           "(fit_main)"),
    _stage("schedule", "fitted", "interval switch (all transports) x scale_sched (fit_main)"),
    _stage("cacheline_transfer", "fitted", "cacheline_transfer_ns (fit_cacheline, refit_cacheline)"),
    _stage("cacheline_transfer_unix", "fitted", "cacheline_transfer_unix_ns (fit_cacheline)"),
    _stage("cache_to_cache_copy", "fitted", "per byte: cache_to_cache_copy_ns_per_byte (fit_c2c)"),
    _stage("cache_to_cache_write", "fitted", "per byte: cache_to_cache_write_ns_per_byte (fit_c2c; "
           "cache_to_cache_copy's value where the data lack each side's CPU time)"),
    _stage("unix_find_other", "measured", "unix_lookup unix_find_other_ns: harness --micro-unix-lookup, a "
           "unix_dgram sendto(path) + recv less the same send on a connected socket + recv (lbsim/measure/"
           "harness.py micro_unix_lookup)",
           "0 where the stage file predates it (the cost models before model 7 charged nothing): "
           "docs/notes/unix-lookup.md"),
    _stage("ep_send_events", "measured", "epoll ep_send_events_ns: harness --micro-epoll, epoll_wait on an "
           "always-readable socket less the null syscall (lbsim/measure/harness.py micro_epoll)",
           "optional: absent from cost files measured before it; receiver 'epoll' refuses to run without it"),
    _stage("ep_poll_callback", "measured", "epoll ep_poll_callback_ns: harness --micro-epoll, a watched "
           "socket's send + epoll_wait + recv less the unwatched send + recv and epoll_wait",
           "optional, as ep_send_events"),
))

# --- the rest of a cost file -----------------------------------------------------------------------

COST_MODEL: tuple[Param, ...] = (
    Param("wakeup_remote_idle_ns", "fitted", "wakeup_remote_idle_ns (fit_main, refit_wakeup_delays)",
          "a delay: try_to_wake_up into an idle CPU until the task runs there"),
    Param("wakeup_remote_busy_ns", "fitted", "wakeup_remote_busy_ns (fit_main, refit_wakeup_delays)",
          "a delay: the same into a busy CPU"),
    Param("stage_cv", "fitted", "stage_cv (fit_spread)", "every stage's log-normal spread"),
    Param("delay_cv", "fitted", "delay_cv (fit_spread)", "the delays' log-normal spread"),
    Param("per_byte_cold_ns", "fitted", "copy_cold_ns_per_byte (fit_cold)", "every copy stage, out of cache"),
    Param("cache_bytes", "measured", "l2_bytes of the data's .host.json (lbsim/calibrate/base.py cache_bytes_of)",
          "the measured host's per-core L2: a property of the host, not a tracepoint interval"),
)

# --- constants in the model's code -----------------------------------------------------------------

_BBR = "net/ipv4/tcp_bbr.c"
MODEL_CONSTANTS: tuple[Param, ...] = _table("kernel", (
    ("host._NO_QLEN_LIMIT", "net/unix/af_unix.c unix_dgram_sendmsg(): unix_peer(other) != sk",
     "stands for \"no limit\": a reply to the socket's own peer is exempt from max_dgram_qlen"),
    ("skb.SKB_MAX_ALLOC", "include/linux/skbuff.h SKB_MAX_ALLOC = SKB_MAX_ORDER(0, 2)"),
    ("skb.SKB_MAX_HEAD0", "include/linux/skbuff.h SKB_MAX_HEAD(0)"),
    ("skb.PAGE_SIZE", "arch/x86/include/asm/page_types.h PAGE_SIZE"),
    ("zerocopy.MAX_SKB_FRAGS", "include/linux/skbuff.h MAX_SKB_FRAGS = CONFIG_MAX_SKB_FRAGS (net/Kconfig default 17)",
     "skb_copy_ubufs picks order 0 while 17 pages hold the frags"),
    ("skb.PAGE_ALLOC_COSTLY_ORDER", "include/linux/mmzone.h PAGE_ALLOC_COSTLY_ORDER"),
    ("skb.KMALLOC_MAX_CACHE_SIZE", "include/linux/slab.h KMALLOC_MAX_CACHE_SIZE (SLUB)"),
    ("skb.SMALL_HEAD", "net/core/skbuff.c SKB_SMALL_HEAD_CACHE_SIZE = SKB_HEAD_ALIGN(MAX_TCP_HEADER)"),
    ("skb.SK_BUFF", "include/linux/skbuff.h SKB_DATA_ALIGN(sizeof(struct sk_buff)) (256 on x86-64)"),
    ("skb._CLASSES", "mm/slab_common.c kmalloc_info[] (kmalloc-1k .. 8k) and net/core/skbuff.c "
     "skb_small_head_cache (576)"),
    ("task.NICE_0_WEIGHT", "kernel/sched/core.c sched_prio_to_weight[20] = 1024"),
    ("task.NICE_19_WEIGHT", "kernel/sched/core.c sched_prio_to_weight[39] = 15"),
    ("tcp_cc.BBR_HIGH_GAIN", f"{_BBR} bbr_high_gain"),
    ("tcp_cc.BBR_DRAIN_GAIN", f"{_BBR} bbr_drain_gain"),
    ("tcp_cc.BBR_CWND_GAIN", f"{_BBR} bbr_cwnd_gain"),
    ("tcp_cc.BBR_PACING_GAIN", f"{_BBR} bbr_pacing_gain[]"),
    ("tcp_cc.BBR_CYCLE_RAND", f"{_BBR} bbr_cycle_rand"),
    ("tcp_cc.BBR_BW_RTTS", f"{_BBR} bbr_bw_rtts = CYCLE_LEN + 2"),
    ("tcp_cc.BBR_MIN_RTT_WIN_US", f"{_BBR} bbr_min_rtt_win_sec"),
    ("tcp_cc.BBR_PROBE_RTT_MODE_US", f"{_BBR} bbr_probe_rtt_mode_ms"),
    ("tcp_cc.BBR_CWND_MIN_TARGET", f"{_BBR} bbr_cwnd_min_target"),
    ("tcp_cc.BBR_FULL_BW_THRESH", f"{_BBR} bbr_full_bw_thresh"),
    ("tcp_cc.BBR_FULL_BW_CNT", f"{_BBR} bbr_full_bw_cnt"),
    ("tcp_cc.BBR_MIN_TSO_RATE", f"{_BBR} bbr_min_tso_rate"),
    ("tcp_cc.BBR_PACING_MARGIN", f"{_BBR} bbr_pacing_margin_percent"),
    ("tcp_cc.BBR_EXTRA_ACKED_GAIN", f"{_BBR} bbr_extra_acked_gain"),
    ("tcp_cc.BBR_EXTRA_ACKED_WIN_RTTS", f"{_BBR} bbr_extra_acked_win_rtts"),
    ("tcp_cc.BBR_ACK_EPOCH_ACKED_RESET", f"{_BBR} bbr_ack_epoch_acked_reset_thresh"),
    ("tcp_cc.BBR_EXTRA_ACKED_MAX_US", f"{_BBR} bbr_extra_acked_max_us"),
    ("tcp_cc.TCP_INIT_CWND", "include/net/tcp.h TCP_INIT_CWND",
     "bbr_bdp()'s value before an RTT sample, as in the kernel (not the tcp_init_cwnd knob)"),
    ("tcp_cc.SK_PACING_SHIFT", "net/core/sock.c sock_init_data(): sk_pacing_shift = 10"),
    ("tcp_cc.GSO_MAX_SIZE", "include/linux/netdevice.h GSO_LEGACY_MAX_SIZE"),
    ("tcp_cc.MAX_TCP_HEADER", "include/net/tcp.h MAX_TCP_HEADER = L1_CACHE_ALIGN(128 + MAX_HEADER)"),
    ("tcp_cc.Bbr.SNDBUF_EXPAND", f"{_BBR} bbr_sndbuf_expand() returns 3"),
    ("tcp_output.MAX_TCP_HEADER", "include/net/tcp.h MAX_TCP_HEADER = L1_CACHE_ALIGN(128 + MAX_HEADER)"),
    ("tcp_output.TCP_MSS_DEFAULT", "include/net/tcp.h TCP_MSS_DEFAULT = 536"),
    ("tcp_pacing.PACING_UNPACED_SEGS", "net/ipv4/tcp_output.c tcp_update_skb_after_send(): "
     "tp->data_segs_out >= 10 (\"sch_fq does not pace first 10 MSS\")"),
    ("tcp_pacing.NSEC_PER_SEC", "include/vdso/time64.h NSEC_PER_SEC"),
    ("tcp_output.TCP_MIN_MSS", "include/net/tcp.h TCP_MIN_MSS = 88"),
    ("tcp_output.HDR", "include/uapi/linux/ip.h struct iphdr (20) + include/uapi/linux/tcp.h struct tcphdr (20) "
     "+ include/net/tcp.h TCPOLEN_TSTAMP_ALIGNED (12)"),
)) + (
    Param("tcp_recv.RCV_RTT_NS", "unsourced",
          "stands for tp->rcv_rtt_est.rtt_us in net/ipv4/tcp_input.c tcp_rcv_space_adjust(), which lbsim "
          "does not estimate", "100 us assumed: the receive-buffer auto-tuning (DRS) round"),
)

#: ALL_CAPS numbers in lbsim/model (and cost-file fields, ``costs.``) that are not model parameters, and why
NOT_PARAMETERS: dict[str, str] = {
    "version.MODEL_VERSION": "the version stamp of the model's outputs, not an input of a run",
    "costs.distribution": "the shape of the stage-cost draws (log-normal), a model choice with no number of its "
                          "own: its spread is stage_cv / delay_cv (fitted)",
}

SECTIONS: tuple[tuple[str, str, tuple[Param, ...]], ...] = (
    ("SimConfig fields", "lbsim/config.py: every field of a run's configuration", SIMCONFIG),
    ("Kernel profile", "lbsim/kernels.py KernelParams (values of linux-6.12; linux-2.6.32's are cited beside "
     "its profile)", KERNEL_PARAMS),
    ("Stage costs", "lbsim/model/stages.py STAGES: each stage's fixed and per-byte cost in the cost file; "
     "\"interval X\" is a tracepoint interval of lbsim/measure/stages_intervals.py, split among stages by "
     "lbsim/calibrate/base.py; the names in the fit steps' parentheses are of lbsim/calibrate/steps.py "
     "FIT_STEPS", STAGE_COSTS),
    ("The rest of a cost file", "lbsim/costs.py: delays, spreads, cache size", COST_MODEL),
    ("Constants in the model's code", "module- and class-level ALL_CAPS numbers in lbsim/model/*.py",
     MODEL_CONSTANTS),
)


def all_params() -> tuple[Param, ...]:
    """Every entry of every section, in table order."""
    return tuple(p for _, _, ps in SECTIONS for p in ps)


def _is_constant_name(name: str) -> bool:
    bare = name.lstrip("_")
    return bool(bare) and bare[0].isalpha() and bare == bare.upper()


def _scan(body: list[ast.stmt], prefix: str, out: list[str]) -> None:
    for node in body:
        if isinstance(node, ast.ClassDef):
            _scan(node.body, f"{prefix}{node.name}.", out)
            continue
        if isinstance(node, ast.Assign):
            targets, value = [t.id for t in node.targets if isinstance(t, ast.Name)], node.value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            targets, value = [node.target.id], node.value
        else:
            continue
        numeric = any(isinstance(n, ast.Constant) and type(n.value) in (int, float) for n in ast.walk(value))
        out.extend(f"{prefix}{t}" for t in targets if numeric and _is_constant_name(t))


def model_constants(model_dir: Path | None = None) -> list[str]:
    """``module.NAME`` (or ``module.Class.NAME``) of every ALL_CAPS assignment in lbsim/model/*.py
    whose value is written with a number literal (a stage id such as ``SID["schedule"]`` is not)."""
    root = model_dir or Path(__file__).parent
    out: list[str] = []
    for path in sorted(root.glob("*.py")):
        _scan(ast.parse(path.read_text()).body, f"{path.stem}.", out)
    return out


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render_markdown() -> str:
    """The docs page (docs/guide/provenance.md): the kinds, then one table per section."""
    lines = ["# Where each parameter comes from", "",
             "Generated from `lbsim/model/provenance.py` by `render_markdown()`; `tests/test_provenance.py` "
             "checks that this page is current and that every parameter of the model is in it (every "
             "`SimConfig` field, every kernel-profile field, every stage, every number in a cost file, every "
             "ALL_CAPS number in `lbsim/model/*.py`). Every parameter is one of these kinds:", "",
             "| kind | meaning |", "|---|---|"]
    lines += [f"| {k} | {_cell(v)} |" for k, v in KINDS.items()]
    lines += ["", "No parameter is a knob-specific factor: a knob is a kernel setting (its default cited); a "
              "mechanism that acts when a knob is off its default uses the same fitted stage costs as at the "
              "default. A stage no default-grid point exercises takes the cost of a named stage "
              "(\"borrowed\" below).", ""]
    for title, intro, params in SECTIONS:
        lines += [f"## {title}", "", intro + ".", "", "| parameter | kind | source | note |", "|---|---|---|---|"]
        for p in params:
            kind = f"{p.kind} (borrowed)" if p.borrowed_from else p.kind
            lines.append(f"| `{p.name}` | {kind} | {_cell(p.source)} | {_cell(p.note)} |")
        lines.append("")
    lines += ["## Not parameters", "", "| name | why |", "|---|---|"]
    lines += [f"| `{k}` | {_cell(v)} |" for k, v in NOT_PARAMETERS.items()]
    return "\n".join(lines) + "\n"
