"""MSG_ZEROCOPY over lo and RFS beside RPS (docs/notes/zerocopy-rfs.md): the config fields, the
model's per-message stage calls against the kernel's mechanism, the knobs end to end (registry,
harness argv, the namespace's sysfs file, run_fields), the grid file, and the harness's
--zerocopy in a short functional run (no timing)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from lbsim.config import ConfigError, make_config
from lbsim.measure.knob_grid import estimate_seconds, load_grid, parse_grid, plan
from lbsim.measure.knobs import KNOBS, KnobError, knob, parse_value
from lbsim.model.zerocopy import copy_pages
from lbsim.simulate import simulate

ROOT = Path(__file__).resolve().parents[1]
GRID = ROOT / "knobs" / "alt-zcrfs.toml"


def _sim(**kw):
    base = dict(costs="default", seed=3, cpus=2, deterministic=True)
    return simulate(make_config({**base, **kw}))


def _calls(res) -> dict[str, int]:
    return {r["stage"]: r["count"] for r in res.stages}


# --------------------------------------------------------------- config

def test_zerocopy_needs_tcp_or_udp():
    for t in ("unix_stream", "unix_dgram"):
        with pytest.raises(ConfigError, match=r"zerocopy needs transport 'tcp' or 'udp'"):
            make_config(transport=t, zerocopy=True)
    assert make_config(transport="udp", zerocopy=True).zerocopy


def test_rfs_fields_validated_and_carried_into_the_kernel_profile():
    with pytest.raises(ConfigError, match=r"^rps_flow_cnt: "):
        make_config(rps_flow_cnt=-1)
    with pytest.raises(ConfigError, match=r"^rps_sock_flow_entries: "):
        make_config(rps_sock_flow_entries="many")
    k = make_config(rps_sock_flow_entries=32768, rps_flow_cnt=4096).kernel_params()
    assert (k.rps_sock_flow_entries, k.rps_flow_cnt) == (32768, 4096)
    assert (make_config().kernel_params().rps_sock_flow_entries, make_config().kernel_params().rps_flow_cnt) == (0, 0)


# --------------------------------------------------------------- zerocopy model

def test_copy_pages_follows_skb_copy_ubufs():
    assert [copy_pages(n) for n in (0, 1, 64, 4096, 4097, 16384, 65483, 65507, 65536)] == [0, 1, 1, 1, 2, 4, 16, 16, 16]
    assert copy_pages(17 * 4096 + 1) == 9   # order 1: 8 KiB pages


@pytest.mark.parametrize("transport, copy_stage", [("tcp", "skb_copy_to_page_nocache"),
                                                   ("udp", "ip_generic_getfrag")])
def test_zerocopy_pingpong_moves_the_copy_and_adds_pages_and_a_reap(transport, copy_stage):
    """Per send: copy #1 still runs once (deferred to the receive softirq), one page allocated
    and freed (64 B: one page), one more system call (the MSG_ERRQUEUE reap); every send's
    completion is reaped."""
    n = 200
    plain = _sim(transport=transport, msg_bytes=64, messages=n)
    zc = _sim(transport=transport, msg_bytes=64, messages=n, zerocopy=True)
    p, z = _calls(plain), _calls(zc)
    sends = 2 * n
    c = zc.counters
    assert c["zerocopy_sends"] == c["zerocopy_reaps"] == c["zerocopy_copies"] == sends
    assert z[copy_stage] == p[copy_stage] == sends
    assert z["__alloc_pages"] - p.get("__alloc_pages", 0) == sends
    assert z["__free_pages"] - p.get("__free_pages", 0) == sends
    assert z["syscall"] - p["syscall"] == sends
    # ping-pong: each completion is reaped before the next send (a notification each)
    assert c["zerocopy_notifications"] >= sends - 1
    assert zc.latency_us["p50"] > plain.latency_us["p50"]   # on lo it can only add cost
    assert "zerocopy_sends" not in plain.counters


def test_zerocopy_udp_above_the_mtu_copies_at_send():
    """A datagram above the MTU: __ip_append_data copies it (no deferred copy, no pages), the
    completion and its reap remain."""
    p = _calls(_sim(transport="udp", msg_bytes=4000, mtu=1500, messages=50))
    zres = _sim(transport="udp", msg_bytes=4000, mtu=1500, messages=50, zerocopy=True)
    z = _calls(zres)
    assert z["ip_generic_getfrag"] == p["ip_generic_getfrag"]
    assert z.get("__alloc_pages", 0) == p.get("__alloc_pages", 0)
    assert zres.counters["zerocopy_copies"] == 0 and zres.counters["zerocopy_sends"] == 100
    assert z["syscall"] - p["syscall"] == 100


def test_zerocopy_stream_pages_per_write():
    n = 100
    z = _calls(_sim(transport="udp", workload="stream", msg_bytes=16384, messages=n, zerocopy=True))
    p = _calls(_sim(transport="udp", workload="stream", msg_bytes=16384, messages=n))
    assert z["__alloc_pages"] - p.get("__alloc_pages", 0) == 4 * n


# --------------------------------------------------------------- RFS model

def _flood(senders: int, **kw):
    return _sim(transport="udp", workload="stream", msg_bytes=64, messages=600, placement="cross", rps_cpus=3,
                senders=senders, seed=5, deterministic=False, **kw)


RFS = dict(rps_sock_flow_entries=32768, rps_flow_cnt=4096)


def test_rfs_steers_a_connected_flow_to_its_readers_cpu():
    r = _flood(1, **RFS)
    # every datagram after the reader's first recvmsg goes to the reader's CPU (CPU 1)
    assert r.counters["softnet_received_rps"] >= 600 - 5
    assert r.cpu[1]["softnet_processed"] >= 600 - 5


def test_rfs_is_a_noop_without_both_tables_or_for_an_unconnected_receiver():
    for kw in (dict(rps_sock_flow_entries=32768), dict(rps_flow_cnt=4096)):
        assert _flood(1, **kw).latency_us == _flood(1).latency_us
    # two senders: the receiver is not connected (not TCP_ESTABLISHED): nothing recorded
    a, b = _flood(2, **RFS), _flood(2)
    assert a.latency_us == b.latency_us and a.counters["softnet_received_rps"] == b.counters["softnet_received_rps"]


@pytest.mark.parametrize("transport", ["tcp", "udp"])
def test_rfs_pingpong_runs_each_softirq_on_the_readers_cpu(transport):
    n = 100
    r = _sim(transport=transport, msg_bytes=64, messages=n, placement="cross", **RFS)
    plain = _sim(transport=transport, msg_bytes=64, messages=n, placement="cross")
    assert plain.counters["softnet_received_rps"] == 0
    assert r.counters["softnet_received_rps"] >= 2 * n - 2   # both directions, after the first packets


# --------------------------------------------------------------- knobs, argv, run_fields, grid

def test_registry():
    assert knob("zerocopy").scope == "socket" and knob("zerocopy").default == "off"
    assert parse_value("zerocopy", "1") == "on" and parse_value("zerocopy", "off") == "off"
    with pytest.raises(KnobError, match=r"^knob zerocopy: bad value"):
        parse_value("zerocopy", "maybe")
    k = knob("rps_flow_cnt")
    assert k.scope == "netns" and k.root and parse_value("rps_flow_cnt", "4096") == 4096
    with pytest.raises(KnobError, match=r"^knob rps_flow_cnt: bad value"):
        parse_value("rps_flow_cnt", "-1")


def _run(knob_name, value, transport="tcp", fixed=None):
    g = {"name": "g", "knob": knob_name, "values": [value], "transports": [transport],
         "workloads": ["pingpong"], "sizes": [64], "placements": ["cross"]}
    if fixed:
        g["fixed"] = fixed
    return [r for r in plan(parse_grid({"group": [g]})) if r.value != "default"][0]


def test_argv_and_namespace():
    import lbsim.measure.knob_run as kr

    defaults = {n: k.default for n, k in KNOBS.items()}
    defaults.update(rps_cpus="0", rps_flow_cnt=0, rps_sock_flow_entries=0)
    run = _run("zerocopy", "on")
    assert "--zerocopy" in kr._argv(run, kr._settings(run, defaults), 10, 1, 0, 1)
    d = _run("rps_sock_flow_entries", 32768, fixed={"rps_flow_cnt": 4096})
    s = kr._settings(d, defaults)
    assert "--zerocopy" not in kr._argv(d, s, 10, 1, 0, 1)
    assert kr._netns_knobs(s, 1)["rps_flow_cnt"] == 4096
    assert {"zerocopy", "rps_flow_cnt"} <= set(kr.KNOB_COLUMNS)
    assert {"zc_sends", "zc_completed", "zc_copied"} <= set(kr.COUNTER_COLUMNS)


def test_run_fields_simulates_rfs_and_zerocopy():
    from lbsim.validate.effects import run_fields

    row = pd.Series({"transport": "udp", "workload": "pingpong", "placement": "cross", "msg_bytes": 64,
                     "setting": "g/rps_sock_flow_entries=32768", "knob": "rps_sock_flow_entries",
                     "rps_sock_flow_entries": 32768, "rps_flow_cnt": 4096, "rps_cpus": "0", "zerocopy": "on"})
    fields, why = run_fields(row, {}, messages=50, seed=1)
    assert why == "" and fields is not None
    cfg = make_config(fields)
    assert cfg.zerocopy and cfg.kernel_params().rps_sock_flow_entries == 32768
    assert simulate(cfg).status == "ok"


def test_grid_file():
    g = load_grid(GRID)
    assert g.reps == 4
    knobs = {gr.knob for gr in g.groups}
    assert knobs == {"zerocopy", "rps_sock_flow_entries"}
    assert 20 <= estimate_seconds(plan(g)) <= 70


# --------------------------------------------------------------- the harness (functional, no timing)

@pytest.mark.xdist_group("host")
@pytest.mark.parametrize("transport, workload", [("tcp", "pingpong"), ("udp", "pingpong"), ("tcp", "stream")])
def test_harness_zerocopy_completions_say_copied(transport, workload, private_harness_cache):
    from lbsim.measure.harness import HarnessUnavailable, build_harness
    try:
        exe = build_harness()
    except HarnessUnavailable as e:
        pytest.skip(str(e))
    argv = [str(exe), "--transport", transport, "--workload", workload, "--size", "4096", "--count", "200",
            "--warmup", "10", "--cpu-a", "0", "--cpu-b", "0", "--max-seconds", "3", "--zerocopy"]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    r = json.loads(p.stdout.splitlines()[-1])
    if p.returncode == 2 and "SO_ZEROCOPY" in r.get("error", ""):
        pytest.skip("kernel refuses SO_ZEROCOPY")
    assert p.returncode == 0, r
    assert r["zerocopy"] == 1 and r["zc_sends"] > 0
    # lo copies every zerocopy skb in its receive path: every completion says COPIED
    assert r["zc_completed"] == r["zc_sends"] == r["zc_copied"]


@pytest.mark.xdist_group("host")
def test_harness_refuses_zerocopy_on_af_unix(private_harness_cache):
    from lbsim.measure.harness import HarnessUnavailable, build_harness
    try:
        exe = build_harness()
    except HarnessUnavailable as e:
        pytest.skip(str(e))
    p = subprocess.run([str(exe), "--transport", "unix_stream", "--workload", "pingpong", "--size", "64",
                        "--count", "5", "--warmup", "0", "--cpu-a", "0", "--cpu-b", "0", "--zerocopy"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 2 and "--zerocopy needs tcp or udp" in json.loads(p.stdout)["error"]


# --------------------------------------------------------------- --set and experiment files

def test_set_and_experiment_file(tmp_path):
    from lbsim.cli._common import parse_sets
    from lbsim.experiment import expand, load_experiment

    assert parse_sets(["zerocopy=true", "rps_flow_cnt=4096"]) == {"zerocopy": True, "rps_flow_cnt": 4096}
    f = tmp_path / "alt.toml"
    f.write_text('name = "alt"\n[base]\ntransport = "udp"\nmessages = 20\nplacement = "cross"\n'
                 'rps_flow_cnt = 4096\n[factors]\nzerocopy = [false, true]\nrps_sock_flow_entries = [0, 32768]\n')
    runs = expand(load_experiment(f))
    assert [r.status for r in runs] == ["pending"] * 4
    got = {(r.config["zerocopy"], r.config["rps_sock_flow_entries"], r.config["rps_flow_cnt"]) for r in runs}
    assert got == {(False, 0, 4096), (False, 32768, 4096), (True, 0, 4096), (True, 32768, 4096)}
