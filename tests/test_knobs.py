"""Knob measurements: registry, grid files, interleaving, the global-knob journal (on a fake
/proc/sys tree: no test touches a real global knob), the private namespace (root + unshare)
and the harness's knob flags on tiny runs."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lbsim.measure.knob_grid import GridError, estimate_seconds, grid_from_specs, load_grid, parse_grid, plan, sequence
from lbsim.measure.knob_journal import KnobJournal, StaleJournal, check_journal, restore_knobs
from lbsim.measure.knobs import KNOBS, KnobError, knob, parse_value, read_counters, read_sysctl

ROOT = Path(__file__).resolve().parents[1]
GRID = ROOT / "knobs" / "default.toml"
BACKLOG = "net.core.netdev_max_backlog"


# --------------------------------------------------------------- registry and grid files

def test_registry_names_columns_scopes():
    assert knob("max_dgram_qlen").column == "unix_max_dgram_qlen"
    assert {k.scope for k in KNOBS.values()} == {"netns", "global", "socket", "workload"}
    assert knob("netdev_max_backlog").scope == "global" and knob("mtu").scope == "netns"
    assert all(k.source and k.how for k in KNOBS.values())


def test_unknown_knob_is_one_line_naming_the_allowed():
    with pytest.raises(KnobError) as e:
        knob("mtuu")
    msg = str(e.value)
    assert "\n" not in msg and "'mtuu'" in msg and "netdev_max_backlog" in msg and "so_rcvbuf" in msg


def test_bad_values_name_the_knob():
    assert parse_value("mtu", "9000") == 9000 and parse_value("tso", "0") == "off"
    assert parse_value("so_rcvbuf", "default") == "default"
    assert parse_value("tcp_rmem", "4096, 131072, 6291456") == "4096 131072 6291456"
    for name, bad in (("mtu", "10"), ("senders", "3"), ("policy", "rr"), ("rps_cpus", "zz")):
        with pytest.raises(KnobError, match=rf"^knob {name}: bad value .*allowed: "):
            parse_value(name, bad)


def test_grid_file_parses_and_quick_is_small():
    g = load_grid(GRID)
    assert len(g.groups) >= 15 and g.reps >= 1
    runs = plan(g)
    off_default = {(r.setting, r.transport, r.workload, r.size, r.placement) for r in runs if r.value != "default"}
    assert len(off_default) >= 250  # the "about 250 settings"
    assert estimate_seconds(runs) <= 12 * 60  # about 10 minutes on a quiet 2-vCPU machine
    knobs_covered = {gr.knob for gr in g.groups}
    assert {"mtu", "tso", "rps_cpus", "netdev_max_backlog", "dev_weight", "netdev_budget",
            "max_dgram_qlen", "so_rcvbuf", "so_sndbuf", "flows", "tcp_nodelay", "background",
            "policy", "tcp_rmem", "tcp_wmem", "rmem_default", "wmem_default"} <= knobs_covered
    q = load_grid(GRID, quick=True)
    assert len(plan(q)) <= 40 and q.reps == 1


def test_grid_unknown_knob_names_group_and_allowed():
    data = {"group": [{"name": "g", "knob": "mtuu", "values": [1500]}]}
    with pytest.raises(GridError) as e:
        parse_grid(data, "x.toml")
    assert str(e.value).startswith("x.toml: group[0] (g): unknown knob 'mtuu'; allowed: mtu, ")
    with pytest.raises(GridError, match="unknown key 'valuez'"):
        parse_grid({"group": [{"knob": "mtu", "valuez": [1]}]}, "x.toml")
    with pytest.raises(GridError, match="knob mtu: bad value"):
        grid_from_specs(["mtu=1500,abc"])
    with pytest.raises(GridError, match="expected NAME=V1,V2"):
        grid_from_specs(["mtu"])


def test_interleaving_order():
    assert sequence([1, 2], 2) == [(0, 0, "default"), (0, 1, 1), (0, 2, 2), (0, 3, "default"),
                                   (1, 0, "default"), (1, 1, 1), (1, 2, 2), (1, 3, "default")]
    g = grid_from_specs(["flows=2,4"], transports=("tcp",), workloads=("pingpong",), sizes=(64,),
                        placements=("same", "cross"), reps=2)
    runs = plan(g)
    assert [r.setting for r in runs[:4]] == ["flows/default", "flows/flows=2", "flows/flows=4",
                                             "flows/default"]
    assert [r.placement for r in runs[:8]] == ["same"] * 4 + ["cross"] * 4
    assert [r.rep for r in runs] == [0] * 8 + [1] * 8


# --------------------------------------------------------------- journal (fake /proc/sys)

@pytest.fixture
def fake(tmp_path):
    root = tmp_path / "sys"
    (root / "net/core").mkdir(parents=True)
    (root / "net/core/netdev_max_backlog").write_text("1000\n")
    (root / "net/core/dev_weight").write_text("64\n")
    return root, tmp_path / "state" / "knob-journal.json"


def test_journal_written_before_change_and_restored(fake):
    root, jp = fake
    with KnobJournal(jp, root) as j:
        j.set(BACKLOG, 10)
        assert read_sysctl(BACKLOG, root) == 10
        assert json.loads(jp.read_text())["knobs"][BACKLOG]["found"] == 1000
        j.set(BACKLOG, 100)   # the found value stays the first one
        assert json.loads(jp.read_text())["knobs"][BACKLOG]["found"] == 1000
    assert read_sysctl(BACKLOG, root) == 1000 and not jp.exists()


def test_journal_restores_on_exception(fake):
    root, jp = fake
    with pytest.raises(RuntimeError):
        with KnobJournal(jp, root) as j:
            j.set(BACKLOG, 10)
            j.set("net.core.dev_weight", 16)
            raise RuntimeError("boom")
    assert read_sysctl(BACKLOG, root) == 1000 and read_sysctl("net.core.dev_weight", root) == 64
    assert not jp.exists()


def test_journal_restores_on_sigterm(fake):
    root, jp = fake
    code = textwrap.dedent(f"""
        import sys, time
        from lbsim.measure.knob_journal import KnobJournal
        with KnobJournal({str(jp)!r}, {str(root)!r}) as j:
            j.set({BACKLOG!r}, 10)
            print("set", flush=True)
            time.sleep(30)
    """)
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "set"
    assert read_sysctl(BACKLOG, root) == 10
    p.send_signal(signal.SIGTERM)
    assert p.wait(20) == 128 + signal.SIGTERM
    assert read_sysctl(BACKLOG, root) == 1000 and not jp.exists()


def test_stale_journal_refuses_then_restore_knobs(fake):
    root, jp = fake
    jp.parent.mkdir(parents=True)
    jp.write_text(json.dumps({"knobs": {BACKLOG: {"found": 1000}}}))
    (root / "net/core/netdev_max_backlog").write_text("10\n")   # as a SIGKILLed run left it
    with pytest.raises(StaleJournal) as e:
        with KnobJournal(jp, root):
            pass
    msg = str(e.value)
    assert "\n" not in msg and BACKLOG in msg and "--restore-knobs" in msg
    assert restore_knobs(jp, root) == [(BACKLOG, 1000)]
    assert read_sysctl(BACKLOG, root) == 1000 and not jp.exists()
    check_journal(jp, root)   # nothing left: no error


def test_counters_parse():
    c = read_counters()
    assert set(c) >= {"softnet_dropped", "softnet_time_squeeze", "udp_rcvbuf_errors",
                      "tcp_retrans_segs"}


# --------------------------------------------------------------- the harness's knob flags

def _harness(*args: str) -> dict:
    from lbsim.measure.harness import HarnessUnavailable, build_harness
    try:
        exe = build_harness()
    except HarnessUnavailable as e:
        pytest.skip(str(e))
    p = subprocess.run([str(exe), *args, "--warmup", "5", "--cpu-a", "0",
                        "--cpu-b", str(min(1, (os.cpu_count() or 1) - 1)), "--max-seconds", "3"],
                       capture_output=True, text=True, timeout=60)
    return json.loads(p.stdout.splitlines()[-1])


def test_harness_rcvbuf_sndbuf_reported():
    r = _harness("--transport", "udp", "--workload", "pingpong", "--size", "64", "--count", "50",
                 "--rcvbuf", "4096", "--sndbuf", "8192")
    assert r["rcvbuf_client"] == r["rcvbuf_server"] == 8192   # the kernel doubles it
    assert r["sndbuf_client"] == 16384 and r["count"] == 50
    assert r["sleeps_per_msg_sender"] >= 0 and r["sleeps_per_msg_receiver"] >= 0


def test_harness_two_flows_and_nagle():
    r = _harness("--transport", "tcp", "--workload", "pingpong", "--size", "64", "--count", "100",
                 "--flows", "2", "--nagle")
    assert r["flows"] == 2 and r["flow_received"] == [100, 100] and r["count"] == 200
    assert r["tcp_nodelay"] == 0
    s = _harness("--transport", "unix_stream", "--workload", "stream", "--size", "4096",
                 "--count", "200", "--flows", "2")
    assert s["flow_received"] == [200, 200] and s["bytes_received"] == 2 * 200 * 4096


def test_harness_two_senders_deliver():
    r = _harness("--transport", "unix_dgram", "--workload", "stream", "--size", "256",
                 "--count", "500", "--senders", "2")
    assert r["senders"] == 2 and r["sent"] == 1000 and r["received"] == 1000
    bad = _harness("--transport", "tcp", "--workload", "stream", "--size", "64", "--count", "5",
                   "--senders", "2")
    assert "--senders 2 needs" in bad["error"]


# --------------------------------------------------------------- private namespace (root)

needs_netns = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("ip"),
    reason="needs root, unshare and ip")


@needs_netns
def test_netns_knobs_seen_inside_host_unchanged(tmp_path):
    from lbsim.measure.harness import build_harness
    from lbsim.measure.netns_run import netns_argv
    mtu0 = Path("/sys/class/net/lo/mtu").read_text()
    qlen0 = read_sysctl("net.unix.max_dgram_qlen")
    qlen = 37 if qlen0 != 37 else 38
    argv = ["lbsim-harness", "--transport", "tcp", "--workload", "pingpong", "--size", "64",
            "--count", "20", "--warmup", "2", "--cpu-a", "0", "--cpu-b", "0", "--max-seconds", "3"]
    p = subprocess.run(netns_argv({"mtu": 9000, "tso": "off", "rps_cpus": "1",
                                   "sysctl": {"net.unix.max_dgram_qlen": qlen}},
                                  str(build_harness()), argv),
                       capture_output=True, text=True, timeout=60, env=dict(os.environ, TMPDIR=str(tmp_path)))
    assert p.returncode == 0, p.stdout + p.stderr
    r = json.loads(p.stdout.splitlines()[-1])
    assert r["netns"] == {"mtu": 9000, "tso": "off", "rps_cpus": "1", "net.unix.max_dgram_qlen": qlen}
    assert r["count"] == 20 and "tcp_retrans_segs" in r["counters"]
    assert Path("/sys/class/net/lo/mtu").read_text() == mtu0
    assert read_sysctl("net.unix.max_dgram_qlen") == qlen0


@needs_netns
def test_rmem_default_not_writable_in_a_namespace():
    from lbsim.measure.knobs import netns_writable
    # 6.18 lists net.core.rmem_default in a child namespace read-only: a global knob
    assert netns_writable("net.unix.max_dgram_qlen") is True
    assert netns_writable(BACKLOG) is False
    if netns_writable("net.core.rmem_default") is False:
        assert knob("rmem_default").scope == "global"


def test_knob_cli_bad_knob_is_one_line():
    import argparse

    from lbsim.measure.knob_cli import KnobUsageError, add_arguments, run
    p = argparse.ArgumentParser()
    add_arguments(p)
    with pytest.raises(KnobUsageError) as e:
        run(p.parse_args(["--knob", "backlog=10"]))
    assert "\n" not in str(e.value) and "unknown knob 'backlog'" in str(e.value)
    assert run(p.parse_args([])) is None


def test_knob_cli_runs_over_the_given_points(monkeypatch):
    """--knob measures only the --transports/--workloads/--sizes/--placements asked for."""
    import argparse

    import lbsim.measure.knob_run as knob_run
    from lbsim.cli import build_parser
    from lbsim.cli.host import cmd_measure

    seen = {}

    def fake_run_grid(grid, progress=None, **kw):
        seen["runs"] = plan(grid)
        raise KeyboardInterrupt  # stop before anything is written

    monkeypatch.setattr(knob_run, "run_grid", fake_run_grid)
    a = build_parser().parse_args(["measure", "--knob", "mtu=1500", "--transports", "tcp",
                                   "--sizes", "1024", "--placements", "cross"])
    assert isinstance(a, argparse.Namespace)
    with pytest.raises(KeyboardInterrupt):
        cmd_measure(a)
    runs = seen["runs"]
    assert {(r.transport, r.size, r.placement) for r in runs} == {("tcp", 1024, "cross")}
    assert {r.workload for r in runs} == {"pingpong", "stream"}  # split has no knob form


def test_a_failed_run_is_a_row_and_finished_runs_reach_the_partial_file(monkeypatch, tmp_path):
    """A run the harness cannot finish neither kills the grid nor loses the runs before it: it is
    one run_failed row, its later repetitions are skipped, and every finished run is appended to
    the partial CSV as it ends (what a killed grid leaves)."""
    import pandas as pd

    import lbsim.measure.knob_run as kr
    from lbsim.measure.harness_base import HarnessError

    grid = parse_grid({"name": "t", "reps": 2, "run": {"count_pingpong": 20, "count_stream": 50},
                       "group": [{"name": "buf", "knob": "so_sndbuf", "values": [1], "transports": ["tcp"],
                                  "workloads": ["stream"], "sizes": [1024], "placements": ["same"]}]})
    calls = []

    def fake_run_one(exe, argv, knobs, timeout):
        calls.append(argv)
        if "--sndbuf" in argv:
            raise HarnessError("harness error: warmup did not finish within max-seconds=2", 1, {}, "")
        return {"throughput_Bps": 1e8, "msgs_per_s": 1e5, "sent": 50, "received": 50}

    monkeypatch.setattr(kr, "_run_one", fake_run_one)
    monkeypatch.setattr(kr, "build_harness", lambda: Path("/bin/true"))
    part = tmp_path / "k.csv.part"
    df = kr.run_grid(grid, progress=None, proc_sys=tmp_path, journal=tmp_path / "j.json", netns=False,
                     partial=part)
    failed = df[df.metric == "run_failed"]
    assert len(failed) == 1 and failed.iloc[0]["setting"] == "buf/so_sndbuf=1"
    assert len(calls) == 5  # D V D, then rep 1: D D (V not tried again)
    on_disk = pd.read_csv(part)
    assert len(on_disk) == len(df) and set(on_disk.metric) == set(df.metric)
