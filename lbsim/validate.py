"""Measured data -> how close the model comes: per point, per metric, and in transport order.

For every measured point of a long-format CSV (see ``docs/measured-data.md``) the model is
run once with the same transport, workload, placement, background load and message size
(and the optional ``policy``, ``mtu``, ``cpus``, ``kernel`` columns), and each metric present
in both is compared::

    python -m lbsim.validate lbsim/data/measured-host.csv [--costs FILE] [--max-error PCT] [--json]

The measured value of a point is the median over its repetitions; the spread between the
repetitions (max - min) is kept beside it.  Points whose message size is one the costs were
fitted on (``provenance["fit_sizes"]`` of the cost file, or ``fit_sizes=``) are *fitted*, and
so are the split points the page-allocator costs were read from
(``provenance["page_step_sizes"]`` of ``provenance["page_step_transports"]``); the others are
*held out*: the held-out errors say how well the model predicts, the fitted ones only
how well the fit converged.

Besides the errors, an *order check*: wherever two transports were measured under the same
conditions and their measured gap is larger than the spread between repetitions, the model
must put them in the same order.

Exit status of the command: 0 ok, 1 ``--max-error`` given and exceeded, 2 bad input (one line
naming the file, the line and the column).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import pandas as pd

from lbsim.config import TRANSPORTS, ConfigError, make_config
from lbsim.costs import CostFileError, CostModel, load_costs
from lbsim.kernels import KERNELS
from lbsim.measure.host import STREAM_BYTES, stream_count
from lbsim.model.tcp_cc import CONGESTION_CONTROLS

#: simulations per stream point (seeds seed, seed + 1, ...): the median is compared, as the
#: measured value is the median of repetitions (scripts/measure_host.py's default is 3)
STREAM_REPLICATIONS = 3

__all__ = ["validate", "ValidationReport", "check_measured", "MeasuredDataError", "REQUIRED_COLUMNS",
           "PARAM_COLUMNS", "METRICS", "main"]

#: columns every measured CSV must have
REQUIRED_COLUMNS = ("transport", "workload", "placement", "msg_bytes", "metric", "value")
#: optional columns that change the simulated configuration (see :func:`sim_fields`)
PARAM_COLUMNS = ("policy", "mtu", "cpus", "kernel", "tcp_congestion_control")
#: the point's key: what is measured (plus the PARAM_COLUMNS present)
POINT_KEYS = ("transport", "workload", "placement", "background", "msg_bytes")

WORKLOADS = ("pingpong", "stream", "split")
PLACEMENTS = ("same", "cross")
BACKGROUNDS = ("idle", "busy")
POLICIES = {"other": "fair", "fair": "fair", "fifo": "fifo"}
DATAGRAM = ("udp", "unix_dgram")
UDP_MAX_PAYLOAD = 65507

#: metric -> workload that produces it
METRICS: dict[str, str] = {
    "rtt_mean_us": "pingpong", "rtt_p50_us": "pingpong", "rtt_p90_us": "pingpong",
    "rtt_p99_us": "pingpong", "rtt_p999_us": "pingpong",
    "throughput_MBps": "stream", "msgs_per_s": "stream", "loss_pct": "stream",
    "rcvbuf_drop_pct": "stream", "backlog_drop_pct": "stream",
    "write_p50_us": "split", "read_p50_us": "split", "write_mean_us": "split", "read_mean_us": "split",
}
METRIC_ORDER = tuple(METRICS)
#: the metrics of the order check and of :meth:`ValidationReport.passes`
HEADLINE = ("rtt_p50_us", "throughput_MBps")


class MeasuredDataError(ValueError):
    """Measured data that cannot be validated: the message is one line naming file, line, column."""


# --------------------------------------------------------------------------------------------
# input checking
# --------------------------------------------------------------------------------------------

def _where(source: str, pos: int, csv_lines: bool) -> str:
    """Position ``pos`` (0-based data row) as a CSV line (the header is line 1) or a row."""
    return f"{source}: line {pos + 2}" if csv_lines else f"{source}: row {pos}"


def _show(v: Any) -> str:
    if isinstance(v, np.generic):
        v = v.item()
    return repr(v) if isinstance(v, str) else str(v)


def _first_bad(mask: pd.Series) -> int:
    return int(np.flatnonzero(mask.to_numpy())[0])


def _int_column(df: pd.DataFrame, col: str, source: str, csv_lines: bool, lo: int, hi: int,
                allow_missing: bool) -> None:
    num = pd.to_numeric(df[col], errors="coerce")
    missing = df[col].isna()
    bad = (num.isna() & ~missing) | (missing if not allow_missing else False)
    ok = num.notna()
    bad = bad | (ok & ((num % 1 != 0) | (num < lo) | (num > hi)))
    if bad.any():
        i = _first_bad(bad)
        raise MeasuredDataError(f"{_where(source, i, csv_lines)}: column {col!r}: {_show(df[col].iloc[i])} is not "
                                f"allowed; need an integer {lo}..{hi}")


def _choice_column(df: pd.DataFrame, col: str, allowed: Sequence[str], source: str, csv_lines: bool) -> None:
    vals = df[col].astype(str).str.strip()
    bad = ~vals.isin(list(allowed)) | df[col].isna()
    if bad.any():
        i = _first_bad(bad)
        v = df[col].iloc[i]
        shown = "an empty value" if pd.isna(v) or str(v).strip() == "" else f"unknown value {str(v)!r}"
        raise MeasuredDataError(f"{_where(source, i, csv_lines)}: column {col!r}: {shown}; "
                                f"allowed: {', '.join(allowed)}")


def check_measured(df: pd.DataFrame, source: str = "<measured>", *, csv_lines: bool = True) -> None:
    """Raise :class:`MeasuredDataError` (a ValueError) with one line if ``df`` cannot be validated.

    Checks the required columns, the allowed values of transport / workload / placement /
    background / policy / metric, that each metric belongs to its workload, that sizes, MTU
    and CPU counts are integers, that values are numbers, and that the simulator accepts
    every point (e.g. a UDP datagram larger than 65507 bytes).  ``source`` names the file;
    rows are reported as CSV lines (header = line 1) unless ``csv_lines`` is false.
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        s = "s" if len(missing) > 1 else ""
        raise MeasuredDataError(f"{source}: missing column{s} {', '.join(repr(c) for c in missing)}; "
                                f"required: {', '.join(REQUIRED_COLUMNS)}")
    if len(df) == 0:
        raise MeasuredDataError(f"{source}: no data rows")
    df = df.reset_index(drop=True)
    _choice_column(df, "transport", TRANSPORTS, source, csv_lines)
    _choice_column(df, "workload", WORKLOADS, source, csv_lines)
    _choice_column(df, "placement", PLACEMENTS, source, csv_lines)
    if "background" in df.columns:
        bg = df["background"].where(df["background"].notna(), "idle")
        _choice_column(df.assign(background=bg), "background", BACKGROUNDS, source, csv_lines)
    _choice_column(df, "metric", METRIC_ORDER, source, csv_lines)
    wl = df["workload"].astype(str).str.strip()
    met = df["metric"].astype(str).str.strip()
    wrong = met.map(METRICS) != wl
    if wrong.any():
        i = _first_bad(wrong)
        need = [m for m, w in METRICS.items() if w == wl.iloc[i]]
        raise MeasuredDataError(f"{_where(source, i, csv_lines)}: column 'metric': {met.iloc[i]!r} is not a "
                                f"{wl.iloc[i]} metric; allowed for {wl.iloc[i]}: {', '.join(need)}")
    _int_column(df, "msg_bytes", source, csv_lines, 1, 16 * 1024 * 1024, allow_missing=False)
    val = pd.to_numeric(df["value"], errors="coerce")
    bad = val.isna() & df["value"].notna()
    if bad.any():
        i = _first_bad(bad)
        raise MeasuredDataError(f"{_where(source, i, csv_lines)}: column 'value': {_show(df['value'].iloc[i])} is "
                                "not a number")
    neg = val < 0
    if neg.any():
        i = _first_bad(neg)
        raise MeasuredDataError(f"{_where(source, i, csv_lines)}: column 'value': {_show(val.iloc[i])} is negative; "
                                "every metric is >= 0")
    if "policy" in df.columns:
        pol = df["policy"].where(df["policy"].notna(), "other")
        _choice_column(df.assign(policy=pol), "policy", tuple(POLICIES), source, csv_lines)
    if "mtu" in df.columns:
        _int_column(df, "mtu", source, csv_lines, 68, 65536, allow_missing=True)
    if "cpus" in df.columns:
        _int_column(df, "cpus", source, csv_lines, 1, 64, allow_missing=True)
    if "tcp_congestion_control" in df.columns:
        cc = df["tcp_congestion_control"].where(df["tcp_congestion_control"].notna(), "cubic")
        _choice_column(df.assign(tcp_congestion_control=cc), "tcp_congestion_control", CONGESTION_CONTROLS,
                       source, csv_lines)
    # every point must be something the simulator accepts (sizes a transport cannot carry...)
    norm = _normalise(df)
    keys = _point_keys(norm)
    for _, grp in norm.groupby(keys, dropna=False, sort=False):
        i = int(grp.index[0])
        try:
            make_config(sim_fields(grp.iloc[0]))
        except ConfigError as e:
            r = grp.iloc[0]
            raise MeasuredDataError(f"{_where(source, i, csv_lines)}: {r['transport']} {r['workload']} "
                                    f"msg_bytes={r['msg_bytes']}: {e}") from None


def _normalise(df: pd.DataFrame) -> pd.DataFrame:
    """Stripped strings, integer sizes, numeric values, background defaulted to idle."""
    out = df.copy()
    for c in ("transport", "workload", "placement", "metric"):
        out[c] = out[c].astype(str).str.strip()
    out["background"] = (out["background"].fillna("idle").astype(str).str.strip()
                         if "background" in out.columns else "idle")
    out["msg_bytes"] = pd.to_numeric(out["msg_bytes"]).astype(int)
    out["value"] = pd.to_numeric(out["value"], errors="coerce")
    if "policy" in out.columns:
        out["policy"] = out["policy"].fillna("other").astype(str).str.strip()
    if "kernel" in out.columns:
        out["kernel"] = out["kernel"].fillna("").astype(str).str.strip()
    if "tcp_congestion_control" in out.columns:
        out["tcp_congestion_control"] = out["tcp_congestion_control"].fillna("cubic").astype(str).str.strip()
    for c in ("mtu", "cpus"):
        if c in out.columns:
            out[c] = pd.to_numeric(out[c], errors="coerce").astype("Int64")
    return out


def _point_keys(df: pd.DataFrame) -> list[str]:
    return [*POINT_KEYS, *(c for c in PARAM_COLUMNS if c in df.columns)]


def sim_kernel(measured: Any) -> str:
    """A measured kernel string -> the lbsim kernel profile: exact lbsim names are used as they
    are (``linux-6.12``, ``linux-2.6.32``, ``host``); anything else (``6.18.44-fc-v769``) gets
    the default profile ``linux-6.12``."""
    s = "" if measured is None or (isinstance(measured, float) and math.isnan(measured)) else str(measured).strip()
    return s if s in (*KERNELS, "host") else "linux-6.12"


def at_fit_size(transport: str, msg_bytes: int, sizes: Iterable[int]) -> bool:
    """Whether a point's size is one the costs were fitted at; UDP's largest datagram (65507 B)
    stands in for 65536 B."""
    sizes = set(sizes)
    return msg_bytes in sizes or (transport == "udp" and msg_bytes == UDP_MAX_PAYLOAD and 65536 in sizes)


def stream_messages(msg_bytes: int, stream_bytes: int = STREAM_BYTES) -> int:
    """Writes simulated for a stream point: about ``stream_bytes`` of data, 50 to 20000 writes
    (by default as many as ``lbsim measure`` writes: the start of a stream, before the
    scheduler settles, weighs the same)."""
    return stream_count(msg_bytes, stream_bytes)


def sim_fields(point: Any, *, messages_pingpong: int = 1000, stream_bytes: int = STREAM_BYTES,
               seed: int = 1) -> dict[str, Any]:
    """The SimConfig fields that reproduce one measured point (a row of the normalised frame)."""
    n = int(point["msg_bytes"])
    workload = point["workload"]
    fields: dict[str, Any] = {
        "transport": point["transport"], "workload": workload, "msg_bytes": n,
        "placement": point["placement"], "seed": seed,
        "messages": messages_pingpong if workload in ("pingpong", "split") else stream_messages(n, stream_bytes),
    }
    if "cpus" in point and not pd.isna(point["cpus"]):
        fields["cpus"] = int(point["cpus"])
    if "mtu" in point and not pd.isna(point["mtu"]):
        fields["mtu"] = int(point["mtu"])
    if "policy" in point:
        fields["policy"] = POLICIES.get(str(point["policy"]), "fair")
    if "kernel" in point:
        fields["kernel"] = sim_kernel(point["kernel"])
    if "tcp_congestion_control" in point:
        fields["tcp_congestion_control"] = str(point["tcp_congestion_control"])
    if point["background"] == "busy":
        # the harness runs its spinner on the peer's (receiver's) CPU: 0 for same, 1 for cross
        fields["background"] = [0 if point["placement"] == "same" else 1]
    return fields


def _read(measured: pd.DataFrame | str | Path) -> tuple[pd.DataFrame, str, bool]:
    if isinstance(measured, pd.DataFrame):
        return measured, "<DataFrame>", False
    source = str(measured)
    try:
        df = pd.read_csv(measured)
    except FileNotFoundError:
        raise MeasuredDataError(f"{source}: no such file") from None
    except IsADirectoryError:
        raise MeasuredDataError(f"{source}: is a directory, not a CSV file") from None
    except pd.errors.EmptyDataError:
        raise MeasuredDataError(f"{source}: empty file; need a CSV with a header row "
                                f"({', '.join(REQUIRED_COLUMNS)}, ...)") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise MeasuredDataError(f"{source}: not a readable CSV file ({first})") from None
    df.columns = [str(c).strip() for c in df.columns]
    return with_host_columns(df, source), source, True


def host_columns(measured_csv: str | Path) -> dict[str, Any]:
    """Parameter columns the measured file's ``.host.json`` supplies: the TCP congestion
    control (``sysctl`` net.ipv4.tcp_congestion_control, recorded by ``lbsim measure`` since
    2026-12-06; for older files an ``assumed`` entry says where the value came from).  Empty
    without a host file."""
    import json

    host_file = Path(str(measured_csv) + ".host.json")
    try:
        host = json.loads(host_file.read_text())
    except (OSError, ValueError):
        return {}
    out: dict[str, Any] = {}
    key = "net.ipv4.tcp_congestion_control"
    cc = (host.get("sysctl") or {}).get(key)
    if cc is None:
        cc = ((host.get("assumed") or {}).get(key) or {}).get("value")
    if isinstance(cc, str) and cc:
        out["tcp_congestion_control"] = cc
    return out


def with_host_columns(df: pd.DataFrame, measured_csv: str | Path) -> pd.DataFrame:
    """``df`` with the :func:`host_columns` it lacks added (a column in the CSV wins)."""
    for col, value in host_columns(measured_csv).items():
        if col not in df.columns:
            df = df.assign(**{col: value})
    return df


# --------------------------------------------------------------------------------------------
# the report
# --------------------------------------------------------------------------------------------

def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.bool_, bool)):
        return bool(x)
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return None if not math.isfinite(float(x)) else float(x)
    if x is pd.NA or x is None:
        return None
    return x


def _point_name(r: Any, params: Sequence[str] = ()) -> str:
    extra = "".join(f" {p}={r[p]}" for p in params if p in r and not pd.isna(r[p]) and str(r[p]) != "")
    return f"{r['transport']} {r['workload']} {r['placement']}/{r['background']} {int(r['msg_bytes'])} B{extra}"


@dataclass
class ValidationReport:
    """The comparison of one measured data set with the model.

    ``rows``: one row per point and metric (transport, workload, placement, background,
    msg_bytes, [policy, mtu, cpus, kernel as measured], metric, measured (median over reps),
    simulated, error_pct (100 (sim/meas - 1); NaN when measured is 0), diff (sim - meas),
    spread (max - min over reps), spread_pct (100 spread / measured), reps, fitted, status).
    ``summary``: per metric and split ("held-out", "fitted", "all"): count, n_error,
    median_abs_error_pct, worst_abs_error_pct, worst_point.
    ``order``: the transport order check (see :func:`order_check`).
    """

    rows: pd.DataFrame
    summary: list[dict[str, Any]]
    order: dict[str, Any]
    fit_sizes: list[int] = field(default_factory=list)
    costs_name: str = ""
    costs_hash: str = ""
    source: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    # --- verdict ---------------------------------------------------------------------------------
    def headline(self, max_error_pct: float | None = None) -> list[dict[str, Any]]:
        """Held-out median |error| of rtt_p50_us and throughput_MBps, and whether each is within
        ``max_error_pct``; a metric without held-out points passes with a note."""
        out = []
        for m in HEADLINE:
            s = next((d for d in self.summary if d["metric"] == m and d["split"] == "held-out"), None)
            med = s["median_abs_error_pct"] if s and s["n_error"] else None
            ok = True if (med is None or max_error_pct is None) else bool(med <= max_error_pct)
            note = "" if med is not None else "no held-out points: counts as passing"
            out.append({"metric": m, "held_out_median_abs_error_pct": med, "max_error_pct": max_error_pct,
                        "ok": ok, "note": note})
        return out

    def passes(self, max_error_pct: float) -> bool:
        """Held-out median |error| of rtt_p50_us AND throughput_MBps both <= ``max_error_pct``."""
        return all(h["ok"] for h in self.headline(max_error_pct))

    # --- output ----------------------------------------------------------------------------------
    def to_dict(self, max_error_pct: float | None = None) -> dict[str, Any]:
        rows = [{k: _jsonable(v) for k, v in r.items()} for r in self.rows.to_dict(orient="records")]
        out = {
            "source": self.source,
            "costs": {"name": self.costs_name, "hash": self.costs_hash},
            "fit_sizes": list(self.fit_sizes),
            "settings": dict(self.settings),
            "summary": _jsonable(self.summary),
            "order": _jsonable(self.order),
            "headline": _jsonable(self.headline(max_error_pct)),
            "notes": list(self.notes),
            "rows": rows,
        }
        if max_error_pct is not None:
            out["passes"] = self.passes(max_error_pct)
        return out

    def format_summary(self) -> str:
        """The held-out summary, then the fitted one, then the order check."""
        lines = [f"costs: {self.costs_name} [{self.costs_hash}]; measured: {self.source}; "
                 f"fit sizes: {', '.join(map(str, self.fit_sizes)) or 'none'}"]
        const = self.settings.get("constant_columns", {})
        if const:
            sim_as = self.settings.get("simulated_as", {})
            lines.append("every point: " + ", ".join(
                f"{k}={v}" + (f" (simulated as {sim_as[k]})" if k in sim_as and sim_as[k] != v else "")
                for k, v in const.items()))
        for split, title in (("held-out", "held-out points (message sizes not fitted)"),
                             ("fitted", "fitted points (message sizes the costs were fitted on)")):
            lines.append("")
            lines.append(f"{title}: |error| = |simulated / measured - 1|")
            lines.append(f"  {'metric':16s} {'points':>6s} {'median':>8s} {'worst':>8s}  worst point")
            any_row = False
            for s in self.summary:
                if s["split"] != split:
                    continue
                any_row = True
                med, worst = s["median_abs_error_pct"], s["worst_abs_error_pct"]
                med_s = "-" if med is None or not math.isfinite(med) else f"{med:7.1f}%"
                worst_s = "-" if worst is None or not math.isfinite(worst) else f"{worst:7.1f}%"
                pts = f"{s['count']}" + ("" if s["n_error"] == s["count"] else f"({s['n_error']})")
                lines.append(f"  {s['metric']:16s} {pts:>6s} {med_s:>8s} {worst_s:>8s}  {s['worst_point'] or ''}")
            if not any_row:
                lines.append("  (none)")
        lines.append("  (n) = points with an error: measured 0 has none (e.g. no loss)"
                     if any(s["n_error"] != s["count"] for s in self.summary) else "")
        if lines[-1] == "":
            lines.pop()
        o = self.order
        lines.append("")
        lines.append(f"order check ({', '.join(o['metrics'])}): {o['checked']} transport pairs in {o['cells']} "
                     f"cells differ by more than the repetitions' spread; model agrees on {o['agreed']}, "
                     f"disagrees on {len(o['disagreements'])} ({o['within_spread']} pairs within spread, "
                     "not checked)")
        for d in o["disagreements"]:
            unit = d["metric"]
            lines.append(f"  {d['cell']} {unit}: measured {d['a']} {d['measured_a']:.4g} vs {d['b']} "
                         f"{d['measured_b']:.4g}; simulated {d['simulated_a']:.4g} vs {d['simulated_b']:.4g}")
        return "\n".join(lines)

    def format_points(self) -> str:
        df = self.rows
        if df.empty:
            return "(no points)"
        const = self.settings.get("constant_columns", {})
        params = [p for p in PARAM_COLUMNS if p in df.columns and p not in const]
        width = {p: min(24, max(len(p), *(len(str(v)) for v in df[p] if not pd.isna(v)))) for p in params}
        head = (f"{'transport':11s} {'workload':8s} {'placement':9s} {'bg':4s} {'bytes':>8s} "
                + "".join(f"{p:>{width[p]}s} " for p in params)
                + f"{'metric':15s} {'measured':>11s} {'simulated':>11s} {'error':>8s} {'spread':>7s}  fit")
        out = [head]
        for r in df.itertuples(index=False):
            d = r._asdict()
            err = d["error_pct"]
            sp = d["spread_pct"]
            out.append(
                f"{d['transport']:11s} {d['workload']:8s} {d['placement']:9s} {d['background']:4s} "
                f"{int(d['msg_bytes']):>8d} "
                + "".join(f"{'' if pd.isna(d[p]) else str(d[p])[:width[p]]:>{width[p]}s} " for p in params)
                + f"{d['metric']:15s} {_num(d['measured']):>11s} {_num(d['simulated']):>11s} "
                f"{('-' if not math.isfinite(err) else f'{err:+.1f}%'):>8s} "
                f"{('-' if not math.isfinite(sp) else f'{sp:.1f}%'):>7s}  {'yes' if d['fitted'] else ''}"
                + ("" if d["status"] == "ok" else f"  [{d['status']}]"))
        return "\n".join(out)

    def format_table(self, max_error_pct: float | None = None) -> str:
        """Held-out summary, fitted summary, order check, then every point (sorted by transport,
        workload, placement, size, metric)."""
        parts = [self.format_summary()]
        if max_error_pct is not None:
            parts.append(self.format_verdict(max_error_pct))
        if self.notes:
            parts.append("\n".join(f"note: {n}" for n in self.notes))
        parts.append("points (measured = median over repetitions; spread = (max - min) / median):\n"
                     + self.format_points())
        return "\n\n".join(parts)

    def format_verdict(self, max_error_pct: float) -> str:
        lines = []
        for h in self.headline(max_error_pct):
            v = h["held_out_median_abs_error_pct"]
            lines.append(f"{h['metric']}: held-out median |error| "
                         + (f"{v:.1f}% {'<=' if h['ok'] else '>'} {max_error_pct:g}%" if v is not None else h["note"]))
        lines.append(f"{'PASS' if self.passes(max_error_pct) else 'FAIL'} (--max-error {max_error_pct:g})")
        return "\n".join(lines)


def _num(x: float) -> str:
    if x is None or not math.isfinite(x):
        return "-"
    a = abs(x)
    if a >= 1e5:
        return f"{x:,.0f}"
    if a >= 100:
        return f"{x:.1f}"
    return f"{x:.3f}"


# --------------------------------------------------------------------------------------------
# the comparison
# --------------------------------------------------------------------------------------------

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
                k = dict(zip(cell_keys, key))
                cell = (f"{k['workload']} {k['placement']}/{k['background']} {int(k['msg_bytes'])} B"
                        + "".join(f" {p}={k[p]}" for p in (params if shown is None else shown)
                                  if not pd.isna(k[p]) and str(k[p]) != ""))
                disagreements.append({**{c: _jsonable(k[c]) for c in cell_keys}, "cell": cell,
                                      "a": a["transport"], "b": b["transport"],
                                      "measured_a": float(ma), "measured_b": float(mb),
                                      "simulated_a": float(sa), "simulated_b": float(sb)})
        cells += cell_checked > 0
    return {"metrics": list(metrics), "cells": cells, "checked": checked, "agreed": agreed,
            "within_spread": within, "disagreements": disagreements}


def validate(measured: pd.DataFrame | str | Path, costs: str | CostModel = "default", *,
             fit_sizes: Iterable[int] | None = None, messages_pingpong: int = 1000,
             stream_bytes: int = STREAM_BYTES, seed: int = 1, stream_replications: int = STREAM_REPLICATIONS,
             progress: Callable[[str], None] | None = None) -> ValidationReport:
    """Simulate every measured point and compare (see the module docstring).

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
    from lbsim.simulate import simulate

    df, source, csv_lines = _read(measured)
    check_measured(df, source, csv_lines=csv_lines)
    model = costs if isinstance(costs, CostModel) else load_costs(costs)
    if fit_sizes is None:
        fit_sizes = model.provenance.get("fit_sizes", []) or []
    sizes = sorted({int(s) for s in fit_sizes})
    # the split points lbsim calibrate read the page-allocator costs from
    page_step = {int(s) for s in model.provenance.get("page_step_sizes", []) or []}
    page_step_transports = set(model.provenance.get("page_step_transports", []) or [])
    norm = _normalise(df.reset_index(drop=True))
    keys = _point_keys(norm)
    params = [c for c in PARAM_COLUMNS if c in norm.columns]
    #: parameter columns that differ between points (the others are named once, in the header)
    shown = [c for c in params if norm[c].nunique(dropna=False) > 1]
    constant = {c: _jsonable(norm[c].iloc[0]) for c in params if c not in shown}
    has_rep = "rep" in norm.columns

    points = list(norm.groupby(keys, dropna=False, sort=True))
    records: list[dict[str, Any]] = []
    skipped: dict[str, int] = {}
    for i, (key, grp) in enumerate(points, 1):
        first = grp.iloc[0]
        fields = sim_fields(first, messages_pingpong=messages_pingpong, stream_bytes=stream_bytes, seed=seed)
        if progress:
            progress(f"[{i}/{len(points)}] {_point_name(first, shown)}")
        res = simulate(make_config(fields), costs=model)
        sim = _sim_metrics(res, first["transport"])
        if first["workload"] == "stream" and stream_replications > 1:
            runs = [sim] + [_sim_metrics(simulate(make_config({**fields, "seed": seed + rep}), costs=model),
                                         first["transport"]) for rep in range(1, stream_replications)]
            sim = {k: float(np.median([r[k] for r in runs])) for k in sim}
        fitted = at_fit_size(str(first["transport"]), int(first["msg_bytes"]), sizes) or (
            first["workload"] == "split" and first["transport"] in page_step_transports
            and int(first["msg_bytes"]) in page_step)
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
                "error_pct": 100.0 * (s / meas - 1.0) if meas != 0 else float("nan"),
                "diff": s - meas, "spread": spread,
                "spread_pct": 100.0 * spread / abs(meas) if meas != 0 else float("nan"),
                "reps": int(mg["rep"].nunique()) if has_rep else int(len(vals)),
                "fitted": fitted, "status": res.status,
            })
            records.append(rec)
    cols = [*keys, "metric", "measured", "simulated", "error_pct", "diff", "spread", "spread_pct", "reps",
            "fitted", "status"]
    rows = pd.DataFrame.from_records(records, columns=cols)
    if len(rows):
        rows["_m"] = rows["metric"].map({m: i for i, m in enumerate(METRIC_ORDER)})
        rows = (rows.sort_values(["transport", "workload", "placement", "msg_bytes", "background", *params, "_m"])
                .drop(columns="_m").reset_index(drop=True))
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
    return ValidationReport(
        rows=rows, summary=summarise(rows, shown), order=order_check(rows, HEADLINE, params, shown), fit_sizes=sizes,
        costs_name=model.name, costs_hash=model.hash, source=source,
        settings={"messages_pingpong": messages_pingpong, "stream_bytes": stream_bytes, "seed": seed,
                  "stream_replications": stream_replications,
                  "constant_columns": constant, "simulated_as": _simulated_as(constant)},
        notes=notes)


# --------------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------------

class _InputError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:
        raise _InputError(message)


def main(argv: Sequence[str] | None = None) -> int:
    """python -m lbsim.validate MEASURED.csv [--costs FILE] [--max-error PCT] [--json]"""
    p = _Parser(prog="python -m lbsim.validate",
                description="Compare measured loopback / UNIX socket data (long-format CSV, see "
                            "docs/measured-data.md) with the model.")
    p.add_argument("measured", help="long-format measured CSV")
    p.add_argument("--costs", default="default", help="cost model: 'default' or a JSON file")
    p.add_argument("--max-error", type=float, default=None, metavar="PCT",
                   help="exit 1 unless the held-out median |error| of rtt_p50_us and throughput_MBps "
                        "are both <= PCT")
    p.add_argument("--fit-sizes", default=None,
                   help="comma-separated sizes counted as fitted (default: the cost file's provenance)")
    p.add_argument("--messages-pingpong", type=int, default=1000, help="round trips per ping-pong point")
    p.add_argument("--stream-bytes", type=int, default=STREAM_BYTES,
                   help="bytes per stream point (default 64 MiB, as lbsim measure writes)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--stream-replications", type=int, default=STREAM_REPLICATIONS,
                   help=f"simulations per stream point, seeds SEED, SEED+1, ...; their median is compared "
                        f"(default {STREAM_REPLICATIONS})")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    p.add_argument("--figure", default=None, metavar="FILE",
                   help="also draw measured against simulated curves (PNG or SVG by extension)")
    try:
        a = p.parse_args(argv)
        if a.messages_pingpong < 1 or a.stream_bytes < 1 or a.seed < 0 or a.stream_replications < 1:
            raise _InputError("--messages-pingpong, --stream-bytes and --stream-replications must be >= 1, "
                              "--seed >= 0")
        if a.max_error is not None and not (a.max_error >= 0):
            raise _InputError(f"--max-error {a.max_error}: need a percentage >= 0")
        sizes = None
        if a.fit_sizes is not None:
            try:
                sizes = [int(x) for x in a.fit_sizes.split(",") if x.strip()]
            except ValueError:
                raise _InputError(f"--fit-sizes {a.fit_sizes!r}: need comma-separated integers") from None
        costs = load_costs(a.costs)
        show = (not a.quiet) and sys.stderr.isatty()
        rep = validate(a.measured, costs, fit_sizes=sizes, messages_pingpong=a.messages_pingpong,
                       stream_bytes=a.stream_bytes, seed=a.seed, stream_replications=a.stream_replications,
                       progress=(lambda t: print(f"lbsim.validate: {t}", file=sys.stderr)) if show else None)
    except (_InputError, MeasuredDataError, CostFileError, ConfigError) as e:
        print(f"lbsim: error: {e}", file=sys.stderr)
        return 2
    if a.figure:
        from lbsim.plots import validation_figure

        validation_figure(rep.rows).savefig(a.figure, dpi=110)
    if a.json:
        print(json.dumps(rep.to_dict(a.max_error)))
    else:
        print(rep.format_table(a.max_error))
    if a.max_error is not None and not rep.passes(a.max_error):
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
