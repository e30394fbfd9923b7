"""Contexts and the commands they yield: tasks, the NET_RX softirq context, wait queues.

Models ``struct task_struct`` (include/linux/sched.h: its scheduling entity ``struct
sched_entity`` -- vruntime, deadline, vlag, sched_delayed), ``wait_queue_head_t``
(include/linux/wait.h: ``prepare_to_wait``/``schedule``, woken by ``__wake_up``), and the
per-CPU softirq context (kernel/softirq.c ``__do_softirq``).

A context is a Python generator that yields *commands* (run by lbsim.model.cpu.CPU):

``[ns, stages]``   run ``ns`` of CPU time, charged to ``stages`` (a tuple of
                   ``(stage_id, ns)``); effects written after the ``yield`` happen when
                   the work completes
``BH_ENABLE``      ``local_bh_enable()``: pending softirqs run here, inline, in this
                   task's time slot (this is how loopback RX runs inside ``send()``)
``PREEMPT``        a preemption point (return to user space): ``need_resched`` is honoured
a ``WaitQueue``    sleep until woken (``sk_wait_data``, ``sk_stream_wait_memory``, ...)
``Sleep(t)``       sleep until simulated time ``t`` (open-loop arrivals;
                   ``hrtimer_nanosleep`` of kernel/time/hrtimer.c)
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lbsim.model.cpu import CPU

__all__ = ["Task", "WaitQueue", "Sleep", "Softirq", "BH_ENABLE", "PREEMPT", "CTX_TASK", "CTX_SOFTIRQ",
           "CTX_BACKGROUND", "CONTEXT_NAMES", "RUNNING", "RUNNABLE", "SLEEPING", "WAKING", "DONE",
           "NICE_0_WEIGHT", "NICE_19_WEIGHT"]

BH_ENABLE = "bh_enable"
PREEMPT = "preempt"
CTX_TASK, CTX_SOFTIRQ, CTX_BACKGROUND = 0, 1, 2
CONTEXT_NAMES = ("task", "softirq", "background")

# task states
RUNNING, RUNNABLE, SLEEPING, WAKING, DONE = range(5)

NICE_0_WEIGHT = 1024
NICE_19_WEIGHT = 15  # kernel/sched/core.c sched_prio_to_weight[39]


class Sleep:
    __slots__ = ("until",)

    def __init__(self, until: float) -> None:
        self.until = until


class WaitQueue:
    """A kernel wait queue (``wait_queue_head_t``): tasks sleeping on a condition."""

    __slots__ = ("waiters", "name")

    def __init__(self, name: str = "") -> None:
        self.waiters: list[Task] = []
        self.name = name


class Task:
    """A schedulable entity: a user process or a kernel thread (ksoftirqd/N)."""

    __slots__ = ("name", "cpu", "gen", "state", "work", "vruntime", "deadline", "vlag", "vprot", "delayed", "weight",
                 "rt",
                 "preemptible",
                 "user_mode", "run_start", "enq_time", "kind", "wq", "msg", "on_done",
                 "sleep_start", "blocked_ns", "blocking", "woken")

    def __init__(self, name: str, cpu: CPU, gen: Iterator[Any] | None, *, rt: bool = False,
                 weight: int = NICE_0_WEIGHT, kind: int = CTX_TASK) -> None:
        self.name = name
        self.cpu = cpu
        self.gen = gen
        self.state = RUNNABLE
        self.work: list[Any] | None = None
        self.vruntime = 0.0
        self.deadline = 0.0  # EEVDF virtual deadline (set when it first becomes runnable)
        self.vlag = 0.0  # lag saved when it went to sleep (update_entity_lag)
        self.vprot = 0.0  # RUN_TO_PARITY: protected from wake-up pre-emption below this vruntime
        self.delayed = False  # DELAY_DEQUEUE: asleep but still on the run queue (sched_delayed)
        self.weight = weight
        self.rt = rt
        self.preemptible = True
        self.user_mode = False
        self.run_start = 0.0
        self.enq_time = 0.0
        self.kind = kind
        self.wq: WaitQueue | None = None
        self.msg = -1
        self.on_done: Callable[[Task], None] | None = None
        self.sleep_start = 0.0
        self.blocked_ns = 0.0
        self.blocking = False  # between prepare_to_wait and schedule(): on the wait queue, still running
        self.woken = False  # woken while blocking: the sleep is called off

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"<Task {self.name} cpu{self.cpu.idx} state={self.state}>"


class Softirq:
    """The NET_RX softirq context of one CPU (runs above every task)."""

    __slots__ = ("gen", "work", "name", "msg", "kind")

    def __init__(self, cpu_idx: int) -> None:
        self.gen: Generator[Any, None, None] | None = None
        self.work: list[Any] | None = None
        self.name = f"softirq/{cpu_idx}"
        self.msg = -1
        self.kind = CTX_SOFTIRQ
