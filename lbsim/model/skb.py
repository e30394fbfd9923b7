"""skb memory accounting: ``truesize`` of the skbs each transport builds.

Socket buffers are charged by ``skb->truesize``, not payload.  The rules below follow the
allocation paths and were checked on this host (6.18, x86-64) with ``SO_MEMINFO``
(``tests/data`` keeps the probe's output; see ``lbsim/data/README.md``):

* TCP: header-only head (``alloc_skb_fclone(MAX_TCP_HEADER)``) plus page frags charged by
  the byte: ``truesize = len + 832`` (64 B -> 896, 16 KiB -> 17216 measured).
* UDP (``__ip_append_data``): linear ``kmalloc`` while ``fraglen + alloc_extra <
  SKB_MAX_ALLOC`` (16064), so ``truesize = kmalloc_class(len + 28 + 47 + 320) + 256`` with
  the 576-byte small-head cache below 576; above, a small head plus page frags:
  ``len + 832`` (100 B -> 832, 512 -> 1280, 8192 -> 16640, 16384 -> 17216 measured).
* AF_UNIX stream (``sock_alloc_send_pskb`` with a linear part <= SKB_MAX_HEAD(0)):
  ``kmalloc_class(len + 320) + 256`` up to 1728 B, else ``len + 768`` (64 -> 768,
  1024 -> 2304, 4096 -> 4864 measured).
* AF_UNIX dgram: linear up to SKB_MAX_ALLOC: ``kmalloc_class(len + 320) + 256``, else
  ``len + 4352`` (4096 -> 8448, 65536 -> 69888 measured).
* linux-2.6.32: ``truesize = SKB_DATA_ALIGN(len + headers) + sizeof(struct sk_buff)``
  (no shared info, no kmalloc rounding) [U].
"""

from __future__ import annotations

__all__ = ["kmalloc_class", "truesize_tcp", "truesize_udp", "truesize_unix_stream", "truesize_unix_dgram",
           "SKB_MAX_ALLOC"]

SKB_MAX_ALLOC = 16384 - 320  # SKB_MAX_ORDER(0, 2): 4 pages minus skb_shared_info
SMALL_HEAD = 576  # skb_small_head_cache object: SKB_HEAD_ALIGN(MAX_TCP_HEADER)
SK_BUFF = 256  # SKB_DATA_ALIGN(sizeof(struct sk_buff))
_CLASSES = (576, 1024, 2048, 4096, 8192)


def kmalloc_class(n: int) -> int:
    """Object size kmalloc/__alloc_skb hands out for a request of ``n`` bytes."""
    for c in _CLASSES:
        if n <= c:
            return c
    size = 16384
    while size < n:
        size <<= 1
    return size


def truesize_tcp(length: int, modern: bool = True) -> int:
    if not modern:
        return length + 232 + 320
    return length + SMALL_HEAD + SK_BUFF


def truesize_udp(length: int, modern: bool = True) -> int:
    if not modern:
        return ((length + 28 + 47 + 63) & ~63) + 232
    if length + 28 + 47 >= SKB_MAX_ALLOC:
        return length + SMALL_HEAD + SK_BUFF
    return kmalloc_class(length + 28 + 47 + 320) + SK_BUFF


def truesize_unix_stream(length: int, modern: bool = True) -> int:
    if not modern:
        return ((length + 63) & ~63) + 232
    if length <= 1728:
        return kmalloc_class(length + 320) + SK_BUFF if length + 320 > SMALL_HEAD else 512 + SK_BUFF
    return length + 768


def truesize_unix_dgram(length: int, modern: bool = True) -> int:
    if not modern:
        return ((length + 63) & ~63) + 232
    if length + 320 <= 16384:
        return kmalloc_class(length + 320) + SK_BUFF if length + 320 > SMALL_HEAD else 512 + SK_BUFF
    return length + 4352
