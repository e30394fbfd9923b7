"""One simulation: the SimPy environment, its CPUs, random costs, wake-ups, statistics, trace.

Models ``try_to_wake_up`` (kernel/sched/core.c): a wake-up onto the waker's own CPU makes
the task runnable at once (the context switch costs ``schedule`` when it happens); onto
another CPU it costs the waker ``ttwu_queue_wakelist`` (plus
``send_call_function_single_ipi`` when the target CPU is idle: kicking a halted vCPU is what
makes cross-CPU wake-ups so expensive in a VM) and reaches the target after a delay that
depends on whether the target CPU is idle (``wakeup_remote_idle_ns``, IPI + idle exit) or
busy (``wakeup_remote_busy_ns``).  Wake-ups onto an idle CPU go through its wake list
(``__ttwu_queue_wakelist``): the IPI is sent only by the waker that finds the list empty
(kernel/smp.c ``__smp_call_single_queue``), and the one idle exit activates every task queued
meanwhile (``sched_ttwu_pending``, CPU.ttwu_pending).  ``wake_all`` is ``__wake_up``
(kernel/sched/wait.c).

The driver: one simulated time unit is 1 ns.  No SimPy process exists per message: every
command is one heap entry on SimPy's queue whose callback resumes the context, or none when
it is the next thing to happen anyway (``Sim.run_inline``, the trampoline).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import simpy

from lbsim.model.cpu import CPU, INLINE
from lbsim.model.stages import LATE_CORE_STAGES, N_CORE_STAGES, SID, STAGES
from lbsim.model.task import CONTEXT_NAMES, SLEEPING, WAKING, Task, WaitQueue

__all__ = ["Sim"]

#: an item of a command (Sim.work): a stage id, or (stage id, bytes[, cold])
WorkItem = int | tuple[int, ...]

S_SCHEDULE = SID["schedule"]
S_TTWU = SID["try_to_wake_up"]
S_TTWU_REMOTE = SID["ttwu_queue_wakelist"]
S_IPI_IDLE = SID["send_call_function_single_ipi"]
# constant work items (stage ids) of Sim.wake_items
_TTWU_ITEMS = (S_TTWU,)
_TTWU_REMOTE_ITEMS = (S_TTWU_REMOTE,)
_TTWU_REMOTE_IPI_ITEMS = (S_TTWU_REMOTE, S_IPI_IDLE)


class _ZeroCost:
    """The cost of an optional stage a cost model lacks (never charged: see Sim.missing_stages)."""

    fixed_ns = per_byte_ns = cv = 0.0
    per_byte_cold_ns = None


_ZERO_COST = _ZeroCost()


class Sim:
    """One simulation: the SimPy environment, CPUs, random costs, statistics, trace."""

    def __init__(self, *, cpus: int, costs: Any, kernel: Any, seed: int, deterministic: bool,
                 trace: bool, policy: str) -> None:
        self.env = simpy.Environment()
        self.kernel = kernel
        self.costs = costs
        self.deterministic = deterministic
        self.policy = policy
        self.seedseq = np.random.SeedSequence(seed)
        # one random stream per stage and per delay (SeedSequence.spawn), drawn in blocks
        # children: the first core stages i -> [i], the delays and other draws -> [base + k], the
        # optional stages after them, then the first late core stage, the RPS flow hash's stream
        # (lbsim.model.netdev), the later late core stages: adding any of them moves no other stream
        base = N_CORE_STAGES - len(LATE_CORE_STAGES)
        n_opt = len(STAGES) - N_CORE_STAGES
        children = self.seedseq.spawn(len(STAGES) + 7)
        late0 = base + 6 + n_opt  # the first late core stage's child
        #: the RPS flow hash's seed (socket_hash in lbsim.model.netdev)
        self.hash_seed = children[late0 + 1]
        streams = [children[i] if i < base
                   else children[late0] if i == base  # the first late core stage
                   else children[late0 + 1 + i - base] if i < N_CORE_STAGES  # a later late core stage
                   else children[i - len(LATE_CORE_STAGES) + 6] for i in range(len(STAGES))]
        streams += children[base:base + 4]
        #: optional stages this cost model lacks (lbsim.model.stages.OPTIONAL_STAGES): cost 0 here,
        #: and a switch that needs one refuses to run (lbsim.model.eventpoll.require_stages)
        self.missing_stages = tuple(s for s in STAGES if s not in costs.stages)
        zero = _ZERO_COST
        cs = [costs.stages.get(s, zero) for s in STAGES]
        self._fixed = [c.fixed_ns for c in cs]
        self._per_byte = [c.per_byte_ns for c in cs]
        # the cost of an item without bytes, computed as cost() computes it
        self._fixed0 = [f + b * 0 for f, b in zip(self._fixed, self._per_byte)]
        self._per_byte_cold = [c.per_byte_cold_ns if c.per_byte_cold_ns is not None else c.per_byte_ns for c in cs]
        self.cache_bytes = costs.cache_bytes
        self._cv = [0.0 if deterministic else c.cv for c in cs]
        self._rngs = [np.random.default_rng(c) for c in streams]
        self._buf: list[list[float]] = [[] for _ in range(len(STAGES) + 4)]
        self._draw = [b.pop for b in self._buf]  # the next multiplier of each stream (IndexError: refill)
        self._delay_idle = costs.delays["wakeup_remote_idle_ns"]
        self._delay_busy = costs.delays["wakeup_remote_busy_ns"]
        self.arrival_rng = np.random.default_rng(children[base + 3])
        # kernel/sched/fair.c: sysctl_sched_base_slice = 750000 (EEVDF, 6.6+), scaled at boot by
        # SCHED_TUNABLESCALING_LOG: x (1 + ilog2(min(ncpus, 8)))
        factor = 1 + int(np.log2(min(cpus, 8)))
        self.sched_slice_ns = float(kernel.sched_base_slice_ns * factor)
        # update_entity_lag(): a sleeper keeps at most max(2 * slice, TICK_NSEC) of lag
        self.lag_limit_ns = max(2 * self.sched_slice_ns, 1e9 / kernel.hz)
        # the scheduler tick: TICK_NSEC = 1e9 / HZ; its phase against the start of the run is
        # drawn from the run's seed (the jiffy grid of a real machine is not tied to it)
        self.tick_ns = 1e9 / kernel.hz
        self.tick_phase_ns = float(np.random.default_rng(children[base + 4]).uniform(0.0, self.tick_ns))
        # congestion control's own draws (BBR's first gain-cycle phase)
        self.cc_rng = np.random.default_rng(children[base + 5])
        # the inline trampoline (see CPU._start / Sim.run_inline)
        self._tramp = False
        self._pending: CPU | None = None
        self.cpus = [CPU(self, i) for i in range(cpus)]
        # statistics
        n = len(STAGES)
        self.stage_count = [0] * n
        self.stage_busy = [0.0] * n
        self.stage_wait = [0.0] * n
        self.trace_on = trace
        self.trace: list[tuple[int, str, int, str, float, float, str]] = []
        self.net: Any = None  # set by the host wiring (lbsim.model.netdev.Net)

    def run_inline(self) -> None:
        """Complete commands without the event heap while each is the next thing to happen.

        Exact: a command is completed here only if no heap entry is due at or before its end,
        which is when SimPy would have popped its Timeout next anyway; otherwise it is put on
        the heap as the Timeout it stands for."""
        env = self.env
        q = env._queue
        while self._pending is not None:
            cpu = self._pending
            self._pending = None
            if cpu.ev is not INLINE:
                continue  # pre-empted meanwhile
            end = cpu.end
            if q and q[0][0] <= end:
                cpu._materialize()
                return
            env._now = end
            cpu._done_one(INLINE)

    # ------------------------------------------------------------------ random costs
    def _mult(self, i: int, cv: float) -> float:
        buf = self._buf[i]
        if not buf:
            sigma2 = np.log1p(cv * cv)
            draws = self._rngs[i].lognormal(-sigma2 / 2, np.sqrt(sigma2), 1024)
            buf.extend(draws.tolist()[::-1])
        return buf.pop()

    def _refill(self, sid: int) -> float:
        """The next multiplier of stage ``sid`` when its buffer is empty; a stage without
        spread (cv 0) gets multipliers of exactly 1.0 (``ns * 1.0 == ns``) and no draws."""
        cv = self._cv[sid]
        if cv > 0.0:
            return self._mult(sid, cv)
        buf = self._buf[sid]
        buf.extend([1.0] * 1024)
        return buf.pop()

    def cost(self, sid: int, nbytes: int = 0, cold: bool = False) -> float:
        if not nbytes and not cold:
            # fixed0 * multiplier: the same value as below (a cv-0 stage draws exact 1.0s)
            try:
                return self._fixed0[sid] * self._draw[sid]()
            except IndexError:
                return self._fixed0[sid] * self._refill(sid)
        ns = self._fixed[sid] + (self._per_byte_cold[sid] if cold else self._per_byte[sid]) * nbytes
        cv = self._cv[sid]
        if cv > 0.0:
            ns *= self._mult(sid, cv)
        return ns

    def work(self, *items: WorkItem) -> list[Any]:
        """A command: run the given items back to back; an item is a stage id (per-packet
        work, no bytes) or a (stage, bytes[, cold]) tuple."""
        return self.work_of(items)

    def work_of(self, items: tuple[WorkItem, ...]) -> list[Any]:
        """``work(*items)`` for a tuple of items.  The model's commands are built here (and in
        work_of_ids): a plain call, which the 3.11 interpreter specialises and runs without a
        C-level recursion, unlike a call of a ``*args`` function.  (cost(), inlined: this runs
        for every command.)"""
        fixed0 = self._fixed0
        draw = self._draw
        stages = []
        total = 0.0
        for it in items:
            if type(it) is int:
                try:
                    ns = fixed0[it] * draw[it]()
                except IndexError:
                    ns = fixed0[it] * self._refill(it)
                stages.append((it, ns))
            else:
                # (type(it) is int does not narrow the else branch for mypy; isinstance is slower here)
                sid = it[0]  # type: ignore[index]
                ns = self._fixed[sid] + (
                    self._per_byte_cold[sid] if (len(it) > 2 and it[2]) else self._per_byte[sid]) * it[1]  # type: ignore[arg-type,index]
                try:
                    ns *= draw[sid]()  # (exact 1.0 for a cv-0 stage)
                except IndexError:
                    ns *= self._refill(sid)
                stages.append((sid, ns))
            total += ns
        return [total, stages]

    def work_ids(self, *sids: int) -> list[Any]:
        """``work()`` for items that are all stage ids (per-packet work, no bytes): the same
        command, without testing each item's type."""
        return self.work_of_ids(sids)

    def work_of_ids(self, sids: Sequence[int]) -> list[Any]:
        """``work_ids(*sids)`` for a tuple of stage ids (a plain call, see work_of)."""
        fixed0 = self._fixed0
        draw = self._draw
        stages = []
        total = 0.0
        for sid in sids:
            try:
                ns = fixed0[sid] * draw[sid]()
            except IndexError:
                ns = fixed0[sid] * self._refill(sid)
            stages.append((sid, ns))
            total += ns
        return [total, stages]

    def cost_schedule(self) -> float:
        return self.cost(S_SCHEDULE)

    def wakeup_delay(self, target: CPU) -> float:
        d = self._delay_busy if target._is_busy_for_wakeup() else self._delay_idle
        slot = len(STAGES) + (1 if d is self._delay_busy else 0)
        ns = d.fixed_ns
        if d.cv > 0 and not self.deterministic:
            ns *= self._mult(slot, d.cv)
        return ns

    def touch(self, sock: Any, cpu: CPU) -> tuple[int, ...]:
        """``cpu`` touches ``sock``: a cache-line transfer if another CPU touched it last
        (work items: stage ids)."""
        last = sock.last_cpu
        sock.last_cpu = cpu
        if last is None or last is cpu:
            return ()
        return sock.BOUNCE_ITEMS

    # ------------------------------------------------------------------ wake-ups
    def wake_items(self, waiter: Task | None, cpu: CPU) -> tuple[int, ...]:
        """The waker's stages for waking ``waiter`` from ``cpu`` (none if nobody sleeps;
        work items: stage ids)."""
        if waiter is None:
            return ()
        target = waiter.cpu
        if target is cpu:
            return _TTWU_ITEMS
        if target._is_busy_for_wakeup() or target.wake_list:
            # busy: activated on its run queue directly; idle with wake-ups already queued
            # for it: llist_add() finds the list non-empty and sends no IPI (kernel/smp.c
            # __smp_call_single_queue), the pending one wakes them all
            return _TTWU_REMOTE_ITEMS
        return _TTWU_REMOTE_IPI_ITEMS

    def wake_all(self, wq: WaitQueue, from_cpu: CPU | None) -> int:
        n = 0
        while wq.waiters:
            t = wq.waiters.pop(0)
            if self.wake(t, from_cpu):
                n += 1
        return n

    def wake(self, t: Task, from_cpu: CPU | None) -> bool:
        """try_to_wake_up(): the waker's CPU cost is charged by the caller's stages."""
        if t.blocking and not t.woken:
            # woken between prepare_to_wait and schedule(): it never goes to sleep
            if t.wq is not None and t in t.wq.waiters:
                t.wq.waiters.remove(t)
            t.wq = None
            t.woken = True
            return True
        if t.state != SLEEPING:
            return False
        if t.wq is not None:
            waiters = t.wq.waiters
            if t in waiters:  # (wake_all has taken it off already: no ValueError to raise)
                waiters.remove(t)
            t.wq = None
        target = t.cpu
        if from_cpu is None or from_cpu is target:
            target.enqueue_task(t)
            return True
        t.state = WAKING
        if target.wake_list and not target._is_busy_for_wakeup():
            # ttwu_queue_wakelist onto an idle CPU whose wake list already holds a task: no
            # second IPI, and this task is activated with the others when the first one's IPI
            # is taken (sched_ttwu_pending drains the whole list, kernel/sched/core.c)
            target.wake_list.append(t)
            return True
        ev = self.env.timeout(self.wakeup_delay(target))
        if target._is_busy_for_wakeup():
            ev.callbacks.append(lambda _ev: target.enqueue_task(t))
        else:
            target.wake_list.append(t)
            ev.callbacks.append(lambda _ev: target.ttwu_pending())
        return True

    # ------------------------------------------------------------------ statistics
    def account_work(self, cpu: CPU, ctx: Any, work: list[Any], kind: int) -> None:
        count = self.stage_count
        busy = self.stage_busy
        if not work[1]:
            # no stages (the busy spinner's tick): what ran since the last pre-emption, which
            # left the remainder in work[0] (the earlier pieces were added by account_partial)
            cpu.busy[kind] += work[0]
            return
        total = 0.0
        for sid, ns in work[1]:
            count[sid] += 1
            busy[sid] += ns
            total += ns
        if len(work) > 2:  # partially accounted before a pre-emption
            total -= work[2]
        cpu.busy[kind] += total
        if self.trace_on:
            # a command pre-empted part-way is traced as if it ran in one piece, ending now
            self._trace_stages(cpu, ctx, work[1], self.env._now - sum(ns for _, ns in work[1]), kind)

    def account_partial(self, cpu: CPU, ctx: Any, done: float) -> None:
        work = ctx.work
        kind = ctx.kind
        cpu.busy[kind] += done
        if len(work) > 2:
            work[2] += done
        else:
            work.append(done)

    def runq_wait(self, cpu: CPU, t: Task) -> None:
        self.stage_wait[S_SCHEDULE] += self.env._now - t.enq_time

    def account(self, cpu: CPU, ctx: Any, sid: int, start: float, ns: float, kind: int) -> None:
        self.stage_count[sid] += 1
        self.stage_busy[sid] += ns
        cpu.busy[kind] += ns
        if self.trace_on:
            self.trace.append((ctx.msg, STAGES[sid], cpu.idx, ctx.name, start, start + ns, CONTEXT_NAMES[kind]))

    def _trace_stages(self, cpu: CPU, ctx: Any, stages: list[tuple[int, float]], t: float, kind: int) -> None:
        rec = self.trace.append
        name = ctx.name
        msg = ctx.msg
        kname = CONTEXT_NAMES[kind]
        for sid, ns in stages:
            rec((msg, STAGES[sid], cpu.idx, name, t, t + ns, kname))
            t += ns
