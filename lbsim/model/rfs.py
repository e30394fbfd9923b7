"""RFS beside RPS: the backlog a packet goes to follows the CPU its socket was last used on.

Kernel functions modelled (6.18):

``sock_rps_record_flow``   (include/net/rps.h; called from inet_recvmsg and inet_sendmsg) with
                           ``rfs_needed`` (net.core.rps_sock_flow_entries > 0) and the socket in
                           TCP_ESTABLISHED (a connected UDP socket is too): writes
                           ``sk_rxhash | this CPU`` into the global sock flow table.
                           ``sk_rxhash`` is saved when the socket receives a packet
                           (``sock_rps_save_rxhash``); before that it is 0 and nothing is recorded.
``get_rps_cpu``            (net/core/dev.c) with the sock flow table and lo rx-0's flow table
                           (``rps_flow_cnt``) both present: when the table's entry matches the
                           packet's hash, the wanted CPU is the recorded one; the rx-queue entry's
                           CPU changes to it only when that CPU's backlog has moved past the last
                           packet queued through the entry (``input_queue_head - last_qtail >=
                           0``: ``set_rps_cpu``), so a flow never overtakes itself.  No match:
                           ``rps_cpus`` by flow hash (RPS), or the current CPU.
``enqueue_to_backlog``     stores the backlog's tail counter in the entry (``rflow->last_qtail``).

The tables are indexed by hash; here by the receiving socket (a run has a few flows, the
tables 32768 and 4096 entries: collisions are left out).  A UDP socket that is not connected
(the harness's receiver with ``--senders 2``) is not TCP_ESTABLISHED, so it records nothing.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Rfs"]


class Rfs:
    """The sock flow table and lo rx-0's flow table of one host."""

    __slots__ = ("wanted", "rflow", "seen")

    def __init__(self) -> None:
        self.wanted: dict[Any, int] = {}  # socket -> CPU recorded by sock_rps_record_flow
        self.rflow: dict[Any, list[int]] = {}  # socket -> [cpu, last_qtail] (rps_dev_flow)
        self.seen: set[Any] = set()  # sockets whose sk_rxhash is set (a packet arrived)

    def record(self, sock: Any, cpu: int) -> None:
        """sock_rps_record_flow from a recvmsg/sendmsg on ``cpu``."""
        if sock in self.seen and getattr(sock, "rfs_established", True):
            self.wanted[sock] = cpu

    def steer(self, sock: Any, cpus: list[Any]) -> int | None:
        """get_rps_cpu's RFS part: the CPU index, or None (try RPS)."""
        want = self.wanted.get(sock)
        if want is None:
            return None
        rf = self.rflow.get(sock)
        if rf is None:
            rf = self.rflow[sock] = [-1, 0]
        tcpu = rf[0]
        if tcpu != want and (tcpu < 0 or cpus[tcpu].processed - rf[1] >= 0):
            rf[0] = tcpu = want  # set_rps_cpu
        return tcpu

    def queued(self, sock: Any, cpu: Any) -> None:
        """enqueue_to_backlog's qtail for the entry (input_queue_tail after this packet)."""
        rf = self.rflow.get(sock)
        if rf is not None and rf[0] == cpu.idx:
            rf[1] = cpu.processed + len(cpu.input_pkt_queue) + len(cpu.process_queue)
