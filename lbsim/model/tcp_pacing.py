"""TCP's internal pacing (net/ipv4/tcp_output.c), as BBR asks for it on lo.

``bbr_init`` sets ``sk_pacing_status = SK_PACING_NEEDED`` (net/ipv4/tcp_bbr.c); lo has no
fq qdisc (``noqueue``), so ``tcp_needs_internal_pacing`` (include/net/tcp.h) is true and TCP
paces itself with a per-socket hrtimer.  cubic and reno leave the status at
``SK_PACING_NONE``: nothing here acts for them (``TcpSock.cc is None``).

Kernel functions modelled:

``__tcp_transmit_skb``          ``tcp_wstamp_ns = max(tcp_wstamp_ns, tcp_clock_cache)``:
                                the departure time of the skb
``tcp_update_skb_after_send``   once ``data_segs_out >= 10`` (sch_fq's unpaced first 10 MSS),
                                ``tcp_wstamp_ns += len_ns - min(len_ns / 2, credit)`` with
                                ``len_ns = skb->len * NSEC_PER_SEC / sk_pacing_rate`` and the
                                credit the time the stamp just caught up with the clock
``tcp_pacing_check``            in ``tcp_write_xmit``, before every skb: while
                                ``tcp_wstamp_ns > tcp_clock_cache`` (the clock read once per
                                ``tcp_write_xmit``, ``tcp_mstamp_refresh``), arm the hrtimer
                                at ``tcp_wstamp_ns`` (``HRTIMER_MODE_ABS_PINNED_SOFT``: on
                                this CPU, unless already queued) and stop
``tcp_pace_kick``               the hrtimer: ``tcp_tsq_handler`` -> ``tcp_tsq_write`` ->
                                ``tcp_write_xmit``; if the socket is owned,
                                ``TCP_TSQ_DEFERRED`` and ``tcp_release_cb`` does it in
                                ``release_sock``

``hrtimer_start_range_ns``      arming the timer ~10 us ahead makes it the CPU's first hrtimer:
                                ``hrtimer_reprogram`` -> ``clockevents_program_event`` ->
                                ``lapic_next_deadline`` (arch/x86/kernel/apic/apic.c), a WRMSR
                                to ``MSR_IA32_TSC_DEADLINE``; its expiry
                                (``hrtimer_interrupt``, kernel/time/hrtimer.c) programs the
                                next event with another.  In a KVM guest each WRMSR exits to
                                the hypervisor (``handle_fastpath_set_msr_irqoff``,
                                arch/x86/kvm/x86.c, handles it as it handles the x2APIC ICR
                                write of an IPI): two exits per pacing timer, each charged as
                                ``send_call_function_single_ipi`` (the cost of the IPI's exit,
                                measured at default settings)

The rate is BBR's ``sk_pacing_rate`` (lbsim.model.tcp_cc ``Bbr.pacing_rate``, bytes/s).
The hrtimer's handler runs in HRTIMER_SOFTIRQ (lbsim.model.netdev ``Net.add_hrtimer``),
after NET_RX in the same ``handle_softirqs`` pass: the segments of the skb sent before are
off the backlog before the next paced skb goes out.
Left out: the timer interrupt of the expiry (measured by the harness's ``--micro-hrtimer``: about
12 us besides the WRMSR on the AMD v1300 guest; not charged while the model's expiry counts are off,
docs/notes/hrtimer-cost.md), the stamp a pure ACK takes (``max`` with the clock, no pacing debt:
it only shortens the next credit), ``sk_max_pacing_rate`` (unlimited by default).
Evidence that the timer fires on lo: docs/notes/tcp-pacing.md; that each timer costs two
trapped TSC-deadline writes on the host: docs/notes/tcp-small-rcvbuf.md.
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

__all__ = ["TcpPacing", "PACING_UNPACED_SEGS", "NSEC_PER_SEC", "pacing_delay_ns", "PACED", "PACED_ARMED"]

#: tcp_update_skb_after_send: "Original sch_fq does not pace first 10 MSS" (data_segs_out >= 10)
PACING_UNPACED_SEGS = 10
NSEC_PER_SEC = 1_000_000_000
#: one trapped TSC-deadline WRMSR (lapic_next_deadline), charged when the pacing timer is armed
#: (hrtimer_reprogram: it is the CPU's earliest hrtimer) and again when it expires
#: (hrtimer_interrupt programs the next event); it costs what the x2APIC ICR write of an idle
#: wake-up's IPI costs: both are handle_fastpath_set_msr_irqoff exits in KVM
_WRMSR = (SID["send_call_function_single_ipi"],)
#: pacing_check's answers (truthy: the skb waits)
PACED, PACED_ARMED = 1, 2


def pacing_delay_ns(length: int, rate: float, credit: float) -> float:
    """tcp_update_skb_after_send: what one skb of ``length`` bytes adds to ``tcp_wstamp_ns``
    at ``rate`` bytes/s, less the "OS jitter" credit (at most half of it)."""
    len_ns = (length * NSEC_PER_SEC) // rate  # div64_ul: integer nanoseconds
    half = len_ns // 2
    return len_ns - (half if half < credit else credit)


class _PaceTimer:
    """The per-socket ``pacing_timer`` hrtimer; ``Net.add_hrtimer`` calls ``timer`` in softirq."""

    __slots__ = ("sk", "queued")

    def __init__(self, sk: TcpPacing) -> None:
        self.sk = sk
        self.queued = False  # hrtimer_is_queued

    def fire(self, cpu: CPU) -> None:
        self.sk.net.add_hrtimer(cpu, (self,))  # HRTIMER_MODE_ABS_PINNED_SOFT

    def timer(self, cpu: CPU, ctx: Any, item: tuple[Any, ...]) -> Generator[Any, None, None]:
        """tcp_pace_kick -> tcp_tsq_handler."""
        self.queued = False
        sk = self.sk
        # hrtimer_interrupt's clockevents_program_event for the next event (a trapped WRMSR),
        # charged here: the same CPU, just before this softirq
        yield sk.sim.work_of_ids(_WRMSR)
        if sk.owned:
            sk.deferred_tsq = True  # TCP_TSQ_DEFERRED: tcp_release_cb sends
            return
        yield from sk.write_xmit(cpu, False, True)  # tcp_tsq_write


class TcpPacing(TcpState):
    """Internal pacing of TcpSock (a mixin: TcpSock holds the state)."""

    __slots__ = ()

    def _init_pacing(self) -> None:
        self.wstamp_ns = 0.0  # tp->tcp_wstamp_ns
        self.pace_timer = _PaceTimer(self)
        self.deferred_tsq = False

    def pacing_check(self, cpu: CPU, clock_ns: float) -> int:
        """tcp_pacing_check: truthy while the next departure time is after ``clock_ns``, the
        ``tcp_clock_cache`` of this ``tcp_write_xmit``: PACED_ARMED if this call armed the
        hrtimer (the caller charges :meth:`arm_work`), PACED if it was queued already."""
        when = self.wstamp_ns
        if when <= clock_ns:
            return 0
        t = self.pace_timer
        if t.queued:
            return PACED
        t.queued = True
        delay = when - self.env._now
        ev = self.env.timeout(delay if delay > 0 else 0)  # an expired hrtimer fires at once
        ev.callbacks.append(lambda _e: t.fire(cpu))  # pinned: the arming CPU
        return PACED_ARMED

    def arm_work(self) -> list[Any]:
        """The CPU work of arming the pacing hrtimer: hrtimer_reprogram's trapped WRMSR."""
        return self.sim.work_of_ids(_WRMSR)

    def pacing_sent(self, length: int, clock_ns: float) -> None:
        """__tcp_transmit_skb's stamp and tcp_update_skb_after_send for a data skb."""
        prior = self.wstamp_ns
        if clock_ns > prior:
            self.wstamp_ns = clock_ns
        rate = self.cc.pacing_rate if self.cc is not None else 0.0
        if rate > 0 and self.out_segs >= PACING_UNPACED_SEGS:
            self.wstamp_ns += pacing_delay_ns(length, rate, self.wstamp_ns - prior)
