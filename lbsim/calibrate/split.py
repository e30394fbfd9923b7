"""Which measured points the fit reads (*fitted*) and which it leaves to validation (*held out*),
decided from the points' keys alone, before anything is fitted.

A point is (transport, workload, placement, background, msg_bytes): all its metrics and
repetitions are fitted or held out together.  The rule (:data:`SPLIT_RULE`):

* ping-pong: fitted at the fit sizes (any placement and background);
* split: fitted at the fit sizes (UDP's 65507 B standing in for 65536 B), and the split points
  the page-allocator step is read from (:func:`lbsim.calibrate.pages.page_step`, which picks
  its sizes from the sizes measured, not from the values);
* stream (idle background): fitted at the stream sizes (the fit sizes and 1 MiB) for every
  transport across CPUs (the cache-line transfer and skb free read <= 4 KiB, the
  cache-to-cache copy >= 16 KiB) and for TCP on one CPU (its call/packet share reads <= 4 KiB,
  the out-of-cache copy >= 64 KiB); every other stream is held out;
* anything else: held out.

:func:`split_frame` cuts the measured frame in two by that rule; the fit steps get only the
fitted half (:func:`lbsim.calibrate.steps.select_points`), and the cost file records the rule
and the fitted points' keys for ``lbsim validate``."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from lbsim.calibrate.pages import page_step
from lbsim.fitdata import POINT_KEYS, SplitPoint, at_fit_size

#: the rule's name in the cost file's provenance (bump it when the rule changes)
SPLIT_RULE = "by-point-key-v1"
#: the largest stream write the stream steps read: a per-byte cost needs the far end (1 MiB)
STREAM_LARGE = 1 << 20

Key = tuple[str, str, str, str, int]


@dataclass(frozen=True)
class FitSplit:
    """The rule's parameters: the fit sizes (ping-pong, split) and the stream sizes."""

    fit_sizes: tuple[int, ...] = (64, 4096, 65536)
    stream_sizes: tuple[int, ...] | None = None  # None: the fit sizes and STREAM_LARGE

    @property
    def streams(self) -> tuple[int, ...]:
        if self.stream_sizes is not None:
            return tuple(sorted(int(s) for s in self.stream_sizes))
        return tuple(sorted({*(int(s) for s in self.fit_sizes), STREAM_LARGE}))

    def record(self, fitted: Iterable[Key]) -> dict[str, Any]:
        """The provenance entry: the rule, its parameters and the fitted points' keys."""
        return {"rule": SPLIT_RULE, "point_key": list(POINT_KEYS),
                "params": {"fit_sizes": sorted(int(s) for s in self.fit_sizes), "stream_sizes": list(self.streams)},
                "fitted_points": [list(k) for k in sorted(fitted)]}

    def fitted(self, keys: Iterable[Key]) -> set[Key]:
        """The keys among ``keys`` the rule fits."""
        keys = list(keys)
        sizes, streams = set(self.fit_sizes), set(self.streams)
        # the page step's split points: page_step picks sizes from the measured ones (dummy values)
        step = page_step([SplitPoint(tr, n, 0.0, 0.0) for tr, wl, pl, bg, n in keys
                          if wl == "split" and pl == "same" and bg == "idle"])
        page = {(tr, n) for tr in (step.transports if step else [])
                for n in ((step.below, step.above) if step else ())}
        out = set()
        for k in keys:
            tr, wl, pl, bg, n = k
            if wl == "pingpong":
                ok = at_fit_size(tr, n, sizes)
            elif wl == "split":
                ok = pl == "same" and bg == "idle" and (at_fit_size(tr, n, sizes) or (tr, n) in page)
            elif wl == "stream":
                ok = bg == "idle" and (pl == "cross" or tr == "tcp") and at_fit_size(tr, n, streams)
            else:
                ok = False
            if ok:
                out.add(k)
        return out


def point_key(row: Any) -> Key:
    """A row's (or a groupby key's) point key, normalised: stripped strings, an int size."""
    tr, wl, pl, bg, n = (row[c] for c in POINT_KEYS) if not isinstance(row, tuple) else row
    return (str(tr).strip(), str(wl).strip(), str(pl).strip(), str(bg).strip() if bg == bg else "idle", int(n))


def split_frame(df: Any, split: FitSplit) -> tuple[Any, Any, list[Key]]:
    """(the fitted rows, the held-out rows, the fitted keys, sorted) of the measured frame."""
    keys = [point_key(r) for r in df[list(POINT_KEYS)].itertuples(index=False, name=None)]
    fitted = split.fitted(set(keys))
    mask = [k in fitted for k in keys]
    inv = [not m for m in mask]
    return df[mask], df[inv], sorted(fitted)
