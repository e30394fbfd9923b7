"""Batching calls: sendmmsg/recvmmsg for datagrams, MSG_MORE for TCP (SimConfig ``batch``).

``batch`` = N > 1 makes a one-way stream move its messages in batches of N:

- udp, unix_dgram: the sender makes one ``sendmmsg`` of N messages, the receiver one
  ``recvmmsg`` of up to N with ``MSG_WAITFORONE`` (what a server uses: block for the first
  datagram, then take what is queued).  net/socket.c ``__sys_sendmmsg`` enters the kernel
  once and runs ``___sys_sendmsg`` -> ``sock_sendmsg`` per message (``cond_resched`` between
  them); ``do_recvmmsg`` runs ``___sys_recvmsg`` per message and, with ``MSG_WAITFORONE``,
  sets ``MSG_DONTWAIT`` after the first, so the call returns once the queue is empty.  So:
  one ``syscall`` stage (the measured null-syscall entry/exit) per call instead of per
  message; every per-message protocol stage (``udp_sendmsg``, the copies, the xmit/receive
  path, ``unix_dgram_sendmsg``/``recvmsg``) is unchanged.  Left out: the per-message
  ``copy_msghdr_from_user`` of ``___sys_sendmsg``/``___sys_recvmsg`` (inside the
  ``syscall`` stage of a plain call too), and the last ``___sys_recvmsg`` of a recvmmsg that
  found the queue empty (``-EAGAIN`` under ``MSG_DONTWAIT``, no copy).
- tcp: N ``send`` calls, ``MSG_MORE`` on the first N-1.  net/ipv4/tcp.c
  ``tcp_sendmsg_locked`` appends each write to the unsent tail skb (up to the size goal) and
  ends with ``tcp_push``, which turns ``MSG_MORE`` into ``TCP_NAGLE_CORK``: a partial tail
  skb is not sent (net/ipv4/tcp_output.c ``tcp_nagle_check``); the write without
  ``MSG_MORE`` pushes it.  An ACK that arrives meanwhile pushes it too (``tcp_data_snd_check``
  with the socket's own ``nonagle``, TCP_NODELAY).  Syscalls per message are unchanged;
  transmits and receive-side packets per message drop (lbsim.model.tcp_output ``more``).
- unix_stream: the kernel ignores ``MSG_MORE`` (net/unix/af_unix.c ``unix_stream_sendmsg``
  reads only MSG_OOB, MSG_DONTWAIT, MSG_SPLICE_PAGES, MSG_NOSIGNAL: one skb and one
  ``sk_data_ready`` per write), so a batch is the same N writes: a no-op.

Stream receivers (tcp, unix_stream) keep reading ``msg_bytes`` per call, so the switch is the
sender's alone there.  Batches are for the ``stream`` workload only (SimConfig checks it).
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from functools import partial
from typing import Any

from lbsim.model.stages import SID
from lbsim.model.task import Task
from lbsim.model.workloads import one_way_sender, sink

__all__ = ["without_entry", "mmsg_sender", "more_sender", "mmsg_sink", "batch_gens"]

S_SYSCALL = SID["syscall"]


def without_entry(call: Generator[Any, None, Any]) -> Generator[Any, None, Any]:
    """Run one socket call (a sendmsg/recvmsg generator) as a message of a batch call after its
    first: its ``syscall`` stage, the first item of the first command it yields, was paid by
    the batch call's entry, so it is dropped (a command left with nothing is not yielded)."""
    cmd = next(call)
    stages = cmd[1]
    if not stages or stages[0][0] != S_SYSCALL:
        raise RuntimeError("a socket call must start with the syscall stage (lbsim.model.batching)")
    rest = stages[1:]
    if rest:
        total = 0.0
        for _sid, ns in rest:  # summed as Sim.work_of sums a command
            total += ns
        yield [total, rest]
    return (yield from call)


def mmsg_sender(task: Task, out: Any, *, messages: int, nbytes: int, ids: Any,
                batch: int) -> Generator[Any, None, None]:
    """sendmmsg of ``batch`` messages per call (the last call takes what is left)."""
    env = task.cpu.env
    send = out.send
    for i in range(messages):
        msg = next(ids)
        task.msg = msg
        call = send(task, msg, nbytes, env._now)
        yield from (call if i % batch == 0 else without_entry(call))


def more_sender(task: Task, out: Any, *, messages: int, nbytes: int, ids: Any, batch: int,
                send_more: Callable[..., Generator[Any, None, Any]]) -> Generator[Any, None, None]:
    """``batch`` send calls per batch, MSG_MORE (``send_more``) on all but the last one."""
    env = task.cpu.env
    send = out.send
    for i in range(messages):
        msg = next(ids)
        task.msg = msg
        last = i % batch == batch - 1 or i == messages - 1
        yield from (send if last else send_more)(task, msg, nbytes, env._now)


def mmsg_sink(task: Task, inbound: Any, *, nbytes: int, batch: int,
              queued: Callable[[], bool]) -> Generator[Any, None, None]:
    """recvmmsg(vlen = ``batch``, MSG_WAITFORONE) in a loop: the first datagram blocks, then
    the call takes datagrams while ``queued()`` (the socket's receive queue is not empty)."""
    recv, received, msg_of = inbound.recv, inbound.stats.received, inbound.msg_of
    while True:
        n = yield from recv(task, nbytes)
        received(n, msg_of(task))
        got = 1
        while got < batch and queued():
            n = yield from without_entry(recv(task, nbytes))
            received(n, msg_of(task))
            got += 1


def batch_gens(transport: str, receiver: Task | None, sender: Task, ch: Any, sock: Any, *, messages: int,
               nbytes: int, ids: Any, batch: int) -> tuple[Any, Any]:
    """The (receiver, sender) generators of one stream flow with batches of ``batch``; ``sock``
    is the flow's first socket (host._build_flow: udp/unix_dgram the receiving queue's owner,
    tcp the sender's).  ``receiver`` None: the sender's only (a second sender)."""
    if transport in ("udp", "unix_dgram"):
        queue = sock.queue
        rx = None if receiver is None else mmsg_sink(receiver, ch, nbytes=nbytes, batch=batch,
                                                     queued=lambda: bool(queue))
        return rx, mmsg_sender(sender, ch, messages=messages, nbytes=nbytes, ids=ids, batch=batch)
    rx = None if receiver is None else sink(receiver, ch, nbytes=nbytes)
    if transport == "tcp":
        return rx, more_sender(sender, ch, messages=messages, nbytes=nbytes, ids=ids, batch=batch,
                               send_more=partial(sock.sendmsg, more=True))
    # unix_stream: MSG_MORE is ignored (unix_stream_sendmsg), the batch is N plain writes
    return rx, one_way_sender(sender, ch, messages=messages, nbytes=nbytes, ids=ids)
