"""A sweep killed with SIGKILL at any moment resumes to exactly the result of a clean run."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lbsim.results import load_results

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


def run_files(out: Path) -> list[Path]:
    return sorted((out / "runs").glob("*.parquet")) if (out / "runs").is_dir() else []


def fingerprint(p: Path) -> tuple[int, str]:
    return p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest()


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
    seen: dict[str, tuple[int, str]] = {}
    counts_at_kill = []
    for at in (1, 5, 12):
        proc = start(path, out, log)
        try:
            deadline = time.monotonic() + 120
            while len(run_files(out)) < at and proc.poll() is None:
                if time.monotonic() > deadline:
                    pytest.fail(f"no {at} run files within 120 s: {log.read_text()[-2000:]}")
                time.sleep(0.005)
        finally:
            kill_group(proc)
        files = run_files(out)
        counts_at_kill.append(len(files))
        # every run finished before this kill is still there, byte for byte and never rewritten
        for name, fp in seen.items():
            assert fingerprint(out / "runs" / name) == fp, name
        for f in files:
            seen.setdefault(f.name, fingerprint(f))
    print("files at each kill:", counts_at_kill)
    assert counts_at_kill[0] < N_RUNS, "the first kill came too late to interrupt anything"

    proc = start(path, out, log)
    try:
        assert proc.wait(timeout=300) == 0, log.read_text()[-2000:]
    finally:
        kill_group(proc)
    assert not list(out.rglob("*.tmp"))
    files = run_files(out)
    assert len(files) == N_RUNS
    df = load_results(out)
    assert df["run_id"].nunique() == len(files) == N_RUNS
    assert {f.stem for f in files} == set(df["run_id"])
    assert set(df["status"]) == {"ok"}
    for name, fp in seen.items():
        assert fingerprint(out / "runs" / name) == fp, name

    clean = tmp_path / "clean"
    proc = start(path, clean, log)
    try:
        assert proc.wait(timeout=300) == 0, log.read_text()[-2000:]
    finally:
        kill_group(proc)
    assert values(out).equals(values(clean))
