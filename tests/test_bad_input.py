"""Bad input as a new user gives it: one line on stderr, no traceback, a non-zero exit.

Each case runs the program as the user does (``python -m lbsim ...`` in a subprocess).
Also here: the command tree's help and defaults, and byte-identical ``--json`` for a seed.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import lbsim
from lbsim.cli import build_parser, main
from lbsim.cli._common import SIM_OPTIONS, config_from_args
from lbsim.config import SimConfig

TIMEOUT = 300


def lbsim_run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lbsim", *args], capture_output=True, text=True, timeout=TIMEOUT,
                          cwd=cwd)


def one_line_error(p: subprocess.CompletedProcess[str], code: int = 2) -> str:
    """The single stderr line of a failed command (after checking there is exactly one)."""
    assert "Traceback" not in p.stderr, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert p.returncode == code, (p.returncode, p.stderr)
    return lines[0]


def test_binary_experiment_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_bytes(bytes(range(256)) * 4)
    line = one_line_error(lbsim_run("run", str(bad), "--out", str(tmp_path / "out")))
    assert str(bad) in line and "UTF-8" in line


def test_non_utf8_experiment_file(tmp_path):
    bad = tmp_path / "latin1.toml"
    bad.write_bytes('name = "caf\xe9"\n'.encode("latin-1"))
    line = one_line_error(lbsim_run("run", str(bad), "--out", str(tmp_path / "out")))
    assert str(bad) in line and "UTF-8" in line


TINY = """name = "tiny"
seed = 1
replications = 1

[base]
workload = "pingpong"
messages = 20

[factors]
transport = ["unix_stream", "udp"]
"""


def test_plot_of_a_corrupted_parquet_file_names_the_file(tmp_path):
    exp = tmp_path / "tiny.toml"
    exp.write_text(TINY)
    out = tmp_path / "res"
    p = lbsim_run("run", str(exp), "--out", str(out), "--jobs", "1", "-q")
    assert p.returncode == 0, p.stderr
    table = out / "results.parquet"  # one Parquet file per experiment
    assert table.is_file()
    table.write_bytes(b"this is not parquet" * 10)
    line = one_line_error(lbsim_run("plot", str(out)))
    assert str(table) in line


def test_output_folder_under_a_file(tmp_path):
    f = tmp_path / "afile"
    f.write_text("x")
    exp = tmp_path / "tiny.toml"
    exp.write_text(TINY)
    line = one_line_error(lbsim_run("run", str(exp), "--out", str(f / "res")))
    assert str(f) in line and "not a folder" in line
    assert not (f.parent / "res").exists()


def test_trace_plot_into_a_missing_folder():
    line = one_line_error(lbsim_run("trace", "--plot", "/nonexistent/dir/x.png"))
    assert "/nonexistent/dir" in line


def test_ctrl_c_during_simulate_exits_130_quietly():
    # SIGINT at its default in the child, whatever the test runner's worker does with it
    p = subprocess.Popen([sys.executable, "-m", "lbsim", "simulate", "--messages", "100000000"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    time.sleep(3.0)
    assert p.poll() is None, "the simulation ended before the interrupt"
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=TIMEOUT)
    line = one_line_error(subprocess.CompletedProcess(p.args, p.returncode, out, err), 130)
    assert "interrupted" in line


@pytest.mark.parametrize("value", ["inf", "Infinity", "-inf"])
def test_infinite_rate_names_the_field(value):
    line = one_line_error(lbsim_run("simulate", "--workload", "poisson", "--set", f"rate_per_s={value}"))
    assert "rate_per_s" in line and "finite" in line


def test_set_conflicting_with_an_option():
    line = one_line_error(lbsim_run("simulate", "--set", "transport=udp", "--transport", "tcp"))
    assert "--set transport=udp" in line and "--transport tcp" in line


def test_set_of_a_field_compare_sets_itself(capsys):
    assert main(["compare", "--set", "transport=udp", "--messages", "5"]) == 2
    assert "transport" in capsys.readouterr().err


# --- a run that ends in [timeout] -------------------------------------------------------------------

_UNRESOLVED = re.compile(r"with (\d+) of (\d+) messages unresolved \((\d+) sent, (\d+) not sent\)")


@pytest.mark.parametrize("fields,per_message", [
    ({"transport": "tcp", "workload": "pingpong"}, 2),            # a round trip is two messages
    ({"transport": "udp", "workload": "rr", "flows": 3}, 2),
    ({"transport": "unix_stream", "workload": "stream", "flows": 2}, 1),
    ({"transport": "unix_dgram", "workload": "burst", "burst_size": 100}, 1),
    ({"transport": "unix_stream", "workload": "split"}, 1),
])
def test_timeout_counts_every_message_left_unresolved(fields, per_message):
    """At the time limit the message counts what the workload had to deliver and did not: the
    messages sent and neither delivered nor dropped, and those never sent."""
    r = lbsim.simulate(messages=3000, max_sim_time_ns=3e5, seed=2, **fields)
    assert r.status == "timeout"
    m = _UNRESOLVED.search(r.message)
    assert m, r.message
    unresolved, want, sent_open, unsent = map(int, m.groups())
    c = r.counters
    flows = 1 if fields["workload"] in ("pingpong", "split") else fields.get("flows", 1)
    assert want == 3000 * flows * per_message
    assert sent_open == c["messages_sent"] - c["messages_delivered"] - c["messages_dropped"]
    assert unsent == want - c["messages_sent"] > 0
    assert unresolved == sent_open + unsent == want - c["messages_delivered"] - c["messages_dropped"]
    if c["messages_in_flight"] is not None:  # datagrams: those in the queues are among the sent ones
        assert c["messages_in_flight"] <= sent_open


def test_timeout_exits_non_zero_with_one_line():
    p = lbsim_run("simulate", "--messages", "3000", "--set", "max_sim_time_ns=3e5")
    line = one_line_error(p, 1)
    assert "[timeout]" in p.stdout and "unresolved" in line and "max_sim_time_ns" in line


# --- the command tree -----------------------------------------------------------------------------

def _parsers(p: argparse.ArgumentParser, path: str = "lbsim"):
    yield path, p
    for a in p._actions:
        if isinstance(a, argparse._SubParsersAction):
            for name, sp in a.choices.items():
                yield from _parsers(sp, f"{path} {name}")


def test_every_option_of_every_command_has_help():
    seen = 0
    for path, p in _parsers(build_parser()):
        for a in p._actions:
            if isinstance(a, argparse._HelpAction):
                continue
            if isinstance(a, argparse._SubParsersAction):
                for c in a._choices_actions:
                    assert c.help and c.help.strip(), f"{path} {c.dest}: no help"
                continue
            assert a.help and a.help.strip(), f"{path} {'/'.join(a.option_strings) or a.dest}: no help"
            seen += 1
    assert seen > 50


def test_commands_are_the_expected_tree():
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert list(sub.choices) == ["simulate", "compare", "trace", "whatif", "run", "plot", "measure", "calibrate",
                                 "validate", "profiles"]


def test_sim_option_defaults_are_simconfigs():
    """Options of SimConfig fields default to None (the field keeps SimConfig's default) and
    their help names that default."""
    p = build_parser()
    a = p.parse_args(["simulate"])
    assert config_from_args(a) == SimConfig()
    sim = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction)).choices["simulate"]
    for act in sim._actions:
        if act.dest in SIM_OPTIONS:
            assert act.default is None, act.dest
            d = SimConfig.model_fields[SIM_OPTIONS[act.dest]].default
            if d is not None:
                assert f"(default {d})" in act.help, act.dest


def test_version_and_both_entry_points():
    p = lbsim_run("--version")
    assert p.returncode == 0 and p.stdout.strip() == f"lbsim {lbsim.__version__}"
    q = subprocess.run([sys.executable, "-m", "lbsim.cli", "--version"], capture_output=True, text=True,
                       timeout=TIMEOUT)
    assert q.stdout == p.stdout


def test_json_is_byte_identical_for_a_seed():
    args = ("simulate", "--transport", "unix_dgram", "--workload", "stream", "--messages", "300", "--seed", "5",
            "--json")
    a, b = lbsim_run(*args), lbsim_run(*args)
    assert a.returncode == 0, a.stderr
    assert a.stdout == b.stdout
    assert "wall_s" not in json.loads(a.stdout)


def test_timing_puts_the_wall_time_back(capsys):
    assert main(["simulate", "--messages", "20", "--json", "--timing"]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out)["wall_s"] > 0 and "wall time" in out.err


def test_quiet_silences_progress(capsys):
    assert main(["compare", "--messages", "20"]) == 0
    assert "simulating" in capsys.readouterr().err
    assert main(["-q", "compare", "--messages", "20"]) == 0
    assert capsys.readouterr().err == ""
