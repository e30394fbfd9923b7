"""Input checks of measured data: one line naming the file, the CSV line and the column of the
first thing ``lbsim validate`` cannot compare (see ``docs/measured-data.md``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from lbsim.config import TRANSPORTS, ConfigError, make_config
from lbsim.fitdata import (
    BACKGROUNDS,
    METRIC_ORDER,
    METRICS,
    PLACEMENTS,
    POLICIES,
    REQUIRED_COLUMNS,
    WORKLOADS,
    MeasuredDataError,
    normalise,
    point_keys,
    sim_fields,
)
from lbsim.model.tcp_cc import CONGESTION_CONTROLS


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
    norm = normalise(df)
    keys = point_keys(norm)
    for _, grp in norm.groupby(keys, dropna=False, sort=False):
        i = int(grp.index[0])
        try:
            make_config(sim_fields(grp.iloc[0]))
        except ConfigError as e:
            r = grp.iloc[0]
            raise MeasuredDataError(f"{_where(source, i, csv_lines)}: {r['transport']} {r['workload']} "
                                    f"msg_bytes={r['msg_bytes']}: {e}") from None
