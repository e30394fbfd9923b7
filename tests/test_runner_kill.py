"""A sweep killed with SIGKILL at any moment loses no finished run, and resumes to exactly the
result of a clean run (finished runs wait in parts/ until consolidated into results.parquet)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lbsim.results import load_results, read_table

LBSIM = Path(sys.executable).parent / "lbsim"
#: 20 runs of about 0.1-0.5 s each: slow enough to be caught in the middle
EXPERIMENT = """
name = "killme"
seed = 11
replications = 1
[base]
workload = "pingpong"
messages = 5000
[factors]
transport = ["tcp", "udp", "unix_stream", "unix_dgram"]
msg_bytes = [16, 64, 256, 1024, 4096]
"""
N_RUNS = 20


def finished(out: Path) -> dict[str, tuple]:
    """run_id -> the run's stored rows (its numbers), from results.parquet and parts/."""
    if not out.is_dir():
        return {}
    t = read_table(out, ["status", "metric", "stage", "cpu", "value"]).to_pandas()
    return {rid: tuple(map(tuple, g[["status", "metric", "stage", "cpu", "value"]].astype(str).to_numpy()))
            for rid, g in t.groupby("run_id", sort=False)}


def start(path: Path, out: Path, log: Path) -> subprocess.Popen:
    with open(log, "ab") as fh:
        return subprocess.Popen([str(LBSIM), "run", str(path), "--jobs", "2", "--out", str(out), "--quiet"],
                                stdout=fh, stderr=fh, start_new_session=True)


def kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=30)


def values(out: Path):
    df = load_results(out)
    keys = ["run_id", "metric", "stage", "cpu"]
    return df[[*keys, "value"]].sort_values(keys, na_position="first").reset_index(drop=True)


def test_sigkill_at_several_points_then_resume(tmp_path):
    path = tmp_path / "killme.toml"
    path.write_text(EXPERIMENT)
    out, log = tmp_path / "killed", tmp_path / "lbsim.log"
    seen: dict[str, tuple] = {}
    counts_at_kill = []
    for at in (1, 5, 12):
        proc = start(path, out, log)
        try:
            deadline = time.monotonic() + 120
            while len(finished(out)) < at and proc.poll() is None:
                if time.monotonic() > deadline:
                    pytest.fail(f"no {at} finished runs within 120 s: {log.read_text()[-2000:]}")
                time.sleep(0.02)
        finally:
            kill_group(proc)
        now = finished(out)
        counts_at_kill.append(len(now))
        # every run finished before this kill is still there, with the same numbers
        for rid, rows in seen.items():
            assert now.get(rid) == rows, rid
        for rid, rows in now.items():
            seen.setdefault(rid, rows)
    print("runs finished at each kill:", counts_at_kill)
    assert counts_at_kill[0] < N_RUNS, "the first kill came too late to interrupt anything"

    proc = start(path, out, log)
    try:
        assert proc.wait(timeout=300) == 0, log.read_text()[-2000:]
    finally:
        kill_group(proc)
    assert not list(out.rglob("*.tmp"))
    assert (out / "results.parquet").is_file() and not (out / "parts").exists()
    df = load_results(out)
    assert df["run_id"].nunique() == N_RUNS
    assert set(df["status"]) == {"ok"}
    now = finished(out)
    for rid, rows in seen.items():
        assert now[rid] == rows, rid

    clean = tmp_path / "clean"
    proc = start(path, clean, log)
    try:
        assert proc.wait(timeout=300) == 0, log.read_text()[-2000:]
    finally:
        kill_group(proc)
    assert values(out).equals(values(clean))
