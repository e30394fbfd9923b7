"""tools/idle-wake/polling_window.py (docs/notes/idle-polling.md): how a traced idle of the
reader's CPU ends.  The parser alone, on a synthetic ftrace text: no root, no tracefs."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _windows():
    spec = importlib.util.spec_from_file_location("polling_window", ROOT / "tools" / "idle-wake" / "polling_window.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.windows


def _line(cpu: int, t_us: float, event: str, rest: str) -> str:
    return f"          task-1  [{cpu:03d}] d..2.  {1000 + t_us / 1e6:.6f}: {event}: {rest}"


TO_IDLE = "prev_comm=reader prev_pid=7 prev_prio=120 prev_state=S ==> next_comm=swapper/1 next_pid=0 next_prio=120"
FROM_IDLE = "prev_comm=swapper/1 prev_pid=0 prev_prio=120 prev_state=R ==> next_comm=reader next_pid=7 next_prio=120"
TRACE = "\n".join([
    "# tracer: nop",
    # an idle ended by a wake-up while the CPU still polls: no IPI, the reader runs 1 us later
    _line(1, 0, "sched_switch", TO_IDLE),
    _line(0, 2, "sched_wake_idle_without_ipi", "cpu=1"),
    _line(1, 3, "sched_switch", FROM_IDLE),
    # an idle that reaches the halt at 8 us and is ended by the IPI 20 us after the switch
    _line(1, 100, "sched_switch", TO_IDLE),
    _line(1, 108, "cpu_idle", "state=1 cpu_id=1"),
    _line(0, 120, "ipi_send_cpu", "cpu=1 callsite=x callback=y"),
    _line(1, 130, "cpu_idle", "state=4294967295 cpu_id=1"),
    _line(1, 139, "sched_switch", FROM_IDLE),
    # an IPI while CPU 1 runs a task: not an idle's end
    _line(0, 200, "ipi_send_cpu", "cpu=1 callsite=x callback=y"),
])


def test_each_idle_is_classified_with_its_intervals():
    w = _windows()(TRACE)
    assert w["no_ipi"] == [pytest.approx(2.0)] and w["no_ipi_to_run"] == [pytest.approx(1.0)]
    assert w["halt"] == [pytest.approx(8.0)]
    assert w["ipi_after_halt"] == [pytest.approx(20.0)] and w["ipi_to_run"] == [pytest.approx(19.0)]


def test_the_other_cpu_is_followed_when_asked():
    # the same text seen from CPU 0: it never switches to idle, so nothing is counted
    assert all(not v for v in _windows()(TRACE, idle_cpu=0).values())


def test_text_events_reads_cpu_time_name_and_fields():
    from lbsim.measure.stages_parse import text_events

    text = "# tracer: nop\n" + _line(1, 2, "sched_wake_idle_without_ipi", "cpu=1") + "\nnot a trace line\n"
    assert list(text_events(text)) == [(1, pytest.approx(1000e6 + 2), "sched_wake_idle_without_ipi", "cpu=1")]
