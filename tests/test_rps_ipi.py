"""An RPS IPI into an idle CPU costs the sender what a wake-up IPI into an idle CPU costs:
net_rps_send_ipi -> smp_call_function_single_async -> send_call_function_single_ipi (kernel/smp.c),
the function a remote wake-up of an idle CPU ends in (lbsim/model/netdev.py)."""

from __future__ import annotations

import lbsim


def _stages(**kw):
    r = lbsim.simulate(transport="udp", msg_bytes=64, messages=200, placement="cross", seed=1,
                       deterministic=True, **kw)
    return {s["stage"]: s["count"] for s in r.stages}, r


def test_rfs_pingpong_pays_the_idle_ipi_per_steered_packet():
    # RFS steers each datagram to its reader's CPU, which idles in recv: every RPS IPI kicks a
    # halted CPU, and the reader is then woken on its own CPU; only the first datagram each way,
    # before the flow is recorded, is processed where it was sent and wakes its reader remotely
    st, _ = _stages(workload="pingpong", rps_sock_flow_entries=32768, rps_flow_cnt=4096)
    remote_wakes = st.get("ttwu_queue_wakelist", 0)
    assert st["net_rps_send_ipi"] >= 396 and remote_wakes <= 2
    assert st["send_call_function_single_ipi"] == st["net_rps_send_ipi"] + remote_wakes


def test_rps_flood_into_a_busy_cpu_pays_no_idle_ipi():
    # a flood keeps the target CPU busy (softirq and reader): its IPIs find it running
    st, _ = _stages(workload="stream", rps_cpus=2)
    assert st["net_rps_send_ipi"] > 0
    assert st.get("send_call_function_single_ipi", 0) < st["net_rps_send_ipi"] / 2
