"""The kernel stages lbsim charges time to, and the groups the analysis sums them into.

Each stage is named after the kernel function (or the outermost function of the code it
stands for).  A stage's cost is ``fixed_ns + per_byte_ns * bytes`` (see
``lbsim.costs``); ``bytes`` is the payload the stage touches, 0 for per-packet work.

Groups (one table, used by the time-per-stage figures):

=============  ==================================================================
group          meaning
=============  ==================================================================
syscall        entry_SYSCALL_64 .. sysret, socket-layer dispatch, user loop
copy           copies between user memory and skbs (copy #1 and copy #2)
tcp / udp      protocol work: tcp_sendmsg, tcp_v4_rcv, ACKs, udp_sendmsg, udp_rcv
unix           AF_UNIX protocol work (locks, queueing, skb alloc)
ip             ip_output .. neigh_output, ip_rcv .. ip_local_deliver, fragments
device         dev_queue_xmit, loopback_xmit, netif_rx/enqueue_to_backlog
softirq        net_rx_action, process_backlog, __netif_receive_skb, RPS IPIs
wakeup         sock_def_readable, try_to_wake_up, schedule (context switch)
cache          socket state moving between CPU caches (cacheline_transfer)
=============  ==================================================================
"""

from __future__ import annotations

__all__ = ["STAGES", "STAGE_GROUP", "STAGE_DOC", "SID", "GROUPS", "OPTIONAL_STAGES", "N_CORE_STAGES",
           "LATE_CORE_STAGES"]

# name, group, what it stands for
_TABLE: tuple[tuple[str, str, str], ...] = (
    ("syscall", "syscall", "entry_SYSCALL_64 + __sys_sendto/__sys_recvfrom + return to user, per call"),
    ("tcp_sendmsg", "tcp", "tcp_sendmsg: lock_sock, tcp_sendmsg_locked bookkeeping, per call"),
    ("tcp_stream_alloc_skb", "tcp", "tcp_stream_alloc_skb + sk_wmem_schedule, per new skb"),
    ("skb_copy_to_page_nocache", "copy", "TCP copy #1, user -> page frags, per byte"),
    ("tcp_transmit_skb", "tcp", "tcp_write_xmit -> __tcp_transmit_skb: clone, header, per packet"),
    ("ip_output", "ip", "ip_queue_xmit/ip_send_skb -> ip_local_out -> ip_output -> neigh_output"),
    ("ip_fragment", "ip", "ip_do_fragment, per fragment"),
    ("skb_gso_segment", "device", "software GSO in validate_xmit_skb when lo has TSO off, per segment"),
    ("dev_queue_xmit", "device", "__dev_queue_xmit on the noqueue device -> dev_hard_start_xmit"),
    ("loopback_xmit", "device", "loopback_xmit: skb_orphan, eth_type_trans, lstats"),
    ("netif_rx", "device", "__netif_rx -> enqueue_to_backlog, napi_schedule"),
    ("net_rps_send_ipi", "softirq", "net_rps_send_ipi: IPI to the RPS target CPU"),
    ("net_rx_action", "softirq", "do_softirq -> net_rx_action -> napi_poll overhead, per run"),
    ("process_backlog", "softirq", "process_backlog -> __netif_receive_skb_core, per packet"),
    ("ip_rcv", "ip", "ip_rcv -> ip_rcv_finish -> ip_local_deliver, per packet"),
    ("ip_defrag", "ip", "ip_defrag: queue a fragment / reassemble, per fragment"),
    ("tcp_v4_rcv", "tcp", "tcp_v4_rcv -> tcp_rcv_established -> tcp_queue_rcv, per packet"),
    ("tcp_ack", "tcp", "tcp_ack -> tcp_clean_rtx_queue, per ACK-carrying packet"),
    ("tcp_add_backlog", "tcp", "tcp_add_backlog: queue on the owned socket's backlog"),
    ("tcp_send_ack", "tcp", "__tcp_send_ack: alloc + __tcp_transmit_skb of a pure ACK"),
    ("tcp_recvmsg", "tcp", "tcp_recvmsg: lock_sock, tcp_recvmsg_locked bookkeeping, per call"),
    ("tcp_cleanup_rbuf", "tcp", "tcp_cleanup_rbuf + tcp_rcv_space_adjust, per call"),
    ("tcp_delack_timer", "tcp", "tcp_delack_timer_handler (TIMER_SOFTIRQ)"),
    ("tcp_retransmit_timer", "tcp", "tcp_retransmit_timer: RTO, go back to snd_una"),
    ("udp_sendmsg", "udp", "udp_sendmsg -> ip_make_skb (skb alloc), per call"),
    ("ip_generic_getfrag", "copy", "UDP copy #1, user -> skb, per byte"),
    ("udp_rcv", "udp", "udp_rcv -> __udp4_lib_rcv -> __udp_enqueue_schedule_skb, per datagram"),
    ("udp_recvmsg", "udp", "udp_recvmsg -> __skb_recv_udp, per call"),
    ("unix_stream_sendmsg", "unix", "unix_stream_sendmsg: skb alloc, unix_state_lock, queue, per skb"),
    ("unix_dgram_sendmsg", "unix", "unix_dgram_sendmsg: skb alloc, peer lookup, qlen check, queue"),
    ("skb_copy_datagram_from_iter", "copy", "AF_UNIX copy #1, user -> skb, per byte"),
    ("unix_stream_recvmsg", "unix", "unix_stream_read_generic: iolock, unlink + consume_skb, per call"),
    ("unix_dgram_recvmsg", "unix", "__unix_dgram_recvmsg: iolock, dequeue, peer_wait wake-up"),
    ("skb_copy_datagram_msg", "copy", "copy #2, skb -> user, per byte (all transports)"),
    ("__kfree_skb", "tcp", "freeing a consumed TCP skb (skb_release_data, kfree_skbmem): by the reader, or "
     "deferred by skb_attempt_defer_free to the CPU that allocated it (skb_defer_free_flush in net_rx_action)"),
    ("kick_defer_list_purge", "softirq", "the IPI skb_attempt_defer_free sends when a remote CPU's defer list "
     "reaches skb_defer_max / 2, raising NET_RX there"),
    ("__alloc_pages", "unix",
     "one page-allocator call for an AF_UNIX skb (rmqueue_pcplist), per call in the send: a unix_stream "
     "skb's frag chunk (alloc_skb_with_frags, order <= 3; none up to SKB_MAX_HEAD(0) = 3776 B), a unix_dgram "
     "head above 8 KiB (kmalloc_large) and its frags past SKB_MAX_ALLOC"),
    ("__free_pages", "unix",
     "the reader's return of those pages when it frees the skb (skb_release_data -> put_page, "
     "free_large_kmalloc -> free_unref_page): per call"),
    ("sock_def_readable", "wakeup", "sk_data_ready / sk_write_space: wake_up on the socket wait queue"),
    ("try_to_wake_up", "wakeup", "try_to_wake_up of a task on this CPU (enqueue, check_preempt)"),
    ("ttwu_queue_wakelist", "wakeup", "try_to_wake_up of a task on another CPU: wakelist + IPI to a running CPU"),
    ("send_call_function_single_ipi", "wakeup",
     "the wake-up IPI to an idle (halted) CPU; in a VM it exits to the hypervisor to wake the vCPU"),
    ("schedule_timeout", "wakeup", "a task going to sleep: prepare_to_wait, dequeue_task, pick_next_task, "
     "charged to the task that blocks"),
    ("schedule", "wakeup", "context_switch to the next task, charged to the task switched in"),
    ("cacheline_transfer", "cache",
     "not a kernel function: the stall when a CPU touches an INET socket (lock, queue heads, memory "
     "counters, skb headers) that another CPU touched last; once per call or packet that does"),
    ("cacheline_transfer_unix", "cache",
     "the same for an AF_UNIX socket (peer receive queue and its lock, the writer's sk_wmem_alloc): "
     "fewer, different lines than a tcp_sock/udp_sock, so fitted on its own; in a unix_stream whose ends "
     "run on different CPUs, paid on every skb's send and read; a unix_dgram pays it for each of two "
     "objects, the peer's queue and the sender's sk_wmem_alloc and wait queue (docs/notes/cross-cpu.md)"),
    ("cache_to_cache_copy", "cache",
     "not a kernel function: per byte, the extra cost of the reader's copy of data written on another "
     "CPU: its cache lines come from that CPU's cache (every transport)"),
    ("cache_to_cache_write", "cache",
     "not a kernel function: per byte, the extra cost of the writer's copy into buffers the other CPU "
     "read and freed last: each line is taken over from that CPU's cache before it is written "
     "(read-for-ownership; every transport). Apart from the read's because each side's CPU time says "
     "they differ (docs/notes/side-busy.md)"),
    ("unix_find_other", "unix",
     "net/unix/af_unix.c unix_find_other -> unix_find_bsd: a unix_dgram send to an address (sendto with a "
     "path, the harness server's reply) looks the path up (kern_path, inode permission, the bound socket), "
     "holds the peer and puts it after the send, and __sys_sendto copies the address in; per addressed send"),
    # optional stages (OPTIONAL_STAGES): a cost file may lack them; only a switch that needs one runs it
    ("ep_send_events", "syscall",
     "fs/eventpoll.c ep_poll -> ep_send_events: ep_item_poll (the socket's poll: tcp_poll, udp_poll, "
     "unix_poll, unix_dgram_poll), the event copied to user space, a level-triggered item put back on "
     "rdllist; per call of ep_send_events (epoll_wait's entry/exit is the syscall stage)"),
    ("ep_poll_callback", "wakeup",
     "fs/eventpoll.c ep_poll_callback: the epoll entry on the socket's wait queue that sk_data_ready "
     "(sock_def_readable) runs: the item linked on rdllist, ep->wq woken (try_to_wake_up is its own stage)"),
)

#: stages that cost files may lack (measured by a newer ``lbsim measure`` than made them): a run that
#: needs one fails with one line on a cost file without it; the others never charge them
OPTIONAL_STAGES: tuple[str, ...] = ("ep_send_events", "ep_poll_callback")

STAGES: tuple[str, ...] = tuple(name for name, _, _ in _TABLE)
SID: dict[str, int] = {name: i for i, name in enumerate(STAGES)}
STAGE_GROUP: dict[str, str] = {name: group for name, group, _ in _TABLE}
STAGE_DOC: dict[str, str] = {name: doc for name, _, doc in _TABLE}
#: the stages before the optional ones: their random streams keep their place (lbsim.model.sim.Sim)
N_CORE_STAGES = len(STAGES) - len(OPTIONAL_STAGES)
assert STAGES[N_CORE_STAGES:] == OPTIONAL_STAGES
#: core stages added after the random streams' layout was fixed (the last core stages) -> the stage
#: whose cost a cost file from before it stands for: each draws from a stream past the optional
#: stages', so that adding one moves no other stage's draws (lbsim.model.sim), and an older file
#: reads it as that stage (lbsim.costs); None: such a file charged nothing for it (cost 0)
LATE_CORE_STAGES: dict[str, str | None] = {"cache_to_cache_write": "cache_to_cache_copy", "unix_find_other": None}
assert STAGES[N_CORE_STAGES - len(LATE_CORE_STAGES):N_CORE_STAGES] == tuple(LATE_CORE_STAGES)
GROUPS: tuple[str, ...] = ("syscall", "copy", "tcp", "udp", "unix", "ip", "device", "softirq", "wakeup", "cache")
