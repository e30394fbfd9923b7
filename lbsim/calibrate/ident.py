"""Which fitted values the data pins down, and which it does not, computed cheaply from what
the fits already have:

* the least-squares fits (:func:`lbsim.calibrate.fits.fit_params`, ``refit_wakeups``): the
  Jacobian at the solution gives each parameter's standard error with the others free
  (``sqrt(diag((J^T J)^+) * s^2)``, s^2 the residual variance), its numerical rank says how
  many directions the points fix; a parameter at its bound is flagged;
* the one-value fits (cache-line transfer, skb free, out-of-cache and cache-to-cache copy, TCP's
  call share): a two-sided profile of the error around the value (one step each way); an error
  that does not change is a flat profile (the data do not pin the value: the minimiser returns
  whatever point it probed last), one that rises on one side only is an edge; a value equal to
  one of ``grid_then_brent``'s grid points or to a bound is flagged.

Each check appends a record to the list in :data:`CHECKS` (when one is set, by
:func:`lbsim.calibrate.steps.run_fit`), keyed by the parameter's name: a later fit of the same
value replaces it."""

from __future__ import annotations

import contextvars
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

#: the records of the fit being run (None: not collecting)
CHECKS: contextvars.ContextVar[dict[str, dict[str, Any]] | None] = contextvars.ContextVar(
    "lbsim_calibrate_checks", default=None)

#: a profile whose rms log error changes less than this either side is flat
FLAT = 1e-9
#: a least-squares value whose standard error exceeds this share of |value| (or of its range,
#: for a value near 0) is not pinned
LOOSE = 0.5


def _put(name: str, rec: dict[str, Any]) -> None:
    checks = CHECKS.get()
    if checks is not None:
        checks[name] = rec


def scalar_check(name: str, err: Callable[[float], float], x: float, lo: float, hi: float, xatol: float,
                 grid: Any = (), batch: Callable[[list[float]], list[float]] | None = None,
                 ) -> dict[str, Any]:
    """The profile of a one-value fit's error around ``x`` in [``lo``, ``hi``]: one step of
    ``max(2 xatol, 0.5 % of the range)`` each way."""
    h = max(2.0 * xatol, 0.005 * (hi - lo))
    xs = [max(lo, x - h), x, min(hi, x + h)]
    # as the rms log error (about a fraction of the measured values), so that its change reads as one
    e = [math.sqrt(max(v, 0.0)) for v in (batch(xs) if batch else [err(v) for v in xs])]
    rise = [e[0] - e[1] if xs[0] < x else math.nan, e[2] - e[1] if xs[2] > x else math.nan]
    flat = all(not (abs(r) > FLAT) for r in rise)
    at_bound = abs(x - lo) <= xatol or abs(hi - x) <= xatol
    on_grid = any(abs(x - float(g)) <= 1e-9 * max(1.0, abs(float(g))) for g in grid)
    if flat:
        status = "not pinned: flat profile"
    elif all(r > FLAT for r in rise if not math.isnan(r)) and not any(math.isnan(r) for r in rise):
        status = "pinned"
    else:
        status = "edge: the error falls on one side"
    rec = {"method": "profile", "value": x, "step": h, "rms_log_error": e[1],
           "rise_below": None if math.isnan(rise[0]) else rise[0],
           "rise_above": None if math.isnan(rise[1]) else rise[1],
           "status": status, "at_bound": at_bound, "at_grid_point": on_grid}
    _put(name, rec)
    return rec


def fixed_point_check(name: str, x: float, lo: float, hi: float, xtol: float, moved: float, steps: int,
                      max_steps: int, points: int) -> None:
    """A value found by repeated steps (``moved``: the last step's size): pinned once a step moves
    it less than ``xtol``, else not settled; at a bound when within ``xtol`` of one."""
    at_bound = x <= lo + xtol or x >= hi - xtol
    status = ("at bound" if at_bound else "pinned" if moved < xtol
              else f"not pinned: not settled in {max_steps} steps")
    _put(name, {"method": "each side's CPU time per message", "value": x, "status": status,
                "at_bound": at_bound, "at_grid_point": False, "steps": steps, "last_move": moved,
                "points": points})


def grid_check(name: str, x: float, grid: Sequence[float]) -> None:
    """A value chosen on a grid alone (no refinement): recorded as such."""
    _put(name, {"method": "grid", "value": x, "status": "grid value (by design)", "at_bound": x in (grid[0], grid[-1]),
                "at_grid_point": True, "grid": list(grid)})


def lsq_check(names: Sequence[str], sol: Any, lo: Any, hi: Any) -> dict[str, dict[str, Any]]:
    """Standard errors and rank from a SciPy ``least_squares`` solution (see the module doc)."""
    J = np.asarray(sol.jac, dtype=float)
    m, n = J.shape
    s2 = 2.0 * float(sol.cost) / max(m - n, 1)
    _, sv, vt = np.linalg.svd(J, full_matrices=True)
    sv = np.concatenate([sv, np.zeros(n - len(sv))])
    tol = (sv[0] if len(sv) else 0.0) * max(m, n) * np.finfo(float).eps * 1e6
    rank = int((sv > tol).sum())
    # the parameters in a direction the points do not see (a null vector of J) beside others
    null = np.abs(vt[rank:]) > 0.1
    combined = [bool(null[:, i].any() and (null[null[:, i]].sum(axis=1) > 1).any()) for i in range(n)]
    cov = np.linalg.pinv(J.T @ J) * s2
    sd = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    col = np.linalg.norm(J, axis=0)
    active = getattr(sol, "active_mask", np.zeros(n))
    out = {}
    for i, k in enumerate(names):
        x = float(sol.x[i])
        ref = max(abs(x), 0.05 * (hi[i] - lo[i]))
        if col[i] < 1e-6:
            status = "not pinned: no point depends on it"
        elif active[i] != 0:
            status = "at bound"
        elif combined[i]:
            status = "not pinned: only in a combination with others"
        elif sd[i] > LOOSE * ref:
            status = "not pinned: correlated with others"
        else:
            status = "pinned"
        out[k] = {"method": "jacobian", "value": x, "sd": float(sd[i]), "rel_sd": float(sd[i] / ref), "status": status,
                  "at_bound": bool(active[i] != 0), "at_grid_point": False, "rank": rank, "n_params": n}
        _put(k, out[k])
    return out


def not_pinned(checks: dict[str, dict[str, Any]]) -> list[str]:
    """The names whose record says the data do not pin them."""
    return [k for k, r in checks.items() if str(r["status"]).startswith("not pinned")]


def flagged(checks: dict[str, dict[str, Any]]) -> list[str]:
    """The names at a bound or at a grid point of a refined search (suspect values)."""
    return [k for k, r in checks.items() if r.get("at_bound") or (r.get("at_grid_point") and r["method"] != "grid")]
