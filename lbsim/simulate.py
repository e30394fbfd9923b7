"""config -> model -> run -> result: the one entry point everything above calls."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lbsim.config import SimConfig, make_config
from lbsim.costs import CostModel, apply_stage_edits
from lbsim.model.host import run_model, side_busy
from lbsim.model.stages import STAGE_GROUP
from lbsim.profiles import choice_of_model, resolve_run

__all__ = ["simulate", "Result"]


@dataclass
class Result:
    """What one simulation produced.  Times in ns unless the key says ``_us``."""

    config: SimConfig
    status: str
    message: str
    latency_kind: str
    latency_ns: dict[str, float]
    throughput: dict[str, float]
    counters: dict[str, Any]
    stages: list[dict[str, Any]]
    cpu: list[dict[str, Any]]
    sim_time_ns: float
    elapsed_ns: float
    wall_s: float
    costs_name: str
    costs_hash: str
    trace: list[tuple[Any, ...]] | None = None
    latency_samples_ns: np.ndarray = field(default_factory=lambda: np.empty(0))
    #: the cost profile used (lbsim.profiles) and, in a few words, why
    costs_profile: str = ""
    costs_how: str = ""

    @property
    def costs_label(self) -> str:
        """``amd-epyc-v1300-2026-12-06 (auto: same CPU and kernel)``"""
        return f"{self.costs_profile} ({self.costs_how})" if self.costs_how else self.costs_profile

    def side_busy(self) -> tuple[float, float] | None:
        """(sender, receiver) busy shares (:func:`lbsim.model.host.side_busy`)."""
        return side_busy(self.config, self.cpu)

    @property
    def latency_us(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.latency_kind}
        for key in ("mean", "p50", "p90", "p99", "p999"):
            out[key] = self.latency_ns[key] / 1000.0
        out["count"] = self.latency_ns["count"]
        return out

    def conservation(self) -> dict[str, Any]:
        """sent = delivered + dropped + in flight, each counted where it happens."""
        c = self.counters
        if c["bytes_in_flight"] is not None:
            lhs, rhs = c["bytes_sent"], c["bytes_delivered"] + c["bytes_in_flight"]
            unit = "bytes"
        else:
            lhs, rhs = c["messages_sent"], c["messages_delivered"] + c["messages_dropped"] + c["messages_in_flight"]
            unit = "messages"
        return {"unit": unit, "sent": lhs, "accounted": rhs, "ok": lhs == rhs}

    def to_dict(self) -> dict[str, Any]:
        return {
            "config": self.config.model_dump(mode="json"),
            "status": self.status,
            "message": self.message,
            "latency_us": self.latency_us,
            "throughput": dict(self.throughput),
            "counters": self.counters,
            "stages": [dict(r, group=STAGE_GROUP[r["stage"]]) for r in self.stages],
            "cpu": self.cpu,
            "conservation": self.conservation(),
            "sim_time_ns": self.sim_time_ns,
            "wall_s": self.wall_s,
            "costs": {"name": self.costs_name, "hash": self.costs_hash, "how": self.costs_how},
            "costs_profile": self.costs_profile,
            "stage_edits": self.config.stage_edits(),
        }

    def trace_frame(self) -> Any:
        """The trace as a pandas DataFrame (needs ``trace=True``)."""
        import pandas as pd

        if self.trace is None:
            raise ValueError("this run kept no trace; simulate with trace=True")
        return pd.DataFrame(self.trace, columns=["msg", "stage", "cpu", "context", "start_ns", "end_ns", "kind"])


def simulate(config: SimConfig | dict[str, Any] | None = None, *, costs: CostModel | str | os.PathLike | None = None,
             **overrides: Any) -> Result:
    """Run one simulation.  ``config`` is a SimConfig or a dict of its fields.  ``costs`` is a
    loaded CostModel, or the config's ``costs`` field (``"auto"``, the profile of this host, by
    default; ``"default"``, a profile name or a cost-file path: see :func:`lbsim.profiles.resolve`)."""
    if isinstance(costs, (str, os.PathLike)):
        overrides["costs"] = os.fspath(costs)
        costs = None
    if config is None or isinstance(config, dict):
        cfg = make_config(config or {}, **overrides)
    else:
        cfg = config.model_copy(update=overrides) if overrides else config
        if overrides:
            cfg = make_config(cfg.model_dump())
    # resolved once per run (auto: the profile of this host, see lbsim.profiles), not per event
    model, choice = (costs, choice_of_model(costs)) if costs is not None else resolve_run(cfg.costs)
    if cfg.stage_scale or cfg.stage_cost or cfg.stage_remove:
        model = apply_stage_edits(model, cfg.stage_scale, cfg.stage_cost, cfg.stage_remove)
    t0 = time.perf_counter()
    raw = run_model(cfg, model)
    wall = time.perf_counter() - t0
    return Result(
        config=cfg, status=raw["status"], message=raw["message"], latency_kind=raw["latency_kind"],
        latency_ns=raw["latency"], throughput=raw["throughput"], counters=raw["counters"],
        stages=raw["stages"], cpu=raw["cpu"], sim_time_ns=raw["sim_time_ns"], elapsed_ns=raw["elapsed_ns"],
        wall_s=wall, costs_name=model.name, costs_hash=model.hash, trace=raw["trace"],
        latency_samples_ns=raw["latency_samples"], costs_profile=choice.name, costs_how=choice.how,
    )
