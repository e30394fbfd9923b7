"""`lbsim calibrate` in one command (lbsim.calibrate_host) and its input checks (lbsim.calibrate_checks).

No test measures the host: the measuring step is replaced by one that copies a committed data set
(data/hosts/amd-epyc-2026-12-06-v1300), the fit by one that copies its committed costs.json where
the test is about the orchestration, and XDG_DATA_HOME is a temporary folder.  Bad input is run as
a subprocess: exit 2, exactly one line on stderr, no traceback.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

import lbsim.calibrate_host as ch
from lbsim import calibrate_checks as cc
from lbsim.cli import main

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data" / "hosts" / "amd-epyc-2026-12-06-v1300"
OTHER = ROOT / "data" / "hosts" / "xeon-2026-12-06"   # another machine, kernel v1272

REPORT = {"headline": [{"metric": "rtt_p50_us", "held_out_median_abs_error_pct": 7.5},
                       {"metric": "throughput_MBps", "held_out_median_abs_error_pct": 11.25}],
          "order": {"agreed": 60, "checked": 62}}


@pytest.fixture(autouse=True)
def _xdg(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("LBSIM_COSTS", raising=False)


def _copy_measure(with_stages: bool = True):
    """A measuring step that copies the committed data set instead of measuring."""
    def measure(out, progress, *, reps, stages):
        out = Path(out)
        for name in ("measured-host.csv", "measured-host.csv.host.json"):
            shutil.copy(DATA / name, out / name)
        progress("[1/1] rep 0 tcp pingpong 64 B same idle other")
        st = None
        if with_stages and stages:
            st = out / "stages-host.json"
            shutil.copy(DATA / "stages-host.json", st)
        return SimpleNamespace(csv=out / "measured-host.csv", stages=st,
                               stages_unavailable=None if st else "not root (tracefs instances need root)")
    return measure


def _fake_fit(calls):
    def fit(measured, stages, out, fit_sizes, progress):
        calls.append({"measured": Path(measured), "stages": Path(stages), "fit_sizes": list(fit_sizes)})
        progress(0.5)
        shutil.copy(DATA / "costs.json", out)
    return fit


@pytest.fixture
def hooks(monkeypatch):
    calls: list = []
    monkeypatch.setattr(ch, "MEASURE", _copy_measure())
    monkeypatch.setattr(ch, "FIT", _fake_fit(calls))
    monkeypatch.setattr(ch, "VALIDATE", lambda measured, costs, progress: REPORT)
    monkeypatch.setattr(ch, "TRACING", lambda: (True, "tracefs at /sys/kernel/tracing"))
    monkeypatch.setattr(ch, "QUIET", lambda: None)
    return calls


def test_one_command_measures_fits_validates_and_installs(hooks, tmp_path):
    from lbsim.profiles import resolve, user_dir

    out = ch.calibrate_this_host()
    assert out.profile.parent == user_dir() and out.profile.is_file()
    assert out.data_dir == ch.hosts_dir() / out.profile_name
    assert (out.data_dir / "measured-host.csv").is_file() and (out.data_dir / "validate.json").is_file()
    assert hooks[0]["stages"] == out.data_dir / "stages-host.json"
    block = json.loads(out.profile.read_text())["provenance"]["profile"]
    assert block["heldout"]["rtt_p50_median_pct"] == 7.5 and block["heldout"]["pairs_total"] == 62
    assert block["data"] == str(out.data_dir) and len(block["data_sha256"]) == 64
    assert set(out.seconds) == set(ch.PHASES)
    text = ch.format_summary(out)
    assert "p50 round trip 7.5 %" in text and "throughput 11.2 %" in text and "60/62" in text
    assert str(out.profile) in text
    # --costs auto now picks it on this host
    _, choice = resolve("auto")
    assert choice.name == out.profile_name
    # a second run the same day gets a name of its own
    again = ch.calibrate_this_host()
    assert again.profile_name == out.profile_name + "-2"


def test_cli_one_command_prints_the_summary_and_copies_costs(hooks, tmp_path, capsys):
    dest = tmp_path / "mine"
    assert main(["calibrate", "-q", "--out-dir", str(dest), "-o", str(tmp_path / "c.json"), "--name", "mine"]) == 0
    out = capsys.readouterr()
    assert "profile mine:" in out.out and "held-out median |error|" in out.out
    assert (dest / "costs.json").is_file() and (tmp_path / "c.json").is_file()
    assert out.err == ""
    assert main(["calibrate", "-q", "--name", "mine"]) == 2
    assert "exists" in capsys.readouterr().err
    assert main(["calibrate", "-q", "--name", "xeon-v1272-2026-12-06", "--overwrite"]) == 2
    assert "shipped" in capsys.readouterr().err


def test_busy_machine_is_refused_before_measuring(hooks, monkeypatch, capsys):
    measured: list = []
    monkeypatch.setattr(ch, "QUIET", lambda: "the machine is not quiet: 1-min loadavg 3.10 is above 1.00")
    monkeypatch.setattr(ch, "MEASURE", lambda *a, **k: measured.append(1))
    assert main(["calibrate"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "loadavg 3.10" in err[0] and "--force" in err[0]
    assert not measured
    monkeypatch.setattr(ch, "MEASURE", _copy_measure())
    assert main(["calibrate", "-q", "--force"]) == 0


def test_no_tracing_borrows_the_nearest_shipped_stage_base(hooks, monkeypatch):
    """Not root: a one-line notice, the fit runs on the stage base of the shipped profile auto
    would pick, and the profile's notes say so."""
    notices: list[str] = []
    monkeypatch.setattr(ch, "TRACING", lambda: (False, "not root (tracefs instances need root)"))
    monkeypatch.setattr(ch, "MEASURE", _copy_measure(with_stages=False))
    out = ch.calibrate_this_host(notice=notices.append)
    assert len(notices) == 1 and "\n" not in notices[0]
    assert "not root" in notices[0] and "stage base of the shipped profile" in notices[0]
    stages = hooks[0]["stages"]
    assert stages.name == "stages-host.json" and stages.parent != out.data_dir and stages.is_file()
    notes = json.loads(out.profile.read_text())["provenance"]["profile"]["notes"]
    assert any("no tracepoint stages" in n for n in notes)
    assert "shipped profile" in out.stages_source


def test_measure_grid_without_root_writes_the_grid_and_says_why(monkeypatch, tmp_path):
    """lbsim.measure.grid without tracing: the CSV, no stage file, the reason; nothing traced."""
    import pandas as pd

    import lbsim.measure.grid as grid

    calls: list = []

    def fake_measure(transports, workloads, sizes, placements, reps, progress, **kw):
        calls.append(workloads)
        df = pd.read_csv(DATA / "measured-host.csv").head(3)
        df.attrs["host"] = json.loads((DATA / "measured-host.csv.host.json").read_text())
        return df

    monkeypatch.setattr(grid, "measure", fake_measure)
    monkeypatch.setattr(grid, "tracefs_available", lambda: (False, "not root (tracefs instances need root)"))
    monkeypatch.setattr(grid, "null_syscall_ns", lambda: pytest.fail("traced without tracefs"))
    res = grid.measure_host_grid(tmp_path / "m", quick=True, progress=lambda m: None)
    assert res.stages is None and "not root" in res.stages_unavailable
    assert res.csv.is_file() and not (tmp_path / "m" / "stages-host.json").exists()
    host = json.loads(Path(str(res.csv) + ".host.json").read_text())
    assert set(host["cpu"]) >= {"vendor_id", "family", "model", "stepping"}
    assert len(calls) == len(grid.grid_parts(quick=True))


def test_quiet_check(tmp_path, monkeypatch):
    proc = tmp_path / "proc"
    proc.mkdir()
    (proc / "loadavg").write_text("3.10 1.00 0.50 2/100 42\n")
    why = cc.check_quiet(proc=proc, cpus=2, sample_s=0)
    assert why is not None and "loadavg 3.10" in why and "1.00" in why
    (proc / "loadavg").write_text("0.20 0.10 0.05 1/100 42\n")
    (proc / "4242").mkdir()
    stat = proc / "4242" / "stat"
    stat.write_text("4242 (spin loop) R 1 1 1 0 -1 0 0 0 0 0 100 5 0 0\n")
    assert cc.check_quiet(proc=proc, cpus=2, sample_s=0) is None
    hz = os.sysconf("SC_CLK_TCK")
    monkeypatch.setattr(cc.time, "sleep", lambda s: stat.write_text(
        f"4242 (spin loop) R 1 1 1 0 -1 0 0 0 0 0 {100 + hz} 5 0 0\n"))
    why = cc.check_quiet(proc=proc, cpus=2, sample_s=1.0)
    assert why is not None and "process 4242 (spin loop) used 100% of a CPU" in why


def test_stage_file_with_another_cpu_is_refused(tmp_path):
    st = json.loads((DATA / "stages-host.json").read_text())
    st["host"] = {"kernel": "6.18.44-fc-v1300", "cpu": {"vendor_id": "GenuineIntel", "family": 6, "model": 85,
                                                         "stepping": 7, "model_name": "Intel Xeon"}}
    (tmp_path / "s.json").write_text(json.dumps(st))
    with pytest.raises(cc.CalibrationInputError, match="another host"):
        cc.check_stages(tmp_path / "s.json", DATA / "measured-host.csv")
    assert cc.check_stages(DATA / "stages-host.json", DATA / "measured-host.csv")["runs"]


def test_lbsim_measure_stages_records_the_cpu_so_another_cpus_stage_file_is_refused(tmp_path, monkeypatch):
    """`lbsim measure --stages` (measuring and tracing replaced) writes the CPU and kernel into the
    stage file; beside an AMD CSV of the same kernel build, an Intel one is then refused."""
    import pandas as pd

    import lbsim.cli.host as cli_host
    import lbsim.hostid as hostid
    import lbsim.measure as measure
    import lbsim.measure.harness as harness

    intel = hostid.HostId("GenuineIntel", 6, 85, 7, "Intel(R) Xeon(R) Processor", "6.18.44-fc-v1300", "vm")
    monkeypatch.setattr(hostid.HostId, "current", classmethod(lambda cls, cpuinfo="": intel))
    monkeypatch.setattr(measure, "measure", lambda *a, **k: pd.read_csv(DATA / "measured-host.csv").head(5))
    monkeypatch.setattr(measure, "write_csv", lambda df, out: Path(out))
    monkeypatch.setattr(harness, "null_syscall_ns", lambda: 100.0)
    monkeypatch.setattr(harness, "micro_epoll", lambda: {})
    monkeypatch.setattr(harness, "micro_unix_lookup", lambda: {"unix_find_other_ns": 1000.0})
    monkeypatch.setattr(harness, "micro_hrtimer", lambda: None)  # a host without perf events
    monkeypatch.setattr(harness, "micro_ipfrag", lambda: {"per_fragment_ns": 1300.0})
    runs = json.loads((DATA / "stages-host.json").read_text())["runs"]
    monkeypatch.setattr(cli_host, "_traced_runs", lambda *a: (runs, 0))
    monkeypatch.setattr(cli_host, "_show_stages", lambda *a: None)
    assert main(["measure", "--stages", "-q", "--out", str(tmp_path / "m.csv")]) == 0
    written = json.loads((tmp_path / "m.stages.json").read_text())
    assert written["host"] == {"cpu": intel.cpu_dict(), "kernel": intel.kernel, "hostname": "vm"}
    assert written["unix_lookup"] == {"unix_find_other_ns": 1000.0}  # the unix_find_other stage
    assert written["hrtimer"] is None  # said, not left out
    assert written["ip_fragment"] == {"per_fragment_ns": 1300.0}  # the ip_fragment and ip_defrag stages
    with pytest.raises(cc.CalibrationInputError, match="another host") as e:
        cc.check_stages(tmp_path / "m.stages.json", DATA / "measured-host.csv")
    assert "GenuineIntel 6/85/7" in str(e.value)


# --------------------------------------------------------------------------------------------
# bad input: one line, exit 2 (subprocess)
# --------------------------------------------------------------------------------------------

def _run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lbsim", *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def _one_line_error(p: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert p.returncode == 2, p.stderr
    assert "Traceback" not in p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    for n in needles:
        assert n in lines[0], lines[0]


def _csv_case(tmp_path: Path, kind: str) -> Path:
    f = tmp_path / "measured.csv"
    text = (DATA / "measured-host.csv").read_text()
    if kind == "empty":
        f.write_text("")
    elif kind == "truncated":
        f.write_text(text[: text.index("\n", 5000) + 30])
    else:  # foreign: another program's CSV
        f.write_text("time,host,cpu_user,cpu_system\n0,a,1.5,0.3\n1,a,1.7,0.2\n")
    shutil.copy(DATA / "measured-host.csv.host.json", str(f) + ".host.json")
    return f


@pytest.mark.parametrize("kind,needle", [("empty", "empty file"), ("truncated", "truncated"),
                                         ("foreign", "missing column")])
def test_bad_measured_csv(tmp_path, kind, needle):
    f = _csv_case(tmp_path, kind)
    p = _run("calibrate", str(f), str(DATA / "stages-host.json"), "-o", str(tmp_path / "c.json"))
    _one_line_error(p, str(f), needle)
    assert not (tmp_path / "c.json").exists()


def test_stage_file_from_another_host(tmp_path):
    p = _run("calibrate", str(DATA / "measured-host.csv"), str(OTHER / "stages-host.json"),
             "-o", str(tmp_path / "c.json"))
    _one_line_error(p, str(OTHER / "stages-host.json"), "another host", "6.18.44-fc-v1272", "6.18.44-fc-v1300")


def test_stage_file_without_runs(tmp_path):
    s = tmp_path / "stages.json"
    s.write_text(json.dumps({"null_syscall_ns": 100.0, "runs": [], "unavailable": "not root"}))
    p = _run("calibrate", str(DATA / "measured-host.csv"), str(s), "-o", str(tmp_path / "c.json"))
    _one_line_error(p, str(s), "no traced runs", "not root")


_DRIVER = textwrap.dedent("""
    import shutil, sys
    from pathlib import Path
    from types import SimpleNamespace
    import lbsim.calibrate_host as ch
    from lbsim.cli import main
    src = Path(sys.argv[1])
    def measure(out, progress, *, reps, stages):
        csv = Path(out) / "measured-host.csv"
        text = src.read_text()
        csv.write_text(text[: text.index("\\n", 5000) + 30])   # cut mid-line
        return SimpleNamespace(csv=csv, stages=None, stages_unavailable="not root")
    ch.MEASURE, ch.QUIET, ch.TRACING = measure, (lambda: None), (lambda: (True, "ok"))
    ch.FIT = lambda *a, **k: sys.exit("the fit ran")
    sys.exit(main(["calibrate", "-q", "--out-dir", sys.argv[2]]))
""")


def test_one_command_with_a_broken_measurement_stops_before_the_fit(tmp_path):
    """A measurement that left a truncated CSV: one line naming it, no fit, nothing installed."""
    p = subprocess.run([sys.executable, "-c", _DRIVER, str(DATA / "measured-host.csv"), str(tmp_path / "d")],
                       capture_output=True, text=True, timeout=120,
                       env={**os.environ, "XDG_DATA_HOME": str(tmp_path / "xdg")})
    _one_line_error(p, str(tmp_path / "d" / "measured-host.csv"), "truncated")
    assert not (tmp_path / "xdg" / "lbsim" / "profiles").exists()


def test_stages_options_need_measured(capsys):
    assert main(["calibrate", "--stages", "x.json"]) == 2
    assert "go with MEASURED" in capsys.readouterr().err
    assert main(["calibrate", str(DATA / "measured-host.csv"), "--force"]) == 2
    assert "without MEASURED" in capsys.readouterr().err


@pytest.mark.slow
def test_end_to_end_real_fit_on_committed_data(monkeypatch):
    """The real fit and validation on the committed v1300 data (measuring injected): minutes."""
    monkeypatch.setattr(ch, "MEASURE", _copy_measure())
    monkeypatch.setattr(ch, "TRACING", lambda: (True, "injected"))
    monkeypatch.setattr(ch, "QUIET", lambda: None)
    out = ch.calibrate_this_host()
    h = out.heldout
    assert h is not None and h["rtt_p50_median_pct"] is not None and h["rtt_p50_median_pct"] < 25
    assert h["pairs_total"] and h["pairs_ok"] >= 0.9 * h["pairs_total"]
    from lbsim.profiles import resolve

    model, choice = resolve("auto")
    assert choice.name == out.profile_name and model.stages


def test_a_csv_cut_at_a_line_end_is_said_before_the_fit():
    """A file cut at a line end passes the CSV checks; the coverage check says what the fit will
    lack (a whole point, or repetitions of the last one), one line naming the file."""
    df = cc.read_measured(DATA / "measured-host.csv")
    assert cc.fit_coverage(df, "m.csv") is None
    no_dgram = df[~((df["transport"] == "unix_dgram") & (df["workload"] == "pingpong"))]
    why = cc.fit_coverage(no_dgram, "m.csv")
    assert why is not None and why.startswith("m.csv: ") and "unix_dgram same 64 B" in why and "\n" not in why
    why = cc.fit_coverage(df.iloc[:-2], "m.csv")
    assert why is not None and "last point" in why and "cut short" in why


@pytest.fixture
def cut_measure(hooks, monkeypatch):
    """The one-command hooks, with a measurement that lost its last two lines."""
    inner = _copy_measure()

    def measure(out, progress, *, reps, stages):
        res = inner(out, progress, reps=reps, stages=stages)
        lines = res.csv.read_text().splitlines(keepends=True)
        res.csv.write_text("".join(lines[:-2]))
        return res
    monkeypatch.setattr(ch, "MEASURE", measure)


def test_one_command_says_and_records_a_measurement_that_lacks_points(cut_measure):
    notices: list[str] = []
    out = ch.calibrate_this_host(notice=notices.append)
    assert any("last point" in n for n in notices)
    notes = json.loads(out.profile.read_text())["provenance"]["profile"]["notes"]
    assert any("cut short" in n for n in notes)


def test_a_measured_csv_without_host_json_is_said_not_silently_taken(tmp_path, caplog):
    shutil.copy(DATA / "measured-host.csv", tmp_path / "m.csv")
    with caplog.at_level("WARNING", logger="lbsim.calibrate"):
        assert cc.check_stages(DATA / "stages-host.json", tmp_path / "m.csv")["runs"]
    assert any("cannot check" in r.getMessage() and "m.csv.host.json" in r.getMessage() for r in caplog.records)


def test_calibrate_file_warns_in_one_line_before_fitting_a_cut_csv(tmp_path, monkeypatch, capsys):
    """`lbsim calibrate FILE` on a CSV cut at a line end: one warning line naming the file, then
    the fit (replaced here: it only records that it ran)."""
    import lbsim.calibrate as cal

    lines = (DATA / "measured-host.csv").read_text().splitlines(keepends=True)
    cut = tmp_path / "measured-host.csv"
    cut.write_text("".join(lines[:-2]))
    shutil.copy(DATA / "measured-host.csv.host.json", str(cut) + ".host.json")

    class Ran(Exception):
        pass

    monkeypatch.setattr(cal, "calibrate_from_files", lambda *a, **k: (_ for _ in ()).throw(Ran()))
    with pytest.raises(Ran):
        main(["calibrate", str(cut), str(DATA / "stages-host.json"), "-o", str(tmp_path / "c.json")])
    err = [ln for ln in capsys.readouterr().err.splitlines() if "cut short" in ln]
    assert len(err) == 1 and str(cut) in err[0] and "fitting what is there" in err[0]
