"""Run an experiment: expand it, compute the runs in parallel, store each one as it finishes.

Workers only compute: :func:`execute` takes a plain run description and returns a plain
result.  The client (the process that called :func:`run_experiment`) writes every result
to the results store as its future completes, so remote dask workers need no shared
disk, and a sweep that is killed keeps every run finished so far (re-running it resumes).
At the end (and when a killed sweep is resumed) the finished runs are consolidated into
the folder's one ``results.parquet`` (see :mod:`lbsim.results`).

Executors (each a :class:`concurrent.futures.Executor`, driven by the same loop)
    ``local``  a :class:`concurrent.futures.ProcessPoolExecutor` (spawn) with ``jobs`` workers
    ``dask``   ``Client(LocalCluster(n_workers=jobs, threads_per_worker=1)).get_executor()``,
               or ``Client(dask_scheduler)`` for an existing cluster (lbsim must be importable
               on its workers; a ``costs`` path must exist on the workers)

A stored run counts as done when its ``model_version`` is the current
:data:`lbsim.model.version.MODEL_VERSION`; runs of another model are recomputed.

The numbers depend on the configuration (seed included) only: every executor and job
count gives the same results.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import platform
import socket
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Executor, Future, as_completed
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lbsim.experiment import Experiment, RunSpec, expand, experiment_to_toml, load_experiment
from lbsim.jsonsafe import plain
from lbsim.model.version import MODEL_VERSION
from lbsim.results import (
    atomic_write_text,
    clean_stale_tmp,
    consolidate,
    load_results,
    run_rows,
    stored_runs,
    write_run,
)

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = ["run_experiment", "execute", "RunnerError", "EXECUTORS", "default_out", "format_summary"]

EXECUTORS = ("local", "dask")
#: statuses of a run that is finished for good (resume skips it); "error" runs are retried
DONE_STATUSES = ("ok", "timeout")

Outcome = dict[str, Any]
ProgressCallback = Callable[[dict[str, Any]], None]


class RunnerError(RuntimeError):
    """The sweep cannot start (results folder in use, no dask workers, ...)."""


# --------------------------------------------------------------------------------------------
# the worker side
# --------------------------------------------------------------------------------------------

def _worker_id() -> str:
    """The dask worker's address inside a dask worker, else ``hostname/pid``."""
    if "distributed" in sys.modules:
        try:
            from distributed import get_worker

            return str(get_worker().address)
        except (ImportError, ValueError):
            pass
    return f"{socket.gethostname()}/{os.getpid()}"


def _error_outcome(spec: Mapping[str, Any], exc: BaseException, tb: str, worker: str | None,
                   wall_s: float | None = None) -> Outcome:
    return {"run_id": spec["run_id"], "status": "error", "result": None, "error": f"{type(exc).__name__}: {exc}",
            "traceback": tb, "worker": worker, "wall_s": wall_s, "model_version": MODEL_VERSION}


def execute(spec: Mapping[str, Any]) -> Outcome:
    """Compute one run (a :meth:`RunSpec.to_dict`): build its config, :func:`lbsim.simulate` it.

    Returns plain data: ``run_id``, ``status`` (the simulator's "ok"/"timeout", or "error"),
    ``result`` (``Result.to_dict()``), ``error`` / ``traceback`` (text, on failure),
    ``worker``, ``wall_s`` and the worker's ``model_version``.  Never raises for a failing run: the
    failure is the outcome.
    """
    t0 = time.perf_counter()
    worker = _worker_id()
    try:
        from lbsim.config import make_config
        from lbsim.simulate import simulate

        result = simulate(make_config(dict(spec["config"])))
        return {"run_id": spec["run_id"], "status": result.status, "result": plain(result.to_dict()),
                "error": None, "traceback": None, "worker": worker, "wall_s": time.perf_counter() - t0,
                "model_version": MODEL_VERSION}
    except Exception as e:  # noqa: BLE001 - a failing run is recorded, never fatal
        return _error_outcome(spec, e, traceback.format_exc(), worker, time.perf_counter() - t0)


# --------------------------------------------------------------------------------------------
# executors: a concurrent.futures Executor for either kind, and the one loop over it
# --------------------------------------------------------------------------------------------

@contextlib.contextmanager
def _local_executor(jobs: int, info: dict[str, Any]) -> Iterator[Executor]:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from lbsim import profiles

    info["workers"] = jobs
    # the workers do not repeat a cost-profile notice this process has logged already
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
                               initializer=profiles.mark_noticed, initargs=(sorted(profiles.noticed()),))
    try:
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


@contextlib.contextmanager
def _dask_executor(jobs: int, address: str | None, info: dict[str, Any]) -> Iterator[Executor]:
    import logging

    try:
        import distributed
    except ImportError as e:  # pragma: no cover - a declared dependency
        raise RunnerError(f"the dask executor needs dask[distributed] ({e})") from None
    with contextlib.ExitStack() as stack:
        if address:
            try:
                client = distributed.Client(address, timeout="30s")
            except OSError as e:
                raise RunnerError(f"cannot reach the dask scheduler at {address}: {e}") from None
        else:
            cluster = stack.enter_context(distributed.LocalCluster(
                n_workers=jobs, threads_per_worker=1, processes=True, dashboard_address=None,
                silence_logs=logging.ERROR))
            client = distributed.Client(cluster)
        stack.callback(client.close)
        try:
            client.wait_for_workers(1, timeout=60)
        except (TimeoutError, OSError) as e:
            raise RunnerError(f"no dask worker joined the scheduler {address or '(local)'} within 60 s") from e
        info["workers"] = len(client.nthreads())
        info["dask_scheduler"] = client.scheduler.address
        pool = client.get_executor(pure=False)  # pure=False: a run is never taken from dask's cache
        try:
            yield pool
        except BaseException:
            pool.shutdown(wait=False)  # cancels what is still queued
            raise
        pool.shutdown(wait=True)


def _completed(pool: Executor, todo: list[dict[str, Any]]) -> Iterator[tuple[dict, Outcome]]:
    """(spec, outcome) of every run of ``todo`` as it completes on ``pool``."""
    futures: dict[Future, dict[str, Any]] = {pool.submit(execute, s): s for s in todo}
    for fut in as_completed(futures):
        spec = futures.pop(fut)  # dropped once stored: a dask result is freed on the cluster
        try:
            outcome = fut.result()
        except Exception as e:  # the worker died (BrokenProcessPool, KilledWorker) or could not unpickle
            outcome = _error_outcome(spec, e, "".join(traceback.format_exception(e)), None)
        yield spec, outcome


def _executor(executor: str, jobs: int, address: str | None, info: dict[str, Any]) -> Any:
    """The context manager of a ``local`` or ``dask`` Executor."""
    if executor == "local":
        return _local_executor(jobs, info)
    return _dask_executor(jobs, address, info)


# --------------------------------------------------------------------------------------------
# progress and summary
# --------------------------------------------------------------------------------------------

class _Display:
    """A tqdm bar (stderr is a TTY), plain lines (it is not), nothing (quiet), or a callback."""

    def __init__(self, total: int, *, title: str, quiet: bool, callback: ProgressCallback | None) -> None:
        self.total = total
        self.done = 0
        self.callback = callback
        self.bar = None
        if callback is not None:
            self.mode = "callback"
        elif quiet:
            self.mode = "none"
        elif sys.stderr.isatty():
            from tqdm import tqdm

            self.mode = "bar"
            self.bar = tqdm(total=total, desc=title, unit="run", file=sys.stderr, dynamic_ncols=True, leave=True)
        else:
            self.mode = "lines"

    def say(self, text: str) -> None:
        if self.mode == "bar":
            from tqdm import tqdm

            tqdm.write(text, file=sys.stderr)
        elif self.mode == "lines":
            print(text, file=sys.stderr, flush=True)

    def update(self, spec: Mapping[str, Any], outcome: Outcome) -> None:
        self.done += 1
        status = outcome["status"]
        wall = outcome.get("wall_s")
        wall_txt = f"{wall:.1f}s" if isinstance(wall, (int, float)) else "-"
        if self.mode == "callback":
            assert self.callback is not None
            self.callback({"done": self.done, "total": self.total, "run_id": spec["run_id"], "name": spec["name"],
                           "status": status, "wall_s": wall, "error": outcome.get("error")})
        elif self.mode == "bar":
            assert self.bar is not None
            self.bar.set_postfix_str(f"{spec['name']} {status}", refresh=False)
            self.bar.update(1)
            if status == "error":
                self.say(f"{spec['name']} error: {outcome.get('error')}")
        elif self.mode == "lines":
            line = f"[{self.done}/{self.total}] {spec['name']} {status} {wall_txt}"
            if status == "error":
                line += f": {outcome.get('error')}"
            print(line, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def format_summary(summary: Mapping[str, Any]) -> str:
    """The end-of-sweep table: runs per status, what was computed, wall time, first errors."""
    c = summary["counts"]
    lines = [f"{summary['experiment']}{' (smoke)' if summary['smoke'] else ''}: {summary['total']} runs "
             f"in {summary['out']}",
             f"  {'status':10s} {'runs':>6s}"]
    for key in ("ok", "timeout", "error", "skipped"):
        lines.append(f"  {key:10s} {c.get(key, 0):6d}")
    lines.append(f"  computed now {summary['computed']}, already stored {summary['resumed']}, "
                 f"wall {summary['wall_s']:.1f} s ({summary['executor']}, {summary['workers']} "
                 f"worker{'s' if summary['workers'] != 1 else ''})")
    for name, err in summary["errors"][:5]:
        lines.append(f"  error: {name}: {err}")
    if len(summary["errors"]) > 5:
        lines.append(f"  ... and {len(summary['errors']) - 5} more errors (see the error column)")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# provenance
# --------------------------------------------------------------------------------------------

def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def _version(dist: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _git(*args: str) -> str | None:
    import lbsim

    repo = Path(lbsim.__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or None


def _cost_hashes(specs: list[RunSpec]) -> dict[str, str]:
    from lbsim.costs import load_costs

    out: dict[str, str] = {}
    for spec in sorted({s.config.get("costs", "default") for s in specs}):
        try:
            out[spec] = load_costs(spec).hash
        except Exception as e:  # noqa: BLE001 - the runs using it will record the error
            out[spec] = f"unavailable: {e}"
    return out


def _manifest(exp: Experiment, specs: list[RunSpec], session: dict[str, Any],
              previous: list[dict[str, Any]]) -> dict[str, Any]:
    import lbsim

    commit = _git("rev-parse", "HEAD")
    dirty = _git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {
        "experiment": exp.name, "experiment_file": exp.path, "smoke": exp.smoke,
        "lbsim_version": lbsim.__version__, "git_commit": commit, "git_dirty": bool(dirty) if commit else None,
        "costs_hash": _cost_hashes(specs), "model_version": MODEL_VERSION,
        "python": platform.python_version(), "simpy": _version("simpy"), "numpy": _version("numpy"),
        "pandas": _version("pandas"), "pyarrow": _version("pyarrow"), "pydantic": _version("pydantic"),
        "dask": _version("dask") if session["executor"] == "dask" else None,
        "distributed": _version("distributed") if session["executor"] == "dask" else None,
        "hostname": socket.gethostname(), "cpu_model": _cpu_model(), "cpu_count": os.cpu_count(),
        "kernel": platform.release(), "platform": platform.platform(),
        **session,
        "sessions": [*previous, session],
    }


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """One ``lbsim run`` per results folder at a time (released by the kernel if killed)."""
    import fcntl

    fh = open(folder / ".lock", "a+")
    try:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunnerError(f"{folder}: another lbsim run is writing to this results folder") from None
        yield
    finally:
        fh.close()


def default_out(exp: Experiment) -> Path:
    """``runs/<name>/`` (``runs/<name>-smoke/`` for the smoke variant), relative to the cwd."""
    return Path("runs") / (f"{exp.name}-smoke" if exp.smoke else exp.name)


# --------------------------------------------------------------------------------------------
# the sweep
# --------------------------------------------------------------------------------------------

def _check_executor(executor: str, dask_scheduler: str | None, jobs: int | None) -> tuple[str, int]:
    if dask_scheduler:
        executor = "dask"
    if executor not in EXECUTORS:
        raise ValueError(f"executor {executor!r} is not allowed; allowed: {', '.join(EXECUTORS)}")
    jobs = jobs if jobs is not None else (os.cpu_count() or 1)
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs {jobs!r} is not allowed; an integer >= 1")
    return executor, jobs


def _prepare(folder: Path, exp: Experiment, specs: list[RunSpec]) -> tuple[list[str], list[dict[str, Any]]]:
    """Tidy a folder before a sweep: drop a killed sweep's temp files, fold its finished runs
    into results.parquet, move runs an edited experiment no longer has to superseded/, write
    experiment.toml.  Returns the notes to show and the manifest's earlier sessions."""
    import lbsim

    notes = []
    stale = clean_stale_tmp(folder)
    if stale:
        notes.append(f"lbsim: removed {stale} unfinished temp file(s) from {folder}")
    _, moved = consolidate(folder, [s.run_id for s in specs])
    if moved:
        notes.append(f"lbsim: moved {moved} run(s) that are not part of this experiment to "
                     f"{folder / 'superseded'}")
    toml_path = folder / "experiment.toml"
    resolved = experiment_to_toml(exp, f"The resolved experiment, written by lbsim run (lbsim {lbsim.__version__}).\n"
                                       "Loadable with lbsim run / lbsim.experiment.load_experiment.")
    if toml_path.exists() and toml_path.read_text() != resolved:
        notes.append(f"lbsim: {toml_path} differs from this experiment; stored runs that are still part "
                     "of it are kept (--force recomputes)")
    atomic_write_text(toml_path, resolved)
    previous: list[dict[str, Any]] = []
    with contextlib.suppress(ValueError, OSError, AttributeError):
        previous = list(json.loads((folder / "manifest.json").read_text()).get("sessions", []))
    return notes, previous


def _todo(folder: Path, specs: list[RunSpec], force: bool) -> tuple[list[dict[str, Any]], int]:
    """The runs to compute (skips are stored at once) and how many are stored already."""
    import lbsim

    stored = {} if force else stored_runs(folder, MODEL_VERSION)
    todo: list[dict[str, Any]] = []
    resumed = 0
    for spec in specs:
        if spec.status == "skipped":
            if force or spec.run_id not in stored:
                write_run(folder, spec.run_id, run_rows(spec.to_dict(), None, lbsim_version=lbsim.__version__))
        elif stored.get(spec.run_id) in DONE_STATUSES:
            resumed += 1
        else:
            todo.append(spec.to_dict())
    return todo, resumed


def _compute(folder: Path, todo: list[dict[str, Any]], executor: str, jobs: int, address: str | None,
             info: dict[str, Any], display: _Display) -> None:
    """Compute ``todo``, storing each run in ``parts/`` as it completes (``info["computed"]`` counts)."""
    import lbsim

    if not todo:
        return
    workers = jobs if executor == "dask" else max(1, min(jobs, len(todo)))
    with _executor(executor, workers, address, info) as pool:
        for spec_d, outcome in _completed(pool, todo):
            write_run(folder, spec_d["run_id"], run_rows(spec_d, outcome, lbsim_version=lbsim.__version__))
            info["computed"] += 1
            display.update(spec_d, outcome)


def _summary(df: pd.DataFrame, exp: Experiment, specs: list[RunSpec], folder: Path, executor: str, jobs: int,
             info: dict[str, Any], resumed: int, wall_s: float) -> dict[str, Any]:
    ids = {s.run_id for s in specs}
    mine = df[df["run_id"].isin(ids)].drop_duplicates("run_id")
    counts = {str(k): int(v) for k, v in mine["status"].value_counts().items()}
    errors = [(str(r.name), str(r.error)) for r in mine[mine["status"] == "error"].itertuples()]
    return {"experiment": exp.name, "smoke": exp.smoke, "out": str(folder), "total": len(specs), "counts": counts,
            "computed": info["computed"], "resumed": resumed, "executor": executor,
            "workers": info.get("workers") or 0, "jobs": jobs, "wall_s": wall_s, "errors": errors}


def run_experiment(path: str | Path, *, smoke: bool = False, jobs: int | None = None, executor: str = "local",
                   dask_scheduler: str | None = None, out: str | Path | None = None, force: bool = False,
                   quiet: bool = False, progress: ProgressCallback | None = None) -> pd.DataFrame:
    """Run every run of an experiment file that is not stored yet; return the stored rows.

    ``smoke``           apply the file's ``[smoke]`` overrides (results in ``runs/<name>-smoke/``)
    ``jobs``            parallel workers (default ``os.cpu_count()``)
    ``executor``        "local" (process pool) or "dask"; a ``dask_scheduler`` address implies dask
    ``out``             the results folder (default ``runs/<name>/`` under the cwd)
    ``force``           recompute runs that are already stored
    ``quiet``           no progress and no summary on stderr
    ``progress``        called with a dict (done, total, run_id, name, status, wall_s, error)
                        after each run, instead of the built-in bar / lines

    Runs already stored with status ok/timeout by the current model version are kept
    (resume); errored runs are retried.  A failing run is stored with ``status="error"``
    and never stops the sweep.  The returned DataFrame holds every row of the results
    folder (see :func:`lbsim.results.load_results`); ``df.attrs["summary"]`` the counts per
    status, the number computed now / already stored, the wall time and the errors.

    Raises :class:`lbsim.experiment.ExperimentError` for a bad file (before anything
    runs), :class:`RunnerError` if the folder is in use or a dask cluster has no workers.
    """
    t_start = time.perf_counter()
    exp = load_experiment(path, smoke=smoke)
    specs = expand(exp)
    executor, jobs = _check_executor(executor, dask_scheduler, jobs)
    folder = Path(out) if out is not None else default_out(exp)
    folder.mkdir(parents=True, exist_ok=True)
    info: dict[str, Any] = {"workers": 0, "dask_scheduler": dask_scheduler, "computed": 0}
    manifest_path = folder / "manifest.json"

    with _locked(folder):
        notes, previous = _prepare(folder, exp, specs)
        todo, resumed = _todo(folder, specs, force)
        session: dict[str, Any] = {"start": _now(), "end": None, "executor": executor, "jobs": jobs,
                                   "dask_scheduler": dask_scheduler, "argv": list(sys.argv), "force": force,
                                   "computed": 0, "resumed": resumed, "interrupted": False}
        atomic_write_text(manifest_path, json.dumps(_manifest(exp, specs, session, previous), indent=1) + "\n")
        display = _Display(len(todo), title=exp.name, quiet=quiet, callback=progress)
        for note in notes:
            display.say(note)
        display.say(f"lbsim: {exp.name}{' (smoke)' if exp.smoke else ''}: {len(specs)} runs, "
                    f"{sum(s.status == 'skipped' for s in specs)} skipped, {resumed} already stored, "
                    f"{len(todo)} to compute ({executor}, jobs {jobs}) -> {folder}")
        try:
            _compute(folder, todo, executor, jobs, dask_scheduler, info, display)
        except BaseException:
            session["interrupted"] = True
            raise
        finally:
            display.close()
            session.update(end=_now(), computed=info["computed"], workers=info.get("workers"),
                           dask_scheduler=info.get("dask_scheduler"))
            with contextlib.suppress(OSError):
                atomic_write_text(manifest_path, json.dumps(_manifest(exp, specs, session, previous), indent=1)
                                  + "\n")
            try:  # every finished run into results.parquet (an interrupted sweep keeps its parts if this fails)
                consolidate(folder, [s.run_id for s in specs])
            except Exception:
                if not session["interrupted"]:
                    raise

    df = load_results(folder)
    df.attrs["summary"] = summary = _summary(df, exp, specs, folder, executor, jobs, info, resumed,
                                             time.perf_counter() - t_start)
    if not quiet:
        print(format_summary(summary), file=sys.stderr, flush=True)
    return df
