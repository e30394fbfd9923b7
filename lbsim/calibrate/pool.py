"""The fit's simulations, many at a time: :func:`run_many` runs a list of independent
simulations (one of :data:`SIMS` on a cost model and a point) on every core, in a process pool,
and gives the results back in the order asked, so the fit stays deterministic; a simulation
already run on the same numbers is not run again (memoised on the model's
:attr:`lbsim.costs.CostModel.hash` and the arguments)."""

from __future__ import annotations

import atexit
import logging
import os
from collections import OrderedDict
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from lbsim.calibrate.sim import KERNEL, sim_p50_us, sim_split_us, sim_stream_MBps, sim_stream_sides
from lbsim.costs import CostModel

log = logging.getLogger("lbsim.calibrate")

#: the simulations a task may name
SIMS: dict[str, Any] = {"p50": sim_p50_us, "split": sim_split_us, "stream": sim_stream_MBps,
                        "sides": sim_stream_sides}
#: results kept for reuse (a fit runs a few tens of thousands of simulations at most)
MEMO_SIZE = 200_000

Task = tuple[str, CostModel, tuple[Any, ...], dict[str, Any]]

_pool: ProcessPoolExecutor | None = None
_memo: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
_hashes: dict[int, tuple[CostModel, str]] = {}
stats = {"asked": 0, "run": 0}


def workers() -> int:
    """Worker processes: ``LBSIM_FIT_WORKERS`` if set, else every core this process may use
    (1: run in this process, no pool)."""
    env = os.environ.get("LBSIM_FIT_WORKERS")
    if env:
        return max(1, int(env))
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _run(kernel: dict[str, Any], name: str, model: CostModel, args: tuple[Any, ...], kw: dict[str, Any]) -> Any:
    token = KERNEL.set(kernel)
    try:
        return SIMS[name](model, *args, **kw)
    finally:
        KERNEL.reset(token)


def _run_chunk(kernel: dict[str, Any], chunk: list[Task]) -> list[Any]:
    return [_run(kernel, *t) for t in chunk]


def _shutdown() -> None:
    global _pool
    if _pool is not None:
        _pool.shutdown(cancel_futures=True)
        _pool = None


def _executor(n: int) -> ProcessPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ProcessPoolExecutor(max_workers=n)
        atexit.register(_shutdown)
    return _pool


def _model_hash(m: CostModel) -> str:
    # CostModel.hash serialises the whole table: keep it per object (models are not mutated)
    got = _hashes.get(id(m))
    if got is None or got[0] is not m:
        if len(_hashes) > 10_000:
            _hashes.clear()
        got = _hashes[id(m)] = (m, m.hash)
    return got[1]


def _key(task: Task, kernel: dict[str, Any]) -> tuple[Any, ...]:
    name, model, args, kw = task
    return (name, _model_hash(model), repr(args), tuple(sorted(kw.items())), tuple(sorted(kernel.items())))


def run_many(tasks: list[Task]) -> list[Any]:
    """The results of ``tasks`` ((simulation, model, args, keywords) each), in order."""
    kernel = dict(KERNEL.get())
    keys = [_key(t, kernel) for t in tasks]
    todo: dict[tuple[Any, ...], Task] = {}
    for k, t in zip(keys, tasks):
        if k not in _memo and k not in todo:
            todo[k] = t
    stats["asked"] += len(tasks)
    stats["run"] += len(todo)
    n = workers()
    items = list(todo.items())
    if n == 1 or len(items) < 2:
        results = [_run(kernel, *t) for _, t in items]
    else:
        # round-robin chunks, 2 per worker: few, large messages, and long and short simulations mixed
        c = min(len(items), 2 * n)
        futures = [_executor(n).submit(_run_chunk, kernel, [t for _, t in items[i::c]]) for i in range(c)]
        parts = [f.result() for f in futures]
        results = [parts[j % c][j // c] for j in range(len(items))]
    for (k, _), r in zip(items, results):
        _memo[k] = r
    while len(_memo) > MEMO_SIZE:
        _memo.popitem(last=False)
    return [_memo[k] for k in keys]


def clear() -> None:
    """Forget the memoised results (tests that count simulations)."""
    _memo.clear()
    _hashes.clear()
