"""The unix_dgram ping-pong server replies with sendto(client path): each reply looks the path up
(unix_find_other), which a send on a connected socket does not.  The model charges the measured
lookup on the replies only; the calibration reads it from the harness's --micro-unix-lookup."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

import lbsim
from lbsim.calibrate.base import base_from_stage_intervals
from lbsim.costs import cost_model_from_dict, load_costs

LOOKUP = {"unix_find_other": {"fixed_ns": 2000.0}}
have_cc = shutil.which(os.environ.get("CC", "cc").split()[0]) is not None


def _p50(transport: str, workload: str = "pingpong", placement: str = "same", **kw) -> float:
    r = lbsim.simulate(transport=transport, workload=workload, msg_bytes=64, messages=50, placement=placement,
                       costs="default", deterministic=True, **kw)
    return r.latency_ns["p50"] if workload == "pingpong" else r.throughput["bytes_per_s"]


@pytest.mark.parametrize("placement", ["same", "cross"])
def test_each_reply_pays_the_lookup_once(placement):
    # one addressed send per round trip (the reply), on the critical path on one CPU as across
    assert _p50("unix_dgram", placement=placement, stage_cost=LOOKUP) - _p50("unix_dgram", placement=placement) \
        == pytest.approx(2000.0, abs=1.0)


def test_connected_sends_never_pay_it():
    # the client's requests and a stream's writes go on a connected socket; seqpacket is connected both ways
    assert _p50("unix_dgram", "stream", stage_cost=LOOKUP) == _p50("unix_dgram", "stream")
    assert _p50("unix_seqpacket", stage_cost=LOOKUP) == _p50("unix_seqpacket")
    assert _p50("udp", stage_cost=LOOKUP) == _p50("udp")


def test_a_cost_file_from_before_the_stage_charges_nothing():
    data = json.loads(json.dumps(load_costs("default").to_dict()))
    data["stages"].pop("unix_find_other", None)
    m = cost_model_from_dict(data)
    assert m.stages["unix_find_other"].fixed_ns == 0.0


def test_the_calibration_takes_the_measured_lookup():
    stages = json.loads((Path(lbsim.__file__).parent / "data" / "stages-host.json").read_text())
    fixed, _, rules = base_from_stage_intervals(stages)
    # a stage file from before the micro-benchmark: 0, and the profile says why
    assert fixed["unix_find_other"] == 0.0 and "not in this stage file" in rules["unix_find_other"]
    stages["unix_lookup"] = {"unix_find_other_ns": 1065.7}
    fixed, _, rules = base_from_stage_intervals(stages)
    assert fixed["unix_find_other"] == 1065.7 and "--micro-unix-lookup" in rules["unix_find_other"]


@pytest.mark.xdist_group("host")
@pytest.mark.skipif(not have_cc, reason="no C compiler")
def test_the_harness_measures_the_lookup(private_harness_cache):
    from lbsim.measure.harness import build_harness, micro_unix_lookup

    r = micro_unix_lookup(calls=31_000)
    assert set(r) >= {"sendto_recv_ns", "send_recv_ns", "unix_find_other_ns", "calls"}
    # each printed to 0.01 ns: their difference may differ from the printed one by up to 0.015 ns
    assert r["unix_find_other_ns"] == pytest.approx(r["sendto_recv_ns"] - r["send_recv_ns"], abs=0.02)
    # timed, not compared: beside the other test workers either loop may come out slower
    assert r["sendto_recv_ns"] > 0 and r["send_recv_ns"] > 0 and r["calls"] == 31_000 // 31 * 31
    p = subprocess.run([str(build_harness()), "--micro-unix-lookup", "5"], capture_output=True, text=True,
                       timeout=30)
    assert p.returncode == 2 and "--micro-unix-lookup needs" in p.stdout
