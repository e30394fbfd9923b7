"""The fit's outputs: the cost-model JSON file with its provenance, and the text report of the
fitted values and residuals."""

from __future__ import annotations

import hashlib
import json
import platform
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lbsim.calibrate.ident import flagged, not_pinned
from lbsim.calibrate.params import PARAMS, SHARED_RULES
from lbsim.calibrate.steps import FitResult
from lbsim.fitdata import kernel_fields


def data_hash(df: Any) -> str:
    """The first 16 hex digits of the SHA-256 of the measured rows the fit reads (sorted)."""
    cols = ["transport", "workload", "placement", "msg_bytes", "metric", "value", "background"]
    text = df[cols].sort_values(cols).to_csv(index=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


#: how the values were fitted, for the provenance (the steps of lbsim.calibrate.steps.FIT_STEPS)
METHOD = ("bounded least squares (scipy.optimize.least_squares) of log(simulated/measured) ping-pong "
          "p50 round trips and split write/read medians (one thread writes, then reads: the copy in "
          "and the copy out apart) at the fit sizes, zero-load deterministic model with the data's TCP "
          "congestion control (simulated_with); the IP/lo path stages scaled together (scale_net); "
          "spread (log-normal cv) "
          "matched to the measured p90/p50; the cross-CPU cache-line transfer fitted to cross-CPU "
          "stream throughput at writes <= 4 KiB; the out-of-cache copy cost fitted to TCP same-CPU "
          "stream throughput at writes >= 64 KiB; the cache-to-cache copy cost fitted to cross-CPU stream "
          "throughput at writes >= 16 KiB; "
          "the cost of an AF_UNIX skb's page-allocator call (__alloc_pages in the write, __free_pages in the "
          "read) from the unix_stream split step across SKB_MAX_HEAD(0) (page_step_sizes; where those "
          "sizes are more than 256 B apart, less unix_dgram's growth between them), less the model's "
          "own step without them; then the cross-CPU wake-up delays fitted again to the "
          "cross-CPU ping-pong p50s at the fit sizes (Cauchy loss, scale 0.1), every stage cost final; "
          "cache_bytes = the measured host's L2 (l2_bytes in the data's .host.json, else this machine's); "
          "every step reads only the fitted points of fit_split (a rule on the point keys, applied before "
          "the fit; the other points are held out for lbsim validate)")


def write_cost_file(res: FitResult, path: str | Path, *, df: Any, fit_sizes: Iterable[int], base_source: str,
                    host: dict[str, Any] | None = None) -> None:
    """Write the fitted model to ``path`` with its provenance: the measured host (its
    ``.host.json``; None: this machine), the data's hash, the fit sizes, the base's rules
    (``base_source``), the method and every fitted value with its bound."""
    data = res.model.to_dict()
    # named after the measured machine (the data's .host.json), not the one running the fit
    if host is None:
        node, kernel = platform.node() or "host", platform.release()
    else:
        uname = str(host.get("uname") or "").split()
        node, kernel = (uname[1] if len(uname) > 1 else "host"), host.get("kernel") or "unknown kernel"
    data["name"] = f"calibrated on {node} ({kernel})"
    data["provenance"] = {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": host or {"kernel": platform.release(), "machine": platform.machine(),
                         "note": "no .host.json beside the data: the machine that ran the fit"},
        "data_sha256_16": data_hash(df),
        "fit_sizes": sorted(int(s) for s in fit_sizes),
        "fit_split": res.split,
        "simulated_with": kernel_fields(df),
        "base": base_source,
        "method": METHOD,
        "params": {k: {"value": v, "bounds": list(PARAMS[k][:2]) if k in PARAMS else None,
                       "at_bound": k in res.bounds_hit} for k, v in res.params.items()},
        "unidentified": res.unidentified,
        "identifiability": {"not_pinned": not_pinned(res.identifiability),
                            "at_bound_or_grid_point": flagged(res.identifiability),
                            "checks": res.identifiability,
                            "how": "lbsim.calibrate.ident: least-squares values by the Jacobian's standard errors, "
                                   "one-value fits by a two-sided error profile"},
        "page_step_sizes": res.page_step_sizes,
        "page_step_transports": res.page_step_transports,
        "rules": {k: res.stage_rules.get(k, f"= {v[0]}: {v[1]}") for k, v in SHARED_RULES.items()},
    }
    Path(path).write_text(json.dumps(data, indent=1, sort_keys=False) + "\n")


def _signed(v: float | None) -> str:
    return "bound" if v is None else f"{v:+.4f}"


def identifiability_lines(checks: dict[str, dict[str, Any]]) -> list[str]:
    """What the data pin down (:mod:`lbsim.calibrate.ident`), one line per fitted value checked."""
    if not checks:
        return []
    lines = ["identifiability (lbsim.calibrate.ident):"]
    for k, r in checks.items():
        how = (f"sd {r['sd']:.4g} ({100 * r['rel_sd']:.0f} %)" if r["method"] == "jacobian" else
               f"rms log error {r['rms_log_error']:.4f}, {_signed(r['rise_below'])} / {_signed(r['rise_above'])} at "
               f"-/+{r['step']:.4g}"
               if r["method"] == "profile" else "grid")
        flags = "".join(f"  {f.upper().replace('_', ' ')}" for f in ("at_bound", "at_grid_point")
                        if r.get(f) and not (f == "at_grid_point" and r["method"] == "grid"))
        lines.append(f"  {k:34s} {r['status']:36s} {how}{flags}")
    return lines


def format_report(res: FitResult) -> str:
    """The fitted values (with their bounds, and which sit there), the parameters the data does
    not identify, and every residual (fitted points first), as ``lbsim calibrate`` prints them."""
    lines = []
    for k, v in res.params.items():
        lo_hi = PARAMS.get(k)
        bound = f"  bounds {lo_hi[0]:g}..{lo_hi[1]:g}" if lo_hi else ""
        lines.append(f"{k:34s} {v:12.4f}{bound}{'  AT BOUND' if k in res.bounds_hit else ''}")
    if res.unidentified:
        lines.append("not identified by the data: " + ", ".join(res.unidentified))
    lines += identifiability_lines(res.identifiability)
    lines.append(f"{'point':60s} {'measured':>9s} {'simulated':>9s} {'error':>7s}")
    for r in sorted(res.residuals, key=lambda r: (not r["fitted"], r["transport"], r["placement"], r["msg_bytes"])):
        name = (f"{r['metric']} {r['transport']} {r['placement']}/{r['background']} {r['msg_bytes']} B"
                f"{' (fit)' if r['fitted'] else ''}")
        lines.append(f"{name:44s} {r['measured_us']:9.2f} {r['simulated_us']:9.2f} {r['error_pct']:6.1f}%")
    return "\n".join(lines)
