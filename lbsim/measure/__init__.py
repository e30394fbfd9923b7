"""Real-kernel measurements of loopback TCP/UDP vs UNIX-domain sockets.

``build_harness``/``run_harness`` compile and run the C microbenchmark
(``harness.c``); ``measure`` runs a grid and returns a long-format DataFrame;
``host_info`` describes the machine; ``write_csv`` stores results plus
``<path>.host.json``.

Modules: :mod:`.harness` (run the C harness; re-exports :mod:`.harness_base` names and
errors, :mod:`.harness_build` the compile cache, :mod:`.harness_fallback` and
:mod:`.harness_roles` the pure-Python fallback), :mod:`.host` (host description, grid,
CSV), :mod:`.stages` (per-stage tracepoint timing; :mod:`.stages_tracefs`,
:mod:`.stages_parse`, :mod:`.stages_intervals` behind it); `lbsim measure --stages-only` is its command.
Knob runs: :mod:`.knobs` (the registry), :mod:`.knob_grid` (grid files, interleaving),
:mod:`.knob_run` (running them), :mod:`.knob_journal` (global knobs), :mod:`.netns_run`
(the private network namespace) and :mod:`.knob_cli` (``lbsim measure --knobs``).
Library code logs to ``logging.getLogger("lbsim.measure")``.
"""

from .harness import (
    HarnessError,
    HarnessUnavailable,
    build_harness,
    python_fallback_pingpong,
    python_fallback_split,
    python_fallback_stream,
    run_harness,
)

_LAZY = {"host_info", "measure", "write_csv"}   # .host imports pandas: only when used


def __getattr__(name):   # PEP 562: `lbsim measure --help` need not import pandas
    if name in _LAZY:
        from . import host
        return getattr(host, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "build_harness",
    "run_harness",
    "measure",
    "host_info",
    "write_csv",
    "HarnessError",
    "HarnessUnavailable",
    "python_fallback_pingpong",
    "python_fallback_stream",
    "python_fallback_split",
]
