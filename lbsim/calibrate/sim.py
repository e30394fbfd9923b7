"""The model's zero-load (deterministic) simulations the fit compares with measured points:
a ping-pong's p50 round trip, a split's write and read call, a stream's throughput.  Each runs
with the kernel fields of the data being fitted (:data:`KERNEL`, set by the fit's driver)."""

from __future__ import annotations

import contextvars
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import numpy as np

from lbsim.config import make_config
from lbsim.costs import CostModel
from lbsim.fitdata import Point, error_pct
from lbsim.model.host import run_model, side_busy

#: the kernel fields of the data being fitted (set by fit_costs for the simulations it runs)
KERNEL: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    "lbsim_calibrate_kernel", default=MappingProxyType({}))  # read-only: a shared default must not be mutated


def sim_p50_us(model: CostModel, pt: Point, *, deterministic: bool, messages: int,
               seed: int = 0) -> tuple[float, float]:
    """The model's ping-pong p50 round trip (us) at ``pt`` and its p90 / p50 - 1; a
    deterministic run drops its first 4 round trips (the connection's start)."""
    cfg = make_config(transport=pt.transport, workload="pingpong", msg_bytes=pt.msg_bytes, messages=messages,
                      placement=pt.placement, background=[1] if pt.background == "busy" else "idle",
                      deterministic=deterministic, seed=seed, **KERNEL.get())
    raw = run_model(cfg, model)
    samples = raw["latency_samples"]
    tail = samples[min(len(samples) - 1, 4):] if deterministic else samples
    p50, p90 = np.percentile(tail, [50, 90])
    return float(p50) / 1e3, float(p90 / p50 - 1.0)


def sim_split_us(model: CostModel, transport: str, n: int, messages: int = 64) -> tuple[float, float]:
    """The model's write and read call (median, us) of the split workload, zero-load path: 64 calls
    each, past TCP's quick-ACK budget of a new connection (16), as after the harness's warm-up."""
    cfg = make_config(transport=transport, workload="split", msg_bytes=n, messages=messages, deterministic=True,
                      **KERNEL.get())
    c = run_model(cfg, model)["counters"]
    return c["split_write_p50_ns"] / 1e3, c["split_read_p50_ns"] / 1e3


def _stream_config(transport: str, placement: str, size: int, messages: int | None) -> Any:
    """A deterministic stream's config with the data's kernel fields; by default about 32 MB of
    writes (50 to 2000 of them)."""
    if messages is None:
        messages = max(50, min(2000, (32 << 20) // size))
    return make_config(transport=transport, workload="stream", msg_bytes=size, messages=messages,
                       placement=placement, deterministic=True, **KERNEL.get())


def sim_stream_MBps(model: CostModel, transport: str, placement: str, size: int,
                     messages: int | None = None) -> float:
    """Deterministic stream throughput (MB/s); by default about 32 MB of writes."""
    cfg = _stream_config(transport, placement, size, messages)
    return float(run_model(cfg, model)["throughput"]["bytes_per_s"]) / 1e6


def sim_stream_sides(model: CostModel, transport: str, size: int, messages: int | None = None,
                     ) -> tuple[float, float, float]:
    """A deterministic cross-CPU stream (as :func:`sim_stream_MBps`): its messages per second and
    the busy share of the writer's and the reader's CPU (the harness's ``cpu_busy_sender`` and
    ``cpu_busy_receiver``)."""
    cfg = _stream_config(transport, "cross", size, messages)
    raw = run_model(cfg, model)
    sides = side_busy(cfg, raw["cpu"])
    assert sides is not None  # placement "cross": one CPU per side
    return float(raw["throughput"]["msgs_per_s"]), *sides


def residual_row(metric: str, transport: str, placement: str, background: str, msg_bytes: Any, measured: Any,
                 simulated: float, fitted: bool) -> dict[str, Any]:
    """A residual row of the fit's report (``measured_us`` and ``simulated_us`` are MB/s for a
    throughput)."""
    return {"transport": transport, "placement": placement, "background": background, "msg_bytes": int(msg_bytes),
            "measured_us": float(measured), "simulated_us": simulated,
            "error_pct": error_pct(simulated, float(measured)),
            "fitted": fitted, "metric": metric}


def stream_row(transport: str, placement: str, msg_bytes: Any, measured: Any, simulated: float) -> dict[str, Any]:
    """A residual row of a fitted stream point (idle background, MB/s)."""
    return residual_row("throughput_MBps", transport, placement, "idle", msg_bytes, measured, simulated, True)
