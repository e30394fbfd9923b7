"""Experiment files, expansion, the runner (local and dask executors) and the results store."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import lbsim
from lbsim.cli import main
from lbsim.experiment import ExperimentError, expand, load_experiment, parse_experiment, replication_seeds
from lbsim.model.version import MODEL_VERSION
from lbsim.results import COLUMNS, META_COLUMNS, load_results, summarize
from lbsim.runner import RunnerError, run_experiment

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

SMALL = """
name = "small"
seed = 7
replications = 2
[base]
workload = "pingpong"
messages = 100
[factors]
transport = ["tcp", "udp", "unix_stream"]
msg_bytes = [64, 70000]
"""


def write(tmp_path: Path, text: str, name: str = "exp.toml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def values(df: pd.DataFrame) -> pd.DataFrame:
    """The numbers of a results frame, in a canonical order."""
    keys = ["run_id", "metric", "stage", "cpu"]
    d = df[df["status"] == "ok"][[*keys, "value"]]
    return d.sort_values(keys, na_position="first").reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# expansion
# --------------------------------------------------------------------------------------------

def test_expansion_is_the_product_times_each_zip_group(tmp_path):
    exp = load_experiment(write(tmp_path, """
name = "grid"
seed = 3
replications = 2
[base]
messages = 100
[factors]
transport = ["tcp", "unix_stream"]
placement = ["same", "cross"]
[[zip]]
tcp_rmem = [[4096, 131072, 6291456], [4096, 1048576, 6291456]]
rmem_default = [212992, 1048576]
"""))
    specs = expand(exp)
    assert len(specs) == 2 * 2 * 2 * 2  # transport x placement x zip group x replications
    assert specs[0].name == "tcp[placement=same,rmem_default=212992,tcp_rmem=[4096,131072,6291456]]#r0"
    assert {s.status for s in specs} == {"pending"}
    assert len({s.run_id for s in specs}) == len(specs)
    # zip keys move together: never rmem_default=212992 with the large tcp_rmem
    pairs = {(s.config["rmem_default"], tuple(s.config["tcp_rmem"])) for s in specs}
    assert pairs == {(212992, (4096, 131072, 6291456)), (1048576, (4096, 1048576, 6291456))}
    # one seed per replication, shared by every point (common random numbers)
    expected = [int(c.generate_state(1)[0]) for c in np.random.SeedSequence(3).spawn(2)]
    assert replication_seeds(3, 2) == expected
    for s in specs:
        assert s.seed == expected[s.replication] == s.config["seed"]
        assert s.config["messages"] == 100


def test_combinations_a_transport_cannot_carry_are_skipped_with_the_reason(tmp_path):
    specs = expand(load_experiment(write(tmp_path, SMALL)))
    skipped = [s for s in specs if s.status == "skipped"]
    assert [s.name for s in skipped] == ["udp[msg_bytes=70000]#r0", "udp[msg_bytes=70000]#r1"]
    assert all("too large for udp" in s.reason for s in skipped)
    tso = expand(load_experiment(write(tmp_path, """
name = "tso"
[base]
messages = 100
[factors]
transport = ["tcp", "udp", "unix_stream"]
tso = [true, false]
""", "tso.toml")))
    status = {s.name: (s.status, s.reason) for s in tso}
    assert status["tcp[tso=false]#r0"][0] == status["tcp[tso=true]#r0"][0] == "pending"
    assert status["udp[tso=true]#r0"][0] == "pending"  # the profile's value: the ordinary udp run
    assert status["udp[tso=false]#r0"][0] == status["unix_stream[tso=false]#r0"][0] == "skipped"
    assert "only changes tcp" in status["udp[tso=false]#r0"][1]


def test_run_ids_are_stable_and_independent_of_the_lbsim_version(tmp_path, monkeypatch):
    path = write(tmp_path, SMALL)
    ids = [s.run_id for s in expand(load_experiment(path))]
    assert ids == [s.run_id for s in expand(load_experiment(path))]
    monkeypatch.setattr(lbsim, "__version__", "99.0.0")
    assert ids == [s.run_id for s in expand(load_experiment(path))]
    # the same runs written in another order, with the base value given explicitly: same ids
    reordered = SMALL.replace('transport = ["tcp", "udp", "unix_stream"]\nmsg_bytes = [64, 70000]',
                              'msg_bytes = [64, 70000]\ntransport = ["tcp", "udp", "unix_stream"]')
    reordered = reordered.replace('workload = "pingpong"', 'workload = "pingpong"\ncpus = 2')
    assert sorted(ids) == sorted(s.run_id for s in expand(parse_experiment(reordered, "x.toml")))
    # another seed: other ids
    other = {s.run_id for s in expand(parse_experiment(SMALL.replace("seed = 7", "seed = 8"), "x.toml"))}
    assert not other & set(ids)


def test_smoke_overrides_in_both_spellings(tmp_path):
    dotted = SMALL + '[smoke]\nreplications = 1\nmessages = 50\n"factors.msg_bytes" = [16]\n'
    nested = SMALL + '[smoke]\nreplications = 1\nmessages = 50\n[smoke.factors]\nmsg_bytes = [16]\n'
    a = expand(parse_experiment(dotted, "a.toml", smoke=True))
    b = expand(parse_experiment(nested, "b.toml", smoke=True))
    assert [s.run_id for s in a] == [s.run_id for s in b]
    assert [s.name for s in a] == ["tcp#r0", "udp#r0", "unix_stream#r0"]
    assert all(s.config["messages"] == 50 and s.config["msg_bytes"] == 16 for s in a)
    assert len(expand(parse_experiment(dotted, "a.toml"))) == 12  # without --smoke: the full experiment
    zipped = """
name = "z"
[factors]
transport = ["tcp"]
[[zip]]
msg_bytes = [64, 1024, 4096]
messages = [100, 50, 20]
[smoke]
"zip.0.msg_bytes" = [64]
"zip.0.messages" = [10]
"""
    (spec,) = expand(parse_experiment(zipped, "z.toml", smoke=True))
    assert (spec.config["msg_bytes"], spec.config["messages"]) == (64, 10)


BAD = [
    ('name = "b"\nreplicatons = 2\n', "exp.toml: replicatons: unknown top-level key", "did you mean 'replications'"),
    ('name = "b"\n[base]\nmesages = 3\n', "exp.toml: base.mesages: unknown key", "did you mean 'messages'"),
    ('name = "b"\n[factors]\nmsg_bytes = [16, 64, 0]\n', "exp.toml: factors.msg_bytes[2]: ", "(got 0)"),
    ('name = "b"\n[factors]\ntransport = ["tcp", "sctp"]\n', "factors.transport[1]: ", "'unix_dgram'"),
    ('name = "b"\n[[zip]]\nmsg_bytes = [16, 64]\nmessages = [1, 2, 3]\n', "exp.toml: zip[0]: ", "lengths differ"),
    ('name = "b"\n[[zip]]\nmsg_bytez = [16, 64]\n', "exp.toml: zip[0].msg_bytez: ", "did you mean 'msg_bytes'"),
    ('name = "b"\n[smoke]\n"factors.msg_byts" = [1]\n', "smoke.factors.msg_byts: ", "did you mean 'msg_bytes'"),
    ('name = "b"\n[smoke]\nrepliations = 1\n', "exp.toml: smoke.repliations: ", "did you mean 'replications'"),
    ('name = "b"\n[base]\ncpus = 1\n[factors]\nplacement = ["same", "cross"]\n', "point tcp[placement=cross]",
     "needs cpus >= 2"),
    ('name = "b"\n[base]\nmsg_bytes = 64\n[factors]\nmsg_bytes = [16]\n', "factors.msg_bytes: ", "also set"),
    ('name = "b"\nreplications = 0\n', "exp.toml: replications: ", "1..100000"),
    ('name = "b"\n[factors]\nmsg_bytes = 64\n', "factors.msg_bytes: ", "non-empty list"),
    ('name = "b"\n[base]\nseed = 3\n', "base.seed: ", "top-level seed"),
    ('name = "b"\n[factors\n', "exp.toml: not valid TOML", ""),
]


@pytest.mark.parametrize("text,where,needle", BAD)
def test_bad_files_give_one_line_naming_file_and_key_path(tmp_path, capsys, text, where, needle):
    path = write(tmp_path, text)
    with pytest.raises(ExperimentError) as e:
        load_experiment(path)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(str(path)) and where in msg and needle in msg
    assert main(["run", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"lbsim: error: {msg}"
    assert not (tmp_path / "out" / "results.parquet").exists() and not (tmp_path / "out" / "parts").exists()


def test_every_shipped_experiment_is_valid():
    for path in sorted((REPO / "experiments").glob("*.toml")):
        for smoke in (False, True):
            assert expand(load_experiment(path, smoke=smoke)), path


# --------------------------------------------------------------------------------------------
# running and the store
# --------------------------------------------------------------------------------------------

def test_a_run_writes_tidy_parquet_rows_with_the_documented_columns(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = write(tmp_path, SMALL)
    (tmp_path / "runs" / "small" / "parts").mkdir(parents=True)
    stale = tmp_path / "runs" / "small" / "parts" / "abc.parquet.1234.tmp"
    stale.write_text("left by a killed run")
    df = run_experiment(path, jobs=2, quiet=True)  # default out: runs/<name>/ under the cwd
    folder = tmp_path / "runs" / "small"
    specs = expand(load_experiment(path))
    # one Parquet file, its rows in the experiment's run order; no parts left
    assert sorted(p.name for p in folder.iterdir()) == [".lock", "experiment.toml", "manifest.json",
                                                         "results.parquet"]
    assert list(df["run_id"].drop_duplicates()) == [s.run_id for s in specs]
    assert df.attrs["source"] == str(Path("runs") / "small")
    assert list(df.columns) == list(COLUMNS)
    assert df.attrs["summary"]["counts"] == {"ok": 10, "skipped": 2}
    ok = df[df["status"] == "ok"]
    assert set(ok["worker"].dropna()) and ok["costs_hash"].notna().all() and (ok["wall_s"] > 0).all()
    assert set(ok["lbsim_version"]) == {lbsim.__version__} and set(df["experiment"]) == {"small"}
    assert set(df["model_version"]) == {MODEL_VERSION}
    metrics = set(ok["metric"])
    for m in ("latency_us_mean", "latency_us_p50", "latency_us_p90", "latency_us_p99", "latency_us_p999",
              "throughput_bytes_per_s", "throughput_msgs_per_s", "messages_sent", "context_switches",
              "cpu_busy_frac", "stage_busy_ns", "stage_count", "stage_wait_ns"):
        assert m in metrics, m
    stage_rows = ok[ok["metric"] == "stage_busy_ns"]
    assert stage_rows["stage"].notna().all() and stage_rows["stage_group"].notna().all()
    assert ok[ok["metric"] == "cpu_busy_frac"]["cpu"].notna().all()
    assert ok[~ok["metric"].str.startswith(("stage_", "cpu_"))]["stage"].isna().all()
    # one row per skipped run, with the reason
    skipped = df[df["status"] == "skipped"]
    assert len(skipped) == 2 and skipped["reason"].str.contains("too large").all() and skipped["metric"].isna().all()
    # every SimConfig field is a column; lists are JSON strings
    one = ok.iloc[0]
    assert one["messages"] == 100 and one["placement"] == "same" and pd.isna(one["mtu"])
    # the rows' numbers are the simulator's
    row = ok[(ok["name"] == "tcp[msg_bytes=64]#r1") & (ok["metric"] == "latency_us_p50")].iloc[0]
    again = lbsim.simulate(transport="tcp", msg_bytes=64, messages=100, seed=int(row["seed"]))
    assert row["value"] == again.latency_us["p50"]
    # provenance
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["model_version"] == MODEL_VERSION
    for key in ("lbsim_version", "git_commit", "costs_hash", "python", "simpy", "numpy", "pandas", "hostname",
                "cpu_model", "kernel", "start", "end", "executor", "jobs"):
        assert key in manifest, key
    assert manifest["executor"] == "local" and manifest["jobs"] == 2 and manifest["end"]
    resolved = load_experiment(folder / "experiment.toml")
    assert [s.run_id for s in expand(resolved)] == [s.run_id for s in specs]
    # load_results by name: ./runs/<name> (the cwd's)
    monkeypatch.setenv("LBSIM_RESULTS", str(tmp_path / "shipped"))
    assert len(load_results("small")) == len(df)


def test_documented_columns():
    doc = (REPO / "docs" / "guide" / "experiments.md").read_text()
    for col in COLUMNS:
        assert f"`{col}`" in doc, col


def test_resume_skips_stored_runs_and_force_recomputes(tmp_path):
    path, out = write(tmp_path, SMALL), tmp_path / "out"
    first = run_experiment(path, jobs=2, out=out, quiet=True)
    mtime = (out / "results.parquet").stat().st_mtime_ns
    assert first.attrs["summary"]["computed"] == 10
    calls: list[dict] = []
    again = run_experiment(path, jobs=2, out=out, quiet=True, progress=calls.append)
    assert again.attrs["summary"]["computed"] == 0 and again.attrs["summary"]["resumed"] == 10 and not calls
    assert (out / "results.parquet").stat().st_mtime_ns == mtime  # nothing new: not rewritten
    assert values(again).equals(values(first))
    forced = run_experiment(path, jobs=2, out=out, force=True, quiet=True, progress=calls.append)
    assert forced.attrs["summary"]["computed"] == 10 and len(calls) == 10
    assert calls[-1]["done"] == calls[-1]["total"] == 10
    assert (out / "results.parquet").stat().st_mtime_ns != mtime and not (out / "parts").exists()
    assert values(forced).equals(values(first))
    assert len(json.loads((out / "manifest.json").read_text())["sessions"]) == 3


def test_runs_no_longer_part_of_the_experiment_are_moved_aside(tmp_path):
    """A changed experiment (here: one size fewer) run into the same folder must not mix the
    old runs into load_results: they go to superseded/, the kept ones are resumed."""
    path, out = write(tmp_path, SMALL), tmp_path / "out"
    first = run_experiment(path, jobs=2, out=out, quiet=True)
    old_ids = set(first["run_id"])
    write(tmp_path, SMALL.replace("msg_bytes = [64, 70000]", "msg_bytes = [64]"))
    again = run_experiment(path, jobs=2, out=out, quiet=True)
    assert again.attrs["summary"]["computed"] == 0 and again.attrs["summary"]["resumed"] == 6
    kept = set(load_results(out)["run_id"])
    assert kept == set(again["run_id"]) and len(kept) == 6 < len(old_ids)
    assert set(pd.read_parquet(out / "superseded" / "results.parquet")["run_id"]) == old_ids - kept


def test_runs_of_another_model_version_are_recomputed(tmp_path):
    """Stored runs are stale only when their model_version differs from MODEL_VERSION."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path, out = write(tmp_path, SMALL), tmp_path / "out"
    first = run_experiment(path, jobs=2, out=out, quiet=True)
    t = pq.read_table(out / "results.parquet")
    old = pa.array([MODEL_VERSION - 1] * len(t), pa.int64())
    pq.write_table(t.set_column(t.schema.get_field_index("model_version"), "model_version", old),
                   out / "results.parquet")
    again = run_experiment(path, jobs=2, out=out, quiet=True)
    assert again.attrs["summary"]["computed"] == 10 and again.attrs["summary"]["resumed"] == 0
    assert set(again["model_version"]) == {MODEL_VERSION} and values(again).equals(values(first))


def test_an_old_layout_folder_is_read_and_migrated(tmp_path):
    """One Parquet file per run under runs/ (the layout before results.parquet): load_results
    reads it, and lbsim run folds it into results.parquet."""
    import pyarrow.parquet as pq

    path, out = write(tmp_path, SMALL), tmp_path / "out"
    first = run_experiment(path, jobs=2, out=out, quiet=True)
    (out / "runs").mkdir()
    t = pq.read_table(out / "results.parquet").drop_columns(["model_version"])  # older files lack it
    for rid in set(t["run_id"].to_pylist()):
        pq.write_table(t.filter(pa_equal(t["run_id"], rid)), out / "runs" / f"{rid}.parquet")
    (out / "results.parquet").unlink()
    old = load_results(out)
    assert values(old).equals(values(first)) and old["model_version"].isna().all()
    again = run_experiment(path, jobs=2, out=out, quiet=True)  # no model_version: recomputed
    assert again.attrs["summary"]["computed"] == 10 and not (out / "runs").exists()
    assert values(again).equals(values(first))


def pa_equal(column, value):
    import pyarrow.compute as pc

    return pc.equal(column, value)


def test_load_results_prefers_your_runs_over_the_shipped_ones(tmp_path, monkeypatch, caplog):
    import logging

    path = write(tmp_path, SMALL.replace("replications = 2", "replications = 1"))
    shipped, mine = tmp_path / "shipped", tmp_path / "work"
    run_experiment(path, jobs=2, out=shipped / "small", quiet=True)
    monkeypatch.setenv("LBSIM_RESULTS", str(shipped))
    mine.mkdir()
    monkeypatch.chdir(mine)
    with caplog.at_level(logging.INFO, logger="lbsim"):
        df = load_results("small")
    assert df.attrs["source"] == str(shipped / "small")
    assert str(shipped / "small") in caplog.text
    run_experiment(path, jobs=2, quiet=True)  # into ./runs/small
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="lbsim"):
        df = load_results("small")
    assert df.attrs["source"] == str(Path("runs") / "small") and str(Path("runs") / "small") in caplog.text
    assert load_results(shipped / "small").attrs["source"] == str(shipped / "small")  # a path is a path


def test_a_failing_run_is_recorded_and_the_exit_status_is_1(tmp_path, capsys):
    missing = tmp_path / "no-such-costs.json"
    path = write(tmp_path, f"""
name = "fail"
[base]
messages = 100
[factors]
transport = ["tcp", "unix_stream"]
costs = ["default", "{missing}"]
""")
    out = tmp_path / "out"
    assert main(["run", str(path), "--jobs", "2", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "[4/4]" in err and "error" in err and "ok" in err  # plain progress lines (stderr is no TTY)
    df = load_results(out)
    bad = df[df["status"] == "error"]
    assert sorted(bad["name"]) == [f"tcp[costs={missing}]#r0", f"unix_stream[costs={missing}]#r0"]
    assert bad["error"].str.contains("CostFileError: .*cannot read cost file", regex=True).all()
    assert bad["traceback"].str.contains("Traceback").all()
    assert set(df[df["status"] == "ok"]["costs"]) == {"default"}
    # errored runs are retried on the next invocation, finished ones are not
    again = run_experiment(path, jobs=1, out=out, quiet=True)
    assert again.attrs["summary"]["computed"] == 2 and again.attrs["summary"]["resumed"] == 2
    assert main(["run", str(path), "--out", str(out), "--quiet"]) == 1
    assert capsys.readouterr().err == ""


def test_one_job_and_two_jobs_give_identical_numbers(tmp_path):
    path = write(tmp_path, SMALL)
    one = run_experiment(path, jobs=1, out=tmp_path / "j1", quiet=True)
    two = run_experiment(path, jobs=2, out=tmp_path / "j2", quiet=True)
    assert len(values(one)) > 100 and values(one).equals(values(two))


def test_a_results_folder_in_use_is_refused(tmp_path):
    path, out = write(tmp_path, SMALL), tmp_path / "busy"
    out.mkdir()
    with open(out / ".lock", "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        with pytest.raises(RunnerError, match="another lbsim run"):
            run_experiment(path, out=out, quiet=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def test_dask_scheduler_and_worker_give_the_local_numbers(tmp_path):
    path = write(tmp_path, SMALL)
    local = run_experiment(path, jobs=1, out=tmp_path / "local", quiet=True)
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    procs = []
    log = open(tmp_path / "dask.log", "w")
    try:
        procs.append(subprocess.Popen([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                                       "--no-dashboard"], stdout=log, stderr=log, start_new_session=True))
        procs.append(subprocess.Popen([str(BIN / "dask"), "worker", address, "--nworkers", "1", "--nthreads", "1",
                                       "--no-dashboard"], stdout=log, stderr=log, start_new_session=True,
                                      cwd=tmp_path))
        df = run_experiment(path, dask_scheduler=address, out=tmp_path / "dask", quiet=True)
    finally:
        for p in reversed(procs):
            _stop(p)
        log.close()
    assert df.attrs["summary"]["executor"] == "dask" and df.attrs["summary"]["counts"]["ok"] == 10
    workers = set(df[df["status"] == "ok"]["worker"])
    assert len(workers) == 1 and next(iter(workers)).startswith("tcp://127.0.0.1:")
    assert values(df).equals(values(local))
    manifest = json.loads((tmp_path / "dask" / "manifest.json").read_text())
    assert manifest["executor"] == "dask" and manifest["dask_scheduler"] == address
    # and without an address: a LocalCluster of --jobs worker processes
    cluster = run_experiment(path, executor="dask", jobs=1, out=tmp_path / "dask-local", quiet=True)
    assert values(cluster).equals(values(local))


# --------------------------------------------------------------------------------------------
# summaries
# --------------------------------------------------------------------------------------------

def test_summarize_gives_mean_and_student_t_interval():
    sample = [1.0, 2.0, 3.0, 4.0, 5.0]
    rows = [{"status": "ok", "metric": "latency_us_p50", "value": v, "transport": "tcp", "msg_bytes": 64,
             "stage": None, "stage_group": None, "cpu": None, "point": "tcp", "replication": i, "seed": 100 + i}
            for i, v in enumerate(sample)]
    rows += [{**rows[0], "transport": "udp", "point": "udp", "value": 9.0},
             {**rows[0], "status": "error", "value": 1000.0}]
    out = summarize(pd.DataFrame(rows)).set_index("transport")
    # mean 3, s = sqrt(2.5), t(0.975, 4) = 2.776445105: half-width 2.776445 * 1.581139 / sqrt(5)
    assert out.loc["tcp", "mean"] == pytest.approx(3.0)
    assert out.loc["tcp", "ci"] == pytest.approx(2.776445105 * np.sqrt(2.5) / np.sqrt(5), rel=1e-9)
    assert out.loc["tcp", "n"] == 5 and out.loc["tcp", "point"] == "tcp"
    assert out.loc["udp", "n"] == 1 and np.isnan(out.loc["udp", "ci"])


def test_summarize_on_stored_results(tmp_path):
    df = run_experiment(write(tmp_path, SMALL), jobs=2, out=tmp_path / "s", quiet=True)
    s = summarize(df)
    p50 = s[(s["metric"] == "latency_us_p50")]
    assert len(p50) == 5 and (p50["n"] == 2).all() and p50["ci"].notna().all()
    assert set(p50["point"]) == {"tcp[msg_bytes=64]", "tcp[msg_bytes=70000]", "udp[msg_bytes=64]",
                                 "unix_stream[msg_bytes=64]", "unix_stream[msg_bytes=70000]"}
    assert set(META_COLUMNS) <= set(df.columns)


def test_load_results_names_a_missing_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("LBSIM_RESULTS", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="nothing-here"):
        load_results("nothing-here")


def test_cli_run_end_to_end_with_smoke(tmp_path):
    path = write(tmp_path, SMALL + '[smoke]\nreplications = 1\n"factors.transport" = ["unix_stream"]\n')
    t0 = time.perf_counter()
    proc = subprocess.run([str(BIN / "lbsim"), "run", str(path), "--smoke", "--jobs", "1"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "[2/2] unix_stream[msg_bytes=" in proc.stderr and "computed now 2" in proc.stderr
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["small-smoke"]
    assert time.perf_counter() - t0 < 60
