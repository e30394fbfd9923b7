"""Switches that do nothing on lo (docs/notes/noop-switches.md): SO_BUSY_POLL, net.core.busy_read
and net.ipv4.tcp_autocorking.  Their knobs end to end (registry, harness argv, the grid file,
the global-knob journal on a fake /proc/sys tree: no test changes a real sysctl), the harness's
--busy-poll on its own sockets, and the model's answer: the setting simulates exactly as its
default (effect 1.00)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from lbsim.measure.knob_grid import estimate_seconds, load_grid, parse_grid, plan
from lbsim.measure.knobs import KNOBS, KnobError, knob, parse_value

ROOT = Path(__file__).resolve().parents[1]
GRID = ROOT / "knobs" / "default.toml"
COSTS = ROOT / "data" / "hosts" / "amd-epyc-2026-12-06-v1300" / "costs.json"
NOOP = ("so_busy_poll", "busy_read", "tcp_autocorking")


# --------------------------------------------------------------- registry, argv, grid file

def test_registry_scopes_and_values():
    assert knob("so_busy_poll").scope == "socket" and not knob("so_busy_poll").root
    assert knob("so_busy_poll").default == "default"
    assert knob("busy_read").scope == "global" and knob("busy_read").sysctl == "net.core.busy_read"
    assert knob("tcp_autocorking").scope == "netns"
    assert knob("tcp_autocorking").sysctl == "net.ipv4.tcp_autocorking"
    assert parse_value("so_busy_poll", "50") == 50 and parse_value("tcp_autocorking", "0") == 0
    for name, bad in (("so_busy_poll", "-1"), ("busy_read", "x"), ("tcp_autocorking", "2")):
        with pytest.raises(KnobError, match=rf"^knob {name}: bad value"):
            parse_value(name, bad)


def _run(knob_name: str, value, transport: str = "tcp"):
    grid = parse_grid({"group": [{"name": "g", "knob": knob_name, "values": [value], "transports": [transport],
                                  "workloads": ["pingpong"], "sizes": [64], "placements": ["same"]}]})
    return [r for r in plan(grid) if r.value != "default"][0]


def test_argv_and_namespace_sysctls():
    import lbsim.measure.knob_run as kr

    defaults = {n: k.default for n, k in KNOBS.items()}
    defaults.update(busy_read=0, tcp_autocorking=1)
    run = _run("so_busy_poll", 50)
    s = kr._settings(run, defaults)
    argv = kr._argv(run, s, 10, 1, 0, 0)
    assert argv[argv.index("--busy-poll") + 1] == "50"
    d = kr._settings(_run("tcp_autocorking", 0), defaults)
    assert "--busy-poll" not in kr._argv(run, d, 10, 1, 0, 0)   # the default sets nothing
    assert kr._netns_knobs(d, 0)["sysctl"]["net.ipv4.tcp_autocorking"] == 0
    assert set(NOOP) <= set(kr.KNOB_COLUMNS)
    assert {"tcp_autocork_events", "busy_poll_rx_packets"} <= set(kr.COUNTER_COLUMNS)


def test_grid_has_a_small_group_each_and_quick_is_unchanged():
    g = load_grid(GRID)
    groups = {gr.name: gr for gr in g.groups}
    for name, kn in (("so-busy-poll", "so_busy_poll"), ("busy-read", "busy_read"),
                     ("tcp-autocorking", "tcp_autocorking")):
        gr = groups[name]
        assert gr.knob == kn and set(gr.sizes) == {64, 1024} and set(gr.placements) == {"same", "cross"}
        assert set(gr.workloads) == {"pingpong", "stream"} and "tcp" in gr.transports
    assert estimate_seconds(plan(g)) <= 10 * 60
    q = load_grid(GRID, quick=True)
    assert not {gr.knob for gr in q.groups} & set(NOOP)


def test_busy_read_is_journaled_and_restored(monkeypatch, tmp_path):
    """net.core.busy_read is global: set through the journal for its runs, restored after
    (on a fake /proc/sys tree)."""
    import lbsim.measure.knob_run as kr

    root = tmp_path / "sys"
    (root / "net/core").mkdir(parents=True)
    (root / "net/core/busy_read").write_text("0\n")
    seen = []

    def fake_run_one(exe, argv, knobs, timeout):
        seen.append((root / "net/core/busy_read").read_text().strip())
        return {"throughput_Bps": 1e8, "msgs_per_s": 1e5, "sent": 50, "received": 50}

    monkeypatch.setattr(kr, "_run_one", fake_run_one)
    monkeypatch.setattr(kr, "build_harness", lambda: Path("/bin/true"))
    monkeypatch.setattr(kr, "is_root", lambda: True)
    grid = parse_grid({"group": [{"name": "br", "knob": "busy_read", "values": [50], "transports": ["tcp"],
                                  "workloads": ["stream"], "sizes": [64], "placements": ["same"]}]})
    df = kr.run_grid(grid, progress=None, proc_sys=root, journal=tmp_path / "j.json", netns=False)
    assert seen == ["0", "50", "0"]   # D V D
    assert (root / "net/core/busy_read").read_text().strip() == "0"
    assert sorted(set(df["busy_read"])) == [0, 50]


# --------------------------------------------------------------- the harness's --busy-poll

@pytest.mark.parametrize("transport", ["tcp", "udp", "unix_stream"])
def test_harness_sets_so_busy_poll_on_its_sockets(transport):
    from lbsim.measure.harness import HarnessUnavailable, build_harness
    try:
        exe = build_harness()
    except HarnessUnavailable as e:
        pytest.skip(str(e))
    argv = [str(exe), "--transport", transport, "--workload", "pingpong", "--size", "64", "--count", "30",
            "--warmup", "3", "--cpu-a", "0", "--cpu-b", "0", "--max-seconds", "3"]
    p = subprocess.run([*argv, "--busy-poll", "50"], capture_output=True, text=True, timeout=60)
    r = json.loads(p.stdout.splitlines()[-1])
    if p.returncode == 2 and "SO_BUSY_POLL" in r.get("error", ""):
        pytest.skip("kernel without CONFIG_NET_RX_BUSY_POLL")
    assert p.returncode == 0, r
    assert r["busy_poll_client"] == r["busy_poll_server"] == 50 and r["count"] == 30
    plain = json.loads(subprocess.run(argv, capture_output=True, text=True, timeout=60).stdout.splitlines()[-1])
    # without the option each socket keeps net.core.busy_read's value (sock_init_data)
    busy_read = int(Path("/proc/sys/net/core/busy_read").read_text()) if os.path.exists(
        "/proc/sys/net/core/busy_read") else -1
    assert plain["busy_poll_server"] == busy_read


# --------------------------------------------------------------- the model: effect 1.00

def _pair(knob_name: str, column_default, value, transport: str, workload: str) -> pd.DataFrame:
    """A tiny knob grid: one point, the default and the setting, two repetitions."""
    metric = "rtt_p50_us" if workload == "pingpong" else "throughput_MBps"
    rows = []
    for rep in (0, 1):
        for setting, v, measured in (("default", column_default, 20.0), (f"{knob_name}={value}", value, 20.4),
                                     ("default", column_default, 20.2)):
            rows.append({"transport": transport, "workload": workload, "placement": "same", "msg_bytes": 64,
                         "metric": metric, "value": measured, "rep": rep, "setting": f"g/{setting}",
                         "knob": knob_name, "group": "g", knob_name: v, "msgs_sent": 300})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("knob_name, column_default, value, transport, workload", [
    ("so_busy_poll", 0, 50, "udp", "pingpong"),
    ("busy_read", 0, 50, "tcp", "pingpong"),
    ("tcp_autocorking", 1, 0, "tcp", "stream"),
])
def test_noop_switch_simulates_as_its_default(knob_name, column_default, value, transport, workload):
    """Simulated, not 'not modelled', and exactly the default's result: the same seed through a
    model that has no busy-poll or autocork path on lo gives the same run, so the ratio is 1."""
    from lbsim.config import make_config
    from lbsim.validate.effects import run_fields, validate_effects

    df = _pair(knob_name, column_default, value, transport, workload)
    row = df[df["setting"] != "g/default"].iloc[0]
    fields, why = run_fields(row, {}, messages=100, seed=1)
    assert why == "" and fields is not None and fields[knob_name] == value
    cfg = make_config(fields)
    if knob_name != "so_busy_poll":
        assert getattr(cfg.kernel_params(), knob_name) == value   # carried into the kernel profile
    rep = validate_effects(df, str(COSTS), host={}, workers=1, stream_replications=1, messages_pingpong=150)
    r = rep.rows.iloc[0]
    assert r["not_modelled"] == "" and r["simulated_effect"] == 1.0
    assert r["measured_effect"] == pytest.approx(20.4 / 20.1)
