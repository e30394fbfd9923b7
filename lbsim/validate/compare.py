"""The comparison: every measured point simulated, its error, the per-metric summary and the
transport order check (see :mod:`lbsim.validate`)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lbsim.config import make_config
from lbsim.costs import CostModel, load_costs
from lbsim.fitdata import (
    DATAGRAM,
    METRIC_ORDER,
    PARAM_COLUMNS,
    POINT_KEYS,
    POLICIES,
    at_fit_size,
    error_pct,
    normalise,
    point_keys,
    read_measured,
    sim_fields,
    sim_kernel,
)
from lbsim.jsonsafe import strict
from lbsim.measure.host import STREAM_BYTES
from lbsim.validate.checks import check_measured
from lbsim.validate.report import HEADLINE, ValidationReport, _point_name

#: simulations per stream point (seeds seed, seed + 1, ...): the median is compared, as the
#: measured value is the median of repetitions (scripts/measure_host.py's default is 3)
STREAM_REPLICATIONS = 3


def _sim_metrics(res: Any, transport: str) -> dict[str, float]:
    lat = res.latency_us
    c = res.counters
    out = {f"rtt_{k}_us": float(lat[k]) for k in ("mean", "p50", "p90", "p99", "p999")}
    out["throughput_MBps"] = float(res.throughput["bytes_per_s"]) / 1e6
    out["msgs_per_s"] = float(res.throughput["msgs_per_s"])
    if "split_write_p50_ns" in c:
        out.update(write_p50_us=c["split_write_p50_ns"] / 1e3, read_p50_us=c["split_read_p50_ns"] / 1e3,
                   write_mean_us=c["split_write_mean_ns"] / 1e3, read_mean_us=c["split_read_mean_ns"] / 1e3)
        return out
    if transport in DATAGRAM:
        sent = c.get("messages_sent") or 0
        out["loss_pct"] = 100.0 * (c.get("messages_dropped") or 0) / sent if sent else float("nan")
        sites = c.get("drops_by_site") or {}
        out["rcvbuf_drop_pct"] = 100.0 * sites.get("rcvbuf", 0) / sent if sent else float("nan")
        out["backlog_drop_pct"] = 100.0 * sites.get("backlog", 0) / sent if sent else float("nan")
    sides = res.side_busy() if res.config.workload == "stream" else None
    if sides is not None:
        out["cpu_busy_sender"], out["cpu_busy_receiver"] = sides
    return out


def _simulated_as(constant: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "policy" in constant:
        out["policy"] = POLICIES.get(str(constant["policy"]), "fair")
    if "kernel" in constant:
        out["kernel"] = sim_kernel(constant["kernel"])
    for c in ("mtu", "cpus"):
        if c in constant:
            out[c] = constant[c] if constant[c] is not None else "profile default"
    return out


def summarise(rows: pd.DataFrame, params: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Per metric and split (held-out, fitted, all): count, median and worst |error|."""
    out = []
    metrics = [m for m in METRIC_ORDER if m in set(rows["metric"])] if len(rows) else []
    for split in ("held-out", "fitted", "all"):
        for m in metrics:
            sub = rows[rows["metric"] == m]
            if split != "all":
                sub = sub[sub["fitted"] == (split == "fitted")]
            if sub.empty:
                continue
            err = sub["error_pct"].abs()
            fin = err[np.isfinite(err)]
            worst_point, worst = None, None
            if len(fin):
                j = fin.idxmax()
                worst = float(fin.loc[j])
                worst_point = _point_name(sub.loc[j], params)
            out.append({"metric": m, "split": split, "count": int(len(sub)), "n_error": int(len(fin)),
                        "median_abs_error_pct": float(fin.median()) if len(fin) else None,
                        "worst_abs_error_pct": worst, "worst_point": worst_point})
    return out


def order_check(rows: pd.DataFrame, metrics: Sequence[str] = HEADLINE, params: Sequence[str] = (),
                shown: Sequence[str] | None = None) -> dict[str, Any]:
    """In every cell (all keys but the transport) with >= 2 transports, each pair whose measured
    gap exceeds both repetitions' spread must be in the same order in the model."""
    cell_keys = ["workload", "placement", "background", "msg_bytes", *params, "metric"]
    checked = agreed = within = cells = 0
    disagreements: list[dict[str, Any]] = []
    sub = rows[rows["metric"].isin(list(metrics))]
    for key, grp in sub.groupby(cell_keys, dropna=False, sort=True):
        grp = grp.sort_values("transport")
        if grp["transport"].nunique() < 2:
            continue
        cell_checked = 0
        for (_, a), (_, b) in combinations(grp.iterrows(), 2):
            ma, mb, sa, sb = a["measured"], b["measured"], a["simulated"], b["simulated"]
            if not all(math.isfinite(v) for v in (ma, mb, sa, sb)):
                continue
            spread = max(a["spread"] if math.isfinite(a["spread"]) else 0.0,
                         b["spread"] if math.isfinite(b["spread"]) else 0.0)
            if abs(ma - mb) <= spread:
                within += 1
                continue
            checked += 1
            cell_checked += 1
            if (ma - mb) * (sa - sb) > 0:
                agreed += 1
            else:
                k: dict[str, Any] = dict(zip(cell_keys, key))
                cell = (f"{k['workload']} {k['placement']}/{k['background']} {int(k['msg_bytes'])} B"
                        + "".join(f" {p}={k[p]}" for p in (params if shown is None else shown)
                                  if not pd.isna(k[p]) and str(k[p]) != ""))
                disagreements.append({**{c: strict(k[c]) for c in cell_keys}, "cell": cell,
                                      "a": a["transport"], "b": b["transport"],
                                      "measured_a": float(ma), "measured_b": float(mb),
                                      "simulated_a": float(sa), "simulated_b": float(sb)})
        cells += cell_checked > 0
    return {"metrics": list(metrics), "cells": cells, "checked": checked, "agreed": agreed,
            "within_spread": within, "disagreements": disagreements}


def _simulate_point(first: Any, fields: dict[str, Any], model: CostModel, seed: int,
                    stream_replications: int) -> tuple[dict[str, float], str]:
    """One point's simulated metrics and status: a stream point is the median of
    ``stream_replications`` runs, seeds ``seed``, ``seed + 1``, ..."""
    from lbsim.simulate import simulate

    res = simulate(make_config(fields), costs=model)
    sim = _sim_metrics(res, first["transport"])
    if first["workload"] == "stream" and stream_replications > 1:
        runs = [sim] + [_sim_metrics(simulate(make_config({**fields, "seed": seed + rep}), costs=model),
                                     first["transport"]) for rep in range(1, stream_replications)]
        sim = {k: float(np.median([r[k] for r in runs])) for k in sim}
    return sim, res.status


def _point_records(keys: list[str], key: Any, grp: pd.DataFrame, sim: dict[str, float], status: str,
                   fitted: bool, has_rep: bool, skipped: dict[str, int]) -> list[dict[str, Any]]:
    """One row per metric of a point measured and simulated both (``skipped`` counts the others)."""
    out = []
    metric: Any  # (pandas-stubs types a group key as any scalar)
    for metric, mg in grp.groupby("metric", sort=False):
        if metric not in sim:
            skipped[metric] = skipped.get(metric, 0) + 1
            continue
        vals = mg["value"].dropna().to_numpy(dtype=float)
        if len(vals) == 0:
            continue
        meas = float(np.median(vals))
        spread = float(vals.max() - vals.min())
        s = sim[metric]
        rec = dict(zip(keys, key))
        rec.update({
            "metric": metric, "measured": meas, "simulated": s,
            "error_pct": error_pct(s, meas),
            "diff": s - meas, "spread": spread,
            "spread_pct": 100.0 * spread / abs(meas) if meas != 0 else float("nan"),
            "reps": int(mg["rep"].nunique()) if has_rep else int(len(vals)),
            "fitted": fitted, "status": status,
        })
        out.append(rec)
    return out


def _sorted_rows(records: list[dict[str, Any]], keys: list[str], params: list[str]) -> pd.DataFrame:
    cols = [*keys, "metric", "measured", "simulated", "error_pct", "diff", "spread", "spread_pct", "reps",
            "fitted", "status"]
    rows = pd.DataFrame.from_records(records, columns=cols)
    if len(rows):
        rows["_m"] = rows["metric"].map({m: i for i, m in enumerate(METRIC_ORDER)})
        rows = (rows.sort_values(["transport", "workload", "placement", "msg_bytes", "background", *params, "_m"])
                .drop(columns="_m").reset_index(drop=True))
    return rows


def _notes(rows: pd.DataFrame, skipped: dict[str, int]) -> list[str]:
    notes = []
    for metric, n in skipped.items():
        notes.append(f"{metric} of {n} stream-transport points not compared: the model reports loss only "
                     "for datagram transports")
    bad_status = rows[rows["status"] != "ok"] if len(rows) else rows
    if len(bad_status):
        notes.append(f"{bad_status[POINT_KEYS].drop_duplicates().shape[0]} simulations did not finish cleanly "
                     "(status column)")
    for h in ("rtt_p50_us", "throughput_MBps"):
        if not len(rows) or rows[(rows["metric"] == h) & ~rows["fitted"]].empty:
            notes.append(f"no held-out {h} points: passes() counts it as passing")
    return notes


def validate(measured: pd.DataFrame | str | Path, costs: str | CostModel = "default", *,
             fit_sizes: Iterable[int] | None = None, messages_pingpong: int = 1000,
             stream_bytes: int = STREAM_BYTES, seed: int = 1, stream_replications: int = STREAM_REPLICATIONS,
             progress: Callable[[str], None] | None = None) -> ValidationReport:
    """Simulate every measured point and compare (see :mod:`lbsim.validate`).

    ``measured``: a long-format DataFrame or CSV path (checked by :func:`check_measured`).
    ``costs``: ``"default"``, a cost-file path or a :class:`CostModel`.  ``fit_sizes``: the
    message sizes counted as fitted (default: the cost model's ``provenance["fit_sizes"]``).
    Ping-pong points run ``messages_pingpong`` round trips; stream points write
    ``max(50, min(20000, stream_bytes // msg_bytes))`` messages (``stream_bytes`` 64 MiB by
    default, as ``lbsim measure`` writes), ``stream_replications`` times with seeds ``seed``,
    ``seed + 1``, ..., and each metric is their median, as the measured value is the median
    of repetitions: a run of 20000 small writes covers only a few scheduler slices, and a
    same-CPU UDP flood's throughput differs by up to 40 % between seeds.  ``progress(text)``
    is called before each simulation.
    """
    df, source, csv_lines = read_measured(measured)
    check_measured(df, source, csv_lines=csv_lines)
    model = costs if isinstance(costs, CostModel) else load_costs(costs)
    # the points the fit read, as the cost file records them (lbsim.calibrate.split); an older
    # file, or fit_sizes given, labels by message size only
    record = model.provenance.get("fit_split") or {}
    fitted_points = ({tuple(k) for k in record.get("fitted_points", [])}
                     if fit_sizes is None and "fitted_points" in record else None)
    label_note = [] if fitted_points is not None else [
        "fitted/held-out by message size only (fit_sizes)" + (" as asked" if fit_sizes is not None else
                                                              ": the cost file has no record of the points it was "
                                                              "fitted on (fit_split)")
        + "; stream points the fit read at other sizes count as held out"]
    if fit_sizes is None:
        fit_sizes = model.provenance.get("fit_sizes", []) or []
    sizes = sorted({int(s) for s in fit_sizes})
    # the split points lbsim calibrate read the page-allocator costs from
    page_step = {int(s) for s in model.provenance.get("page_step_sizes", []) or []}
    page_step_transports = set(model.provenance.get("page_step_transports", []) or [])
    norm = normalise(df.reset_index(drop=True))
    keys = point_keys(norm)
    params = [c for c in PARAM_COLUMNS if c in norm.columns]
    #: parameter columns that differ between points (the others are named once, in the header)
    shown = [c for c in params if norm[c].nunique(dropna=False) > 1]
    constant = {c: strict(norm[c].iloc[0]) for c in params if c not in shown}

    points = list(norm.groupby(keys, dropna=False, sort=True))
    records: list[dict[str, Any]] = []
    skipped: dict[str, int] = {}
    for i, (key, grp) in enumerate(points, 1):
        first = grp.iloc[0]
        fields = sim_fields(first, messages_pingpong=messages_pingpong, stream_bytes=stream_bytes, seed=seed)
        if progress:
            progress(f"[{i}/{len(points)}] {_point_name(first, shown)}")
        sim, status = _simulate_point(first, fields, model, seed, stream_replications)
        if fitted_points is not None:
            fitted = (str(first["transport"]), str(first["workload"]), str(first["placement"]),
                      str(first["background"]), int(first["msg_bytes"])) in fitted_points
        else:
            fitted = at_fit_size(str(first["transport"]), int(first["msg_bytes"]), sizes) or (
                first["workload"] == "split" and first["transport"] in page_step_transports
                and int(first["msg_bytes"]) in page_step)
        records += _point_records(keys, key, grp, sim, status, fitted, "rep" in norm.columns, skipped)
    rows = _sorted_rows(records, keys, params)
    return ValidationReport(
        rows=rows, summary=summarise(rows, shown), order=order_check(rows, HEADLINE, params, shown), fit_sizes=sizes,
        costs_name=model.name, costs_hash=model.hash, source=source,
        settings={"messages_pingpong": messages_pingpong, "stream_bytes": stream_bytes, "seed": seed,
                  "stream_replications": stream_replications,
                  "constant_columns": constant, "simulated_as": _simulated_as(constant)},
        notes=label_note + _notes(rows, skipped))
