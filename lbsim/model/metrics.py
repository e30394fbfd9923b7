"""Measurements of a run: latency tallies, message accounting, blocked time.

Two kinds of measurement (as in salabim's monitors): a *tally* of latency samples kept in
a preallocated NumPy array (grown by doubling only if a run produces more samples than
planned), and plain counters.  Message conservation is counted where things happen:
``sent`` at the send call, ``delivered`` at the receive call that completes a message,
``dropped`` at the drop site (backlog, socket buffer, TCP backlog); ``in_flight`` is
counted at the end by reading the queues (see ``Host.in_flight``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["Tally", "FlowDir", "RunStats"]


class Tally:
    """Latency samples (ns) in a preallocated array."""

    __slots__ = ("a", "n")

    def __init__(self, capacity: int) -> None:
        self.a = np.empty(max(16, capacity), dtype=np.float64)
        self.n = 0

    def add(self, x: float) -> None:
        n = self.n
        if n == len(self.a):
            self.a = np.concatenate([self.a, np.empty(len(self.a), dtype=np.float64)])
        self.a[n] = x
        self.n = n + 1

    def values(self) -> np.ndarray:
        return self.a[: self.n]

    def summary(self) -> dict[str, float]:
        v = self.values()
        if len(v) == 0:
            return {"count": 0, "mean": float("nan"), "p50": float("nan"), "p90": float("nan"),
                    "p99": float("nan"), "p999": float("nan"), "min": float("nan"), "max": float("nan")}
        p50, p90, p99, p999 = np.percentile(v, [50, 90, 99, 99.9])
        return {"count": int(len(v)), "mean": float(v.mean()), "p50": float(p50), "p90": float(p90),
                "p99": float(p99), "p999": float(p999), "min": float(v.min()), "max": float(v.max())}


class RunStats:
    """Counters shared by all flows of a run."""

    def __init__(self, capacity: int, on_change: Callable[[], None]) -> None:
        self.latency = Tally(capacity)
        # the split workload's write and read calls, timed apart (None for other workloads)
        self.write_calls: Tally | None = None
        self.read_calls: Tally | None = None
        self.sent_msgs = 0
        self.sent_bytes = 0
        self.delivered_msgs = 0
        self.delivered_bytes = 0
        self.dropped_msgs = 0
        self.drops_by_site: dict[str, int] = {}
        self.packet_drops: dict[str, int] = {}
        self.blocked_ns = 0.0
        self.blocked_count = 0
        self.first_send = -1.0
        self.last_recv = -1.0
        self.on_change = on_change


class FlowDir:
    """One direction of one flow: what its sender sent and its receiver got."""

    def __init__(self, run: RunStats, env: Any, *, stream: bool, record_latency: bool) -> None:
        self.run = run
        self.env = env
        self.stream = stream
        self.record = record_latency
        self.t_send: dict[int, float] = {}
        self.bounds: deque[tuple[int, float, int]] = deque()  # (cumulative end byte, t_send, msg)
        self.sent_bytes = 0
        self.recv_bytes = 0
        self.sent_msgs = 0
        self.delivered_msgs = 0

    # called by the socket layer
    def sent(self, msg: int, nbytes: int, t_send: float) -> None:
        """A send call handed ``msg`` to the kernel; ``t_send`` is when the call began."""
        run = self.run
        now = t_send
        if run.first_send < 0:
            run.first_send = now
        run.sent_msgs += 1
        run.sent_bytes += nbytes
        self.sent_msgs += 1
        self.sent_bytes += nbytes
        if self.stream:
            self.bounds.append((self.sent_bytes, now, msg))
        else:
            self.t_send[msg] = now

    def dropped(self, msg: int, where: str) -> None:
        run = self.run
        run.dropped_msgs += 1
        run.drops_by_site[where] = run.drops_by_site.get(where, 0) + 1
        self.t_send.pop(msg, None)
        run.on_change()

    def packet_dropped(self, where: str) -> None:
        d = self.run.packet_drops
        d[where] = d.get(where, 0) + 1

    def blocked(self, ns: float) -> None:
        self.run.blocked_ns += ns
        self.run.blocked_count += 1

    # called by the workload after a receive call returns
    def received(self, nbytes: int, msg: int) -> int:
        """Account a receive; returns the number of messages it completed."""
        run = self.run
        now = self.env._now
        run.last_recv = now
        run.delivered_bytes += nbytes
        self.recv_bytes += nbytes
        done = 0
        t0: float | None
        if self.stream:
            b = self.bounds
            got = self.recv_bytes
            while b and b[0][0] <= got:
                _, t0, _ = b.popleft()
                done += 1
                if self.record:
                    run.latency.add(now - t0)
        else:
            t0 = self.t_send.pop(msg, None)
            if t0 is not None:
                done = 1
                if self.record:
                    run.latency.add(now - t0)
        if done:
            run.delivered_msgs += done
            self.delivered_msgs += done
            run.on_change()
        return done
