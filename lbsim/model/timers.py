"""Timers on SimPy's event heap: the completion of a command and TCP's re-armed timers.

``push_fire`` puts on the heap the entry ``env.timeout()`` would make (an expiry at a given
time), without the Timeout's checks: every command a CPU runs ends with one (or with none,
see lbsim.model.cpu.CPU._start).  ``LazyTimer`` stands for a ``struct timer_list`` that is
re-armed on almost every packet and rarely expires: ``sk_reset_timer`` -> ``mod_timer``
(net/core/sock.c, kernel/time/timer.c) as used by TCP's retransmission and delayed-ACK
timers (``inet_csk_reset_xmit_timer``, include/net/inet_connection_sock.h).

These drive SimPy's private heap (``Environment._queue`` of ``(time, priority, event id,
event)``, ``_now``, ``_eid``): tests/test_simpy_internals.py checks those still behave so.
"""

from __future__ import annotations

from collections.abc import Callable
from heapq import heappush
from typing import Any

import simpy
from simpy.core import NORMAL

__all__ = ["LazyTimer", "push_fire"]


class _Fire(simpy.events.Event):
    """The completion of one command on a CPU (a Timeout without its constructor's checks)."""


_new_event = object.__new__


def push_fire(env: simpy.Environment, when: float, eid: int, callback: Callable[[Any], None],
               value: Any) -> _Fire:
    """The heap entry ``env.timeout`` would make, due at ``when`` with event id ``eid``,
    calling ``callback`` (a Timeout without its constructor's checks and scheduling call)."""
    ev = _new_event(_Fire)
    ev.env = env
    ev.callbacks = [callback]
    ev._value = value
    ev._ok = True
    heappush(env._queue, (when, NORMAL, eid, ev))
    return ev


class LazyTimer:
    """A timer that is re-armed far more often than it expires (TCP's RTO and delayed ACK),
    with the heap traffic of one Timeout per arm cut to about one entry per expiry.

    ``arm(delay, *args)`` stands for ``env.timeout(delay)`` with a callback ``fn(*args)``,
    where ``fn`` does nothing unless its arm is the latest one (a token check): so only the
    latest arm's entry matters.  It is given the key (time, priority, event id) the Timeout
    would have had, taken when armed; while an older arm's entry, due earlier, is on the heap
    it is not pushed yet: when that older entry pops (doing nothing, as its Timeout would),
    the latest arm's entry is pushed with its key.  Heap order is by key alone, so every
    other event pops in the same order and at the same time as with a Timeout per arm."""

    __slots__ = ("env", "fn", "latest", "queued")

    def __init__(self, env: simpy.Environment, fn: Callable[..., None]) -> None:
        self.env = env
        self.fn = fn
        self.latest: tuple[Any, ...] | None = None  # (time, event id, args) of the latest arm
        self.queued: dict[int, float] = {}  # event id -> time of this timer's entries on the heap

    def arm(self, delay: float, *args: Any) -> None:
        env = self.env
        when = env._now + delay
        eid = next(env._eid)
        self.latest = (when, eid, args)
        for t in self.queued.values():  # (min(queued.values()) > when, without the builtin call)
            if t <= when:
                return  # an entry of this timer due no later is on the heap: it pushes this one
        self._push(when, eid)  # nothing of this timer on the heap due before it

    def _push(self, when: float, eid: int) -> None:
        push_fire(self.env, when, eid, self._popped, eid)
        self.queued[eid] = when

    def _popped(self, ev: Any) -> None:
        eid = ev._value
        del self.queued[eid]
        when, latest_eid, args = self.latest  # type: ignore[misc]
        if eid == latest_eid:
            self.fn(*args)
        elif latest_eid not in self.queued and not any(t <= when for t in self.queued.values()):
            self._push(when, latest_eid)
