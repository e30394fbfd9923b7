"""Knob effects: what a kernel or workload knob does to a metric, measured against simulated.

A knob grid (``lbsim measure --knobs``, columns in docs/guide/measured-data.md) runs every
knob setting interleaved with its group's default at the same run point (``D V1 .. Vn D``
per repetition).  The *effect* of a setting is its metric (ping-pong: ``rtt_p50_us``,
stream: ``throughput_MBps``) over the default's, within one repetition (the mean of the two
default runs that bracket it); the measured effect is the median over repetitions and its
spread the max - min.  The model runs the setting and its default with the host's settings as
recorded with the data (the row's knob columns and the ``.host.json`` sysctls), so the
simulated effect is a ratio too; a setting the model cannot express is listed as not modelled,
with the reason.  The simulations run in a process pool.

Also here: where datagram drops happen (per-CPU backlog ``softnet_dropped``, socket receive
buffer ``udp_rcvbuf_errors``, sent - received) in the data and in the model, for the groups
that vary RPS, the backlog and the receive buffer.  The report and its tables are in
:mod:`lbsim.validate.effects_report`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lbsim.costs import CostModel, load_costs
from lbsim.fitdata import POLICIES, MeasuredDataError, read_measured, sim_kernel
from lbsim.validate.effects_report import EffectsReport, summarise_effects

__all__ = ["is_knob_grid", "validate_effects", "EFFECT_METRIC", "host_fields", "run_fields"]

log = logging.getLogger("lbsim.validate")

#: the metric whose ratio is the effect, per workload
EFFECT_METRIC = {"pingpong": "rtt_p50_us", "stream": "throughput_MBps"}
#: groups whose datagram drops are compared site by site (RPS, backlog and receive-buffer knobs)
DROP_GROUP_WORDS = ("rps", "backlog", "rcvbuf", "dev-weight", "netdev-budget")
POINT = ["transport", "workload", "placement", "msg_bytes"]
#: stream simulations per setting (seeds seed, seed + 1, ...): their median is the simulated metric
STREAM_REPLICATIONS = 3


def is_knob_grid(df: pd.DataFrame) -> bool:
    """A knob run's CSV: it has the ``setting``, ``knob`` and ``group`` columns."""
    return {"setting", "knob", "group"} <= set(df.columns)


def _is_default(setting: str) -> bool:
    return str(setting).endswith("/default")


# --------------------------------------------------------------------------------------------
# the measured host and a run's settings -> SimConfig fields
# --------------------------------------------------------------------------------------------

def host_fields(host: dict[str, Any]) -> dict[str, Any]:
    """SimConfig kernel fields from a ``.host.json``: the sysctls a knob run does not record
    per row (HZ, netdev_budget_usecs, the congestion control when the CSV lacks it)."""
    sysctl = host.get("sysctl") or {}
    out: dict[str, Any] = {}
    if isinstance(host.get("hz"), int):
        out["hz"] = host["hz"]
    if "net.core.netdev_budget_usecs" in sysctl:
        out["netdev_budget_usecs"] = int(sysctl["net.core.netdev_budget_usecs"])
    cc = sysctl.get("net.ipv4.tcp_congestion_control")
    if isinstance(cc, str):
        out["tcp_congestion_control"] = cc
    if isinstance(host.get("nproc"), int):
        out["cpus"] = host["nproc"]
    return out


def _triple(text: Any) -> tuple[int, int, int]:
    a, b, c = (int(x) for x in str(text).split())
    return (a, b, c)


#: row column -> (SimConfig field, conversion); every one holds the host's value where not varied
_COLUMN_FIELDS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "mtu": ("mtu", int), "tso": ("tso", lambda v: str(v).strip().lower() in ("on", "1", "true")),
    "rps_cpus": ("rps_cpus", lambda v: int(str(v).replace(",", ""), 16)),
    "netdev_max_backlog": ("netdev_max_backlog", int), "dev_weight": ("dev_weight", int),
    "netdev_budget": ("netdev_budget", int), "unix_max_dgram_qlen": ("unix_max_dgram_qlen", int),
    "rmem_default": ("rmem_default", int), "wmem_default": ("wmem_default", int),
    "rmem_max": ("rmem_max", int), "wmem_max": ("wmem_max", int),
    "tcp_rmem": ("tcp_rmem", _triple), "tcp_wmem": ("tcp_wmem", _triple),
    "tcp_nodelay": ("tcp_nodelay", lambda v: int(v) != 0),
    "tcp_congestion_control": ("tcp_congestion_control", str),
    # inert on lo, so the setting simulates as its default (effect 1.00): busy polling needs a NAPI
    # id (include/net/busy_poll.h sk_busy_loop), autocorking an skb still charged to the socket
    # (net/ipv4/tcp.c tcp_should_autocork; loopback_xmit orphans it): docs/notes/noop-switches.md
    "busy_read": ("busy_read", int), "tcp_autocorking": ("tcp_autocorking", int),
    # RFS (lbsim/model/rfs.py) and MSG_ZEROCOPY (lbsim/model/zerocopy.py): docs/notes/zerocopy-rfs.md
    "rps_sock_flow_entries": ("rps_sock_flow_entries", int), "rps_flow_cnt": ("rps_flow_cnt", int),
    "zerocopy": ("zerocopy", lambda v: str(v).strip().lower() in ("on", "1", "true")),
    # messages per sendmmsg/recvmmsg call, or per MSG_MORE run of TCP writes (lbsim.model.batching)
    "batch": ("batch", int),
    # harness --epoll: every receiving side waits in epoll_wait (lbsim/model/eventpoll.py)
    "receiver": ("receiver", str),
}


def run_fields(row: pd.Series, base: dict[str, Any], *, messages: int, seed: int) -> tuple[dict[str, Any] | None, str]:
    """The SimConfig fields of one run of the grid (a row), or (None, why not modelled)."""
    senders = int(row.get("senders", 1) or 1)
    if senders != 1 and (row["transport"] != "udp" or row["workload"] != "stream"):
        return None, f"--senders {senders} is modelled for udp streams only"
    fields = dict(base)
    for col, (name, conv) in _COLUMN_FIELDS.items():
        if col in row.index and not pd.isna(row[col]):
            fields[name] = conv(row[col])
    # so_rcvbuf / so_sndbuf / so_busy_poll hold the socket's own value where no request was made
    knob, default = str(row["knob"]), _is_default(row["setting"])
    for opt in ("so_rcvbuf", "so_sndbuf", "so_busy_poll"):   # so_busy_poll: inert on lo, as busy_read
        if knob == opt and not default:
            fields[opt] = int(row[opt])
    flows = int(row.get("flows", 1) or 1)
    pair = (0, 0) if row["placement"] == "same" else (0, 1)
    transport = str(row["transport"])
    if str(row.get("socktype", "default")) == "seqpacket":  # the harness opened a SOCK_SEQPACKET pair
        if transport != "unix_dgram":
            return None, f"socktype seqpacket is a setting of unix_dgram runs, not {transport}"
        transport = "unix_seqpacket"
    # the harness's --flows N ping-pong is N concurrent ping-pong flows: the model's "rr"
    workload = "rr" if row["workload"] == "pingpong" and flows > 1 else row["workload"]
    if "kernel" in row.index and not pd.isna(row["kernel"]):
        fields["kernel"] = sim_kernel(row["kernel"])  # the host's release -> its lbsim profile
    # --senders N: N sending processes, each writing the run's count (msgs_sent holds them all),
    # all on the sender's CPU (harness.c: --cpu-c defaults to --cpu-a)
    fields.update(transport=transport, workload=workload, msg_bytes=int(row["msg_bytes"]),
                  messages=max(1, messages // senders), seed=seed, flows=flows, senders=senders,
                  # the harness pins every flow like the one pair (all on CPU 0, or 0 -> 1)
                  placement=[pair] * flows if flows > 1 else row["placement"],
                  policy=POLICIES.get(str(row.get("policy", "other")), "fair"))
    if str(row.get("background", "idle")) == "busy":
        fields["background"] = [pair[1]]  # the spinner runs on the peer's (receiver's) CPU
    return fields, ""


# --------------------------------------------------------------------------------------------
# simulation (in worker processes)
# --------------------------------------------------------------------------------------------

_WORKER_MODEL: CostModel | None = None


def _init_worker(model: CostModel) -> None:
    global _WORKER_MODEL
    _WORKER_MODEL = model


def _simulate_job(fields: dict[str, Any]) -> dict[str, Any]:
    """One simulation: the effect metric and the drop counters (or the error, as text)."""
    from lbsim.config import ConfigError, make_config
    from lbsim.simulate import simulate

    try:
        # simulate raises it too: e.g. receiver 'epoll' on a cost model without its measured stages
        res = simulate(make_config(fields), costs=_WORKER_MODEL)
    except ConfigError as e:
        return {"error": str(e)}
    c = res.counters
    value = (res.throughput["bytes_per_s"] / 1e6 if fields["workload"] == "stream" else res.latency_us["p50"])
    sites = c.get("drops_by_site") or {}
    return {"value": float(value), "status": res.status, "sent": c.get("messages_sent") or 0,
            "backlog": sites.get("backlog", 0), "rcvbuf": sites.get("rcvbuf", 0),
            "dropped": c.get("messages_dropped") or 0}


def _run_jobs(jobs: dict[str, dict[str, Any]], model: CostModel, workers: int,
              progress: Callable[[str], None] | None) -> dict[str, dict[str, Any]]:
    keys = list(jobs)
    out: dict[str, dict[str, Any]] = {}
    if workers <= 1:
        _init_worker(model)
        for i, k in enumerate(keys, 1):
            out[k] = _simulate_job(jobs[k])
            if progress and i % 20 == 0:
                progress(f"{i}/{len(keys)} simulations")
        return out
    with ProcessPoolExecutor(max_workers=workers, initializer=_init_worker, initargs=(model,)) as pool:
        for i, (k, r) in enumerate(zip(keys, pool.map(_simulate_job, [jobs[k] for k in keys], chunksize=1)), 1):
            out[k] = r
            if progress and i % 20 == 0:
                progress(f"{i}/{len(keys)} simulations")
    return out


# --------------------------------------------------------------------------------------------
# pairing the settings with their defaults
# --------------------------------------------------------------------------------------------

def _messages(runs: pd.DataFrame, workload: str, messages_pingpong: int) -> int:
    """Simulated messages: as many as the harness sent (stream), ``messages_pingpong`` round trips."""
    if workload == "stream" and "msgs_sent" in runs.columns:
        sent = pd.to_numeric(runs["msgs_sent"], errors="coerce").dropna()
        if len(sent):
            return max(50, int(sent.median()))
    return messages_pingpong if workload == "pingpong" else 8000


def _measured_effect(setting_runs: pd.DataFrame, default_runs: pd.DataFrame) -> tuple[float, float, int]:
    """(median over repetitions of setting / mean of the same repetition's defaults, max - min, reps)."""
    ratios: list[float] = []
    for rep, sg in setting_runs.groupby("rep"):
        d = default_runs[default_runs["rep"] == rep]["value"].dropna()
        if not len(d) or d.mean() == 0:
            continue
        ratios.extend(float(v) / float(d.mean()) for v in sg["value"].dropna())
    if not ratios:
        return float("nan"), float("nan"), 0
    return float(np.median(ratios)), float(max(ratios) - min(ratios)), len(ratios)


def _drop_fractions(runs: pd.DataFrame) -> dict[str, float]:
    """Measured per-message drop fractions of a setting's runs (median over runs)."""
    one = runs  # one row per run: the caller keeps one metric
    sent = pd.to_numeric(one["msgs_sent"], errors="coerce").replace(0, np.nan)
    recv = pd.to_numeric(one["msgs_received"], errors="coerce")
    return {"backlog": float((pd.to_numeric(one["softnet_dropped"], errors="coerce") / sent).median()),
            "rcvbuf": float((pd.to_numeric(one["udp_rcvbuf_errors"], errors="coerce") / sent).median()),
            "lost": float(((sent - recv) / sent).median())}


def _sim_drops(results: list[dict[str, Any]]) -> dict[str, float]:
    ok = [r for r in results if "error" not in r and r["sent"]]
    if not ok:
        return {"backlog": float("nan"), "rcvbuf": float("nan"), "lost": float("nan")}
    return {k: float(np.median([r[src] / r["sent"] for r in ok]))
            for k, src in (("backlog", "backlog"), ("rcvbuf", "rcvbuf"), ("lost", "dropped"))}


def _plan(df: pd.DataFrame, base: dict[str, Any], messages_pingpong: int, seed: int,
          stream_replications: int) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """One entry per (setting, point) with its run fields and job keys; the jobs to simulate."""
    entries: list[dict[str, Any]] = []
    jobs: dict[str, dict[str, Any]] = {}
    for key, runs in df.groupby(["group", "setting", *POINT], sort=True):
        first = runs.iloc[0]
        workload = str(first["workload"])
        if workload not in EFFECT_METRIC:
            continue
        n = _messages(runs, workload, messages_pingpong)
        seeds = [seed + i for i in range(stream_replications if workload == "stream" else 1)]
        fields, reason = run_fields(first, base, messages=n, seed=seed)
        job_keys = []
        if fields is not None:
            for s in seeds:
                f = {**fields, "seed": s}
                k = json.dumps(f, sort_keys=True, default=str)
                jobs[k] = f
                job_keys.append(k)
        entries.append({"group": key[0], "setting": key[1], "knob": str(first["knob"]),
                        "point": dict(zip(POINT, key[2:])), "runs": runs, "job_keys": job_keys,
                        "not_modelled": reason})
    return entries, jobs


def _sim_value(entry: dict[str, Any], results: dict[str, dict[str, Any]]) -> tuple[float, str]:
    rs = [results[k] for k in entry["job_keys"]]
    errors = [r["error"] for r in rs if "error" in r]
    if errors:
        return float("nan"), errors[0]
    bad = [r["status"] for r in rs if r["status"] != "ok"]
    return float(np.median([r["value"] for r in rs])), (f"simulation status {bad[0]}" if bad else "")


def _effect_rows(entries: list[dict[str, Any]], results: dict[str, dict[str, Any]],
                 max_spread: float) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    by_key = {(e["group"], e["setting"], *e["point"].values()): e for e in entries}
    rows, drops = [], []
    for e in entries:
        if _is_default(e["setting"]):
            continue
        pt = e["point"]
        d = by_key.get((e["group"], f"{e['group']}/default", *pt.values()))
        if d is None:
            continue
        metric = EFFECT_METRIC[pt["workload"]]
        sr, dr = (x["runs"][x["runs"]["metric"] == metric] for x in (e, d))
        meas, spread, reps = _measured_effect(sr, dr)
        reason = e["not_modelled"] or d["not_modelled"]
        sim = sim_s = sim_d = float("nan")
        if not reason:
            sim_s, why_s = _sim_value(e, results)
            sim_d, why_d = _sim_value(d, results)
            reason = why_s or why_d
            if not reason and sim_d > 0:
                sim = sim_s / sim_d
        value = e["setting"].split("/", 1)[1]
        spread_pct = 100.0 * spread / meas if meas and math.isfinite(meas) else float("nan")
        real = bool(math.isfinite(meas) and abs(meas - 1.0) > spread)
        rows.append({"group": e["group"], "knob": e["knob"], "setting": value, **pt, "metric": metric,
                     "measured_effect": meas, "spread": spread, "spread_pct": spread_pct, "reps": reps,
                     "simulated_effect": sim, "sim_setting": sim_s, "sim_default": sim_d,
                     "effect_error_pct": 100.0 * (sim / meas - 1.0) if math.isfinite(sim) and meas else float("nan"),
                     "real": real, "left_out": bool(spread_pct > 100.0 * max_spread),
                     # the harness could not finish this setting's run on the host (no measured value)
                     "host_failed": bool((e["runs"]["metric"] == "run_failed").any()),
                     "direction_agrees": (bool((sim - 1.0) * (meas - 1.0) > 0) if math.isfinite(sim) else None),
                     "not_modelled": reason})
        if pt["workload"] == "stream" and pt["transport"] in ("udp", "unix_dgram") and any(
                w in e["group"] for w in DROP_GROUP_WORDS):
            for label, x in (("default", d), (value, e)):
                rs = [results[k] for k in x["job_keys"]]
                drops.append({"group": e["group"], "setting": label, **pt,
                              **{f"measured_{k}": v for k, v in _drop_fractions(
                                  x["runs"][x["runs"]["metric"] == metric]).items()},
                              **{f"simulated_{k}": v for k, v in _sim_drops(rs).items()}})
    return rows, drops


def validate_effects(measured: pd.DataFrame | str | Path, costs: str | CostModel = "default", *,
                     messages_pingpong: int = 1000, seed: int = 1, stream_replications: int = STREAM_REPLICATIONS,
                     max_spread: float = 0.30, workers: int | None = None, host: dict[str, Any] | None = None,
                     progress: Callable[[str], None] | None = None) -> EffectsReport:
    """Every knob setting's measured and simulated effect (see the module docstring).

    ``measured``: a knob grid CSV (its ``.host.json`` beside it is read) or DataFrame (then
    ``host`` gives the host file's content).  ``max_spread``: a point whose measured effect
    varies more than this (max - min over its repetitions, relative) is left out of the
    summary.  ``workers``: processes (default: every CPU)."""
    t0 = time.monotonic()
    df, source, _ = read_measured(measured)
    if not is_knob_grid(df):
        raise MeasuredDataError(f"{source}: not a knob grid (needs the setting, knob and group columns)")
    if host is None and not isinstance(measured, pd.DataFrame):
        try:
            host = json.loads(Path(str(measured) + ".host.json").read_text())
        except (OSError, ValueError):
            host = None
    model = costs if isinstance(costs, CostModel) else load_costs(costs)
    base = host_fields(host or {})
    df = df.assign(msg_bytes=pd.to_numeric(df["msg_bytes"]).astype(int),
                   value=pd.to_numeric(df["value"], errors="coerce"))
    entries, jobs = _plan(df, base, messages_pingpong, seed, stream_replications)
    workers = workers or os.cpu_count() or 1
    if progress:
        progress(f"{len(jobs)} simulations on {workers} processes")
    results = _run_jobs(jobs, model, workers, progress)
    rows, drops = _effect_rows(entries, results, max_spread)
    frame = pd.DataFrame.from_records(rows)
    return EffectsReport(rows=frame, drops=pd.DataFrame.from_records(drops),
                         summary=summarise_effects(frame, max_spread), source=source,
                         costs_name=model.name, costs_hash=model.hash,
                         settings={"messages_pingpong": messages_pingpong, "seed": seed,
                                   "stream_replications": stream_replications, "max_spread": max_spread,
                                   "workers": workers, "simulations": len(jobs), "host_fields": base,
                                   "elapsed_s": round(time.monotonic() - t0, 1)})
