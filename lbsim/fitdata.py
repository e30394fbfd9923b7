"""Measured data as both calibration and validation read it: the long-format CSV (see
``docs/measured-data.md``) and its ``.host.json``, the points selected from it, the simulator
settings that reproduce a measured point, and the error metrics.

``lbsim.calibrate`` and ``lbsim.validate`` both build on this module; neither imports the other.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lbsim.kernels import KERNELS, release_profile
from lbsim.measure.host import STREAM_BYTES, stream_count

log = logging.getLogger("lbsim.fitdata")

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
    # each side's CPU time over the stream's window: which side carries the work
    "cpu_busy_sender": "stream", "cpu_busy_receiver": "stream",
    "write_p50_us": "split", "read_p50_us": "split", "write_mean_us": "split", "read_mean_us": "split",
}
METRIC_ORDER = tuple(METRICS)


class MeasuredDataError(ValueError):
    """Measured data that cannot be validated: the message is one line naming file, line, column."""


# --------------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------------

def read_measured(measured: pd.DataFrame | str | Path) -> tuple[pd.DataFrame, str, bool]:
    """(the data, the name of its source, whether its rows are CSV lines): a DataFrame as it
    is, a CSV path read with its :func:`host_columns`; a file that cannot be read raises
    :class:`MeasuredDataError` with one line."""
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


def is_knob_row(df: pd.DataFrame) -> pd.Series:
    """Rows of a knob grid (``lbsim measure --knobs``) measured at a non-default setting: a
    ``setting`` that does not end in ``/default`` or, without that column, a ``knob`` named."""
    if "setting" in df.columns:
        setting = df["setting"].fillna("").astype(str).str.strip()
        return (setting != "") & ~setting.str.endswith("/default")
    if "knob" in df.columns:
        return df["knob"].fillna("").astype(str).str.strip() != ""
    return pd.Series(False, index=df.index)


def default_settings_only(df: pd.DataFrame, source: str = "") -> pd.DataFrame:
    """``df`` without its knob rows (:func:`is_knob_row`): a cost model is fitted to the host
    as it is, never to a knob setting (those are what ``lbsim validate`` predicts).  Says so
    when it drops any."""
    knob = is_knob_row(df)
    if not knob.any():
        return df
    n = int(knob.sum())
    log.warning("%s: %d knob-setting rows left out of the fit (setting not <group>/default); "
                "%d default-setting rows kept", source or "measured data", n, len(df) - n)
    kept = df[~knob].reset_index(drop=True)
    # columns only the knob rows filled (the grid's setting, knob, counters ...) go with them
    only_knob = [c for c in kept.columns if kept[c].isna().all() and df[c].notna().any()]
    return kept.drop(columns=only_knob)


def load_measured(path: str | Path) -> Any:
    """The long-format measured CSV (see docs): one row per point, metric and repetition, at the
    host's default settings (knob rows dropped: :func:`default_settings_only`)."""
    df = default_settings_only(with_host_columns(pd.read_csv(path), path), str(path))
    need = {"transport", "workload", "placement", "msg_bytes", "metric", "value"}
    missing = need - set(df.columns)
    if missing:
        raise ValueError(f"{path}: missing columns {', '.join(sorted(missing))}")
    if "background" not in df.columns:
        df["background"] = "idle"
    return df


def kernel_fields(df: Any) -> dict[str, Any]:
    """SimConfig kernel fields the measured data fixes for every simulation of the fit (the
    kernel profile its release maps to, :func:`sim_kernel`, and the TCP congestion control, when
    the data names them)."""
    out: dict[str, Any] = {}
    if "kernel" in df.columns:
        profiles = {sim_kernel(k) for k in df["kernel"].dropna().astype(str).str.strip().unique() if k}
        if len(profiles) > 1:
            raise MeasuredDataError(f"column kernel: the rows come from {len(profiles)} kernel profiles "
                                    f"({', '.join(sorted(profiles))}); allowed: one, "
                                    "calibrate each kernel's data apart")
        if profiles:
            out["kernel"] = profiles.pop()
    if "tcp_congestion_control" in df.columns:
        vals = df["tcp_congestion_control"].dropna().astype(str).str.strip().unique()
        if len(vals) > 1:
            raise MeasuredDataError(f"column tcp_congestion_control: the rows mix {', '.join(sorted(vals))}; "
                                    "allowed: one, calibrate each congestion control's data apart")
        if len(vals):
            out["tcp_congestion_control"] = vals[0]
    return out


# --------------------------------------------------------------------------------------------
# a measured point and its simulation
# --------------------------------------------------------------------------------------------

def normalise(df: pd.DataFrame) -> pd.DataFrame:
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


def point_keys(df: pd.DataFrame) -> list[str]:
    """The columns that key a point in ``df``: POINT_KEYS and the PARAM_COLUMNS present."""
    return [*POINT_KEYS, *(c for c in PARAM_COLUMNS if c in df.columns)]


def sim_kernel(measured: Any) -> str:
    """A measured kernel string -> the lbsim kernel profile: exact lbsim names are used as they
    are (``linux-6.12``, ``linux-6.18``, ``linux-2.6.32``, ``host``); a release of 6.18 or later
    (``6.18.44-fc-v769``) gets ``linux-6.18``, anything else the default profile ``linux-6.12``."""
    s = "" if measured is None or (isinstance(measured, float) and math.isnan(measured)) else str(measured).strip()
    return s if s in (*KERNELS, "host") else release_profile(s).name


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


# --------------------------------------------------------------------------------------------
# point selection: medians of the ping-pong and split rows
# --------------------------------------------------------------------------------------------

PINGPONG_METRIC = "rtt_p50_us"
#: split points (one thread writes a message, then reads it): the two calls' medians
SPLIT_METRICS = ("write_p50_us", "read_p50_us")


@dataclass
class Point:
    """A ping-pong point: the median p50 round trip (us) over its repetitions and its spread."""

    transport: str
    placement: str
    background: str
    msg_bytes: int
    measured_us: float
    spread: float  # p90 / p50 - 1
    fitted: bool = False


def pingpong_points(df: Any, fit_sizes: Iterable[int]) -> list[Point]:
    """Every ping-pong point with both a p50 and a p90 (medians over repetitions); those at
    ``fit_sizes`` are marked fitted."""
    sizes = set(int(s) for s in fit_sizes)
    pp = df[df.workload == "pingpong"]
    med = pp.groupby(["transport", "placement", "background", "msg_bytes", "metric"])["value"].median()
    pts = []
    for (tr, pl, bg, n), _ in pp.groupby(["transport", "placement", "background", "msg_bytes"]):
        try:
            p50 = float(med[(tr, pl, bg, n, "rtt_p50_us")])
            p90 = float(med[(tr, pl, bg, n, "rtt_p90_us")])
        except KeyError:
            continue
        pts.append(Point(tr, pl, bg, int(n), p50, p90 / p50 - 1.0, fitted=int(n) in sizes))
    return pts


@dataclass
class SplitPoint:
    """A split point: the median write and read call (us) over its repetitions."""

    transport: str
    msg_bytes: int
    write_us: float
    read_us: float
    fitted: bool = False


def split_points(df: Any, fit_sizes: Iterable[int]) -> list[SplitPoint]:
    """The split rows (same CPU, idle): the write and the read call's medians per transport and size."""
    sizes = set(int(s) for s in fit_sizes)
    sp = df[(df.workload == "split") & (df.background == "idle") & (df.metric.isin(SPLIT_METRICS))]
    med = sp.groupby(["transport", "msg_bytes", "metric"])["value"].median()
    pts = []
    for (tr, n), _ in sp.groupby(["transport", "msg_bytes"]):
        try:
            w, r = float(med[(tr, n, "write_p50_us")]), float(med[(tr, n, "read_p50_us")])
        except KeyError:
            continue
        pts.append(SplitPoint(tr, int(n), w, r, fitted=at_fit_size(tr, int(n), sizes)))
    return pts


# --------------------------------------------------------------------------------------------
# error metrics
# --------------------------------------------------------------------------------------------

def error_pct(simulated: float, measured: float) -> float:
    """100 (simulated / measured - 1); NaN when the measured value is 0."""
    return 100.0 * (simulated / measured - 1.0) if measured != 0 else float("nan")


def log_error(simulated: float, measured: float) -> float:
    """log(simulated / measured): the residual the fit minimises (a 10 % error either way weighs
    about the same)."""
    return math.log(simulated / measured)


def mean_sq_log_error(pairs: Iterable[tuple[float, float]]) -> float:
    """The mean of log(simulated / measured) ** 2 over (simulated, measured) pairs."""
    return float(np.mean([math.log(s / m) ** 2 for s, m in pairs]))
