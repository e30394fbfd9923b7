"""An epoll-driven receiver (fs/eventpoll.c): ``epoll_wait`` until the socket is readable, then ``recv``.

The receiving side of every channel watches its one socket with one epoll instance (EPOLLIN,
level-triggered, maxevents 1, as the harness's ``--epoll``) and calls ``epoll_wait`` before
each ``recv``.  Per call (fs/eventpoll.c, Linux 6.x):

- ``epoll_wait`` -> ``do_epoll_wait`` -> ``ep_poll``: its entry and exit is the ``syscall`` stage.
  If the ready list ``rdllist`` holds the item, ``ep_try_send_events`` -> ``ep_send_events``
  polls it (``ep_item_poll`` -> the socket's poll: ``tcp_poll``, ``udp_poll``, ``unix_poll``,
  ``unix_dgram_poll``): readable, the event is copied out and, level-triggered, the item is put
  back on ``rdllist``; ``epoll_wait`` returns 1 without sleeping.  Not readable (the item was
  put back by the previous call, whose data ``recv`` has since taken), the item is dropped from
  the list, no event: ``ep_poll`` then sleeps on ``ep->wq`` (``__add_wait_queue_exclusive``,
  ``schedule_hrtimeout_range``).  Each ``ep_send_events`` is the ``ep_send_events`` stage.
- The waker: the socket's ``sk_data_ready`` (``sock_def_readable``, or ``tcp_data_ready``)
  wakes the socket wait queue, on which the epoll entry always sits (``ep_ptable_queue_proc``),
  so ``ep_poll_callback`` runs on *every* data-ready, whether or not anyone sleeps: it links the
  item on ``rdllist`` and, if the receiver sleeps on ``ep->wq``, wakes it
  (``ep_autoremove_wake_function`` -> ``try_to_wake_up``, the usual wake-up stages).  The woken
  ``ep_poll`` loops to ``ep_send_events`` (readable: one event) and returns.
- Then ``recv`` finds the data queued: it never sleeps (``sk_wait_data`` does not run).

So a message read by a receiver that had to wait costs it, beside the blocking path's stages,
one more ``syscall`` and two ``ep_send_events`` (the empty poll before sleeping, the ready one
after); one that was already queued, one more ``syscall`` and one ``ep_send_events``.  The
sender pays ``ep_poll_callback`` for every data-ready.  A write-space wake-up on the same wait
queue (unix_stream's shared ``sk_wq``) carries EPOLLOUT, which ``ep_poll_callback`` filters
out (``key`` not in the item's events): it wakes no epoll waiter, and its small cost is left out.

The two stages are optional (lbsim.model.stages.OPTIONAL_STAGES): measured by the harness's
``--micro-epoll`` (lbsim.measure.harness.micro_epoll), not fitted; a cost model without them
refuses the switch (:func:`require_stages`).
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

from lbsim.model.stages import SID
from lbsim.model.task import WaitQueue

if TYPE_CHECKING:
    from lbsim.model.cpu import CPU
    from lbsim.model.sim import Sim
    from lbsim.model.task import Task

__all__ = ["EpollItem", "EPOLL_STAGES", "RECEIVERS", "watch", "require_stages"]

RECEIVERS = ("blocking", "epoll")
EPOLL_STAGES = ("ep_send_events", "ep_poll_callback")
S_SYSCALL = SID["syscall"]
S_SEND_EVENTS = SID["ep_send_events"]
S_CALLBACK = SID["ep_poll_callback"]
_SYSCALL = (S_SYSCALL,)
_SEND_EVENTS = (S_SEND_EVENTS,)


class EpollItem:
    """One socket in one epoll instance (``struct epitem`` and its ``struct eventpoll``)."""

    __slots__ = ("sim", "queue", "recvmsg", "wq", "linked", "waits", "sends")

    def __init__(self, sim: Sim, queue: Any, recvmsg: Callable[..., Generator[Any, None, int]]) -> None:
        self.sim = sim
        self.queue = queue  # the socket's receive queue: readable when it is not empty (its poll)
        self.recvmsg = recvmsg
        self.wq = WaitQueue("ep->wq")
        self.linked = False  # on ep->rdllist
        self.waits = 0  # epoll_wait calls that slept
        self.sends = 0  # ep_send_events calls

    # ---------------------------------------------------------------- the waker's side
    def callback_items(self, cpu: CPU) -> tuple[int, ...]:
        """ep_poll_callback's work items, with try_to_wake_up when the receiver sleeps on ep->wq
        (charged with the caller's sk_data_ready)."""
        waiters = self.wq.waiters
        return (S_CALLBACK, *self.sim.wake_items(waiters[0] if waiters else None, cpu))

    def callback(self, cpu: CPU) -> None:
        """ep_poll_callback's effect, once the data is queued: link the item, wake ep->wq."""
        self.linked = True
        if self.wq.waiters:
            self.sim.wake_all(self.wq, cpu)

    # ---------------------------------------------------------------- the receiver's side
    def recv(self, task: Task, bufsize: int) -> Generator[Any, None, int]:
        """epoll_wait (maxevents 1, no timeout) until readable, then the socket's recvmsg."""
        sim = self.sim
        yield sim.work_of_ids(_SYSCALL)
        if not self.queue:
            if self.linked:  # ep_send_events polls the item put back last time: nothing, unlinked
                self.linked = False
                self.sends += 1
                yield sim.work_of_ids(_SEND_EVENTS)
            if not self.queue:
                self.waits += 1
                while not self.queue:  # ep_poll sleeps on ep->wq; ep_poll_callback wakes it
                    yield self.wq
        self.sends += 1
        yield sim.work_of_ids(_SEND_EVENTS)  # readable: one event, the item back on rdllist
        self.linked = True
        n = yield from self.recvmsg(task, bufsize)
        return n


def watch(sim: Sim, channels: list[Any]) -> list[EpollItem]:
    """Make each channel's receiver epoll-driven: one EpollItem per receiving socket (channels
    into one socket share it), set as the socket's ``ep`` so its data-ready runs the callback."""
    items: dict[int, EpollItem] = {}
    for ch in channels:
        sock = ch.recv.__self__  # the receiving socket's bound recvmsg
        item = items.get(id(sock))
        if item is None:
            queue = sock.rcvq if hasattr(sock, "rcvq") else sock.queue  # TcpSock, or UDP / AF_UNIX
            item = items[id(sock)] = EpollItem(sim, queue, ch.recv)
            sock.ep = item
        ch.recv = item.recv
    return list(items.values())


def require_stages(missing: tuple[str, ...], costs_name: str) -> None:
    """The epoll receiver needs its measured stages: one line naming the cost model and how to
    measure them when it lacks one (never a guessed cost)."""
    lack = [s for s in EPOLL_STAGES if s in missing]
    if lack:
        from lbsim.config import ConfigError

        raise ConfigError(f"receiver 'epoll' needs the measured stage cost{'s' if len(lack) > 1 else ''} "
                          f"{', '.join(lack)}, which cost model {costs_name!r} lacks: measure them with "
                          "`lbsim measure` (stages: the harness's --micro-epoll) and `lbsim calibrate`, "
                          "or set them by hand with stage_cost")
