"""The journal of the global knobs a knob measurement changes.

Global knobs (``net.core.netdev_max_backlog``, ``dev_weight``, ``netdev_budget``,
``rps_sock_flow_entries``: net/core/sysctl_net_core.c ``net_core_table``, one value for the
whole host) are changed only through :class:`KnobJournal`: the value found is written to the
journal (``$XDG_STATE_HOME/lbsim/knob-journal.json``, default ``~/.local/state/lbsim/...``)
*before* the knob is changed, and restored on exit, on an error and on SIGINT/SIGTERM; the
journal is then cleared.  A SIGKILL leaves the journal behind: the next run refuses to start
(:class:`StaleJournal`, one line naming the knob) until ``lbsim measure --restore-knobs``
(:func:`restore_knobs`) puts the values back.

The ``/proc/sys`` root is injectable: tests run all of this on a fake tree.
"""

from __future__ import annotations

import json
import logging
import os
import signal
from pathlib import Path

from .knobs import PROC_SYS, Value, read_sysctl, write_sysctl

__all__ = ["KnobJournal", "StaleJournal", "journal_path", "restore_knobs", "check_journal"]

_log = logging.getLogger("lbsim.measure")


class StaleJournal(RuntimeError):
    """A global knob is still changed from the value found before an earlier run."""


def journal_path() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "lbsim" / "knob-journal.json"


def _load(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise StaleJournal(f"{path}: unreadable knob journal ({e}); check the knobs and remove it") from e
    return data.get("knobs", {}) if isinstance(data, dict) else {}


def _stale(knobs: dict, proc_sys: Path) -> list:
    """The journal's knobs whose value now differs from the one found before the run."""
    return [n for n, e in knobs.items() if read_sysctl(n, proc_sys) != e["found"]]


def check_journal(path: Path | None = None, proc_sys: Path = PROC_SYS) -> None:
    """Raise StaleJournal if a journaled global knob is still changed; clear a journal whose
    knobs are all back at their found values."""
    path = Path(path) if path else journal_path()
    knobs = _load(path)
    stale = _stale(knobs, proc_sys)
    if stale:
        n = stale[0]
        raise StaleJournal(f"global knob {n} is {read_sysctl(n, proc_sys)}, not the "
                           f"{knobs[n]['found']} found before an interrupted run; "
                           "run lbsim measure --restore-knobs")
    if knobs:
        path.unlink(missing_ok=True)


def restore_knobs(path: Path | None = None, proc_sys: Path = PROC_SYS) -> list:
    """Put every journaled global knob back to the value found before its run; clear the
    journal.  Returns ``[(name, found), ...]`` of the knobs written."""
    path = Path(path) if path else journal_path()
    knobs = _load(path)
    done = []
    for name, e in knobs.items():
        if read_sysctl(name, proc_sys) != e["found"]:
            write_sysctl(name, e["found"], proc_sys)
            done.append((name, e["found"]))
    path.unlink(missing_ok=True)
    return done


class KnobJournal:
    """Change global knobs, restoring them on exit, error, SIGINT and SIGTERM.

    ``with KnobJournal() as j: j.set("net.core.netdev_max_backlog", 10); ...``
    Entering refuses a stale journal (:func:`check_journal`).
    """

    def __init__(self, path: Path | None = None, proc_sys: Path = PROC_SYS):
        self.path = Path(path) if path else journal_path()
        self.proc_sys = Path(proc_sys)
        self.found: dict[str, Value] = {}
        self._old_handlers: dict = {}

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"proc_sys": str(self.proc_sys), "pid": os.getpid(),
                                   "knobs": {n: {"found": v} for n, v in self.found.items()}},
                                  indent=1) + "\n")
        os.replace(tmp, self.path)

    def set(self, name: str, value: Value) -> None:
        """Set global sysctl ``name``; its found value is journaled first."""
        if name not in self.found:
            cur = read_sysctl(name, self.proc_sys)
            if cur is None:
                raise OSError(f"sysctl {name} not found under {self.proc_sys}")
            self.found[name] = cur
            self._write()   # on disk before the knob changes
        write_sysctl(name, value, self.proc_sys)

    def restore(self) -> None:
        """Write back every found value (idempotent), then clear the journal."""
        for name, v in list(self.found.items()):
            try:
                if read_sysctl(name, self.proc_sys) != v:
                    write_sysctl(name, v, self.proc_sys)
            except OSError as e:   # keep the journal: --restore-knobs can retry
                _log.error("cannot restore %s to %s: %s", name, v, e)
                return
        self.found.clear()
        self.path.unlink(missing_ok=True)

    def _on_signal(self, signum, _frame):
        self.restore()
        raise SystemExit(128 + signum)

    def __enter__(self) -> KnobJournal:
        check_journal(self.path, self.proc_sys)
        for s in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old_handlers[s] = signal.signal(s, self._on_signal)
            except ValueError:   # not the main thread: try/finally still restores
                pass
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.restore()
        finally:
            for s, h in self._old_handlers.items():
                signal.signal(s, h)
            self._old_handlers.clear()
