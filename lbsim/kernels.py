"""Kernel profiles: the parameters and behaviours of one kernel, with their sources.

A profile answers "what does this kernel do by default": sysctl values under their
kernel names, device settings of ``lo``, and the few behaviours that changed between
the source notes' kernel (2.6.32) and a modern one (6.12).  ``host`` reads every value
that has a file under ``/proc/sys/net`` or ``/sys/class/net/lo`` from this machine.

Sources are given beside each default: paths are relative to the kernel tree.
"""

from __future__ import annotations

import dataclasses
import platform
import re
from dataclasses import dataclass
from pathlib import Path

from lbsim.model.tcp_cc import CONGESTION_CONTROLS

__all__ = ["KernelParams", "KERNELS", "kernel_profile", "host_kernel", "release_profile", "HOST_FILES",
           "setsockopt_buf"]

#: include/linux/limits.h INT_MAX: sock_setsockopt caps a request at INT_MAX / 2 so that x 2 fits an int
_INT_MAX = 2**31 - 1


def setsockopt_buf(request: int, sysctl_max: int, minimum: int) -> int:
    """sk_rcvbuf / sk_sndbuf after SO_RCVBUF / SO_SNDBUF (net/core/sock.c sk_setsockopt ->
    __sock_set_rcvbuf; SO_SNDBUF likewise): min(request, rmem_max / wmem_max), capped at
    INT_MAX / 2, doubled ("to account for struct sk_buff etc. overhead"), then at least
    SOCK_MIN_RCVBUF / SOCK_MIN_SNDBUF."""
    val = min(request, sysctl_max, _INT_MAX // 2)
    return max(val * 2, minimum)


@dataclass(frozen=True, slots=True)
class KernelParams:
    """One kernel's parameters.  Sysctl names are kept verbatim."""

    name: str
    # --- lo device -----------------------------------------------------------------
    #: drivers/net/loopback.c loopback_setup(): 64*1024 since 0cf833aefaa8 (v3.7);
    #: (16*1024)+20+20+12 = 16436 in 2.6.32 (seed notes).
    mtu: int = 65536
    #: lo advertises NETIF_F_GSO_SOFTWARE (TSO) (loopback.c gen_lo_setup); ``ethtool -K lo tso off``.
    tso: bool = True
    #: include/linux/netdevice.h GSO_LEGACY_MAX_SIZE = 65536 (sk_gso_max_size on lo).
    gso_max_size: int = 65536
    #: RPS on lo's rx-0 queue: /sys/class/net/lo/queues/rx-0/rps_cpus, default 0 (off): net/core/dev.c
    #: netif_rx_internal() asks get_rps_cpu() only when RPS is configured, else the sending CPU.
    rps_cpus: int = 0
    # --- per-CPU backlog and NET_RX softirq ------------------------------------------------
    #: net/core/hotdata.c .max_backlog = 1000; the test in enqueue_to_backlog is ``qlen <= max``.
    netdev_max_backlog: int = 1000
    #: net/core/dev.c weight_p = 64 (process_backlog quota per poll).
    dev_weight: int = 64
    #: net/core/hotdata.c .netdev_budget = 300 packets per net_rx_action run.
    netdev_budget: int = 300
    #: net/core/hotdata.c .netdev_budget_usecs = 2 * USEC_PER_SEC / HZ (2 jiffies).
    netdev_budget_usecs: int = 8000
    #: CONFIG_HZ; the kernel-path.md [M] VM runs HZ=250.
    hz: int = 250
    #: kernel/softirq.c MAX_SOFTIRQ_RESTART = 10, MAX_SOFTIRQ_TIME = 2 ms, then ksoftirqd.
    max_softirq_restart: int = 10
    max_softirq_time_ns: int = 2_000_000
    #: net/core/hotdata.c .sysctl_skb_defer_max = 64 (net.core.skb_defer_max, 5.19+): how many skbs
    #: a CPU may queue for freeing by the CPU that allocated them (skb_attempt_defer_free); 0 = off.
    skb_defer_max: int = 64
    #: net/ipv4/udp.c skb_consume_udp() -> skb_attempt_defer_free() (6.18+, "udp: use
    #: skb_attempt_defer_free()"): a reader on another CPU than the one that allocated the
    #: datagram's skb hands it back there, as TCP's tcp_eat_recv_skb() has since 5.19; before, the
    #: reader freed it.  Traced on 6.18 (AMD guest, 2026-12-07): skb:consume_skb from
    #: skb_defer_free_flush on the writer's CPU, 1.0 per datagram of a cross-CPU stream.
    udp_defer_free: bool = False
    # --- scheduler -----------------------------------------------------------------------------
    #: kernel/sched/fair.c normalized_sysctl_sched_base_slice = 750000 ns (EEVDF, 6.6+), scaled
    #: by 1 + ilog2(min(ncpus, 8)) at boot; 2.6.32's CFS sched_min_granularity was also 0.75 ms
    sched_base_slice_ns: int = 750_000
    #: kernel/sched/features.h SCHED_FEAT(DELAY_DEQUEUE, true), with DELAY_ZERO (6.12+): a task
    #: that sleeps while not eligible stays queued until its lag is paid back.
    sched_delay_dequeue: bool = True
    # --- socket buffers ----------------------------------------------------------------------
    #: include/net/sock.h SK_RMEM_MAX / SK_WMEM_MAX = 212992 (net.core.{r,w}mem_default).
    rmem_default: int = 212992
    wmem_default: int = 212992
    #: net.core.rmem_max / wmem_max: net/core/sock.c sysctl_rmem_max = SK_RMEM_MAX, sysctl_wmem_max =
    #: SK_WMEM_MAX (212992); the ceiling of an SO_RCVBUF / SO_SNDBUF request (:func:`setsockopt_buf`).
    rmem_max: int = 212992
    wmem_max: int = 212992
    #: include/net/sock.h SOCK_MIN_RCVBUF = TCP_SKB_MIN_TRUESIZE = 2048 + SKB_DATA_ALIGN(sizeof(struct
    #: sk_buff)) = 2048 + 256 on x86-64; SOCK_MIN_SNDBUF = 2 x that: the floor of a SO_*BUF request.
    sock_min_rcvbuf: int = 2304
    sock_min_sndbuf: int = 4608
    #: net/ipv4/tcp.c tcp_init(): tcp_rmem = 4096 131072 min(6 MiB, mem/128).
    tcp_rmem: tuple[int, int, int] = (4096, 131072, 6291456)
    #: net/ipv4/tcp.c tcp_init(): tcp_wmem = 4096 16384 min(4 MiB, mem/128).
    tcp_wmem: tuple[int, int, int] = (4096, 16384, 4194304)
    #: net/ipv4/tcp_ipv4.c tcp_sk_init: tcp_autocorking = 1 (inert on lo:
    #: drivers/net/loopback.c loopback_xmit -> skb_orphan runs tcp_wfree at once, so
    #: net/ipv4/tcp.c tcp_should_autocork never sees sk_wmem_alloc > truesize).
    tcp_autocorking: int = 1
    #: net/core/sock.c sysctl_net_busy_read = 0 (net.core.busy_read, net/core/sysctl_net_core.c):
    #: sock_init_data() copies it into sk_ll_usec, the SO_BUSY_POLL default.  Inert on lo:
    #: include/net/busy_poll.h sk_busy_loop() polls only a NAPI id >= MIN_NAPI_ID, and the lo
    #: backlog's NAPI (net/core/dev.c process_backlog) has none (docs/notes/noop-switches.md).
    busy_read: int = 0
    #: RFS: net.core.rps_sock_flow_entries = 0 (net/core/sysctl_net_core.c rps_sock_flow_sysctl:
    #: the global sock flow table, off) and lo rx-0's rps_flow_cnt = 0 (net/core/net-sysfs.c
    #: store_rps_dev_flow_table_cnt: the queue's flow table, none).  net/core/dev.c get_rps_cpu()
    #: steers to the CPU the application last used the socket on only when both are set.
    rps_sock_flow_entries: int = 0
    rps_flow_cnt: int = 0
    #: net.ipv4.tcp_congestion_control: net/ipv4/Kconfig DEFAULT_TCP_CONG = "cubic" (kernels built
    #: with CONFIG_DEFAULT_BBR say "bbr"; lbsim.model.tcp_cc models "cubic", "reno" and "bbr").
    tcp_congestion_control: str = "cubic"
    #: include/net/tcp.h TCP_INIT_CWND = 10.
    tcp_init_cwnd: int = 10
    #: include/net/tcp.h TCP_MAX_QUICKACKS = 16.
    tcp_max_quickacks: int = 16
    #: include/net/tcp.h TCP_DELACK_MIN = HZ/25 (40 ms); TCP_ATO_MIN likewise.
    tcp_delack_min_ns: int = 40_000_000
    #: include/net/tcp.h TCP_RTO_MIN = HZ/5; sysctl tcp_rto_min_us = 200000.
    tcp_rto_min_us: int = 200000
    #: net/ipv4/tcp_ipv4.c tcp_limit_output_bytes = 1 MiB in 6.12 (TSQ,
    #: net/ipv4/tcp_output.c tcp_small_queue_check; inert on lo: loopback_xmit's skb_orphan).
    tcp_limit_output_bytes: int = 1048576
    #: include/net/tcp.h TCP_DEFAULT_SCALING_RATIO: window = 50% of rcvbuf until learned (6.7+).
    tcp_default_scaling_ratio: float = 0.5
    # --- AF_UNIX ----------------------------------------------------------------------------------
    #: net/unix/af_unix.c unix_net_init(): max_dgram_qlen = 10 (systemd raises it to 512).
    unix_max_dgram_qlen: int = 10
    #: af_unix.c unix_stream_sendmsg: SKB_MAX_HEAD(0) + UNIX_SKB_FRAGS_SZ = 3776 + 32768 (paged skbs
    #: since 2013); 2.6.32 used linear skbs capped at SKB_MAX_ALLOC = 16384 - 320.
    unix_stream_max_skb_bytes: int = 36544
    # --- behaviours that differ between kernels ----------------------------------------------------
    #: UDP receive-buffer rule (__udp_enqueue_schedule_skb):
    #:   "le"      drop iff rmem > rcvbuf (6.12: "always allow at least one packet for small buffer")
    #:   "empty"   drop iff rmem + truesize > rcvbuf and rmem != 0 (late 2025, "Accept the packet if
    #:             queue is empty"; measured on 6.18: exactly 256 x 832 B fit in 212992)
    #:   "ge"      drop iff rmem + truesize >= rcvbuf (2.6.32 sock_queue_rcv_skb)
    udp_rcvbuf_rule: str = "le"
    #: skb truesize overhead per skb: SKB_TRUESIZE(0) = SKB_DATA_ALIGN(sizeof(struct sk_buff))
    #: + SKB_DATA_ALIGN(sizeof(struct skb_shared_info)) = 256 + 320 = 576 on x86-64 (include/net/sock.h
    #: SK_RMEM_MAX: 212992 = 256 x SKB_TRUESIZE(256) = 256 x 832).
    skb_truesize_overhead: int = 576

    def replace(self, **changes: object) -> KernelParams:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    @property
    def tcp_mss(self) -> int:
        """MSS with timestamps: min(mtu - 40, IPV4_MAX_PMTU - 40) - 12 (route.c ipv4_default_advmss)."""
        return min(self.mtu - 40, 65535 - 40) - 12

    @property
    def udp_max_payload(self) -> int:
        """IPv4 datagram limit: 65535 - 20 (IP) - 8 (UDP) = 65507 bytes."""
        return 65535 - 28

    @property
    def unix_dgram_max_bytes(self) -> int:
        """af_unix.c unix_dgram_sendmsg: len > sk_sndbuf - 32 -> EMSGSIZE."""
        return self.wmem_default - 32


LINUX_6_12 = KernelParams(name="linux-6.12")

#: 6.18: the kernel of the measured hosts.  Two UDP receive-path changes since 6.12, both traced
#: or measured on it: the receive-buffer test accepts a packet into an empty queue
#: ("udp: Accept the packet if queue is empty"), and the reader defers the skb's free to the CPU
#: that allocated it (udp_defer_free).  Everything else as 6.12.
LINUX_6_18 = dataclasses.replace(LINUX_6_12, name="linux-6.18", udp_rcvbuf_rule="empty", udp_defer_free=True)

LINUX_2_6_32 = KernelParams(
    name="linux-2.6.32",
    mtu=16436,  # seed notes: loopback_setup dev->mtu = (16 * 1024) + 20 + 20 + 12
    gso_max_size=65536,  # GSO_MAX_SIZE 65536 (include/linux/netdevice.h, 2.6.32)
    netdev_budget_usecs=2 * 1_000_000 // 250,  # net_rx_action: time_limit = jiffies + 2 (hard-coded)
    # 2.6.32 include/net/sock.h SK_RMEM_MAX = 256 * (sizeof(struct sk_buff) + 256) = 256 * 488
    # with a 232-byte sk_buff: the 124928 that CentOS 6 shows in net.core.rmem_default [U].
    rmem_default=124928,
    wmem_default=124928,
    rmem_max=124928,  # sysctl_rmem_max = SK_RMEM_MAX (net/core/sock.c, 2.6.32)
    wmem_max=124928,
    sock_min_rcvbuf=256,  # 2.6.32 include/net/sock.h #define SOCK_MIN_RCVBUF 256
    sock_min_sndbuf=2048,  # ... #define SOCK_MIN_SNDBUF 2048
    tcp_rmem=(4096, 87380, 4194304),  # 2.6.32 net/ipv4/tcp.c tcp_init typical values
    tcp_wmem=(4096, 16384, 4194304),
    tcp_init_cwnd=3,  # RFC 3390 initial window; TCP_INIT_CWND 10 (include/net/tcp.h) came in 2.6.39 [U]
    tcp_limit_output_bytes=0,  # no TSQ before 46d3ceabd8d9 (v3.6)
    tcp_default_scaling_ratio=0.5,  # tcp_win_from_space with tcp_adv_win_scale = 2 gives 75%; see docs
    unix_max_dgram_qlen=10,
    unix_stream_max_skb_bytes=16384 - 320,  # linear skbs <= SKB_MAX_ALLOC before 2013
    # (net/unix/af_unix.c unix_stream_sendmsg; paged from "af_unix: improve STREAM behavior with fragmented memory")
    udp_rcvbuf_rule="ge",
    sched_delay_dequeue=False,  # CFS, no EEVDF features
    skb_defer_max=0,  # no skb_attempt_defer_free before 68822bdf76f1 (v5.19): the reader frees
    # 2.6.32 __alloc_skb: truesize = SKB_DATA_ALIGN(size) + sizeof(struct sk_buff); shared info
    # not counted [U: read from 2.6.32 net/core/skbuff.c excerpts].
    skb_truesize_overhead=232,
)

KERNELS: dict[str, KernelParams] = {k.name: k for k in (LINUX_6_12, LINUX_6_18, LINUX_2_6_32)}

#: sysctl / sysfs files read by ``host`` (field -> path).
HOST_FILES: dict[str, str] = {
    "mtu": "/sys/class/net/lo/mtu",
    "rps_cpus": "/sys/class/net/lo/queues/rx-0/rps_cpus",
    "gso_max_size": "/sys/class/net/lo/gso_max_size",
    "netdev_max_backlog": "/proc/sys/net/core/netdev_max_backlog",
    "dev_weight": "/proc/sys/net/core/dev_weight",
    "skb_defer_max": "/proc/sys/net/core/skb_defer_max",
    "netdev_budget": "/proc/sys/net/core/netdev_budget",
    "netdev_budget_usecs": "/proc/sys/net/core/netdev_budget_usecs",
    "rmem_default": "/proc/sys/net/core/rmem_default",
    "wmem_default": "/proc/sys/net/core/wmem_default",
    "rmem_max": "/proc/sys/net/core/rmem_max",
    "wmem_max": "/proc/sys/net/core/wmem_max",
    "tcp_rmem": "/proc/sys/net/ipv4/tcp_rmem",
    "tcp_wmem": "/proc/sys/net/ipv4/tcp_wmem",
    "tcp_autocorking": "/proc/sys/net/ipv4/tcp_autocorking",
    "busy_read": "/proc/sys/net/core/busy_read",
    "rps_sock_flow_entries": "/proc/sys/net/core/rps_sock_flow_entries",
    "rps_flow_cnt": "/sys/class/net/lo/queues/rx-0/rps_flow_cnt",
    "tcp_congestion_control": "/proc/sys/net/ipv4/tcp_congestion_control",
    "tcp_limit_output_bytes": "/proc/sys/net/ipv4/tcp_limit_output_bytes",
    "tcp_rto_min_us": "/proc/sys/net/ipv4/tcp_rto_min_us",
    "unix_max_dgram_qlen": "/proc/sys/net/unix/max_dgram_qlen",
}


def _parse_host_value(field: str, text: str) -> object:
    text = text.strip()
    if field == "rps_cpus":
        return int(text.replace(",", ""), 16)
    if field == "tcp_congestion_control":
        return text
    if field in ("tcp_rmem", "tcp_wmem"):
        a, b, c = (int(x) for x in text.split())
        return (a, b, c)
    return int(text)


def _kernel_release_tuple(release: str) -> tuple[int, int]:
    m = re.match(r"(\d+)\.(\d+)", release)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def release_profile(release: str) -> KernelParams:
    """The profile whose behaviours a kernel release has: ``linux-6.18`` from 6.18 on, else
    ``linux-6.12`` (the only two modern profiles; an unreadable release counts as older)."""
    return LINUX_6_18 if _kernel_release_tuple(release) >= (6, 18) else LINUX_6_12


def host_kernel(root: str = "/") -> KernelParams:
    """Read this machine's values; fields without a readable file keep the 6.12 default."""
    values: dict[str, object] = {}
    for field, path in HOST_FILES.items():
        p = Path(root) / path.lstrip("/")
        try:
            values[field] = _parse_host_value(field, p.read_text())
        except (OSError, ValueError):
            continue
    if "netdev_budget_usecs" in values:
        # netdev_budget_usecs defaults to 2 jiffies, so HZ = 2e6 / value when it is untouched.
        usecs = int(values["netdev_budget_usecs"])  # type: ignore[call-overload]  # an int for this field
        if usecs > 0 and 2_000_000 % usecs == 0 and 2_000_000 // usecs in (100, 250, 300, 1000):
            values["hz"] = 2_000_000 // usecs
    if values.get("tcp_congestion_control") not in (None, *CONGESTION_CONTROLS):
        del values["tcp_congestion_control"]  # an algorithm lbsim does not model: the default (cubic)
    release = platform.release()
    # the behaviours without a file (the UDP receive-buffer rule, the deferred UDP free) are the
    # release's profile's; tcp_limit_output_bytes 4 MiB from 6.16 is read from its file above
    base = release_profile(release)
    return dataclasses.replace(base, name=f"host ({release})", **values)  # type: ignore[arg-type]


def kernel_profile(name: str) -> KernelParams:
    """Return the named profile: ``linux-6.12``, ``linux-6.18``, ``linux-2.6.32`` or ``host``."""
    if name == "host":
        return host_kernel()
    try:
        return KERNELS[name]
    except KeyError:
        raise ValueError(f"unknown kernel {name!r}; allowed: {', '.join([*KERNELS, 'host'])}") from None

