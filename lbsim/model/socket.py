"""What every byte-stream socket does with its receive queue (tcp_recvmsg, unix_stream_read_generic).

An skb in a stream receive queue is a list ``[key, len, consumed, truesize, t_enqueued, ...]``
(TCP adds ``msg`` and ``heads``, 0 when the data was coalesced into the skb before it):
a reader copies from as many skbs as its buffer takes (partial reads advance ``consumed``)
and frees each skb it consumed whole (net/ipv4/tcp.c ``tcp_recvmsg_locked``,
net/unix/af_unix.c ``unix_stream_read_generic``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

__all__ = ["plan_read", "consume"]


def plan_read(queue: deque[list[Any]], bufsize: int, now: float) -> tuple[int, float, int, int]:
    """What a read of ``bufsize`` will take: (bytes copied, time the skbs it starts on waited,
    truesize of the skbs it frees, how many skbs it frees)."""
    if len(queue) == 1:
        skb = queue[0]
        if not skb[2] and skb[1] <= bufsize:
            # the common case, one whole unread skb: what the loop below computes
            return skb[1], 0.0 + (now - skb[4]), skb[3], (skb[6] if len(skb) > 6 else 1)
    copied = 0
    wait = 0.0
    freed = 0
    nfree = 0
    for skb in queue:
        if copied >= bufsize:
            break
        chunk = skb[1] - skb[2]
        if bufsize - copied < chunk:  # min(...)
            chunk = bufsize - copied
        if skb[2] == 0:
            wait += now - skb[4]
        copied += chunk
        if skb[2] + chunk == skb[1]:
            freed += skb[3]
            nfree += skb[6] if len(skb) > 6 else 1  # TCP: 0 for data coalesced into the skb before
    return copied, wait, freed, nfree


def consume(queue: deque[list[Any]], nbytes: int, on_free: Callable[[int], None]) -> None:
    """Advance the queue by ``nbytes``; ``on_free(truesize)`` for each skb consumed whole."""
    left = nbytes
    while left > 0 and queue:
        skb = queue[0]
        chunk = skb[1] - skb[2]
        if left < chunk:  # min(...)
            chunk = left
        skb[2] += chunk
        left -= chunk
        if skb[2] == skb[1]:
            queue.popleft()
            on_free(skb[3])
