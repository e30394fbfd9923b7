"""Workloads: the user programs on each end, as task generators (user space: no kernel code).

``pingpong``  the client sends ``msg_bytes``, the server reads them all and echoes them;
              the client's round trip (send call to the return of the receive that
              completes the reply) is the latency (``rtt``); ``messages`` round trips.
``rr``        ``flows`` concurrent ping-pong flows; latency = round trip.
``stream``    one-way writes of ``msg_bytes`` back to back; the receiver reads with a
              buffer of the same size; latency = send call to the receive that completes
              the message (``one_way``); throughput = bytes received / (first write ->
              last byte received), MB = 10^6 B.
``poisson``   open-loop: write times drawn as a Poisson process of ``rate_per_s`` per flow
              (latency = send call to receive return, ``one_way``).
``burst``     ``burst_size`` writes back to back, then ``burst_gap_ns`` of idle, until
              ``messages`` writes per flow.
``split``     one task writes ``msg_bytes`` into one end and then reads them from the other,
              ``messages`` times, each call timed apart (``lbsim measure``'s split): the
              sending and the receiving side's cost with no scheduling between them;
              latency = write + read (``write_read``).

A channel is one direction of one flow: ``send(task, msg, nbytes, t0)`` and
``recv(task, bufsize) -> nbytes`` generators plus its :class:`FlowDir` statistics.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

from lbsim.model.metrics import FlowDir
from lbsim.model.task import Sleep, Task

__all__ = ["Channel", "pingpong_client", "echo_server", "one_way_sender", "sink", "split_task"]


@dataclass
class Channel:
    send: Callable[..., Generator[Any, None, Any]]
    recv: Callable[..., Generator[Any, None, Any]]
    stats: FlowDir
    stream: bool
    msg_of: Callable[[Task], int]


def _recv_exact(ch: Channel, task: Task, nbytes: int) -> Generator[Any, None, None]:
    """Read until ``nbytes`` arrived (a stream may return a message in pieces)."""
    got = 0
    while got < nbytes:
        n = yield from ch.recv(task, nbytes - got if ch.stream else nbytes)
        got += n if ch.stream else nbytes
        ch.stats.received(n, ch.msg_of(task))


def pingpong_client(task: Task, out: Channel, back: Channel, *, messages: int, nbytes: int, ids: Any,
                    record: Callable[[float], None]) -> Generator[Any, None, None]:
    env_now = task.cpu.env
    send = out.send
    recv, stream, received, msg_of = back.recv, back.stream, back.stats.received, back.msg_of
    for _ in range(messages):
        msg = next(ids)
        task.msg = msg
        t0 = env_now._now
        yield from send(task, msg, nbytes, t0)
        got = 0
        while got < nbytes:  # _recv_exact(back, task, nbytes), inlined: one generator less
            n = yield from recv(task, nbytes - got if stream else nbytes)
            got += n if stream else nbytes
            received(n, msg_of(task))
        record(env_now._now - t0)


def echo_server(task: Task, inbound: Channel, reply: Channel, *, nbytes: int, ids: Any) -> Generator[Any, None, None]:
    env = task.cpu.env
    send = reply.send
    recv, stream, received, msg_of = inbound.recv, inbound.stream, inbound.stats.received, inbound.msg_of
    while True:
        got = 0
        while got < nbytes:  # _recv_exact(inbound, task, nbytes), inlined: one generator less
            n = yield from recv(task, nbytes - got if stream else nbytes)
            got += n if stream else nbytes
            received(n, msg_of(task))
        msg = next(ids)
        task.msg = msg
        yield from send(task, msg, nbytes, env._now)


def one_way_sender(task: Task, out: Channel, *, messages: int, nbytes: int, ids: Any,
                   arrivals: Any = None, burst: tuple[int, float] | None = None) -> Generator[Any, None, None]:
    """stream (arrivals None), poisson (arrivals: iterator of absolute times), burst."""
    env = task.cpu.env
    for i in range(messages):
        if arrivals is not None:
            t = next(arrivals)
            if t > env._now:
                yield Sleep(t)
        elif burst is not None and i and i % burst[0] == 0 and burst[1] > 0:
            yield Sleep(env._now + burst[1])
        msg = next(ids)
        task.msg = msg
        yield from out.send(task, msg, nbytes, env._now)


def sink(task: Task, inbound: Channel, *, nbytes: int) -> Generator[Any, None, None]:
    while True:
        n = yield from inbound.recv(task, nbytes)
        inbound.stats.received(n, inbound.msg_of(task))


def split_task(task: Task, ch: Channel, *, messages: int, nbytes: int, ids: Any,
               record: Callable[[float], None], record_write: Callable[[float], None],
               record_read: Callable[[float], None]) -> Generator[Any, None, None]:
    """One task: write ``nbytes`` on the channel, then read them back from its other end."""
    env = task.cpu.env
    for _ in range(messages):
        msg = next(ids)
        task.msg = msg
        t0 = env._now
        yield from ch.send(task, msg, nbytes, t0)
        t1 = env._now
        yield from _recv_exact(ch, task, nbytes)
        t2 = env._now
        record_write(t1 - t0)
        record_read(t2 - t1)
        record(t2 - t0)
