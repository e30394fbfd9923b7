"""Measured data -> fitted cost model.

The fit has two layers:

1. A *base* cost table: each stage's fixed cost, from kernel tracepoint intervals measured on
   the host (``lbsim.measure.stages``), split among the stages inside each interval by the
   rules in :func:`base_from_stage_intervals` (:mod:`.base`).  Stages that no measured path
   exercises get their cost from a stated rule (``SHARED_RULES``, :mod:`.params`).
2. The fit steps (:data:`FIT_STEPS`, :mod:`.steps`), run in order, each from the model the ones
   before it left: a bounded least-squares fit (SciPy ``least_squares``) of a few parameters
   against the measured ping-pong medians and the split medians (one thread writes a message,
   then reads it: the write and the read call apart, which tells the copy in from the copy
   out), using the model's zero-load (``deterministic``) paths: one scale per transport's own
   protocol stages, the per-byte cost of each copy, and the wake-up delays into an idle and
   into a busy CPU; the page-allocator costs from the split step across SKB_MAX_HEAD(0)
   (:mod:`.pages`); the spread (log-normal cv of the stages, and of the wake-up delays) fitted
   to the measured p90/p50 ratios by full simulation; then the costs the streams identify (TCP's
   per-call / per-packet share, the cross-CPU cache-line transfer, the skb free, the
   out-of-cache and the cache-to-cache copies) and the wake-up delays again (:mod:`.fits`).

The result is a cost-model JSON file with its provenance (host, kernel, data hash, fitted
subset, every fitted value with its bound and whether it sits there; :mod:`.output`), and
:func:`format_report`, the table ``lbsim calibrate`` prints.  The measured data is read by
:mod:`lbsim.fitdata`, which validation shares.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

# the public names, and the ones tests and notebooks import from here
from lbsim.calibrate.base import base_from_stage_intervals, cache_bytes_of, tracepoint_base  # noqa: F401
from lbsim.calibrate.fits import (  # noqa: F401
    BOUNCE_FAMILIES,
    BOUNCE_REFIT,
    C2C_MIN_BYTES,
    fit_cache_to_cache_copy,
    fit_cacheline_transfer,
    fit_cold_copy,
    fit_cv,
    fit_kfree_skb,
    fit_params,
    fit_tcp_call_share,
    grid_then_brent,
    refit_wakeups,
)
from lbsim.calibrate.output import METHOD, data_hash, format_report, write_cost_file  # noqa: F401
from lbsim.calibrate.pages import PAGE_STEP_MAX_GAP, PageStep, page_costs, page_step  # noqa: F401
from lbsim.calibrate.params import (  # noqa: F401
    COPY_STAGE,
    COPY_STAGES,
    FRAGMENT_PATH,
    NET_STAGES,
    PARAMS,
    SCHED_STAGES,
    SHARED_RULES,
    TCP_CALL_STAGES,
    TCP_PACKET_STAGES,
    TRANSPORT_STAGES,
    WAKEUP_DELAYS,
    X0,
    apply_params,
    at_bound,
    base_model,
    split_kfree_skb,
    with_cold_copies,
    with_delays,
    with_fragment_cost,
    with_pages,
    with_stage_fixed,
    with_stages,
    with_tcp_call_share,
)
from lbsim.calibrate.sim import sim_p50_us, sim_split_us, sim_stream_MBps  # noqa: F401
from lbsim.calibrate.split import SPLIT_RULE, FitSplit, split_frame  # noqa: F401
from lbsim.calibrate.steps import FIT_STEPS, FitResult, FitState, fit_costs, run_fit  # noqa: F401
from lbsim.fitdata import Point, SplitPoint, kernel_fields, load_measured, pingpong_points, split_points  # noqa: F401

__all__ = ["TRANSPORT_STAGES", "SHARED_RULES", "FitResult", "fit_costs", "load_measured", "PARAMS",
           "calibrate_from_files", "format_report", "FIT_STEPS", "run_fit", "FitState"]

# the old private names (tests import them)
_sim_p50_us, _sim_split_us, _sim_stream_MBps = sim_p50_us, sim_split_us, sim_stream_MBps
_refit_wakeups, _page_costs, _at_bound = refit_wakeups, page_costs, at_bound

log = logging.getLogger("lbsim.calibrate")


def calibrate_from_files(measured_csv: str | Path, stages_json: str | Path, out: str | Path,
                         fit_sizes: Iterable[int] = (64, 4096, 65536),
                         progress: Callable[[float], None] | None = None, *,
                         stream_sizes: Iterable[int] | None = None, df: Any = None) -> FitResult:
    """The whole calibration: base from tracepoints, fit to the measured grid's fitted points
    (:mod:`lbsim.calibrate.split`: ``fit_sizes``, ``stream_sizes``), write the file (the measured
    host is the data's ``.host.json`` beside the CSV, when there is one).  ``df``: the CSV as
    :func:`lbsim.fitdata.load_measured` already read it (the CLI checks it first), so that it is
    read, and its notices said, once."""
    if df is None:
        df = load_measured(measured_csv)
    stages: dict[str, Any] = json.loads(Path(stages_json).read_text())
    host_file = Path(str(measured_csv) + ".host.json")
    host = json.loads(host_file.read_text()) if host_file.exists() else None
    base, rules = tracepoint_base(stages, host)
    res = fit_costs(df, base, fit_sizes, progress=progress, stream_sizes=stream_sizes)
    frag = stages.get("ip_fragment")  # lbsim.measure.micro_ipfrag; no default point fragments, so after the fit
    if frag:
        res.model, res.stage_rules = with_fragment_cost(res.model, float(frag["per_fragment_ns"]),
                                                        int(frag["fragments"]))
    write_cost_file(res, out, df=df, fit_sizes=fit_sizes, base_source=f"{Path(stages_json).name}: " +
                    "; ".join(f"{k}: {v}" for k, v in rules.items()), host=host)
    log.info("wrote %s", out)
    return res

