"""MSG_ZEROCOPY over lo: a deferred copy, so it can only add cost here.

Kernel functions modelled (6.18):

``tcp_sendmsg_locked``      (net/ipv4/tcp.c) with SO_ZEROCOPY and MSG_ZEROCOPY: ``msg_zerocopy_realloc``
                            gives the call a ``ubuf_info`` (and pre-allocates its notification skb,
                            ``sock_omalloc``); ``skb_zerocopy_iter_stream`` pins the user pages into
                            the skb's frags instead of copying them (no copy #1).
``__ip_append_data``        (net/ipv4/ip_output.c) the same for UDP (5.0+) when the datagram fits the
                            MTU (``CHECKSUM_PARTIAL`` on lo): ``skb_zerocopy_iter_dgram``.  A datagram
                            above the MTU is copied as usual (``uarg->zerocopy = 0``) and only the
                            notification remains.
``__netif_receive_skb_core`` (net/core/dev.c) on the CPU that runs the backlog: before the protocol
                            handler ``skb_orphan_frags_rx`` -> ``skb_copy_ubufs`` (net/core/skbuff.c)
                            allocates ``ceil(len / 4096)`` order-0 pages (order 0 up to
                            ``MAX_SKB_FRAGS`` pages) and copies the user pages into them: the deferred
                            copy.  lo never hands user pages to a receiver.
``__msg_zerocopy_callback`` (net/core/skbuff.c) when the last skb holding the ``ubuf_info`` lets go
                            (UDP: that copy; TCP: the original skb freed by the ACK,
                            ``tcp_clean_rtx_queue``, the clone went to lo) a notification with
                            ``SO_EE_CODE_ZEROCOPY_COPIED`` goes on the error queue; one still queued
                            is extended instead (``skb_zerocopy_notify_extend``: consecutive ids).
``recvmsg(MSG_ERRQUEUE)``   (net/ipv4/ip_sockglue.c ip_recv_error -> sock_dequeue_err_skb) the
                            sender reaps it; the harness (``--zerocopy``) calls it once after every
                            send, without waiting: a system call, and the notification skb's free
                            when one was queued.

Costs are the stages the kernel runs anyway: the deferred copy is the transport's copy #1 stage
(``skb_copy_to_page_nocache`` for TCP, ``ip_generic_getfrag`` for UDP: the same bytes copied once,
in softirq instead of the send), one ``__alloc_pages`` per page, ``__free_pages`` per page when
the reader frees the skb, ``syscall`` (+ ``__kfree_skb``) per reap.  Not charged (no stage
measures them; they would be new costs): pinning the user pages (``iov_iter_get_pages2``), the
``ubuf_info`` and notification skb allocation, ``skb_unclone`` of TCP's clone before the copy, and
the EPOLLERR wake-up ``sk_error_report`` sends a task asleep on the sender's socket.
docs/notes/zerocopy-rfs.md.
"""

from __future__ import annotations

from lbsim.model.skb import PAGE_SIZE
from lbsim.model.stages import SID

__all__ = ["MsgZerocopy", "copy_pages", "MAX_SKB_FRAGS"]

MAX_SKB_FRAGS = 17  # include/linux/skbuff.h CONFIG_MAX_SKB_FRAGS default

S_SYSCALL = SID["syscall"]
S_KFREE = SID["__kfree_skb"]
S_ALLOC_PAGES = SID["__alloc_pages"]
S_FREE_PAGES = SID["__free_pages"]
S_C2C = SID["cache_to_cache_copy"]


def copy_pages(nbytes: int) -> int:
    """Page-allocator calls of skb_copy_ubufs for ``nbytes`` of frags: the smallest order whose
    MAX_SKB_FRAGS pages hold them, then ceil(nbytes / page size of that order) pages."""
    if nbytes <= 0:
        return 0
    order = 0
    while (PAGE_SIZE << order) * MAX_SKB_FRAGS < nbytes:
        order += 1
    psize = PAGE_SIZE << order
    return (nbytes + psize - 1) // psize


class MsgZerocopy:
    """One sending socket's MSG_ZEROCOPY state: its error queue and the counters."""

    __slots__ = ("copy_sid", "queued", "sends", "completions", "notifications", "reaps", "copies")

    def __init__(self, copy_sid: int) -> None:
        self.copy_sid = copy_sid  # the transport's copy #1 stage: the deferred copy runs the same copy
        self.queued = False  # a notification waits on sk_error_queue
        self.sends = 0
        self.completions = 0
        self.notifications = 0
        self.reaps = 0
        self.copies = 0

    def rx_items(self, nbytes: int, remote: bool) -> tuple:
        """skb_copy_ubufs in __netif_receive_skb_core: the pages, then the copy (``remote``: the
        user buffer was written on another CPU, so its lines come from that CPU's cache)."""
        self.copies += 1
        items: tuple = (S_ALLOC_PAGES,) * copy_pages(nbytes) + ((self.copy_sid, nbytes),)
        return items + ((S_C2C, nbytes),) if remote else items

    def complete(self) -> None:
        """__msg_zerocopy_callback (copied): queue a notification, or extend the queued one."""
        self.completions += 1
        if not self.queued:
            self.queued = True
            self.notifications += 1

    def reap_items(self) -> tuple[int, ...]:
        """recvmsg(MSG_ERRQUEUE | MSG_DONTWAIT) after a send: the notification if one is queued
        (freed: sock_dequeue_err_skb, kfree_skb), else EAGAIN."""
        self.reaps += 1
        if self.queued:
            self.queued = False
            return (S_SYSCALL, S_KFREE)
        return (S_SYSCALL,)

    @staticmethod
    def free_items(nbytes: int) -> tuple[int, ...]:
        """The reader's free of the pages skb_copy_ubufs allocated (skb_release_data -> put_page)."""
        return (S_FREE_PAGES,) * copy_pages(nbytes)
