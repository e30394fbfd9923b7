"""Configuration, kernel profiles and the command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import lbsim
from lbsim.cli import main
from lbsim.config import ConfigError, SimConfig, make_config
from lbsim.kernels import HOST_FILES, KERNELS, host_kernel, kernel_profile

#: `lbsim measure`: real sockets and processes of this host: one xdist worker runs every such module (Makefile)
pytestmark = pytest.mark.xdist_group("host")

def test_config_is_frozen_and_rejects_unknown_keys():
    cfg = SimConfig()
    with pytest.raises(ValueError):  # pydantic's ValidationError: the config is frozen
        cfg.msg_bytes = 5  # type: ignore[misc]
    with pytest.raises(ConfigError, match="did you mean 'netdev_max_backlog'"):
        make_config({"netdev_max_backlg": 3})


@pytest.mark.parametrize("data,needle", [
    ({"transport": "sctp"}, "transport"),
    ({"msg_bytes": -1}, "msg_bytes"),
    ({"mtu": 67}, "mtu"),
    ({"transport": "udp", "msg_bytes": 65508}, "too large for udp"),
    ({"transport": "unix_dgram", "msg_bytes": 212961}, "too large for unix_dgram"),
    ({"placement": "cross", "cpus": 1}, "cross"),
    ({"placement": [[0, 5]], "cpus": 2}, "out of range"),
    ({"tcp_rmem": [4096, 100, 50]}, "min <= default <= max"),
    ({"kernel": "linux-9"}, "unknown kernel"),
])
def test_bad_values_give_one_line_errors_naming_the_field(data, needle):
    with pytest.raises(ConfigError) as e:
        make_config(data)
    assert needle in str(e.value)
    assert "\n" not in str(e.value)


def test_profiles_carry_the_documented_defaults():
    k = kernel_profile("linux-6.12")
    assert (k.mtu, k.tcp_mss, k.netdev_max_backlog, k.dev_weight, k.netdev_budget) == (65536, 65483, 1000, 64, 300)
    old = kernel_profile("linux-2.6.32")
    assert old.mtu == 16436 and old.tcp_mss == 16384
    assert set(KERNELS) == {"linux-6.12", "linux-6.18", "linux-2.6.32"}


def test_overrides_apply_on_top_of_the_profile():
    cfg = make_config({"kernel": "linux-2.6.32", "netdev_max_backlog": 7})
    k = cfg.kernel_params()
    assert k.netdev_max_backlog == 7 and k.mtu == 16436


def test_host_kernel_reads_this_machines_files():
    k = host_kernel()
    checked = 0
    for field, path in HOST_FILES.items():
        p = Path(path)
        if not p.exists():
            continue
        text = p.read_text().strip()
        value = getattr(k, field)
        if field in ("tcp_rmem", "tcp_wmem"):
            assert list(value) == [int(x) for x in text.split()]
        elif field == "rps_cpus":
            assert value == int(text.replace(",", ""), 16)
        elif field == "tcp_congestion_control":
            assert value == (text if text in ("cubic", "reno", "bbr") else "cubic")
        else:
            assert value == int(text)
        checked += 1
    assert checked >= 5


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lbsim", *args], capture_output=True, text=True, timeout=120)


def test_cli_simulate_json_holds_one_object_on_stdout():
    p = run_cli("simulate", "--transport", "udp", "--messages", "50", "--json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert set(out["latency_us"]) >= {"kind", "mean", "p50", "p90", "p99", "p999"}
    assert set(out["throughput"]) == {"bytes_per_s", "msgs_per_s"}
    assert out["counters"]["messages_sent"] == 100
    assert out["conservation"]["ok"]


@pytest.mark.parametrize("args,needle", [
    (["simulate", "--transport", "foo"], "transport"),
    (["simulate", "--set", "netdev_max_backlg=3"], "did you mean"),
    (["simulate", "--mtu", "10"], "mtu"),
    (["simulate", "--msg-bytes", "-5"], "msg_bytes"),
    (["simulate", "--transport", "udp", "--msg-bytes", "70000"], "too large"),
    (["simulate", "--costs", "/nonexistent.json"], "cannot read"),
    (["simulate", "--set", "nokeyvalue"], "key=value"),
    (["frobnicate"], "invalid choice"),
])
def test_cli_bad_input_is_one_line_exit_2(args, needle):
    p = run_cli(*args)
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in p.stderr


def test_cli_compare_skips_what_a_transport_cannot_carry(capsys):
    rc = main(["compare", "--msg-bytes", "100000", "--messages", "20"])
    out = capsys.readouterr()
    assert rc == 0
    assert "udp" in out.out and "skipped" in out.out
    assert "skipping udp" in out.err
    assert "1.00x" in out.out  # unix_stream against itself


def test_bad_cost_file_is_reported_with_file_and_field(tmp_path):
    bad = tmp_path / "c.json"
    bad.write_text(json.dumps({"stages": {"tcp_sendmsg": {"fixed_ns": -1}}}))
    p = run_cli("simulate", "--costs", str(bad))
    assert p.returncode == 2
    assert str(bad) in p.stderr and "tcp_sendmsg" in p.stderr


def test_simulate_takes_a_cost_file_path_as_costs():
    """lbsim.simulate(costs=...) takes a path (the config field) as well as a loaded model."""
    import lbsim
    from lbsim.costs import load_costs

    path = str(Path(lbsim.__file__).parent / "data" / "costs-default.json")
    kw = dict(transport="unix_stream", msg_bytes=64, messages=200, seed=3)
    by_path = lbsim.simulate(costs=path, **kw)
    by_model = lbsim.simulate(costs=load_costs("default"), **kw)
    assert by_path.config.costs == path
    assert by_path.latency_us["p50"] == by_model.latency_us["p50"]


def test_cli_measure_writes_the_long_format_csv(tmp_path):
    import pandas as pd

    out = tmp_path / "m.csv"
    p = run_cli("measure", "--transports", "unix_dgram,udp", "--workloads", "pingpong", "--sizes", "64",
                "--placements", "same", "--reps", "1", "--out", str(out), "--quiet")
    assert p.returncode == 0, p.stderr
    df = pd.read_csv(out)
    assert {"transport", "workload", "placement", "msg_bytes", "metric", "value", "harness",
            "loadavg"} <= set(df.columns)
    assert set(df.transport) == {"unix_dgram", "udp"}
    assert (df[df.metric == "rtt_p50_us"].value > 0).all()
    assert (out.parent / "m.csv.host.json").exists()


@pytest.mark.parametrize("args,needle", [
    (["measure", "--transports", "sctp"], "--transports"),
    (["measure", "--sizes", "a,b"], "--sizes"),
    (["calibrate", "/nonexistent.csv"], "no such measured-data file"),
])
def test_cli_measure_and_calibrate_bad_input(args, needle):
    p = run_cli(*args)
    assert p.returncode == 2
    assert needle in p.stderr and len(p.stderr.strip().splitlines()) == 1


def _fake_fit(calls):
    from types import SimpleNamespace

    def fake(measured, stages, out, fit_sizes=(64, 4096, 65536), progress=None, df=None):
        calls.append((Path(measured).name, Path(stages).name, Path(out).name, list(fit_sizes)))
        return SimpleNamespace(
            params={"scale_tcp": 1.25, "wakeup_remote_idle_ns": 0.0}, bounds_hit=["wakeup_remote_idle_ns"],
            unidentified=["scale_sched"],
            residuals=[{"metric": "rtt_p50_us", "transport": "udp", "placement": "cross", "background": "idle",
                        "msg_bytes": 1024, "fitted": False, "measured_us": 10.0, "simulated_us": 11.0,
                        "error_pct": 10.0},
                       {"metric": "rtt_p50_us", "transport": "tcp", "placement": "same", "background": "idle",
                        "msg_bytes": 64, "fitted": True, "measured_us": 5.0, "simulated_us": 5.1,
                        "error_pct": 2.0}])
    return fake


def test_cli_calibrate_takes_both_usages_and_prints_the_fit(monkeypatch, tmp_path, capsys):
    """`lbsim calibrate MEASURED STAGES -o FILE` (python -m lbsim.calibrate's usage) and
    `lbsim calibrate MEASURED --stages STAGES` call calibrate_from_files alike; the table is
    the parameters with bounds, then the residuals, fitted points first."""
    import lbsim.calibrate as cal

    data = Path(lbsim.__file__).parent / "data"
    calls: list = []
    monkeypatch.setattr(cal, "calibrate_from_files", _fake_fit(calls))
    out = str(tmp_path / "c.json")
    m, s = str(data / "measured-host.csv"), str(data / "stages-host.json")
    assert main(["calibrate", m, s, "-o", out, "--fit-sizes", "64,4096"]) == 0
    text = capsys.readouterr().out
    assert main(["calibrate", m, "--stages", s, "--out", out]) == 0
    assert calls == [("measured-host.csv", "stages-host.json", "c.json", [64, 4096]),
                     ("measured-host.csv", "stages-host.json", "c.json", [64, 4096, 65536])]
    lines = text.splitlines()
    lo, hi, _ = cal.PARAMS["scale_tcp"]
    assert lines[0] == f"{'scale_tcp':34s} {1.25:12.4f}  bounds {lo:g}..{hi:g}"
    assert lines[1].endswith("AT BOUND")
    assert lines[2] == "not identified by the data: scale_sched"
    assert lines[4].startswith("rtt_p50_us tcp same/idle 64 B (fit)") and lines[4].endswith("2.0%")
    assert lines[5].startswith("rtt_p50_us udp cross/idle 1024 B ") and lines[5].endswith("10.0%")
    assert main(["calibrate", m, s, "--stages", str(tmp_path / "other.json"), "-o", out]) == 2
    assert "two stage files" in capsys.readouterr().err


def test_cli_calibrate_bad_stage_file(tmp_path, capsys):

    bad = tmp_path / "s.json"
    bad.write_bytes(b"\xff\xfe not json")
    m = str(Path(lbsim.__file__).parent / "data" / "measured-host.csv")
    assert main(["calibrate", m, str(bad), "-o", str(tmp_path / "c.json")]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("column,value,needle", [
    ("kernel", "6.12.3-generic", "column kernel: the rows come from 2 kernel profiles (linux-6.12, linux-6.18)"),
    ("tcp_congestion_control", "cubic", "column tcp_congestion_control: the rows mix bbr, cubic"),
])
def test_cli_calibrate_refuses_data_of_two_kernels_or_congestion_controls(tmp_path, capsys, column, value, needle):
    # the fit simulates every point with one kernel profile and one congestion control: one line, exit 2
    data = Path(lbsim.__file__).parent / "data"
    df = pd.read_csv(data / "measured-host.csv")
    df.loc[df.index[:40], column] = value
    m = tmp_path / "m.csv"
    df.to_csv(m, index=False)
    assert main(["calibrate", str(m), str(data / "stages-host.json"), "-o", str(tmp_path / "c.json")]) == 2
    err = capsys.readouterr().err
    assert f"{m}: {needle}" in err and len(err.strip().splitlines()) == 1
