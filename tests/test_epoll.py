"""The epoll-driven receiver (SimConfig.receiver, lbsim/model/eventpoll.py, harness --epoll).

What fs/eventpoll.c makes a receive cost: one more syscall (epoll_wait) per read; one
ep_send_events when the data was already queued, two when the reader had to sleep (the empty
poll of the item put back last time, then the ready one); ep_poll_callback on every
data-ready of a watched socket; no more context switches than a blocking recv.
"""

from __future__ import annotations

import os
import shutil

import pandas as pd
import pytest

import lbsim
from lbsim.config import ConfigError, make_config
from lbsim.costs import apply_stage_edits, load_costs
from lbsim.model.stages import OPTIONAL_STAGES

EP = {"ep_send_events": {"fixed_ns": 150.0}, "ep_poll_callback": {"fixed_ns": 60.0}}
TRANSPORTS = ("tcp", "udp", "unix_stream", "unix_dgram")


def _run(**kw):
    kw.setdefault("messages", 300)
    r = lbsim.simulate(costs="default", deterministic=True, stage_cost=EP, **kw)
    assert r.status == "ok"
    return r, {s["stage"]: s["count"] for s in r.stages}


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("placement", ["same", "cross"])
def test_pingpong_every_read_waits_in_epoll_wait(transport, placement):
    n = 300
    rb, cb = _run(transport=transport, placement=placement, messages=n)
    re, ce = _run(transport=transport, placement=placement, messages=n, receiver="epoll")
    reads = 2 * n  # each round trip: the server reads the request, the client the reply
    assert ce["syscall"] - cb["syscall"] == reads  # epoll_wait before each recv
    assert ce["ep_poll_callback"] == reads  # one data-ready per 64 B message
    # each read slept: the stale item's empty poll, then the ready one (the first read had no stale item)
    assert ce["ep_send_events"] == 2 * reads - 1
    assert re.counters["epoll_waits_slept"] == reads + 1  # (+ the server's last wait, never answered)
    assert ce["schedule"] == cb["schedule"]  # the same sleeps: on ep->wq instead of sk_wq
    assert "ep_send_events" not in cb and "ep_poll_callback" not in cb
    assert re.latency_ns["p50"] > rb.latency_ns["p50"]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_data_already_queued_costs_one_syscall_and_one_poll(transport):
    """split: the task wrote the message before it reads it: epoll_wait returns at once."""
    n = 200
    _, cb = _run(transport=transport, workload="split", messages=n)
    re, ce = _run(transport=transport, workload="split", messages=n, receiver="epoll")
    assert ce["syscall"] - cb["syscall"] == n
    assert ce["ep_send_events"] == n
    assert re.counters["epoll_waits_slept"] == 0


def test_stream_reader_that_keeps_up_polls_less_than_twice_per_read():
    r, c = _run(transport="tcp", workload="stream", msg_bytes=65536, placement="cross", messages=200,
                receiver="epoll")
    reads = (c["syscall"] - 200) // 2  # 200 writes; each read: epoll_wait + recv
    assert r.counters["epoll_waits_slept"] < reads
    assert c["ep_send_events"] < 2 * reads


def test_blocking_is_the_default_and_unchanged_by_the_optional_stages():
    """The optional stages draw from streams of their own: setting their cost changes nothing
    in a run that never charges them (the reference outputs stay bit-identical)."""
    assert make_config({}).receiver == "blocking"
    a = lbsim.simulate(costs="default", messages=300, seed=3, transport="udp", placement="cross")
    b = lbsim.simulate(costs="default", messages=300, seed=3, transport="udp", placement="cross", stage_cost=EP)
    assert (a.latency_samples_ns == b.latency_samples_ns).all()
    assert a.counters == b.counters


def test_a_cost_model_without_the_measured_stages_refuses_in_one_line():
    m = load_costs("default")
    assert not set(OPTIONAL_STAGES) & set(m.stages)
    with pytest.raises(ConfigError) as ei:
        lbsim.simulate(costs="default", messages=10, receiver="epoll")
    msg = str(ei.value)
    assert "\n" not in msg and "receiver 'epoll'" in msg and "ep_send_events" in msg and "--micro-epoll" in msg
    # scaling or removing every stage does not invent them
    assert not set(OPTIONAL_STAGES) & set(apply_stage_edits(m, {"*": 0.9}, None, ["ep_*"]).stages)


def test_bad_receiver_is_rejected_naming_the_field():
    with pytest.raises(ConfigError) as ei:
        make_config({"receiver": "poll"})
    assert str(ei.value).startswith("receiver:") and "'epoll'" in str(ei.value)


def test_knob_column_and_harness_option():
    from lbsim.measure.knob_grid import load_grid, plan
    from lbsim.measure.knob_run import KNOB_COLUMNS, _argv, _settings
    from lbsim.measure.knobs import KNOBS, KnobError, parse_value

    assert parse_value("receiver", "EPOLL") == "epoll" and KNOBS["receiver"].scope == "workload"
    with pytest.raises(KnobError, match="blocking or epoll"):
        parse_value("receiver", "select")
    assert "receiver" in KNOB_COLUMNS
    runs = plan(load_grid("knobs/alt-epoll.toml"))
    defaults = {n: k.default for n, k in KNOBS.items()}
    for r in runs[:3]:
        argv = _argv(r, _settings(r, defaults), 100, 10, 0, 1)
        assert ("--epoll" in argv) == (r.value == "epoll")


def test_run_fields_simulate_the_setting():
    from lbsim.validate.effects import run_fields

    row = pd.Series({"transport": "tcp", "workload": "pingpong", "placement": "cross", "msg_bytes": 64,
                     "knob": "receiver", "setting": "epoll-pingpong/receiver=epoll", "receiver": "epoll"})
    fields, why = run_fields(row, {}, messages=100, seed=1)
    assert why == "" and make_config(fields).receiver == "epoll"


have_cc = shutil.which(os.environ.get("CC", "cc").split()[0]) is not None


@pytest.mark.xdist_group("host")
@pytest.mark.skipif(not have_cc, reason="no C compiler")
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_harness_epoll_option_runs(transport, private_harness_cache):
    """A short functional run (nothing timed): the receivers wait in epoll_wait and every message arrives."""
    from lbsim.measure.harness import run_harness

    r = run_harness(transport, "pingpong", 64, 200, 10, 0, 0, max_seconds=5, epoll=True)
    assert r["receiver"] == "epoll" and r["count"] == 200
    s = run_harness(transport, "stream", 1024, 200, 10, 0, 0, max_seconds=5, epoll=True)
    assert s["receiver"] == "epoll" and (0 < s["received"] <= 200 if transport == "udp" else s["received"] == 200)


@pytest.mark.xdist_group("host")
@pytest.mark.skipif(not have_cc, reason="no C compiler")
def test_harness_rejects_bad_epoll_options(private_harness_cache):
    import subprocess

    from lbsim.measure.harness import build_harness

    exe = str(build_harness())
    p = subprocess.run([exe, "--micro-epoll", "5"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 2 and "--micro-epoll needs" in p.stdout
    p = subprocess.run([exe, "--epoll=1", "--transport", "tcp"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 2 and "error" in p.stdout
