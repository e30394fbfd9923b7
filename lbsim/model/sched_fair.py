"""The fair scheduling class on one CPU's run queue: EEVDF (kernel/sched/fair.c, 6.6+).

Models ``pick_eevdf``/``pick_next_task_fair`` (eligibility against the load-weighted
average vruntime ``avg_vruntime``, earliest virtual deadline first), ``place_entity``
(PLACE_LAG), ``update_entity_lag``, ``dequeue_entity`` with DELAY_DEQUEUE (6.12+;
``requeue_delayed_entity`` on a wake-up), ``update_curr``/``update_deadline`` (a used-up
slice is noticed at the tick, ``task_tick_fair``, or when a task is enqueued),
``check_preempt_wakeup_fair`` with RUN_TO_PARITY (``set_protect_slice``), and
``enqueue_task`` as the end of ``try_to_wake_up`` (kernel/sched/core.c).  SCHED_FIFO tasks
(``rt``) go first and run to block.  The linux-2.6.32 profile keeps these rules without
DELAY_DEQUEUE, an approximation of its CFS.  The kernel runs PREEMPT_NONE: a task in a
syscall is only pre-empted at its next preemption point.

``FairRunQueue`` is a mixin of lbsim.model.cpu.CPU, whose state (``rq``, ``curr``,
``exec``, ``start``, ``next_tick``, ``min_vruntime``, ...) it works on.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import TYPE_CHECKING, Any

from lbsim.model.task import NICE_0_WEIGHT, RUNNABLE, RUNNING, Task

if TYPE_CHECKING:
    import simpy

    from lbsim.model.sim import Sim

    class _CpuState:
        """The fields of CPU (lbsim.model.cpu: CPU.__slots__) this mixin works on, declared
        for mypy only: at run time FairRunQueue derives from object."""

        sim: Sim
        env: simpy.Environment
        rq: list[Task]
        curr: Task | None
        prev: Task | None
        exec: Any
        exec_switch: bool
        start: float
        in_dispatch: bool
        need_resched: bool
        next_tick: float
        min_vruntime: float

        @abstractmethod
        def _dispatch(self) -> None: ...
        @abstractmethod
        def _preempt_running_task(self, c: Task) -> None: ...
else:
    _CpuState = object

__all__ = ["FairRunQueue"]


class FairRunQueue(_CpuState):
    """The run queue of one CPU and its fair-class policy (a mixin of CPU)."""

    __slots__ = ()

    def _should_yield(self, t: Task) -> bool:
        """At a preemption point: give way on need_resched, or (fair) when a scheduler tick
        has come since the last look and found the task past its virtual deadline.

        The kernel notices that a running task's slice is used up only in update_curr():
        at the tick (task_tick_fair, every 1/HZ), or when something is enqueued on its
        CPU (see enqueue_task); nothing else interrupts a task that makes syscalls without
        waking anyone, so it runs on to the first tick after its deadline.
        update_deadline() then gives it a new deadline and reschedules when another task is
        runnable (pick_eevdf may pick it again).  A tick that passed while nothing else was
        runnable is looked at here, at the next preemption point, with the vruntime of now
        (the difference is at most one syscall's run)."""
        if self.need_resched:
            self.need_resched = False
            return True
        if t.rt:
            return False
        now = self.env._now
        nt = self.next_tick
        if now < nt:
            return False
        tick = self.sim.tick_ns
        self.next_tick = nt + (int((now - nt) // tick) + 1) * tick
        if t.vruntime < t.deadline:
            return False
        t.deadline = t.vruntime + self.sim.sched_slice_ns * NICE_0_WEIGHT / t.weight
        return bool(self.rq)

    def _put_prev(self, t: Task) -> None:
        t.state = RUNNABLE
        t.enq_time = self.env._now
        self.rq.append(t)
        self.curr = None

    def _pick(self) -> Task | None:
        """pick_next_task: an RT task first, else pick_eevdf(); a sleeper whose dequeue was
        delayed is dequeued for good when it comes up (None: nothing left to run)."""
        rq = self.rq
        while rq:
            n = len(rq)
            if n == 1:
                t = rq.pop()  # the only runnable task
                avg = t.vruntime  # (alone: V is its own vruntime)
            elif n == 2 and not (rq[0].rt or rq[1].rt):
                # pick_eevdf() of two (the common case): the average lies between them, so the
                # one with the lower vruntime is the only eligible one (both when equal: the
                # earlier deadline)
                a, b = rq
                i = 0 if a.vruntime < b.vruntime or (a.vruntime == b.vruntime and a.deadline <= b.deadline) else 1
                t = rq[i]
                avg = self._avg_load()[0] if t.delayed else 0.0  # V with it still queued
                del rq[i]
            else:
                i, avg = self._pick_eevdf()
                t = rq.pop(i)
            if not t.delayed:
                if t is not self.prev:
                    # set_next_entity() -> set_protect_slice(): equal slices, protected to its
                    # deadline.  A task picked again right after it was put back keeps its old
                    # protection (put_prev_set_next_task() does nothing when next == prev)
                    t.vprot = t.deadline
                return t
            # dequeue_entities(DEQUEUE_DELAYED): update_entity_lag, then DELAY_ZERO clips a
            # positive lag to 0
            self._set_lag(t, avg - t.vruntime)
            if t.vlag > 0.0:
                t.vlag = 0.0
            t.delayed = False
        return None

    def _pick_eevdf(self) -> tuple[int, float]:
        """The index of the task to run next (an RT task first, else pick_eevdf(): of the
        eligible tasks, vruntime <= the load-weighted average, the one with the earliest
        virtual deadline, the queue order breaking ties), and that average (0.0 for an RT
        pick)."""
        rq = self.rq
        for i, t in enumerate(rq):
            if t.rt:
                return i, 0.0
        avg = self._avg_load()[0]
        best_i = -1
        best_d = 0.0
        for i, t in enumerate(rq):
            if t.vruntime <= avg and (best_i < 0 or t.deadline < best_d):
                best_i = i
                best_d = t.deadline
        if best_i < 0:  # (rounding: nobody at or below the average) the least vruntime
            best_i = min(range(len(rq)), key=lambda i: rq[i].vruntime)
        return best_i, avg

    # ------------------------------------------------------------------ wake-ups (enqueue)
    def enqueue_task(self, t: Task) -> None:
        """Make ``t`` runnable here (the end of try_to_wake_up)."""
        now = self.env._now
        t.state = RUNNABLE
        t.enq_time = now
        t.blocked_ns += now - t.sleep_start
        rq = self.rq
        c = self.curr
        cv = None  # the current fair task's vruntime (_curr_vruntime(c), inlined), if there is one
        if c is not None and not c.rt and c.state == RUNNING:
            cv = c.vruntime
            if self.exec is c and not self.exec_switch:
                cv += (self.env._now - self.start) * NICE_0_WEIGHT / c.weight
            if cv >= c.deadline:
                # enqueue_entity() -> update_curr() -> update_deadline(): past its deadline, the
                # current task gets a new one and is rescheduled (there is another task now)
                c.deadline = cv + self.sim.sched_slice_ns * NICE_0_WEIGHT / c.weight
                self.need_resched = True
        if t.delayed:
            # requeue_delayed_entity(): still queued; with DELAY_ZERO a task whose lag has
            # turned positive meanwhile is placed again with lag 0, else it keeps its vruntime
            t.delayed = False
            if len(rq) == 1 and cv is not None:
                # it and the current task: V > its vruntime when the current one's is larger;
                # placed with lag 0 next to the current task alone, it lands on its vruntime
                if cv > t.vruntime:
                    t.vlag = 0.0
                    t.vruntime = cv
                    t.deadline = cv + self.sim.sched_slice_ns * NICE_0_WEIGHT / t.weight
            elif self._avg_load()[0] > t.vruntime:
                rq.remove(t)
                t.vlag = 0.0
                self._place_entity(t)
                rq.append(t)
        elif t.rt:
            rq.append(t)
        else:
            if not rq and cv is not None:
                # place_entity() next to the current task alone: V is its vruntime
                w = c.weight  # type: ignore[union-attr]  # cv is not None: c is the current task
                t.vruntime = cv - t.vlag * (w + t.weight) / w
                t.deadline = t.vruntime + self.sim.sched_slice_ns * NICE_0_WEIGHT / t.weight
            else:
                self._place_entity(t)
            rq.append(t)
        if self.exec is None and not self.in_dispatch and self.curr is None:
            self._dispatch()
            return
        c = self.curr
        if c is None or c is t:
            return
        if self._wakeup_preempts(t, c):
            self.need_resched = True
            if c.user_mode and self.exec is c and not self.exec_switch:
                self._preempt_running_task(c)

    def _curr_vruntime(self, c: Task) -> float:
        """update_curr(): the current task's vruntime including what its running command has
        used so far."""
        if self.exec is c and not self.exec_switch:
            return c.vruntime + (self.env._now - self.start) * NICE_0_WEIGHT / c.weight
        return c.vruntime

    def _avg_load(self) -> tuple[float, int]:
        """avg_vruntime() and the load: the load-weighted average vruntime V of the fair tasks
        queued here and the current one (a task is eligible when its vruntime is at most V),
        and their total weight (V is min_vruntime when there are none)."""
        num = 0.0
        load = 0
        for t in self.rq:
            if not t.rt:
                w = t.weight
                num += t.vruntime * w
                load += w
        c = self.curr
        if c is not None and not c.rt and c.state == RUNNING:
            w = c.weight
            v = c.vruntime  # update_curr(), as _curr_vruntime
            if self.exec is c and not self.exec_switch:
                v += (self.env._now - self.start) * NICE_0_WEIGHT / w
            num += v * w
            load += w
        return (num / load if load else self.min_vruntime), load

    def _place_entity(self, t: Task) -> None:
        """place_entity() on a wake-up (PLACE_LAG): the task comes back at the average
        vruntime less the lag it had when it went to sleep, that lag inflated by
        (load + w) / load so that adding it leaves the average where the lag says; its
        deadline is a slice (at its weight) later.  On an otherwise empty queue the lag is
        dropped."""
        avg, load = self._avg_load()
        if load:
            t.vruntime = avg - t.vlag * (load + t.weight) / load
        else:
            t.vruntime = self._min_vruntime()
        t.deadline = t.vruntime + self.sim.sched_slice_ns * NICE_0_WEIGHT / t.weight

    def _set_lag(self, t: Task, lag: float) -> None:
        """update_entity_lag(): vlag = V - v when the task leaves the run queue, clamped to
        +-max(2 slices, TICK_NSEC) of CPU at its weight."""
        limit = self.sim.lag_limit_ns * NICE_0_WEIGHT / t.weight
        t.vlag = limit if lag > limit else (-limit if lag < -limit else lag)

    def _dequeue_sleeper(self, t: Task) -> None:
        """dequeue_entity(DEQUEUE_SLEEP): an eligible task leaves with its lag saved; with
        DELAY_DEQUEUE (6.12+) one that is not eligible (it has had more than its share)
        stays queued, competing, until pick_eevdf() comes to it or it is woken."""
        rq = self.rq
        if not rq:
            t.vlag = 0.0  # alone: V is its own vruntime
            return
        delay = self.sim.kernel.sched_delay_dequeue
        if len(rq) == 1 and not rq[0].rt:
            # it and one other: not eligible when its vruntime is above the other's
            x = rq[0]
            if delay and t.vruntime > x.vruntime:
                t.delayed = True
                rq.append(t)
                return
            xw, tw = x.weight, t.weight
            avg = (x.vruntime * xw + t.vruntime * tw) / (xw + tw)
        else:
            avg = self._avg_load()[0]
            if delay and t.vruntime > avg:
                t.delayed = True
                rq.append(t)
                return
        self._set_lag(t, avg - t.vruntime)

    def _wakeup_preempts(self, w: Task, c: Task) -> bool:
        """check_preempt_wakeup_fair (EEVDF): pre-empt when pick_eevdf() would now pick the
        woken task: the current task keeps the CPU while it is eligible and inside its
        RUN_TO_PARITY protection; otherwise the eligible task with the earliest virtual
        deadline wins (the current one only if it is eligible)."""
        if c.rt:
            return False
        if w.rt:
            return True
        cv = self._curr_vruntime(c)
        rq = self.rq
        if len(rq) == 1:
            # the woken task and the current one: the average lies between their vruntimes,
            # so each is eligible when its vruntime is at most the other's
            wv = w.vruntime
            if cv <= wv:
                if cv < c.vprot or wv > cv:
                    return False  # protected, or the woken task is not eligible
                return not c.deadline < w.deadline
            return True  # the current task is not eligible; the woken one is
        avg = self._avg_load()[0]
        curr_eligible = cv <= avg
        if curr_eligible and cv < c.vprot:
            return False
        best = None
        for t in self.rq:
            if not t.rt and t.vruntime <= avg and (best is None or t.deadline < best.deadline):
                best = t
        if best is not w:
            return False
        return not (curr_eligible and c.deadline < w.deadline)

    def _min_vruntime(self) -> float:
        m = None  # min() of the vruntimes of the fair tasks here, without building the list
        for t in self.rq:
            if not t.rt:
                v = t.vruntime
                if m is None or v < m:
                    m = v
        c = self.curr
        if c is not None and not c.rt:
            v = c.vruntime
            if m is None or v < m:
                m = v
        if m is not None and m > self.min_vruntime:
            self.min_vruntime = m
        return self.min_vruntime
