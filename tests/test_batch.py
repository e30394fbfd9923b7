"""Batching calls (SimConfig/knob ``batch``, harness --batch; docs/notes/batch.md): sendmmsg/recvmmsg
for udp and unix_dgram streams, MSG_MORE for TCP, a no-op for unix_stream."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from lbsim.config import ConfigError, make_config
from lbsim.measure.knob_grid import estimate_seconds, load_grid, parse_grid, plan
from lbsim.measure.knobs import KNOBS, KnobError, knob, parse_value
from lbsim.model.batching import without_entry
from lbsim.model.stages import SID
from lbsim.simulate import simulate

ROOT = Path(__file__).resolve().parents[1]
GRID = ROOT / "knobs" / "alt-batch.toml"


def _run(**kw):
    cfg = dict(workload="stream", msg_bytes=64, messages=400, costs="default", deterministic=True, seed=3)
    cfg.update(kw)
    r = simulate(cfg)
    assert r.status == "ok", r.message
    return r, {s["stage"]: s["count"] for s in r.stages}


# --------------------------------------------------------------- configuration

@pytest.mark.parametrize("bad", [0, 65])
def test_batch_out_of_range_is_one_line_naming_the_field(bad):
    with pytest.raises(ConfigError, match="batch") as e:
        make_config({"workload": "stream", "batch": bad})
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("workload", ["pingpong", "rr", "poisson", "burst", "split"])
def test_batch_needs_a_stream(workload):
    with pytest.raises(ConfigError, match="batch = 4 needs workload 'stream'"):
        make_config({"workload": workload, "batch": 4})
    assert make_config({"workload": workload, "batch": 1}).batch == 1


# --------------------------------------------------------------- the model, per message

@pytest.mark.parametrize("transport", ["udp", "unix_dgram"])
@pytest.mark.parametrize("placement", ["same", "cross"])
def test_mmsg_one_syscall_per_call_protocol_stages_per_message(transport, placement):
    m, n = 400, 16
    _, c1 = _run(transport=transport, placement=placement, messages=m)
    _, cn = _run(transport=transport, placement=placement, messages=m, batch=n)
    send = f"{transport}_sendmsg"
    recv = f"{transport}_recvmsg"
    assert c1[send] == cn[send] == m   # every message still runs the protocol's sendmsg
    assert cn[recv] == c1[recv]        # ... and recvmsg (the same datagrams arrive)
    assert c1["syscall"] == c1[send] + c1[recv]   # one call per message each way
    # sendmmsg: ceil(m / n) calls; recvmmsg: at least ceil(received / n), at most one per datagram
    send_calls = math.ceil(m / n)
    recv_calls = cn["syscall"] - send_calls
    assert math.ceil(cn[recv] / n) <= recv_calls <= cn[recv]
    assert cn["syscall"] < c1["syscall"]


def test_unix_stream_ignores_msg_more():
    """unix_stream_sendmsg never reads MSG_MORE: the same run, number for number."""
    for placement in ("same", "cross"):
        r1, c1 = _run(transport="unix_stream", placement=placement, msg_bytes=1024)
        rn, cn = _run(transport="unix_stream", placement=placement, msg_bytes=1024, batch=16)
        assert c1 == cn
        assert r1.throughput == rn.throughput and r1.sim_time_ns == rn.sim_time_ns


def test_tcp_msg_more_corks_until_the_last_write():
    """A batch as long as the run: nothing is sent before the write without MSG_MORE (no ACK can
    arrive to push it), then one skb carries all of it."""
    m = 8
    _, c = _run(transport="tcp", placement="cross", messages=m, batch=m)
    assert c["tcp_sendmsg"] == m and c["syscall"] >= m   # one call per write, as without MSG_MORE
    assert c["tcp_transmit_skb"] == 1
    _, c1 = _run(transport="tcp", placement="cross", messages=m)
    assert c1["tcp_transmit_skb"] == m


def test_tcp_batches_send_fewer_packets_same_calls():
    _, c1 = _run(transport="tcp", placement="cross")
    _, c4 = _run(transport="tcp", placement="cross", batch=4)
    assert c4["tcp_sendmsg"] == c1["tcp_sendmsg"] == 400
    assert c4["syscall"] - c4["tcp_recvmsg"] == 400   # the writes are still one call each
    assert c4["tcp_transmit_skb"] < c1["tcp_transmit_skb"]


def test_without_entry_drops_the_syscall_stage_only():
    s_sys, s_x = SID["syscall"], SID["udp_sendmsg"]

    def call():
        yield [30.0, [(s_sys, 10.0), (s_x, 20.0)]]
        yield "preempt"
        return 7

    g = without_entry(call())
    assert next(g) == [20.0, [(s_x, 20.0)]]
    assert next(g) == "preempt"
    with pytest.raises(StopIteration) as e:
        next(g)
    assert e.value.value == 7

    def bad():
        yield [20.0, [(s_x, 20.0)]]

    with pytest.raises(RuntimeError, match="syscall stage"):
        next(without_entry(bad()))


# --------------------------------------------------------------- knob, argv, grid, run_fields

def test_knob_registry_and_argv():
    import lbsim.measure.knob_run as kr

    k = knob("batch")
    assert k.scope == "workload" and k.column == "batch" and k.default == 1 and not k.root
    assert parse_value("batch", "16") == 16
    for bad in ("0", "65", "x"):
        with pytest.raises(KnobError, match="^knob batch: bad value"):
            parse_value("batch", bad)
    grid = parse_grid({"group": [{"name": "g", "knob": "batch", "values": [16], "transports": ["udp"],
                                  "workloads": ["stream"], "sizes": [64], "placements": ["same"]}]})
    runs = plan(grid)
    defaults = {n: kn.default for n, kn in KNOBS.items()}
    on = [r for r in runs if r.value != "default"][0]
    off = [r for r in runs if r.value == "default"][0]
    argv = kr._argv(on, kr._settings(on, defaults), 10, 1, 0, 0)
    assert argv[argv.index("--batch") + 1] == "16"
    assert "--batch" not in kr._argv(off, kr._settings(off, defaults), 10, 1, 0, 0)
    assert "batch" in kr.KNOB_COLUMNS


def test_grid_file():
    g = load_grid(GRID)
    assert g.reps == 4 and {gr.knob for gr in g.groups} == {"batch"}
    assert estimate_seconds(plan(g)) <= 60
    seen = {t for gr in g.groups for t in gr.transports}
    assert seen == {"udp", "unix_dgram", "tcp", "unix_stream"}
    for gr in g.groups:
        assert gr.workloads == ("stream",) and set(gr.placements) == {"same", "cross"}
        make_config({"transport": gr.transports[0], "workload": "stream", "batch": max(gr.values)})


def test_run_fields_simulates_the_setting():
    from lbsim.validate.effects import run_fields

    row = pd.Series({"transport": "unix_dgram", "workload": "stream", "placement": "cross", "msg_bytes": 64,
                     "knob": "batch", "setting": "g/batch=16", "batch": 16, "flows": 1, "senders": 1})
    fields, why = run_fields(row, {}, messages=100, seed=1)
    assert why == "" and fields is not None and fields["batch"] == 16
    assert make_config(fields).batch == 16


# --------------------------------------------------------------- the harness option (no timing)

@pytest.fixture
def harness():
    from lbsim.measure.harness import HarnessUnavailable, build_harness
    try:
        return str(build_harness())
    except HarnessUnavailable as e:
        pytest.skip(str(e))


def _argv(exe: str, transport: str, workload: str = "stream", *extra: str) -> list[str]:
    return [exe, "--transport", transport, "--workload", workload, "--size", "64", "--count", "200",
            "--warmup", "20", "--cpu-a", "0", "--cpu-b", "0", "--max-seconds", "3", *extra]


@pytest.mark.xdist_group("host")
@pytest.mark.parametrize("transport", ["udp", "unix_dgram", "tcp", "unix_stream"])
def test_harness_batch_runs_a_stream(harness, transport):
    p = subprocess.run(_argv(harness, transport, "stream", "--batch", "8"), capture_output=True, text=True,
                       timeout=60)
    r = json.loads(p.stdout.splitlines()[-1])
    assert p.returncode == 0, r
    assert r["batch"] == 8 and r["sent"] == 200
    if transport in ("tcp", "unix_stream", "unix_dgram"):   # udp may drop on one CPU
        assert r["received"] == 200


@pytest.mark.xdist_group("host")
@pytest.mark.parametrize("extra, message", [
    (("--batch", "0"), "invalid value '0' for --batch"),
    (("--batch", "65"), "invalid value '65' for --batch"),
    (("--batch", "x"), "invalid value 'x' for --batch"),
])
def test_harness_batch_bad_values(harness, extra, message):
    p = subprocess.run(_argv(harness, "udp", "stream", *extra), capture_output=True, text=True, timeout=30)
    assert p.returncode == 2 and message in json.loads(p.stdout.splitlines()[-1])["error"]


@pytest.mark.xdist_group("host")
@pytest.mark.parametrize("workload", ["pingpong", "split"])
def test_harness_batch_needs_a_stream(harness, workload):
    p = subprocess.run(_argv(harness, "tcp", workload, "--batch", "4"), capture_output=True, text=True, timeout=30)
    assert p.returncode == 2 and "--batch needs --workload stream" in json.loads(p.stdout.splitlines()[-1])["error"]
    plain = subprocess.run(_argv(harness, "tcp", workload, "--batch", "1"), capture_output=True, text=True,
                           timeout=60)
    assert plain.returncode == 0 and json.loads(plain.stdout.splitlines()[-1])["batch"] == 1
