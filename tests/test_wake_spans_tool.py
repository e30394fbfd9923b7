# ruff: noqa: E501  (the listing is ftrace text, one event per line as the kernel prints it)
"""tools/cross-cpu/wake_spans.py: the spans of a cross-CPU ping-pong's wake-ups.  Its parsing alone,
on a listing cut from a real trace (AMD guest, udp, 2026-12-07), and on a simulation's trace: no
tracefs, no harness run."""

import importlib.util
import sys
from pathlib import Path

import pytest

import lbsim

ROOT = Path(__file__).resolve().parent.parent

# one round trip and a half of a udp ping-pong, client (harness) on CPU 0, server (lbsim-peer) on CPU 1
LISTING = """\
# tracer: nop
 harness-028d8ef-25052   [000] d..2. 54742.115933: sched_switch: prev_comm=harness-028d8ef prev_pid=25052 prev_prio=120 prev_state=S ==> next_comm=swapper/0 next_pid=0 next_prio=120
          <idle>-0       [000] d..1. 54742.115934: cpu_idle: state=1 cpu_id=0
          <idle>-0       [001] d..1. 54742.115925: cpu_idle: state=1 cpu_id=1
          <idle>-0       [001] d.h1. 54742.115940: call_function_single_entry: vector=251
          <idle>-0       [001] dNh2. 54742.115942: sched_wakeup: comm=lbsim-peer pid=25053 prio=120 target_cpu=001
          <idle>-0       [001] dN.1. 54742.115943: cpu_idle: state=4294967295 cpu_id=1
          <idle>-0       [001] d..2. 54742.115944: sched_switch: prev_comm=swapper/1 prev_pid=0 prev_prio=120 prev_state=R ==> next_comm=lbsim-peer next_pid=25053 next_prio=120
      lbsim-peer-25053   [001] d.s4. 54742.115949: sched_waking: comm=harness-028d8ef pid=25052 prio=120 target_cpu=000
      lbsim-peer-25053   [001] d.s4. 54742.115950: ipi_send_cpu: cpu=0 callsite=ttwu_queue_wakelist+0x11d/0x150 callback=generic_smp_call_function_single_interrupt+0x0/0x10
      lbsim-peer-25053   [001] d..2. 54742.115960: sched_switch: prev_comm=lbsim-peer prev_pid=25053 prev_prio=120 prev_state=S ==> next_comm=swapper/1 next_pid=0 next_prio=120
          <idle>-0       [001] d..1. 54742.115961: cpu_idle: state=1 cpu_id=1
          <idle>-0       [000] d.h1. 54742.115970: call_function_single_entry: vector=251
          <idle>-0       [000] dNh2. 54742.115972: sched_wakeup: comm=harness-028d8ef pid=25052 prio=120 target_cpu=000
          <idle>-0       [000] dN.1. 54742.115973: cpu_idle: state=4294967295 cpu_id=0
          <idle>-0       [000] d..2. 54742.115974: sched_switch: prev_comm=swapper/0 prev_pid=0 prev_prio=120 prev_state=R ==> next_comm=harness-028d8ef next_pid=25052 next_prio=120
 harness-028d8ef-25052   [000] d.s4. 54742.115982: sched_waking: comm=lbsim-peer pid=25053 prio=120 target_cpu=001
 harness-028d8ef-25052   [000] d.s4. 54742.115982: ipi_send_cpu: cpu=1 callsite=ttwu_queue_wakelist+0x11d/0x150 callback=generic_smp_call_function_single_interrupt+0x0/0x10
 harness-028d8ef-25052   [000] d..2. 54742.115993: sched_switch: prev_comm=harness-028d8ef prev_pid=25052 prev_prio=120 prev_state=S ==> next_comm=swapper/0 next_pid=0 next_prio=120
          <idle>-0       [000] d..1. 54742.115995: cpu_idle: state=1 cpu_id=0
          <idle>-0       [001] d.h1. 54742.116001: call_function_single_entry: vector=251
          <idle>-0       [001] dNh2. 54742.116003: sched_wakeup: comm=lbsim-peer pid=25053 prio=120 target_cpu=001
          <idle>-0       [001] dN.1. 54742.116003: cpu_idle: state=4294967295 cpu_id=1
          <idle>-0       [001] d..2. 54742.116004: sched_switch: prev_comm=swapper/1 prev_pid=0 prev_prio=120 prev_state=R ==> next_comm=lbsim-peer next_pid=25053 next_prio=120
"""


@pytest.fixture(scope="module")
def tool():
    spec = importlib.util.spec_from_file_location("wake_spans", ROOT / "tools" / "cross-cpu" / "wake_spans.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["wake_spans"] = mod
    spec.loader.exec_module(mod)
    return mod


def test_host_spans_cut_at_the_kernel_handovers(tool):
    s = tool.spans(LISTING)
    # the two complete wake-ups: CPU 1 -> 0 (IPI at .115950) and CPU 0 -> 1 (IPI at .115982)
    assert s["to handler"] == pytest.approx([20.0, 19.0])   # .115970 - .115950, .116001 - .115982
    assert s["to switch"] == pytest.approx([4.0, 3.0])      # handler -> the task's sched_switch
    assert s["to ipi"] == pytest.approx([1.0, 0.0])
    assert s["work"] == pytest.approx([5.0, 8.0])           # switch in -> sched_waking of the peer
    assert s["waker on"] == pytest.approx([11.0, 11.0])     # sched_waking -> switch to idle
    # CPU 0 idle since .115934 when the IPI left at .115950; CPU 1 since .115961 at .115982
    assert s["idle before"] == pytest.approx([16.0, 21.0])
    assert s["pairs"] == [pytest.approx((16.0, 20.0, 4.0)), pytest.approx((21.0, 19.0, 3.0))]


def test_idle_age_bins(tool):
    rows = tool.by_idle_age([(1.0, 10.0, 8.0), (1.5, 12.0, 6.0), (16.0, 20.0, 4.0), (250.0, 30.0, 5.0)])
    assert rows == [("0-2", 2, 11.0, 7.0), ("15-20", 1, 20.0, 4.0), ("100-inf", 1, 30.0, 5.0)]


def test_model_spans_of_a_simulated_pingpong(tool):
    r = lbsim.simulate(transport="udp", workload="pingpong", msg_bytes=64, messages=200, placement="cross",
                       trace=True, costs="default", seed=1)
    s = tool.model_spans(r.trace)
    # two wake-ups per round trip, each across CPUs (the warm-up's first one has no switch before it)
    assert len(s["to switch"]) >= 2 * 200 - 2
    assert len(s["work"]) >= 2 * 200 - 2
    # a half round trip is the work before the IPI plus the delivery: their medians add up to
    # about half the round trip (the rest is the reply's copy-out after the switch)
    half = r.latency_ns["p50"] / 2000.0
    work = sorted(s["work"])[len(s["work"]) // 2]
    to_switch = sorted(s["to switch"])[len(s["to switch"]) // 2]
    assert 0 < work < half and 0 < to_switch < half
    assert work + to_switch == pytest.approx(half, rel=0.25)


SAME_CPU = """\
 lbsim-peer-2   [000] d..2. 100.000005: sched_switch: prev_comm=lbsim-peer prev_pid=2 prev_prio=120 prev_state=S ==> next_comm=harness-1 next_pid=1 next_prio=120
 harness-1   [000] ..... 100.000008: sys_enter: NR 45 (3, 7ffd0000, 40, 0, 0, 0)
 harness-1   [000] ..... 100.000011: sys_enter: NR 44 (3, 7ffd0000, 40, 4000, 0, 0)
 harness-1   [000] d..3. 100.000014: sched_waking: comm=lbsim-peer pid=2 prio=120 target_cpu=000
 harness-1   [000] d..2. 100.000018: sched_switch: prev_comm=harness-1 prev_pid=1 prev_prio=120 prev_state=S ==> next_comm=lbsim-peer next_pid=2 next_prio=120
"""


def test_same_cpu_work_splits_at_the_send(tool):
    s = tool.spans(SAME_CPU, same_cpu=True)
    # switched in at .000005, its send (the last syscall entry) at .000011, the wake-up at .000014
    assert s["work"] == pytest.approx([9.0]) and s["send to waking"] == pytest.approx([3.0])
    assert s["to switch"] == [] and s["waker on"] == []  # no IPI, no idle on one CPU
    # across CPUs only (the default), a wake-up on the waker's own CPU is not a half round trip
    assert tool.spans(SAME_CPU)["work"] == []
