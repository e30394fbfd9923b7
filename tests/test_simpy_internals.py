"""SimPy's private internals that lbsim's core drives directly, checked against the installed simpy.

lbsim/model/timers.py (push_fire, LazyTimer), cpu.py (CPU._start, the per-command hot path) and
sim.py (Sim.run_inline, the trampoline) bypass ``env.timeout()``: they push heap entries onto
``Environment._queue`` themselves, take event ids from ``Environment._eid``, read the next entry's
time as ``_queue[0][0]`` and read and write the clock ``Environment._now``.  A simpy release that
changes any of this would break the model (or, worse, silently change its numbers); these tests
say which internal changed.  Tested with simpy 4.1.2.
"""

from __future__ import annotations

from heapq import heappop

import pytest
import simpy
import simpy.core
import simpy.events

from lbsim.model.timers import LazyTimer, push_fire


def _changed(what: str) -> str:
    return (f"simpy {simpy.__version__} changed {what}; lbsim's core (lbsim/model/timers.py, cpu.py, sim.py) "
            f"drives it directly - pin simpy to the tested range (4.1.x)")


def test_environment_keeps_a_heap_a_clock_and_an_event_counter():
    env = simpy.Environment()
    assert isinstance(getattr(env, "_queue", None), list) and env._queue == [], _changed("Environment._queue")
    assert getattr(env, "_now", None) == 0, _changed("Environment._now")
    eid = getattr(env, "_eid", None)
    assert eid is not None, _changed("Environment._eid")
    a, b = next(eid), next(eid)
    assert isinstance(a, int) and b == a + 1, _changed("Environment._eid (next() must give increasing ints)")
    env._now = 123.5
    assert env.now == 123.5, _changed("Environment.now (must read Environment._now)")


def test_priority_constants():
    assert hasattr(simpy.core, "NORMAL") and hasattr(simpy.core, "URGENT"), _changed("simpy.core.NORMAL/URGENT")
    assert simpy.core.URGENT < simpy.core.NORMAL, _changed("the priority order (URGENT before NORMAL)")


def test_timeout_pushes_time_priority_eid_event():
    """LazyTimer gives its entries the key a Timeout would have had: (now + delay, NORMAL, the next
    event id, event), the event id drawn from the same counter."""
    env = simpy.Environment()
    env._now = 10.0
    eid = next(env._eid)
    ev = env.timeout(5.0, value="x")
    assert len(env._queue) == 1, _changed("Environment.schedule (one heap entry per Timeout)")
    entry = env._queue[0]
    assert isinstance(entry, tuple) and len(entry) == 4, _changed("the heap entry (time, priority, eid, event)")
    assert entry == (15.0, simpy.core.NORMAL, eid + 1, ev), _changed("the heap entry (time, priority, eid, event)")
    assert next(env._eid) == eid + 2, _changed("Environment._eid (shared by every scheduled event)")
    for attr, want in (("callbacks", []), ("_value", "x"), ("_ok", True), ("env", env)):
        assert getattr(ev, attr, None) == want, _changed(f"Event.{attr}")


def test_step_pops_entries_by_key_sets_now_and_runs_callbacks():
    """push_fire's entries (events made without their constructor) are processed like Timeouts:
    in (time, priority, eid) order, the clock set to each entry's time, the callback given the
    event, whose ``_value`` is what push_fire stored; a processed event's callbacks are None."""
    env = simpy.Environment()
    seen = []

    def cb(ev):
        seen.append((env.now, ev._value))

    e3 = push_fire(env, 7.0, 3, cb, "c")
    e1 = push_fire(env, 7.0, 1, cb, "a")
    push_fire(env, 2.0, 9, cb, "first")
    push_fire(env, 9.0, 0, cb, "last")
    assert isinstance(e1, simpy.events.Event)
    assert env._queue[0][0] == 2.0, _changed("Environment._queue (a heapq heap, earliest entry first)")
    env.run()
    assert seen == [(2.0, "first"), (7.0, "a"), (7.0, "c"), (9.0, "last")], _changed("Environment.step")
    assert e1.callbacks is None and e3.callbacks is None and e1.processed, _changed("Event processing")


def test_writing_now_between_steps_is_respected():
    """The trampoline completes commands without heap entries by setting ``env._now`` itself,
    inside a callback; what is scheduled next must start from that time."""
    env = simpy.Environment()
    seen = []

    def jump(_ev):
        env._now = 50.0  # a command completed inline, at 50
        t = env.timeout(5.0)
        t.callbacks.append(lambda _e: seen.append(env.now))

    push_fire(env, 10.0, next(env._eid), jump, None)
    env.run()
    assert seen == [55.0], _changed("Environment.schedule/step (must use and set Environment._now)")


def test_run_until_an_event_stops_with_our_entries_on_the_heap():
    env = simpy.Environment()
    done = env.event()
    push_fire(env, 5.0, next(env._eid), lambda _e: done.succeed(), None)
    push_fire(env, 8.0, next(env._eid), lambda _e: pytest.fail("ran past the until event"), None)
    env.run(until=done)
    assert env.now == 5.0, _changed("Environment.run(until=event)")
    assert 8.0 in [e[0] for e in env._queue], _changed("Environment.run(until=event) (later entries stay queued)")


def test_lazy_timer_fires_as_a_timeout_per_arm_would():
    """LazyTimer (one heap entry per expiry) against a Timeout per arm whose callback checks a
    token: the same firings, at the same times, interleaved the same way with other events."""

    def scenario(lazy: bool) -> list:
        env = simpy.Environment()
        log = []
        token = [0]

        def fire(tok):
            if tok == token[0]:
                log.append(("fire", env.now, tok))

        timer = LazyTimer(env, fire) if lazy else None

        def arm(delay):
            token[0] += 1
            if lazy:
                timer.arm(delay, token[0])
            else:
                ev = env.timeout(delay)
                ev.callbacks.append(lambda _e, tok=token[0]: fire(tok))

        def other(name):
            return lambda _e: log.append((name, env.now))

        # re-arm later, earlier and at the same time as other events, then let it expire
        for t, delay in ((0.0, 40.0), (10.0, 40.0), (20.0, 5.0), (30.0, 40.0), (30.0, 40.0)):
            ev = env.timeout(t)
            ev.callbacks.append(lambda _e, d=delay: arm(d))
        for t in (25.0, 45.0, 70.0, 70.0):
            env.timeout(t).callbacks.append(other(f"other@{t}"))
        env.run()
        log.append(("end", env.now))
        return log

    assert scenario(True) == scenario(False), _changed("the heap order LazyTimer reproduces")


def test_heap_entries_pop_in_tuple_order():
    """Heap order is by key alone (time, priority, eid): the event itself is never compared."""
    env = simpy.Environment()
    for when, eid in ((3.0, 5), (3.0, 2), (1.0, 7)):
        push_fire(env, when, eid, lambda _e: None, None)
    keys = [heappop(env._queue)[:3] for _ in range(3)]
    assert keys == [(1.0, simpy.core.NORMAL, 7), (3.0, simpy.core.NORMAL, 2), (3.0, simpy.core.NORMAL, 5)]
