"""The results store of an experiment: one Parquet file per run, written atomically.

Layout of a results folder (``runs/<experiment>/`` by default)::

    experiment.toml        the resolved experiment (canonical TOML) + the source file as comments
    manifest.json          versions, git commit, cost-model hash, host, times, executor
    runs/<run_id>.parquet  the tidy rows of one finished run

A run file appears only once complete (written to ``*.tmp`` in the same folder, fsync'd,
then ``os.replace``'d), so a folder is always consistent: a killed sweep loses at most the
runs that were in flight.  The columns are listed in :data:`META_COLUMNS` and
``docs/experiments.md``; every SimConfig field is a column of its own as well.
"""

from __future__ import annotations

import json
import math
import os
import types
import typing
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from lbsim.config import SimConfig

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    import pyarrow as pa

__all__ = ["META_COLUMNS", "CONFIG_COLUMNS", "COLUMNS", "RESULTS_ENV", "results_root", "resolve_results_dir",
           "run_rows", "rows_table", "write_run", "atomic_write_text", "clean_stale_tmp", "stored_runs",
           "run_path", "load_results", "summarize", "arrow_schema"]

#: environment variable naming the folder where :func:`load_results` looks names up
RESULTS_ENV = "LBSIM_RESULTS"

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
    "costs_hash": ("string", "hash of the cost model used (CostModel.hash)"),
    "wall_s": ("float", "wall-clock seconds of the run on its worker"),
    "latency_kind": ("string", "rtt (pingpong, rr) or one_way"),
    "metric": ("string", "what value measures (see docs/experiments.md)"),
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


#: SimConfig fields stored as columns (seed is in META_COLUMNS): name -> type
CONFIG_COLUMNS: dict[str, str] = {k: _field_type(f.annotation) for k, f in SimConfig.model_fields.items()
                                  if k != "seed"}
#: every column, in order
COLUMNS: tuple[str, ...] = (*META_COLUMNS, *CONFIG_COLUMNS)


def arrow_schema() -> "pa.Schema":
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


def run_rows(spec: Mapping[str, Any], outcome: Mapping[str, Any] | None, *, lbsim_version: str) -> list[dict]:
    """The tidy rows of one run: one per metric (and stage / CPU), or one for a skip or error.

    ``spec`` is a :meth:`lbsim.experiment.RunSpec.to_dict`; ``outcome`` what
    :func:`lbsim.runner.execute` returned (None for a skipped run).
    """
    result = (outcome or {}).get("result")
    config = (result or {}).get("config") or spec["config"]
    name = spec["name"]
    common: dict[str, Any] = {
        "run_id": spec["run_id"], "experiment": spec["experiment"], "name": name,
        "point": name.rsplit("#r", 1)[0], "replication": int(spec["replication"]), "seed": int(spec["seed"]),
        "status": spec["status"] if outcome is None else outcome["status"],
        "reason": spec.get("reason") or None, "error": None, "traceback": None, "worker": None,
        "lbsim_version": lbsim_version, "costs_hash": None, "wall_s": None, "latency_kind": None,
        "metric": None, "stage": None, "stage_group": None, "cpu": None, "value": None,
    }
    if outcome is not None:
        common.update(error=outcome.get("error"), traceback=outcome.get("traceback"), worker=outcome.get("worker"),
                      wall_s=outcome.get("wall_s"))
    common.update({k: _config_cell(kind, config.get(k)) for k, kind in CONFIG_COLUMNS.items()})
    if not result:
        return [common]
    common.update(costs_hash=result["costs"]["hash"], latency_kind=result["latency_us"]["kind"],
                  reason=result.get("message") or common["reason"])
    return [{**common, "metric": m, "value": v, "stage": st, "stage_group": g, "cpu": c}
            for m, v, st, g, c in _metrics(result)]


def rows_table(rows: list[dict]) -> "pa.Table":
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


def run_path(folder: str | Path, run_id: str) -> Path:
    return Path(folder) / "runs" / f"{run_id}.parquet"


def write_run(folder: str | Path, run_id: str, rows: list[dict]) -> Path:
    """Persist one run's rows as ``runs/<run_id>.parquet`` (atomically)."""
    import pyarrow.parquet as pq

    table = rows_table(rows)
    path = run_path(folder, run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(path, lambda fh: pq.write_table(table, fh))
    return path


def clean_stale_tmp(folder: str | Path) -> int:
    """Remove ``*.tmp`` files left by a killed run; returns how many."""
    n = 0
    for sub in (Path(folder), Path(folder) / "runs"):
        if sub.is_dir():
            for p in sub.glob("*.tmp"):
                p.unlink(missing_ok=True)
                n += 1
    return n


def stored_runs(folder: str | Path) -> dict[str, str]:
    """run_id -> stored status of every readable run file in a results folder."""
    import pyarrow.parquet as pq

    out: dict[str, str] = {}
    runs = Path(folder) / "runs"
    if not runs.is_dir():
        return out
    for p in runs.glob("*.parquet"):
        try:
            status = pq.read_table(p, columns=["status"]).column("status")
        except Exception:  # unreadable: treat as not there (it will be recomputed)
            continue
        out[p.stem] = str(status[0]) if len(status) else "error"
    return out


# --------------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------------

def results_root() -> Path:
    """``$LBSIM_RESULTS``, default ``<repo>/results`` (beside the lbsim package)."""
    env = os.environ.get(RESULTS_ENV)
    if env:
        return Path(env)
    import lbsim

    return Path(lbsim.__file__).resolve().parent.parent / "results"


def resolve_results_dir(name_or_dir: str | Path) -> Path:
    """A results folder from a path, or an experiment name under :func:`results_root`
    (then ``./runs/<name>``)."""
    p = Path(name_or_dir)
    if p.is_dir():
        return p
    tried = [p]
    if len(p.parts) == 1:
        for cand in (results_root() / p, Path("runs") / p):
            if cand.is_dir():
                return cand
            tried.append(cand)
    raise FileNotFoundError(f"no results folder {str(name_or_dir)!r} (looked at {', '.join(map(str, tried))})")


def load_results(name_or_dir: str | Path) -> "pd.DataFrame":
    """All rows of a results folder (every ``runs/*.parquet``) as one DataFrame.

    ``name_or_dir`` is a results folder, or an experiment name looked up under
    ``$LBSIM_RESULTS`` (default ``<repo>/results/``), then ``./runs/``.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = resolve_results_dir(name_or_dir)
    files = sorted((folder / "runs").glob("*.parquet")) or sorted(folder.glob("*.parquet"))
    schema = arrow_schema()
    tables = [pq.read_table(f, schema=schema) for f in files]
    table = pa.concat_tables(tables) if tables else schema.empty_table()
    import pandas as pd

    # nullable integers and booleans stay integers and booleans (mtu=None is <NA>, not NaN)
    mapping = {pa.int64(): pd.Int64Dtype(), pa.bool_(): pd.BooleanDtype()}
    return table.to_pandas(types_mapper=mapping.get)


def summarize(df: "pd.DataFrame", *, statuses: Iterable[str] = ("ok",), confidence: float = 0.95) -> "pd.DataFrame":
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
