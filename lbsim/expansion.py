"""An experiment's runs: the product of its factors and zip groups, times its replications.

:func:`expand` turns a validated :class:`lbsim.experiment.Experiment` into
:class:`lbsim.experiment.RunSpec` s, each with a content-derived ``run_id``, a readable
``name`` and the seed of its replication.  See ``docs/guide/experiments.md``.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections.abc import Mapping
from typing import Any

from lbsim.config import STAGE_EDIT_FIELDS, ConfigError, SimConfig, make_config
from lbsim.experiment import Experiment, ExperimentError, RunSpec
from lbsim.jsonsafe import plain
from lbsim.kernels import kernel_profile

__all__ = ["expand", "replication_seeds", "run_id_for"]



def replication_seeds(seed: int, replications: int) -> list[int]:
    """One seed per replication: ``SeedSequence(seed).spawn(n)``, first 32-bit word of each.

    Every point of a replication shares its seed (common random numbers), so differences
    between points are not blurred by different random streams.
    """
    import numpy as np

    return [int(child.generate_state(1)[0]) for child in np.random.SeedSequence(seed).spawn(replications)]


def run_id_for(config: Mapping[str, Any], replication: int) -> str:
    """sha256 (first 16 hex digits) of the canonical JSON of the resolved config + replication.

    Depends only on the configuration (seed included) and the replication index: not on
    the lbsim version, the file's name or the order of its keys.
    """
    # stage edits left at their defaults are not part of the id: runs stored before the fields
    # existed keep their ids
    config = {k: v for k, v in config.items() if not (k in STAGE_EDIT_FIELDS and not v)}
    canon = json.dumps({"config": config, "replication": replication}, sort_keys=True, separators=(",", ":"),
                       allow_nan=True)
    return hashlib.sha256(canon.encode()).hexdigest()[:16]


def _raw_config(data: Mapping[str, Any]) -> dict[str, Any]:
    """The config as given on top of the defaults (for a run whose config cannot be built)."""
    out = {k: plain(f.get_default(call_default_factory=True)) for k, f in SimConfig.model_fields.items()}
    out.update({k: plain(v) for k, v in data.items()})
    return out


def _fmt_level(v: Any) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, float) and math.isfinite(v) and v == int(v) and abs(v) < 1e15:
        return f"{v:g}" if abs(v) < 1e6 else str(int(v))
    return json.dumps(plain(v), separators=(",", ":"))


def _skip_reason(cfg: SimConfig, given: Mapping[str, Any]) -> str:
    """Why a combination that builds is still not worth running ("" if it is)."""
    if "tso" in given and cfg.transport != "tcp":
        profile = kernel_profile(cfg.kernel).tso
        if cfg.tso != profile:
            return (f"tso={str(cfg.tso).lower()} only changes tcp; {cfg.transport} does not use lo's TSO "
                    f"(its run at the profile's tso={str(profile).lower()} is the one to compare)")
    return ""


def expand(exp: Experiment) -> list[RunSpec]:
    """The runs of an experiment, replication by replication, in product order.

    Pure: the same experiment always gives the same list (ids, names, seeds).  A
    combination whose configuration a transport cannot carry (``msg_bytes`` above the
    datagram limit, a TSO setting on udp/unix) becomes a ``skipped`` RunSpec with the
    reason; any other invalid combination raises :class:`ExperimentError`.
    """
    src = exp.path or "<experiment>"
    dims: list[tuple[tuple[str, ...], list[tuple[Any, ...]]]] = []
    for key, levels in exp.factors.items():
        dims.append(((key,), [(v,) for v in levels]))
    for group in exp.zips:
        keys = tuple(group)
        dims.append((keys, list(zip(*(group[k] for k in keys)))))
    varying = sorted(k for keys, levels in dims if len(levels) > 1 for k in keys if k != "transport")
    seeds = replication_seeds(exp.seed, exp.replications)

    points: list[tuple[dict[str, Any], str]] = []
    for combo in itertools.product(*(levels for _, levels in dims)):
        values: dict[str, Any] = {}
        for (keys, _), row in zip(dims, combo):
            values.update(zip(keys, row))
        given = {**exp.base, **values}
        transport = given.get("transport", SimConfig.model_fields["transport"].default)
        inner = ",".join(f"{k}={_fmt_level(values[k])}" for k in varying)
        points.append((given, f"{transport}[{inner}]" if inner else str(transport)))

    specs: list[RunSpec] = []
    seen: dict[str, str] = {}
    for rep, seed in enumerate(seeds):
        for given, label in points:
            data = {**given, "seed": seed}
            status, reason = "pending", ""
            try:
                cfg = make_config(data)
            except ConfigError as e:
                if "too large" not in str(e):
                    raise ExperimentError(f"{src}: point {label}: {e}") from None
                status, reason, config = "skipped", str(e), _raw_config(data)
            else:
                config = cfg.model_dump(mode="json")
                reason = _skip_reason(cfg, given)
                status = "skipped" if reason else "pending"
            rid = run_id_for(config, rep)
            if rid in seen:
                raise ExperimentError(f"{src}: points {seen[rid]} and {label} resolve to the same configuration")
            seen[rid] = label
            point = {k: given[k] for k in varying}
            specs.append(RunSpec(run_id=rid, name=f"{label}#r{rep}", experiment=exp.name, replication=rep,
                                 seed=seed, config=config, status=status, reason=reason, point=point))
    return specs
