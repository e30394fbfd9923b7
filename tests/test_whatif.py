"""lbsim whatif (lbsim.whatif): sanity of the causal profile, on small runs."""

from __future__ import annotations

import json

import pytest

import lbsim
from lbsim import trace
from lbsim.cli import main
from lbsim.whatif import causal_profile, format_gap, format_profile

ONE_CPU = dict(transport="tcp", msg_bytes=64, cpus=1, placement="same", messages=60, deterministic=True)
CROSS = dict(transport="tcp", msg_bytes=64, cpus=2, placement="cross", messages=60, deterministic=True)


def _profile(cfg, speedups=(0.1, 0.3, 0.5), **kw):
    return causal_profile(cfg, speedups, executor="serial", **kw)


@pytest.fixture(scope="module")
def one_cpu():
    """The deterministic one-CPU profile, with the gap (shared by the tests that read it)."""
    return _profile(ONE_CPU)


def test_a_stage_off_the_critical_path_buys_nothing():
    """Cross-CPU ping-pong: the reader blocks (schedule_timeout) while its wake-up IPI is still
    on its way to the other CPU, so a cheaper schedule_timeout does not shorten a round trip."""
    p = _profile(CROSS, gap=False)
    t = next(t for t in p.targets if t.name == "schedule_timeout")
    assert t.count > 0
    assert all(p.gain("schedule_timeout", s) == 0.0 for s in p.speedups)
    # while a stage on the path does buy something
    assert p.gain("cacheline_transfer", 0.3) > 0.05


@pytest.mark.parametrize("stage", ["tcp_v4_rcv", "ip_output", "schedule", "syscall"])
def test_on_one_cpu_the_gain_is_the_stage_share_of_the_path(stage, one_cpu):
    """One CPU, zero load, every cost at its mean: every stage is on the path, so making it x
    cheaper saves x times its time in a round trip."""
    p = one_cpu
    r = lbsim.simulate(**{**ONE_CPU, "messages": trace.WARMUP + 1, "trace": True})
    df = trace.round_trip_records(r)
    rtt = df.attrs["latency_ns"]
    assert rtt == pytest.approx(p.baseline["p50_ns"], rel=1e-12)
    on_path = float((df.end_ns - df.start_ns)[df.stage == stage].sum())
    assert on_path > 0
    for s in p.speedups:
        assert p.gain(stage, s) == pytest.approx(s * on_path / rtt, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("deterministic", [True, False])
def test_effects_grow_with_the_speed_up(deterministic):
    p = _profile({**ONE_CPU, "messages": 100, "deterministic": deterministic}, (0.1, 0.2, 0.3, 0.5), gap=False)
    for t in p.targets:
        gains = [p.gain(t.name, s) for s in p.speedups]
        assert all(b >= a - 1e-12 for a, b in zip(gains, gains[1:])), (t.name, gains)
    assert p.gain(p.ranked()[0].name, 0.5) > 0


def test_a_seed_gives_the_same_profile():
    cfg = {**ONE_CPU, "deterministic": False, "seed": 5, "messages": 40}
    a = _profile(cfg, (0.3,))
    b = _profile(cfg, (0.3,))
    assert json.dumps(a.to_dict()) == json.dumps(b.to_dict())
    assert format_profile(a) == format_profile(b) and format_gap(a) == format_gap(b)


def test_the_process_pool_gives_the_serial_numbers():
    cfg = {**ONE_CPU, "deterministic": False, "seed": 2, "messages": 30}
    a = causal_profile(cfg, (0.3,), gap=False, executor="serial")
    b = causal_profile(cfg, (0.3,), gap=False, executor="local", jobs=2)
    strip = ("cpu_s", "wall_s")
    assert {k: {x: y for x, y in v.items() if x not in strip} for k, v in a.runs.items()} == \
        {k: {x: y for x, y in v.items() if x not in strip} for k, v in b.runs.items()}


def test_stages_that_never_run_are_skipped_and_the_gap_is_read_off(one_cpu):
    p = one_cpu
    names = {t.name for t in p.targets}
    assert "udp_rcv" not in names and "unix_stream_sendmsg" not in names and "ip_fragment" not in names
    assert {"tcp", "wakeup"} <= names and "wakeup_remote_idle_ns" not in names  # one CPU: no remote wake-up
    g = p.gap()
    assert g["gap_ns"] == pytest.approx(p.baseline["p50_ns"] - p.unix["p50_ns"])
    for row in g["rows"]:
        assert row["saved_ns"] == pytest.approx(p.baseline["p50_ns"] - p.runs[(row["target"], 1.0)]["p50_ns"])
        if row["saved_ns"] < g["gap_ns"]:
            assert row["needed"] != row["needed"]  # NaN: "cannot alone"
    assert "cannot alone" in format_gap(p)


def test_cli(capsys, tmp_path):
    png = tmp_path / "p.png"
    assert main(["whatif", "--messages", "30", "--cpus", "1", "--set", "deterministic=true", "--speedups", "30",
                 "--jobs", "1", "--plot", str(png), "--top", "5"]) == 0
    out = capsys.readouterr().out
    assert "a 30 % cheaper" in out and "of a 64 B tcp round trip on one CPU" in out
    assert "loopback gap: tcp p50" in out and png.stat().st_size > 1000
    assert "costs: xeon-v1272-2026-12-06" in out  # the profile the tests pin (conftest)
    assert main(["whatif", "--speedups", "130"]) == 2
    assert main(["whatif", "--messages", "30", "--transport", "unix_stream", "--speedups", "50", "--jobs", "1",
                 "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["gap"] is None and d["targets"][0]["gain"]["p50"]["0.5"] > 0
    assert d["costs_profile"] == "xeon-v1272-2026-12-06"
