"""tools/idle-wake/idle_wake.py (docs/notes/idle-wake.md): the wake-up experiment's program and its CSV.

Tiny runs (30 round trips per point, 100 ms budget); no timing assertions, only what holds
for every round trip: the write and B's wake-up are both inside the round trip."""

import csv
import importlib.util
import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
have_cc = shutil.which(os.environ.get("CC", "cc").split()[0]) is not None or shutil.which("gcc") is not None
pytestmark = [pytest.mark.skipif(not have_cc, reason="no C compiler"),
              pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs 2 CPUs"),
              pytest.mark.xdist_group("host")]  # real sockets of this host: one xdist worker (Makefile)


def _script():
    spec = importlib.util.spec_from_file_location("idle_wake", ROOT / "tools" / "idle-wake" / "idle_wake.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_grid_rows_and_their_invariants(tmp_path, capsys):
    out = tmp_path / "iw.csv"
    assert _script().main(["--out", str(out), "--count", "30", "--budget-ms", "100",
                           "--delays", "0,30", "--after", "0,5", "--reps", "1"]) == 0
    rows = list(csv.DictReader(out.open()))
    assert [(r["mode"], r["delay_us"], r["after_us"]) for r in rows] == [
        (m, d, e) for m in ("spin", "block") for d in ("0", "30") for e in ("0", "5")]
    for r in rows:
        n = int(r["round_trips"])
        assert 1 <= n <= 30
        rtt, write, oneway = int(r["rtt_p50_ns"]), int(r["write_p50_ns"]), int(r["oneway_p50_ns"])
        # every sample: write < round trip and B's read return < A's reply read (order statistics keep it)
        assert 0 < write < rtt
        assert 0 < oneway < rtt
        # A spins E us after its write before it takes the reply
        assert rtt >= int(r["after_us"]) * 1000
        assert 0.0 <= float(r["ipi_frac"]) <= 1.0
        assert r["kernel"] and r["loadavg"]
    assert "wrote 8 rows" in capsys.readouterr().err


@pytest.mark.parametrize("args, words", [
    (["--modes", "poll"], ["--modes", "spin, block", "poll"]),
    (["--delays", "0,x"], ["--delays", "whole microseconds"]),
    (["--after", "200000"], ["--after", "0..100000"]),
    (["--count", "0"], ["--count", "1..1000000"]),
    (["--reps", "0"], ["--reps", "1..100"]),
])
def test_bad_arguments_get_one_line(args, words, tmp_path):
    with pytest.raises(SystemExit) as e:
        _script().main(["--out", str(tmp_path / "x.csv"), *args])
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("idle_wake: ")
    for w in words:
        assert w in msg


def test_the_program_refuses_bad_lists(tmp_path):
    mod = _script()
    exe = mod.build(tmp_path)
    import subprocess

    r = subprocess.run([str(exe), "spin", "10", "100", "5,-1", "0"], capture_output=True, text=True)
    assert r.returncode == 2 and "bad N" in r.stderr


def test_repetitions_interleave_the_whole_grid(tmp_path):
    out = tmp_path / "iw.csv"
    assert _script().main(["--out", str(out), "--count", "20", "--budget-ms", "50", "--modes", "block,spin",
                           "--delays", "0", "--after", "0", "--reps", "2"]) == 0
    rows = list(csv.DictReader(out.open()))
    assert [(r["rep"], r["mode"]) for r in rows] == [("0", "block"), ("0", "spin"), ("1", "block"), ("1", "spin")]


def test_summary_is_the_median_and_range_over_repetitions():
    def row(rep, d, e, ow_us, ipi):
        return {"rep": str(rep), "mode": "block", "delay_us": str(d), "after_us": str(e),
                "oneway_p50_ns": str(int(ow_us * 1000)), "ipi_frac": str(ipi)}

    rows = [row(r, 0, e, v + e, ipi) for r, (v, ipi) in enumerate(((10, 0.0), (30, 0.5), (20, 1.0)))
            for e in (0, 5)]
    table = _script().summary(rows).splitlines()
    assert table[1] == "| D (us) | E = 0 | E = 5 | slow writes, E = 0 |"
    assert table[3] == "| 0 | 20.0 (10-30) | 25.0 (15-35) | 0.50 |"
