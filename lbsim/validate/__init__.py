"""Measured data -> how close the model comes: per point, per metric, and in transport order.

For every measured point of a long-format CSV (see ``docs/measured-data.md``) the model is
run once with the same transport, workload, placement, background load and message size
(and the optional ``policy``, ``mtu``, ``cpus``, ``kernel`` columns), and each metric present
in both is compared::

    lbsim validate lbsim/data/measured-host.csv [--costs FILE] [--max-error PCT] [--json]

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

Modules: :mod:`lbsim.fitdata` (reading the data, a point's simulation settings, shared with
calibration), :mod:`.checks` (input checks), :mod:`.compare` (the simulations and the
comparison), :mod:`.report` (the report's verdict, JSON and tables), and here
:func:`run_validation`, what ``lbsim validate`` runs: exit status 0 ok, 1 ``max_error`` given
and exceeded; bad input raises one of :data:`INPUT_ERRORS` with one line naming the file, the
line and the column (status 2).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from lbsim.config import ConfigError
from lbsim.costs import CostFileError, CostModel, load_costs

# the helpers below lived here before lbsim.fitdata; re-exported for code that imports them from here
from lbsim.fitdata import (  # noqa: F401
    METRICS,
    PARAM_COLUMNS,
    REQUIRED_COLUMNS,
    MeasuredDataError,
    at_fit_size,
    host_columns,
    sim_fields,
    sim_kernel,
    stream_messages,
    with_host_columns,
)
from lbsim.measure.host import STREAM_BYTES
from lbsim.validate.checks import check_measured
from lbsim.validate.compare import STREAM_REPLICATIONS, order_check, summarise, validate  # noqa: F401
from lbsim.validate.report import HEADLINE, ValidationReport  # noqa: F401

__all__ = ["validate", "ValidationReport", "check_measured", "MeasuredDataError", "REQUIRED_COLUMNS",
           "PARAM_COLUMNS", "METRICS", "run_validation", "ValidationOutcome", "OptionError", "INPUT_ERRORS",
           "check_options", "parse_fit_sizes"]

log = logging.getLogger("lbsim.validate")


class OptionError(ValueError):
    """A bad option value of a validation run: the message is one line naming the option."""


#: what :func:`run_validation` raises for bad input (the command's exit status 2)
INPUT_ERRORS = (OptionError, MeasuredDataError, CostFileError, ConfigError)


def check_options(*, messages_pingpong: int = 1000, stream_bytes: int = STREAM_BYTES, seed: int = 1,
                  stream_replications: int = STREAM_REPLICATIONS, max_error: float | None = None) -> None:
    """Raise :class:`OptionError` unless the run's settings are usable (named as the command's
    options)."""
    if messages_pingpong < 1 or stream_bytes < 1 or seed < 0 or stream_replications < 1:
        raise OptionError("--messages-pingpong, --stream-bytes and --stream-replications must be >= 1, "
                          "--seed >= 0")
    if max_error is not None and not (max_error >= 0):
        raise OptionError(f"--max-error {max_error}: need a percentage >= 0")


def parse_fit_sizes(text: str | None) -> list[int] | None:
    """``"64,4096"`` -> ``[64, 4096]``; None stays None (the cost file's own fit sizes)."""
    if text is None:
        return None
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise OptionError(f"--fit-sizes {text!r}: need comma-separated integers") from None


@dataclass
class ValidationOutcome:
    """What a validation run gives the command line: the report, the text for stdout (the table,
    or one JSON line) and the exit status (0 ok, 1 ``max_error`` given and exceeded)."""

    report: ValidationReport
    output: str
    exit_code: int


def run_validation(measured: pd.DataFrame | str | Path, costs: str | CostModel = "default", *,
                   max_error: float | None = None, fit_sizes: str | Iterable[int] | None = None,
                   messages_pingpong: int = 1000, stream_bytes: int = STREAM_BYTES, seed: int = 1,
                   stream_replications: int = STREAM_REPLICATIONS, as_json: bool = False,
                   figure: str | Path | None = None,
                   progress: Callable[[str], None] | None = None) -> ValidationOutcome:
    """``lbsim validate``: check the settings, :func:`validate`, draw ``figure`` (PNG or SVG by
    extension) when given, and format the report (``as_json``: one JSON object; else the table,
    with the verdict when ``max_error`` is given).  ``fit_sizes`` may be the option's text
    (``"64,4096"``).  Bad input raises one of :data:`INPUT_ERRORS`."""
    check_options(messages_pingpong=messages_pingpong, stream_bytes=stream_bytes, seed=seed,
                  stream_replications=stream_replications, max_error=max_error)
    sizes = parse_fit_sizes(fit_sizes) if isinstance(fit_sizes, str) else fit_sizes
    model = costs if isinstance(costs, CostModel) else load_costs(costs)
    rep = validate(measured, model, fit_sizes=sizes, messages_pingpong=messages_pingpong,
                   stream_bytes=stream_bytes, seed=seed, stream_replications=stream_replications, progress=progress)
    if figure:
        from lbsim.plots import validation_figure

        validation_figure(rep.rows).savefig(figure, dpi=110)
        log.info("wrote %s", figure)
    output = json.dumps(rep.to_dict(max_error)) if as_json else rep.format_table(max_error)
    failed = max_error is not None and not rep.passes(max_error)
    return ValidationOutcome(report=rep, output=output, exit_code=1 if failed else 0)

