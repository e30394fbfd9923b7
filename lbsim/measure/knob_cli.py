"""The knob options of ``lbsim measure`` (``--knobs FILE``, ``--knob NAME=V1,V2``, ``--quick``,
``--restore-knobs``): :func:`add_arguments` adds them to the measure subcommand's parser and
:func:`run` handles them (it returns None when none was given, so plain ``lbsim measure``
goes on as before).  Bad knob names and values raise :class:`KnobUsageError`: one line
naming the knob and what is allowed (the CLI exits 2 on it).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from .knob_grid import GridError, grid_from_specs, load_grid
from .knob_journal import StaleJournal, restore_knobs
from .knobs import KNOBS

__all__ = ["add_arguments", "run", "KnobUsageError"]

_log = logging.getLogger("lbsim.measure")


class KnobUsageError(ValueError):
    """A bad knob option (exit 2), or a stale journal (one line, exit 2)."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("kernel knobs (root: per-namespace knobs in a private network "
                             "namespace, global ones journaled and restored)")
    g.add_argument("--knobs", metavar="FILE",
                   help="measure the knob grid FILE (e.g. knobs/default.toml): each knob value "
                        "interleaved with the host's default; writes --out")
    g.add_argument("--knob", action="append", default=[], metavar="NAME=V1,V2",
                   help="measure one knob's values against its default (repeatable; tcp_rmem/"
                        f"tcp_wmem values split by ';'); knobs: {', '.join(KNOBS)}")
    g.add_argument("--quick", action="store_true",
                   help="with --knobs: the grid file's [quick] variant (a few settings, < 30 s)")
    g.add_argument("--restore-knobs", action="store_true",
                   help="restore the global knobs an interrupted knob run left changed "
                        "(from the journal in $XDG_STATE_HOME/lbsim) and exit")


def run(a: argparse.Namespace, out: str = "measured.csv", emit=print, progress=None, points=None):
    """Handle the knob options; None if none of them was given, else the exit status.
    ``points``: the run points of ``--knob`` (transports, workloads, sizes, placements)."""
    if getattr(a, "restore_knobs", False):
        done = restore_knobs()
        for name, v in done:
            emit(f"restored {name} = {v}")
        if not done:
            emit("no global knob to restore")
        return 0
    if not (getattr(a, "knobs", None) or getattr(a, "knob", None)):
        return None
    from .host import write_csv
    from .knob_run import run_grid
    try:
        grid = (load_grid(a.knobs, quick=a.quick) if a.knobs else
                grid_from_specs(a.knob, reps=getattr(a, "reps", 2) or 2, **(points or {})))
        partial = Path(str(out) + ".part")
        partial.unlink(missing_ok=True)
        df = run_grid(grid, progress=progress or _log.info, partial=partial)
    except (GridError, StaleJournal) as e:
        raise KnobUsageError(str(e)) from None
    path = write_csv(df, Path(out))
    partial.unlink(missing_ok=True)  # the whole grid is in OUT now
    emit(f"wrote {len(df)} rows ({df['setting'].nunique() if len(df) else 0} settings) to {path}")
    return 0
