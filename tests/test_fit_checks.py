"""The fit's simulations in parallel (lbsim.calibrate.pool)."""

from __future__ import annotations

from lbsim.calibrate import pool
from lbsim.calibrate.sim import sim_p50_us, sim_split_us, sim_stream_MBps
from lbsim.costs import load_costs
from lbsim.fitdata import Point

MODEL = load_costs("default")


def test_run_many_gives_the_serial_results_in_order_and_runs_each_once(monkeypatch):
    monkeypatch.setenv("LBSIM_FIT_WORKERS", "2")
    pool.clear()
    pts = [Point(tr, pl, "idle", n, 1.0, 0.1) for tr in ("udp", "tcp") for pl in ("same", "cross") for n in (64, 4096)]
    tasks = ([("p50", MODEL, (p,), {"deterministic": True, "messages": 8}) for p in pts]
             + [("split", MODEL, ("unix_stream", 3776), {}), ("stream", MODEL, ("udp", "cross", 1024, 100), {})])
    want = ([sim_p50_us(MODEL, p, deterministic=True, messages=8) for p in pts]
            + [sim_split_us(MODEL, "unix_stream", 3776), sim_stream_MBps(MODEL, "udp", "cross", 1024, 100)])
    before = dict(pool.stats)
    assert pool.run_many(tasks) == want
    assert pool.stats["run"] - before["run"] == len(tasks)
    # the same simulations again (an equal model, another object): none is run
    again = load_costs("default")
    assert pool.run_many([(n, again, a, k) for n, _, a, k in tasks[::-1]]) == want[::-1]
    assert pool.stats["run"] - before["run"] == len(tasks)
