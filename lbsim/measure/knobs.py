"""The kernel and workload knobs a knob measurement varies: a registry.

Each :class:`Knob` names its results column, its scope, the kernel source it lives in and
how it is read and set:

- ``netns``: per network namespace.  Set only inside the private network + mount namespace
  a measurement creates (:mod:`.netns_run`), so they vanish with it, even on SIGKILL.  The
  loopback device is per namespace (drivers/net/loopback.c ``loopback_net_init``), so are its
  MTU, its features (TSO, net/ethtool/ioctl.c) and its rx-0 ``rps_cpus`` and ``rps_flow_cnt``
  (net/core/net-sysfs.c ``store_rps_map``); ``net.ipv4.tcp_{r,w}mem``
  (net/ipv4/sysctl_net_ipv4.c ``ipv4_net_table``), ``net.unix.max_dgram_qlen``
  (net/unix/sysctl_net_unix.c).  ``net.core.{r,w}mem_{default,max}`` are listed in a new
  namespace (net/core/sysctl_net_core.c ``netns_core_table``) but read-only there on
  6.18 (mode 0444 outside init_net): one host-wide value, so they are ``global`` here;
  :func:`netns_writable` checks a sysctl on the running kernel.
- ``global``: one value for the whole host (net/core/sysctl_net_core.c ``net_core_table``):
  changed only through the journal of :mod:`.knob_journal`, restored on every exit.
- ``socket``: socket options of the harness (net/core/sock.c ``sk_setsockopt``,
  net/ipv4/tcp.c ``TCP_NODELAY``): no root needed (``SO_BUSY_POLL`` has no capability
  check on 6.x: ``sk_setsockopt`` stores any value >= 0 in ``sk_ll_usec``).

``so_busy_poll``, ``busy_read`` and ``tcp_autocorking`` change nothing on lo (the kernel source
says why: docs/notes/noop-switches.md); they are measured to show it.
- ``workload``: the harness's shape (flows, senders, background spinner, SCHED_FIFO), and
  ``socktype``: ``seqpacket`` opens a ``SOCK_SEQPACKET`` pair where a unix_dgram run opens
  datagram sockets (net/unix/af_unix.c ``unix_seqpacket_ops``; docs/notes/seqpacket.md).
- ``workload``: the harness's shape (flows, senders, background spinner, SCHED_FIFO, batch
  calls: docs/notes/batch.md).

The ``/proc/sys`` root is injectable (``proc_sys``) so tests exercise everything on a fake
directory tree.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass

from .netns_run import COUNTERS, PROC_SYS, counter_delta, read_counters, read_sysctl, sysctl_path, write_sysctl  # noqa: F401

__all__ = ["Knob", "KNOBS", "KnobError", "knob", "parse_value", "sysctl_path", "read_sysctl",
           "write_sysctl", "read_counters", "counter_delta", "netns_writable",
           "can_netns", "is_root", "PROC_SYS", "COUNTERS"]

_log = logging.getLogger("lbsim.measure")

Value = int | str


class KnobError(ValueError):
    """A bad knob name or value; the message is one line naming the knob and what is allowed."""


@dataclass(frozen=True)
class Knob:
    name: str              # the name on the command line and in grid files
    column: str            # the results column
    scope: str             # netns | global | socket | workload
    source: str            # the kernel source file it lives in
    how: str               # how it is read and set
    allowed: str           # what values are allowed, for error messages
    parse: Callable[[str], Value]
    sysctl: str | None = None   # dotted sysctl name, for sysctl knobs
    root: bool = False             # setting it needs root (and, for netns, unshare)
    default: Value | None = None  # workload/socket default; sysctls: the host's value


def _int_in(lo: int, hi: int) -> Callable[[str], int]:
    def p(s: str) -> int:
        v = int(str(s).strip(), 0)
        if not lo <= v <= hi:
            raise ValueError(s)
        return v
    return p


def _choice(*names: str) -> Callable[[str], str]:
    def p(s: str) -> str:
        s = str(s).strip().lower()
        if s not in names:
            raise ValueError(s)
        return s
    return p


def _onoff(s: str) -> str:
    s = str(s).strip().lower()
    return {"1": "on", "true": "on", "on": "on", "0": "off", "false": "off", "off": "off"}[s]


def _triple(s: str) -> str:
    parts = str(s).replace(",", " ").split()
    if len(parts) != 3 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise ValueError(s)
    return " ".join(parts)


def _mask(s: str) -> str:
    s = str(s).strip().lower()
    if s in ("receiver", "all", "off"):
        return s
    int(s, 16)   # a hex CPU mask as sysfs takes it
    return s


_NET_CORE = "net/core/sysctl_net_core.c"
KNOBS: dict[str, Knob] = {k.name: k for k in (
    Knob("mtu", "mtu", "netns", "drivers/net/loopback.c, net/core/dev.c dev_set_mtu",
         "ip link set lo mtu V (read /sys/class/net/lo/mtu)", "an integer 68..65536",
         _int_in(68, 65536), root=True),
    Knob("tso", "tso", "netns", "drivers/net/loopback.c (NETIF_F_TSO), net/ethtool/ioctl.c",
         "SIOCETHTOOL ETHTOOL_GTSO/ETHTOOL_STSO on lo", "on or off", _onoff, root=True),
    Knob("rps_cpus", "rps_cpus", "netns", "net/core/net-sysfs.c store_rps_map, net/core/dev.c get_rps_cpu",
         "/sys/class/net/lo/queues/rx-0/rps_cpus (sysfs mounted in the private namespace)",
         "off, receiver (the receiver's CPU), all, or a hex CPU mask", _mask, root=True),
    Knob("rmem_default", "rmem_default", "global", _NET_CORE, "sysctl net.core.rmem_default (journaled)",
         "an integer 256..2147483647", _int_in(256, 2**31 - 1), "net.core.rmem_default", True),
    Knob("wmem_default", "wmem_default", "global", _NET_CORE, "sysctl net.core.wmem_default (journaled)",
         "an integer 256..2147483647", _int_in(256, 2**31 - 1), "net.core.wmem_default", True),
    Knob("rmem_max", "rmem_max", "global", _NET_CORE, "sysctl net.core.rmem_max (journaled)",
         "an integer 256..2147483647", _int_in(256, 2**31 - 1), "net.core.rmem_max", True),
    Knob("wmem_max", "wmem_max", "global", _NET_CORE, "sysctl net.core.wmem_max (journaled)",
         "an integer 256..2147483647", _int_in(256, 2**31 - 1), "net.core.wmem_max", True),
    Knob("tcp_rmem", "tcp_rmem", "netns", "net/ipv4/sysctl_net_ipv4.c", "sysctl net.ipv4.tcp_rmem",
         "three positive integers 'min default max'", _triple, "net.ipv4.tcp_rmem", True),
    Knob("tcp_wmem", "tcp_wmem", "netns", "net/ipv4/sysctl_net_ipv4.c", "sysctl net.ipv4.tcp_wmem",
         "three positive integers 'min default max'", _triple, "net.ipv4.tcp_wmem", True),
    Knob("max_dgram_qlen", "unix_max_dgram_qlen", "netns", "net/unix/sysctl_net_unix.c, net/unix/af_unix.c",
         "sysctl net.unix.max_dgram_qlen", "an integer 0..2147483647", _int_in(0, 2**31 - 1),
         "net.unix.max_dgram_qlen", True),
    Knob("netdev_max_backlog", "netdev_max_backlog", "global", _NET_CORE + ", net/core/dev.c enqueue_to_backlog",
         "sysctl net.core.netdev_max_backlog (journaled)", "an integer 1..2147483647",
         _int_in(1, 2**31 - 1), "net.core.netdev_max_backlog", True),
    Knob("dev_weight", "dev_weight", "global", _NET_CORE + ", net/core/dev.c process_backlog",
         "sysctl net.core.dev_weight (journaled)", "an integer 1..2147483647",
         _int_in(1, 2**31 - 1), "net.core.dev_weight", True),
    Knob("netdev_budget", "netdev_budget", "global", _NET_CORE + ", net/core/dev.c net_rx_action",
         "sysctl net.core.netdev_budget (journaled)", "an integer 1..2147483647",
         _int_in(1, 2**31 - 1), "net.core.netdev_budget", True),
    Knob("rps_sock_flow_entries", "rps_sock_flow_entries", "global", _NET_CORE + " rps_sock_flow_sysctl",
         "sysctl net.core.rps_sock_flow_entries (journaled)", "an integer 0..2147483647",
         _int_in(0, 2**31 - 1), "net.core.rps_sock_flow_entries", True),
    Knob("busy_read", "busy_read", "global", _NET_CORE + ", net/core/sock.c sock_init_data (sk_ll_usec)",
         "sysctl net.core.busy_read (journaled)", "an integer 0..2147483647 (us)",
         _int_in(0, 2**31 - 1), "net.core.busy_read", True),
    Knob("tcp_autocorking", "tcp_autocorking", "netns",
         "net/ipv4/sysctl_net_ipv4.c, net/ipv4/tcp.c tcp_should_autocork",
         "sysctl net.ipv4.tcp_autocorking", "0 or 1", _int_in(0, 1), "net.ipv4.tcp_autocorking", True),
    Knob("so_busy_poll", "so_busy_poll", "socket", "net/core/sock.c sk_setsockopt (SO_BUSY_POLL), "
         "include/net/busy_poll.h sk_busy_loop", "harness --busy-poll US on every socket",
         "an integer 0..2147483647 (us) or default", _int_in(0, 2**31 - 1), default="default"),
    Knob("so_rcvbuf", "so_rcvbuf", "socket", "net/core/sock.c sk_setsockopt (SO_RCVBUF)",
         "harness --rcvbuf N on every socket", "an integer 1..1073741824 or default",
         _int_in(1, 1 << 30), default="default"),
    Knob("so_sndbuf", "so_sndbuf", "socket", "net/core/sock.c sk_setsockopt (SO_SNDBUF)",
         "harness --sndbuf N on every socket", "an integer 1..1073741824 or default",
         _int_in(1, 1 << 30), default="default"),
    Knob("tcp_nodelay", "tcp_nodelay", "socket", "net/ipv4/tcp.c (TCP_NODELAY), net/ipv4/tcp_output.c tcp_nagle_test",
         "harness sets TCP_NODELAY unless --nagle", "1 (Nagle off, the default) or 0 (Nagle on)",
         _int_in(0, 1), default=1),
    # MSG_ZEROCOPY (docs/notes/zerocopy-rfs.md): on lo a deferred copy in the receive path
    Knob("zerocopy", "zerocopy", "socket", "net/ipv4/tcp.c tcp_sendmsg_locked, net/ipv4/ip_output.c "
         "__ip_append_data, net/core/dev.c skb_orphan_frags_rx, net/core/skbuff.c __msg_zerocopy_callback",
         "harness --zerocopy (SO_ZEROCOPY, MSG_ZEROCOPY on every send, errqueue reaped)",
         "on or off (tcp and udp only)", _onoff, default="off"),
    # RFS: lo rx-0's flow table, with net.core.rps_sock_flow_entries (docs/notes/zerocopy-rfs.md)
    Knob("rps_flow_cnt", "rps_flow_cnt", "netns", "net/core/net-sysfs.c store_rps_dev_flow_table_cnt, "
         "net/core/dev.c get_rps_cpu", "/sys/class/net/lo/queues/rx-0/rps_flow_cnt (sysfs mounted in the "
         "private namespace)", "an integer 0..536870912", _int_in(0, 1 << 29), root=True),
    Knob("flows", "flows", "workload", "-", "harness --flows N", "an integer 1..64",
         _int_in(1, 64), default=1),
    Knob("senders", "senders", "workload", "-", "harness --senders N (udp/unix_dgram streams)",
         "1 or 2", _int_in(1, 2), default=1),
    Knob("background", "background", "workload", "-", "harness --busy-cpu (the receiver's CPU)",
         "idle or busy", _choice("idle", "busy"), default="idle"),
    Knob("policy", "policy", "workload", "kernel/sched/core.c sched_setscheduler",
         "harness --policy", "other or fifo", _choice("other", "fifo"), default="other"),
    Knob("socktype", "socktype", "workload", "net/unix/af_unix.c unix_seqpacket_ops, unix_seqpacket_sendmsg, "
         "unix_dgram_sendmsg", "harness --transport unix_seqpacket in place of unix_dgram (unix_dgram runs only)",
         "default or seqpacket", _choice("seqpacket"), default="default"),
    Knob("batch", "batch", "workload", "net/socket.c __sys_sendmmsg, do_recvmmsg; net/ipv4/tcp.c tcp_push (MSG_MORE)",
         "harness --batch N (streams: udp/unix_dgram sendmmsg + recvmmsg, tcp/unix_stream MSG_MORE)",
         "an integer 1..64", _int_in(1, 64), default=1),
    Knob("receiver", "receiver", "workload", "fs/eventpoll.c ep_poll, ep_send_events, ep_poll_callback",
         "harness --epoll (every receiving side waits in epoll_wait, then recv)", "blocking or epoll",
         _choice("blocking", "epoll"), default="blocking"),
)}


def knob(name: str) -> Knob:
    """The registry's knob ``name``, or KnobError naming the allowed ones."""
    try:
        return KNOBS[name]
    except KeyError:
        raise KnobError(f"unknown knob {name!r}; allowed: {', '.join(KNOBS)}") from None


def parse_value(name: str, raw) -> Value:
    """One value of knob ``name`` (``default`` stays ``default``), or a one-line KnobError."""
    k = knob(name)
    if str(raw).strip().lower() == "default":
        return "default"
    try:
        return k.parse(str(raw))
    except (ValueError, KeyError):
        raise KnobError(f"knob {name}: bad value {raw!r}; allowed: {k.allowed}") from None


def is_root() -> bool:
    return os.geteuid() == 0


def can_netns() -> bool:
    """Whether a private network namespace can be made (root and ``unshare`` present)."""
    return is_root() and shutil.which("unshare") is not None and shutil.which("ip") is not None


def netns_writable(name: str) -> bool | None:
    """Whether sysctl ``name`` can be set inside a fresh network namespace (a per-namespace
    knob): the global ones are absent there (registered for init_net only) or read-only
    (rmem_default and friends on 6.18).  Only looks (``test -w``); None if no namespace can
    be made."""
    if not can_netns():
        return None
    r = subprocess.run(["unshare", "--net", "--", "test", "-w", str(sysctl_path(name))],
                       capture_output=True, text=True, timeout=20)
    return r.returncode == 0


