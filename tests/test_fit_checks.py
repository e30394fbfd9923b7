"""The fit's simulations in parallel (lbsim.calibrate.pool) and its identifiability checks
(lbsim.calibrate.ident)."""

from __future__ import annotations

import numpy as np
import pytest

from lbsim.calibrate import pool
from lbsim.calibrate.ident import CHECKS, flagged, lsq_check, not_pinned, scalar_check
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


def test_a_flat_profile_and_a_grid_point_are_flagged():
    checks: dict = {}
    token = CHECKS.set(checks)
    try:
        # a step: the error does not change near 1847.5, whatever the minimiser returned
        scalar_check("flat", lambda x: 0.04 if x < 2500 else 0.09, 1847.5, 0.0, 3000.0, 5.0)
        scalar_check("bowl", lambda x: (x - 1.0) ** 2 + 0.01, 1.0, 0.0, 2.0, 1e-3)
        scalar_check("grid", lambda x: (x - 0.1) ** 2 + 0.01, 0.1, 0.0, 0.3, 2e-3, grid=np.linspace(0.0, 0.3, 13))
        scalar_check("edge", lambda x: 1.0 - x, 0.5, 0.0, 2.0, 1e-3)
    finally:
        CHECKS.reset(token)
    assert checks["flat"]["status"].startswith("not pinned")
    assert checks["bowl"]["status"] == "pinned" and not checks["bowl"]["at_grid_point"]
    assert checks["grid"]["at_grid_point"] and checks["edge"]["status"].startswith("edge")
    assert not_pinned(checks) == ["flat"] and flagged(checks) == ["grid"]


def test_lsq_check_names_what_the_jacobian_does_not_pin():
    from scipy.optimize import least_squares

    rng = np.random.default_rng(1)
    a = rng.uniform(1, 2, 20)
    y = 2.0 * a + rng.normal(0, 0.01, 20)

    def resid(x):  # x[1] and x[2] only as their sum; x[3] not at all
        return (x[0] + 0.0 * x[3]) * a + (x[1] + x[2]) - y

    sol = least_squares(resid, [1.0, 0.5, 0.5, 1.0], bounds=([0, -5, -5, 0], [5, 5, 5, 5]))
    got = lsq_check(["a", "b", "c", "d"], sol, [0, -5, -5, 0], [5, 5, 5, 5])
    assert got["a"]["status"] == "pinned" and got["a"]["value"] == pytest.approx(2.0, abs=0.05)
    assert got["d"]["status"].startswith("not pinned: no point")
    assert got["b"]["status"] == got["c"]["status"] == "not pinned: only in a combination with others"
    assert got["a"]["rank"] == 2
