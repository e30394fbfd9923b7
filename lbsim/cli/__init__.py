"""Command line: thin; parses arguments and calls one library function per command.

``lbsim COMMAND`` and ``python -m lbsim COMMAND`` are the same program.  Commands:
simulate, compare, trace (:mod:`lbsim.cli.sim`), whatif (:mod:`lbsim.cli.whatif`), run, plot
(:mod:`lbsim.cli.experiments`),
measure, calibrate, validate (:mod:`lbsim.cli.host`), profiles (:mod:`lbsim.cli.profiles`).

Exit status: 0 ok; 1 the command ran but its result failed (a simulation stopped at
max_sim_time_ns, ``validate --max-error`` exceeded, runs of ``lbsim run`` failed), or an
internal error (a bug: the traceback is printed); 2 bad input (one line on stderr naming the
field or file and what is allowed); 130 interrupted (Ctrl-C).

Only this package prints: results on stdout, status on stderr.  Library modules log to the
``lbsim`` logger, which :func:`main` sends to stderr (``-q`` quieter, ``-v`` louder).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from lbsim.cli._common import InputError, Parser, add_verbosity
from lbsim.config import ConfigError
from lbsim.costs import CostFileError

__all__ = ["main", "build_parser", "InputError"]


def build_parser() -> argparse.ArgumentParser:
    from lbsim import __version__
    from lbsim.cli import experiments, host, profiles, sim, whatif

    p = Parser(prog="lbsim", description="Discrete-event model of Linux loopback vs UNIX domain sockets")
    p.add_argument("--version", action="version", version=f"lbsim {__version__}",
                   help="print the version and exit")
    add_verbosity(p, top=True)
    parent = Parser(add_help=False)
    add_verbosity(parent, top=False)
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser, metavar="COMMAND")
    sim.add_commands(sub, parent)
    whatif.add_commands(sub, parent)
    experiments.add_commands(sub, parent)
    host.add_commands(sub, parent)
    profiles.add_commands(sub, parent)
    return p


class _StderrHandler(logging.StreamHandler):
    """Writes to the sys.stderr of the moment (tests swap it), one message per line."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)
        self.setFormatter(logging.Formatter("%(message)s"))

    @property
    def stream(self):  # noqa: ANN201
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:  # noqa: ANN001
        pass


def _logging(quiet: int, verbose: int) -> tuple[logging.Logger, logging.Handler, int, bool]:
    """The "lbsim" logger to stderr: INFO by default, -q WARNING, -qq ERROR, -v DEBUG."""
    logger = logging.getLogger("lbsim")
    handler = _StderrHandler()
    old = (logger.level, logger.propagate)
    level = logging.INFO + 10 * min(quiet, 2) - 10 * min(verbose, 1)
    logger.setLevel(level)
    logger.propagate = False
    logger.addHandler(handler)
    return logger, handler, old[0], old[1]


def _error(message: str) -> None:
    """Bad input: exactly one line on stderr."""
    print(f"lbsim: error: {' '.join(str(message).split())}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    import signal

    # `lbsim ... | head` ends quietly, as other tools do; restored afterwards, so that callers
    # of main() (and processes they fork) keep Python's own SIGPIPE handling
    old = signal.signal(signal.SIGPIPE, signal.SIG_DFL) if hasattr(signal, "SIGPIPE") else None
    logger = handler = None
    try:
        args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
        logger, handler, level, propagate = _logging(args.quiet, args.verbose)
        return int(args.func(args))
    except (InputError, ConfigError, CostFileError) as e:
        _error(str(e))
        return 2
    except KeyboardInterrupt:
        print("lbsim: interrupted", file=sys.stderr)
        return 130
    finally:
        if logger is not None and handler is not None:
            logger.removeHandler(handler)
            logger.setLevel(level)
            logger.propagate = propagate
        if old is not None:
            signal.signal(signal.SIGPIPE, old)
