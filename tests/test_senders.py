"""Two senders into one UDP socket, and RPS's remote backlog (lbsim.model.netdev, host, udp)."""

from __future__ import annotations

from collections import Counter

import pytest

import lbsim
from lbsim.config import ConfigError, make_config

KW = dict(transport="udp", workload="stream", placement="cross", deterministic=True)


def test_two_senders_share_one_socket_on_the_senders_cpu():
    """harness.c --senders 2: a second process on --cpu-c (default --cpu-a) with its own socket,
    sending --count too, into the one receiving socket."""
    r = lbsim.simulate(msg_bytes=64, messages=300, senders=2, trace=True, **KW)
    c = r.counters
    assert c["messages_sent"] == 600 == c["messages_delivered"] + c["messages_dropped"]
    tf = r.trace_frame()
    sends = tf[tf["stage"] == "udp_sendmsg"]
    assert Counter(sends["context"]) == {"client0": 300, "client0.1": 300}
    assert set(sends["cpu"]) == {0}
    assert set(tf[tf["stage"] == "udp_recvmsg"]["context"]) == {"server0"}


def test_two_senders_on_one_cpu_send_no_faster_than_one():
    """Both senders share CPU 0, whose send path (and, without RPS, the whole receive softirq)
    is the bottleneck: the rate stays within a few per cent of one sender's."""
    one = lbsim.simulate(msg_bytes=64, messages=2000, **{**KW, "deterministic": False})
    two = lbsim.simulate(msg_bytes=64, messages=1000, senders=2, **{**KW, "deterministic": False})
    assert two.throughput["bytes_per_s"] == pytest.approx(one.throughput["bytes_per_s"], rel=0.05)


@pytest.mark.parametrize("bad", [dict(transport="tcp"), dict(workload="rr"), dict(transport="unix_dgram")])
def test_senders_need_a_one_way_udp_workload(bad):
    with pytest.raises(ConfigError, match="senders"):
        make_config({**KW, "senders": 2, **bad})


def test_rps_onto_the_sending_cpu_is_the_default_path():
    """get_rps_cpu picking the CPU that transmits: the local backlog, as without RPS (no IPI):
    the same run, number for number."""
    a = lbsim.simulate(msg_bytes=64, messages=500, seed=3, **{**KW, "deterministic": False})
    b = lbsim.simulate(msg_bytes=64, messages=500, seed=3, rps_cpus=0b01, **{**KW, "deterministic": False})
    assert a.counters == b.counters
    assert a.latency_ns == b.latency_ns


def test_rps_over_all_cpus_draws_the_flows_cpu_per_run():
    """With two CPUs in rps_cpus a flow's hash picks one per run (random ports, boot-random
    jhash seed): over seeds both the sender's own CPU (no packet steered) and the other occur."""
    steered = {lbsim.simulate(msg_bytes=64, messages=50, seed=s, rps_cpus=0b11, **KW)
               .counters["softnet_received_rps"] for s in range(12)}
    assert steered == {0, 50}
