"""UDP's reader hands the skb it consumed back to the writer's CPU from 6.18 (skb_consume_udp ->
skb_attempt_defer_free), as TCP's has since 5.19: the kernel profiles, the model's placement of
the free, the calibration's split of it and the tool that counts it on the host."""

import importlib.util
import sys
from pathlib import Path

import pandas as pd
import pytest

import lbsim
from lbsim.calibrate.params import KFREE_HOSTS, split_kfree_skb
from lbsim.costs import load_costs
from lbsim.fitdata import kernel_fields, sim_kernel
from lbsim.kernels import KERNELS

ROOT = Path(__file__).resolve().parent.parent


def test_only_6_18_defers_udp_frees():
    assert KERNELS["linux-6.18"].udp_defer_free and KERNELS["linux-6.18"].udp_rcvbuf_rule == "empty"
    assert not KERNELS["linux-6.12"].udp_defer_free and not KERNELS["linux-2.6.32"].udp_defer_free
    # nothing else differs from 6.12
    a, b = KERNELS["linux-6.12"], KERNELS["linux-6.18"]
    assert a.replace(name=b.name, udp_rcvbuf_rule=b.udp_rcvbuf_rule, udp_defer_free=True) == b


@pytest.mark.parametrize("release,profile", [
    ("6.18.44-fc-v1300", "linux-6.18"), ("6.19.0", "linux-6.18"), ("7.1.2-arch1", "linux-6.18"),
    ("6.12.48-generic", "linux-6.12"), ("5.15.0", "linux-6.12"), ("linux-2.6.32", "linux-2.6.32"),
    ("host", "host"), (None, "linux-6.12"), ("", "linux-6.12"),
])
def test_a_measured_release_maps_to_its_profile(release, profile):
    assert sim_kernel(release) == profile


def test_the_fit_simulates_the_datas_kernel():
    assert kernel_fields(pd.DataFrame({"kernel": ["6.18.44-fc-v769"] * 2}))["kernel"] == "linux-6.18"
    assert "kernel" not in kernel_fields(pd.DataFrame({"x": [1]}))
    with pytest.raises(ValueError, match="column kernel: the rows come from 2 kernel profiles"):
        kernel_fields(pd.DataFrame({"kernel": ["6.18.44-fc-v769", "6.12.1"]}))


def _frees(kernel: str, placement: str, with_result: bool = False):
    r = lbsim.simulate(transport="udp", workload="stream", msg_bytes=1024, messages=400, placement=placement,
                       kernel=kernel, trace=True, costs="default", seed=1)
    out: dict[tuple[int, str], int] = {}
    for _msg, stage, cpu, _who, _t0, _t1, kind in r.trace:
        if stage == "__kfree_skb":
            out[(cpu, kind)] = out.get((cpu, kind), 0) + 1
    return (out, r) if with_result else out


def test_6_18_frees_a_cross_cpu_datagram_on_the_writers_cpu():
    # the reader (CPU 1) defers every skb; the writer's CPU frees them in net_rx_action
    f = _frees("linux-6.18", "cross")
    assert set(f) == {(0, "softirq")} and f[(0, "softirq")] >= 390
    # 6.12: the reader frees each one itself
    f = _frees("linux-6.12", "cross")
    assert set(f) == {(1, "task")} and f[(1, "task")] >= 390


def test_on_one_cpu_the_reader_frees_what_it_reads_and_the_softirq_what_it_drops():
    f, r = _frees("linux-6.18", "same", with_result=True)
    c = r.counters
    assert set(f) <= {(0, "task"), (0, "softirq")}
    assert f.get((0, "task"), 0) == c["messages_delivered"]   # never deferred: it is the writer's CPU
    assert f.get((0, "softirq"), 0) == c["drops_by_site"].get("rcvbuf", 0)  # kfree_skb of a dropped one


def test_deferring_moves_work_from_the_reader_to_the_writer():
    def busy(kernel: str) -> tuple[float, float]:
        r = lbsim.simulate(transport="udp", workload="stream", msg_bytes=1024, messages=3000, placement="cross",
                           kernel=kernel, costs="default", seed=1)
        per = [c["task_ns"] + c["softirq_ns"] for c in r.cpu]
        return per[0] / r.counters["messages_delivered"], per[1] / r.counters["messages_delivered"]

    w12, r12 = busy("linux-6.12")
    w18, r18 = busy("linux-6.18")
    kfree = load_costs("default").stages["__kfree_skb"].fixed_ns
    # per datagram, stage costs drawn with the default profile's spread (seed 1, 3000 datagrams)
    assert r12 - r18 == pytest.approx(kfree, rel=0.35)   # the reader no longer frees
    # the writer's softirq does, and (the reader now quicker, so asleep more often) wakes it more
    assert 0.8 * kfree < w18 - w12 < 3.0 * kfree


def test_the_split_takes_the_free_out_of_both_receive_calls():
    m = load_costs("default")
    s = split_kfree_skb(m, 50.0)
    assert s.stages["__kfree_skb"].fixed_ns == 50.0
    for stage in KFREE_HOSTS:
        assert s.stages[stage].fixed_ns == pytest.approx(m.stages[stage].fixed_ns - 50.0)


def test_the_tool_counts_frees_by_cpu_and_caller():
    spec = importlib.util.spec_from_file_location("free_cpus", ROOT / "tools" / "cross-cpu" / "free_cpus.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["free_cpus"] = mod
    spec.loader.exec_module(mod)
    listing = "\n".join([
        "# tracer: nop",
        *[f"    <idle>-0       [000] ..s1. 100.{i:06d}: consume_skb: skbaddr=000000001 "
          "location=skb_defer_free_flush+0x5c/0x90" for i in range(10)],
        "  harness-1   [001] ..s1. 100.000020: kfree_skb: skbaddr=000000002 location=udp_queue_rcv_one_skb+0x2c/0x60 "
        "protocol=2048 reason: SOCKET_RCVBUFF",
    ])
    assert mod.free_counts(listing, 10) == {"cpu0 consume_skb skb_defer_free_flush": 1.0,
                                            "cpu1 kfree_skb udp_queue_rcv_one_skb": 0.1}


@pytest.mark.parametrize("release,defers", [("6.18.44-fc-v1300", True), ("6.12.48", False), ("7.0.0", True)])
def test_the_host_profile_takes_the_behaviour_from_its_release(monkeypatch, release, defers):
    import platform

    from lbsim.kernels import host_kernel

    monkeypatch.setattr(platform, "release", lambda: release)
    k = host_kernel()
    assert k.udp_defer_free is defers
    assert k.udp_rcvbuf_rule == ("empty" if defers else "le")
