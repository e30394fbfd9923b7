"""TCP's timers: retransmission and delayed ACK (net/ipv4/tcp_timer.c).

Models ``inet_csk_reset_xmit_timer`` (arming, on a LazyTimer: lbsim.model.timers),
``tcp_delack_timer``/``tcp_delack_timer_handler`` and ``tcp_retransmit_timer`` ->
``tcp_enter_loss`` (net/ipv4/tcp_input.c: cwnd = 1, back to ``snd_una``).  A timer that
fires while the socket is owned by its task is deferred to ``release_sock``
(``TCP_DELACK_TIMER_DEFERRED``, ``TCP_WRITE_TIMER_DEFERRED``; ``tcp_release_cb``).  The
timer's softirq work runs in the TIMER softirq of lbsim.model.netdev (``Net.add_timer``).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from lbsim.model.stages import SID

if TYPE_CHECKING:
    from lbsim.model.cpu import CPU
    from lbsim.model.tcp_state import TcpState
else:  # TcpSock.__slots__ holds the state; TcpState declares it for mypy
    TcpState = object

__all__ = ["TcpTimers"]

S_DELACK_TIMER = SID["tcp_delack_timer"]
S_RTX_TIMER = SID["tcp_retransmit_timer"]


class TcpTimers(TcpState):
    """The timers of TcpSock (a mixin: TcpSock holds the state)."""

    __slots__ = ()

    def _arm_rto(self, cpu: CPU) -> None:
        self.rto_armed = True
        self.rto_token += 1
        self.rto_timer.arm(self.rto_ns, cpu, self.rto_token)

    def _rto_expired(self, cpu: CPU, tok: int) -> None:
        if tok == self.rto_token and self.rto_armed:
            self.net.add_timer(cpu, (self, "rto", tok))

    def _arm_delack(self, cpu: CPU) -> None:
        if self.delack_armed:
            return
        self.delack_armed = True
        self.delack_token += 1
        self.delack_timer.arm(self.delack_ns, cpu, self.delack_token)

    def _delack_expired(self, cpu: CPU, tok: int) -> None:
        if tok == self.delack_token and self.delack_armed:
            self.net.add_timer(cpu, (self, "delack", tok))

    def timer(self, cpu: CPU, ctx: Any, item: tuple[Any, ...]) -> Generator[Any, None, None]:
        kind, tok = item[1], item[2]
        if kind == "delack":
            if tok != self.delack_token or not self.delack_armed:
                return
            self.delack_armed = False
            if self.owned:
                self.deferred_delack = True  # TCP_DELACK_TIMER_DEFERRED
                return
            yield self.sim.work_of_ids((S_DELACK_TIMER,))
            if self.ack_pending:
                self.quick = max(self.quick, 1) if not self.pingpong else self.quick
                self.pingpong = False  # inet_csk_exit_pingpong_mode on delack timeout
                yield from self.send_ack(cpu, False)
        else:
            if tok != self.rto_token or not self.rto_armed:
                return
            self.rto_armed = False
            if self.owned:
                self.deferred_rto = True
                return
            yield self.sim.work_of_ids((S_RTX_TIMER,))
            yield from self._retransmit(cpu, False)

    def _retransmit(self, cpu: CPU, in_task: bool) -> Generator[Any, None, None]:
        """RTO: go back to snd_una, cwnd = 1 (tcp_enter_loss), resend."""
        if not self.rtx:
            return
        back = list(self.rtx)
        self.rtx.clear()
        for r in reversed(back):
            self.write_q.appendleft(r[1])
            self.write_psh.appendleft(bool(r[10]))
            self.wmem_queued -= r[2]
            self.retrans_segs += r[3]
        self.wmem_queued += sum(r[2] for r in back)  # still queued, now unsent
        self.snd_nxt = self.snd_una
        self.packets_out = 0
        self.cwnd = 1
        yield from self.write_xmit(cpu, in_task, True)
