"""Every shipped experiment: it loads, expands, and its [smoke] version runs end to end."""

from __future__ import annotations

from pathlib import Path

import pytest

from lbsim.experiment import expand, load_experiment
from lbsim.runner import run_experiment

EXPERIMENTS = sorted((Path(__file__).resolve().parent.parent / "experiments").glob("*.toml"))


def test_the_shipped_experiments_are_there():
    names = {p.stem for p in EXPERIMENTS}
    assert names == {"quickstart", "latency_vs_size", "throughput_vs_size", "mtu", "queues", "cpus", "load",
                     "kernels"}


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.stem)
def test_full_version_expands(path):
    exp = load_experiment(path)
    runs = expand(exp)
    assert len(runs) >= 8
    assert len({r.run_id for r in runs}) == len(runs)
    assert any(r.status == "pending" for r in runs)


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.stem)
def test_smoke_version_runs(path, tmp_path):
    df = run_experiment(path, smoke=True, jobs=1, out=tmp_path / path.stem, quiet=True)
    statuses = set(df.status)
    assert statuses <= {"ok", "skipped"}, df[df.status == "error"][["name", "error"]].drop_duplicates()
    assert "ok" in statuses
    ok = df[df.status == "ok"]
    assert (ok[ok.metric == "throughput_msgs_per_s"].value > 0).all()
