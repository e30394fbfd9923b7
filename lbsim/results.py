"""The results store of an experiment: one Parquet file, filled run by run without losing any.

Layout of a results folder (``runs/<experiment>/`` by default)::

    experiment.toml          the resolved experiment (canonical TOML) + the source file as comments
    manifest.json            versions (model_version), git commit, cost-model hash, host, times, executor
    results.parquet          the tidy rows of every finished run, in the experiment's run order
    parts/<run_id>.parquet   runs finished since the last consolidation (only while a sweep runs,
                             or after one was killed)
    superseded/results.parquet  rows of runs that an edited experiment no longer has
    figures/*.png            lbsim plot

Each finished run is written at once to ``parts/`` (to ``*.tmp`` beside it, fsync'd, then
``os.replace``'d), so a killed sweep loses at most the runs in flight.  :func:`consolidate`
folds the parts into ``results.parquet`` (atomically, then deletes them) at the end of a sweep
and when a killed one is resumed.  :func:`load_results` reads ``results.parquet`` and any
parts (a part wins over the same run in the file), and the older layout of one file per run
under ``runs/``.  The columns are listed in :data:`META_COLUMNS` and ``docs/guide/experiments.md``;
every SimConfig field is a column of its own as well.
"""

from __future__ import annotations

import json
import logging
import math
import os
import types
import typing
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lbsim.config import STAGE_EDIT_FIELDS, SimConfig
from lbsim.costs import stage_edits_text

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    import pyarrow as pa

__all__ = ["META_COLUMNS", "CONFIG_COLUMNS", "COLUMNS", "RESULTS_ENV", "RESULTS_FILE", "results_root",
           "resolve_results_dir", "run_rows", "rows_table", "write_run", "atomic_write_text", "clean_stale_tmp",
           "stored_runs", "run_path", "consolidate", "read_table", "load_results", "summarize", "arrow_schema",
           "ResultsError"]

log = logging.getLogger("lbsim")

#: environment variable naming the folder of the shipped results (default ``<repo>/results``)
RESULTS_ENV = "LBSIM_RESULTS"
#: the one file of a results folder
RESULTS_FILE = "results.parquet"
#: where finished runs wait to be consolidated
PARTS = "parts"
#: the layout before results.parquet: one file per run
LEGACY_RUNS = "runs"

#: the per-row columns besides the SimConfig fields: name -> (type, meaning)
META_COLUMNS: dict[str, tuple[str, str]] = {
    "run_id": ("string", "sha256 (16 hex) of the resolved config (with seed) + replication"),
    "experiment": ("string", "the experiment's name"),
    "name": ("string", "transport[varying=values]#rN"),
    "point": ("string", "the name without #rN: the same for every replication of a point"),
    "replication": ("int", "replication index 0..replications-1"),
    "seed": ("int", "the replication's seed (the SimConfig seed of the run)"),
    "status": ("string", "ok | timeout | error | skipped"),
    "reason": ("string", "why skipped, or the simulator's note on a timeout"),
    "error": ("string", "exception type and message of a failed run"),
    "traceback": ("string", "traceback text of a failed run"),
    "worker": ("string", "host/pid (local) or dask worker address that computed the run"),
    "lbsim_version": ("string", "lbsim.__version__ of the client that stored the run"),
    "model_version": ("int", "lbsim.model.version.MODEL_VERSION of the model that computed the run"),
    "costs_hash": ("string", "hash of the cost model used (CostModel.hash)"),
    "costs_profile": ("string", "name of the cost profile used (lbsim.profiles; costs auto: the host's)"),
    "wall_s": ("float", "wall-clock seconds of the run on its worker"),
    "latency_kind": ("string", "rtt (pingpong, rr) or one_way"),
    "metric": ("string", "what value measures (see docs/guide/experiments.md)"),
    "stage": ("string", "kernel stage for stage_* metrics"),
    "stage_group": ("string", "group of that stage (lbsim.model.stages.STAGE_GROUP)"),
    "cpu": ("int", "CPU index for cpu_busy_frac"),
    "value": ("float", "the number"),
}


def _field_type(annotation: Any) -> str:
    """'int', 'float', 'bool' or 'string' (lists, tuples, literals, unions of those)."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType) and len(args) == 1:
        return _field_type(args[0])
    if annotation is bool:
        return "bool"
    if annotation is int:
        return "int"
    if annotation is float:
        return "float"
    return "string"


#: SimConfig fields stored as columns (seed is in META_COLUMNS): name -> type; the stage edits
#: (stage_scale, stage_cost, stage_remove) are one column, ``stage_edits``, their canonical text
#: (lbsim.costs.stage_edits_text), "" when none
CONFIG_COLUMNS: dict[str, str] = {**{k: _field_type(f.annotation) for k, f in SimConfig.model_fields.items()
                                     if k != "seed" and k not in STAGE_EDIT_FIELDS}, "stage_edits": "string"}
#: every column, in order
COLUMNS: tuple[str, ...] = (*META_COLUMNS, *CONFIG_COLUMNS)


def arrow_schema() -> pa.Schema:
    """The one Arrow schema of every run file (so that files concatenate without surprises)."""
    import pyarrow as pa

    kinds = {"string": pa.string(), "int": pa.int64(), "float": pa.float64(), "bool": pa.bool_()}
    cols = [(k, kinds[t]) for k, (t, _) in META_COLUMNS.items()] + [(k, kinds[t]) for k, t in CONFIG_COLUMNS.items()]
    return pa.schema(cols)


def _config_cell(kind: str, v: Any) -> Any:
    if v is None:
        return None
    if kind == "string":
        return v if isinstance(v, str) else json.dumps(v, separators=(",", ":"))
    if kind == "int":
        return int(v)
    if kind == "float":
        return float(v)
    return bool(v)


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _metrics(result: Mapping[str, Any]) -> list[tuple[str, float, str | None, str | None, int | None]]:
    """(metric, value, stage, stage_group, cpu) of one ``Result.to_dict()``."""
    out: list[tuple[str, float, str | None, str | None, int | None]] = []
    lat = result["latency_us"]
    for key in ("mean", "p50", "p90", "p99", "p999"):
        out.append((f"latency_us_{key}", float(lat[key]), None, None, None))
    out.append(("latency_count", float(lat["count"]), None, None, None))
    for key in ("bytes_per_s", "msgs_per_s"):
        out.append((f"throughput_{key}", float(result["throughput"][key]), None, None, None))
    out.append(("sim_time_ns", float(result["sim_time_ns"]), None, None, None))
    for key, v in result["counters"].items():
        if _number(v):
            out.append((key, float(v), None, None, None))
        elif isinstance(v, Mapping):  # e.g. drops_by_site: one metric per entry
            for sub, x in sorted(v.items()):
                if _number(x):
                    out.append((f"{key}.{sub}", float(x), None, None, None))
    for row in result["cpu"]:
        out.append(("cpu_busy_frac", float(row["busy_frac"]), None, None, int(row["cpu"])))
    for s in result["stages"]:
        for key in ("count", "busy_ns", "wait_ns"):
            out.append((f"stage_{key}", float(s[key]), s["stage"], s.get("group"), None))
    return out


def run_rows(spec: Mapping[str, Any], outcome: Mapping[str, Any] | None, *, lbsim_version: str,
             model_version: int | None = None) -> list[dict]:
    """The tidy rows of one run: one per metric (and stage / CPU), or one for a skip or error.

    ``spec`` is a :meth:`lbsim.experiment.RunSpec.to_dict`; ``outcome`` what
    :func:`lbsim.runner.execute` returned (None for a skipped run); ``model_version`` defaults
    to the outcome's (the worker's), else the current :data:`lbsim.model.version.MODEL_VERSION`.
    """
    if model_version is None:
        from lbsim.model.version import MODEL_VERSION

        model_version = (outcome or {}).get("model_version", MODEL_VERSION)
    result = (outcome or {}).get("result")
    config = (result or {}).get("config") or spec["config"]
    name = spec["name"]
    common: dict[str, Any] = {
        "run_id": spec["run_id"], "experiment": spec["experiment"], "name": name,
        "point": name.rsplit("#r", 1)[0], "replication": int(spec["replication"]), "seed": int(spec["seed"]),
        "status": spec["status"] if outcome is None else outcome["status"],
        "reason": spec.get("reason") or None, "error": None, "traceback": None, "worker": None,
        "lbsim_version": lbsim_version, "model_version": model_version, "costs_hash": None, "costs_profile": None,
        "wall_s": None, "latency_kind": None,
        "metric": None, "stage": None, "stage_group": None, "cpu": None, "value": None,
    }
    if outcome is not None:
        common.update(error=outcome.get("error"), traceback=outcome.get("traceback"), worker=outcome.get("worker"),
                      wall_s=outcome.get("wall_s"))
    common.update({k: _config_cell(kind, config.get(k)) for k, kind in CONFIG_COLUMNS.items()})
    common["stage_edits"] = stage_edits_text(config.get("stage_scale"), config.get("stage_cost"),
                                             config.get("stage_remove"))
    if not result:
        return [common]
    common.update(costs_hash=result["costs"]["hash"], costs_profile=result.get("costs_profile") or None,
                  latency_kind=result["latency_us"]["kind"],
                  reason=result.get("message") or common["reason"])
    return [{**common, "metric": m, "value": v, "stage": st, "stage_group": g, "cpu": c}
            for m, v, st, g, c in _metrics(result)]


def rows_table(rows: list[dict]) -> pa.Table:
    import pyarrow as pa

    return pa.Table.from_pylist(rows, schema=arrow_schema())


# --------------------------------------------------------------------------------------------
# files
# --------------------------------------------------------------------------------------------

def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _atomic_write(path: Path, write: Any) -> None:
    """Write via ``write(fileobj)`` to a temp file beside ``path``, fsync, rename into place."""
    tmp = path.with_name(f"{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Replace ``path`` with ``text`` atomically."""
    _atomic_write(Path(path), lambda fh: fh.write(text.encode()))


def _write_table(path: Path, table: pa.Table) -> None:
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(path, lambda fh: pq.write_table(table, fh))


def run_path(folder: str | Path, run_id: str) -> Path:
    """Where a finished run waits for :func:`consolidate`: ``parts/<run_id>.parquet``."""
    return Path(folder) / PARTS / f"{run_id}.parquet"


def write_run(folder: str | Path, run_id: str, rows: list[dict]) -> Path:
    """Persist one run's rows as ``parts/<run_id>.parquet`` (atomically)."""
    path = run_path(folder, run_id)
    _write_table(path, rows_table(rows))
    return path


def clean_stale_tmp(folder: str | Path) -> int:
    """Remove ``*.tmp`` files left by a killed run; returns how many."""
    n = 0
    for sub in (Path(folder), Path(folder) / PARTS, Path(folder) / LEGACY_RUNS, Path(folder) / "superseded"):
        if sub.is_dir():
            for p in sub.glob("*.tmp"):
                p.unlink(missing_ok=True)
                n += 1
    return n


def _sources(folder: Path) -> list[Path]:
    """The Parquet files of a results folder, lowest priority first (a later one wins a run)."""
    main = folder / RESULTS_FILE
    files = [main] if main.is_file() else []
    files += sorted((folder / LEGACY_RUNS).glob("*.parquet")) + sorted((folder / PARTS).glob("*.parquet"))
    if not files:  # a folder of bare Parquet files (written by hand or another tool)
        files = sorted(folder.glob("*.parquet"))
    return files


#: how often read_table lists a folder again when a file it listed vanished (a running sweep)
READ_ATTEMPTS = 5


class ResultsError(ValueError):
    """A results folder that cannot be read; the message names the file."""


def _read_files(files: Sequence[Path], columns: Sequence[str] | None = None, *,
                strict: bool = False) -> pa.Table:
    """The rows of ``files``, each run from the last file that has it.

    An unreadable file raises :class:`ResultsError` when ``strict`` (a user reading results
    must hear of it); otherwise it is skipped with a warning, as if not there, so that a
    resumed sweep recomputes its runs."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    schema = arrow_schema()
    if columns is not None:
        schema = pa.schema([schema.field(c) for c in dict.fromkeys(["run_id", *columns])])
    tables: list[pa.Table] = []
    seen = pa.array([], pa.string())
    for f in reversed(files):
        try:
            t = pq.read_table(f, schema=schema)  # columns an older file lacks are null
        except FileNotFoundError:
            raise  # gone since listed: a running sweep consolidated it (read_table lists again)
        except Exception as e:  # noqa: BLE001 - any failure to read names this file
            why = str(e).splitlines()[0] if str(e) else type(e).__name__
            if strict:
                raise ResultsError(f"{f}: not a readable results file ({why})") from None
            log.warning("lbsim: %s: unreadable (%s); its runs count as not run", f, why)
            continue
        if len(seen):
            t = t.filter(pc.invert(pc.is_in(t["run_id"], value_set=seen)))
        tables.append(t)
        seen = pa.concat_arrays([seen, pc.unique(t["run_id"].combine_chunks())])
    return pa.concat_tables(tables[::-1]) if tables else schema.empty_table()


def read_table(folder: str | Path, columns: Sequence[str] | None = None, *, strict: bool = True) -> pa.Table:
    """Every stored row of a results folder (consolidated file, parts, older per-run files);
    an unreadable file raises :class:`ResultsError` unless ``strict`` is false.

    A sweep that is running folds its parts into results.parquet and then deletes them, so a
    part listed here may be gone when it is read: the folder is then listed and read again."""
    for _ in range(READ_ATTEMPTS - 1):
        try:
            return _read_files(_sources(Path(folder)), columns, strict=strict)
        except FileNotFoundError:
            continue
    try:
        return _read_files(_sources(Path(folder)), columns, strict=strict)
    except FileNotFoundError as e:
        raise ResultsError(f"{e.filename}: removed while being read, {READ_ATTEMPTS} times; "
                           "is a sweep writing this folder?") from None


def stored_runs(folder: str | Path, model_version: int | None = None) -> dict[str, str]:
    """run_id -> stored status of every stored run; with ``model_version``, only the runs
    stored by that version of the model (the others are stale)."""
    t = read_table(folder, ["status", "model_version"], strict=False)
    out: dict[str, str] = {}
    for rid, status, version in zip(*(t[c].to_pylist() for c in ("run_id", "status", "model_version"))):
        if model_version is not None and version != model_version:
            continue
        out.setdefault(rid, status or "error")
    return out


def consolidate(folder: str | Path, order: Sequence[str] | None = None) -> tuple[int, int]:
    """Fold ``parts/`` (and an older layout's ``runs/``) into ``results.parquet``.

    With ``order`` (the run_ids of the experiment, in run order), rows are sorted that way
    and runs not in it move to ``superseded/results.parquet``.  The new file replaces the
    old atomically before any part is deleted: a kill at any moment loses nothing.
    Returns (runs kept, runs moved aside).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    folder = Path(folder)
    files = _sources(folder)
    parts = [f for f in files if f.parent.name in (PARTS, LEGACY_RUNS)]
    if not parts and order is None:
        return 0, 0
    table = _read_files(files)
    moved = 0
    if order is not None:
        rank = {rid: i for i, rid in enumerate(order)}
        ranks = pa.array([rank.get(r, -1) for r in table["run_id"].to_pylist()], pa.int64())
        aside = table.filter(pc.equal(ranks, -1))
        if not parts and not len(aside):  # results.parquet is already the consolidated file
            return len(set(table["run_id"].to_pylist())), 0
        if len(aside):
            moved = len(set(aside["run_id"].to_pylist()))
            old = folder / "superseded" / RESULTS_FILE
            _write_table(old, _merge(old, aside))
        table = table.filter(pc.not_equal(ranks, -1))
        ranks = ranks.filter(pc.not_equal(ranks, -1))
        table = table.take(pc.sort_indices(ranks))  # stable: a run's rows keep their order
    _write_table(folder / RESULTS_FILE, table)
    for f in parts:
        f.unlink(missing_ok=True)
    for sub in (PARTS, LEGACY_RUNS):
        if (folder / sub).is_dir() and not any((folder / sub).iterdir()):
            (folder / sub).rmdir()
    return len(set(table["run_id"].to_pylist())), moved


def _merge(path: Path, new: pa.Table) -> pa.Table:
    """The rows of ``path`` (if any) whose runs ``new`` does not have, then ``new``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not path.is_file():
        return new
    old = _read_files([path])
    old = old.filter(pc.invert(pc.is_in(old["run_id"], value_set=pc.unique(new["run_id"].combine_chunks()))))
    return pa.concat_tables([old, new])


# --------------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------------

def results_root() -> Path:
    """The shipped results: ``$LBSIM_RESULTS``, default ``<repo>/results`` (beside the package)."""
    env = os.environ.get(RESULTS_ENV)
    if env:
        return Path(env)
    import lbsim

    return Path(lbsim.__file__).resolve().parent.parent / "results"


def resolve_results_dir(name_or_dir: str | Path) -> Path:
    """A results folder from a path, or from an experiment name: your own ``./runs/<name>``
    first, then the shipped ``<results_root()>/<name>``."""
    p = Path(name_or_dir)
    if p.is_dir():
        return p
    tried = [p]
    if len(p.parts) == 1:
        for cand in (Path("runs") / p, results_root() / p):
            if cand.is_dir():
                return cand
            tried.append(cand)
    raise FileNotFoundError(f"no results folder {str(name_or_dir)!r} (looked at {', '.join(map(str, tried))})")


def load_results(name_or_dir: str | Path) -> pd.DataFrame:
    """All rows of a results folder as one DataFrame; ``df.attrs["source"]`` is the folder read.

    ``name_or_dir`` is a results folder, or an experiment name: your own ``./runs/<name>``
    (``lbsim run``'s default output) if it exists, else the shipped results under
    ``$LBSIM_RESULTS`` (default ``<repo>/results/``).  Which one was read is logged (INFO,
    logger "lbsim").
    """
    import pandas as pd
    import pyarrow as pa

    folder = resolve_results_dir(name_or_dir)
    table = read_table(folder)
    log.info("lbsim: loaded %d runs of %s from %s", len(set(table["run_id"].to_pylist())), name_or_dir, folder)
    # nullable integers and booleans stay integers and booleans (mtu=None is <NA>, not NaN)
    mapping = {pa.int64(): pd.Int64Dtype(), pa.bool_(): pd.BooleanDtype()}
    df = table.to_pandas(types_mapper=mapping.get)
    if "stage_edits" in df.columns:  # a file written before the column existed: no edits
        df["stage_edits"] = df["stage_edits"].fillna("")
    df.attrs["source"] = str(folder)
    return df


def summarize(df: pd.DataFrame, *, statuses: Iterable[str] = ("ok",), confidence: float = 0.95) -> pd.DataFrame:
    """Per point (every config column but seed/replication) and metric: mean, CI half-width, n.

    ``ci`` is the Student-t half-width ``t(1 - (1-confidence)/2, n-1) * s / sqrt(n)`` over
    the replications (NaN for n = 1).  Only rows whose status is in ``statuses`` count.
    """
    import numpy as np
    import pandas as pd
    from scipy import stats

    d = df[df["status"].isin(list(statuses)) & df["value"].notna()]
    keys = [c for c in (*CONFIG_COLUMNS, "metric", "stage", "stage_group", "cpu") if c in d.columns]
    cols = [*keys, "mean", "ci", "n", "std", "point"]
    if d.empty:
        return pd.DataFrame(columns=cols)
    g = d.groupby(keys, dropna=False, sort=False)
    out = g["value"].agg(mean="mean", std="std", n="count").reset_index()
    if "point" in d.columns:
        out["point"] = g["point"].first().to_numpy()
    else:
        out["point"] = None
    n = out["n"].to_numpy(dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        tq = np.where(n > 1, stats.t.ppf(1 - (1 - confidence) / 2, np.maximum(n - 1, 1)), np.nan)
        out["ci"] = tq * out["std"].to_numpy(dtype=float) / np.sqrt(n)
    out["ci"] = out["ci"].where(n > 1, math.nan)
    return out[cols]
