"""skb memory accounting: ``truesize`` of the skbs each transport builds
(include/linux/skbuff.h ``SKB_TRUESIZE``, net/core/skbuff.c ``__alloc_skb``/``skb_append_pagefrags``).

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

__all__ = ["kmalloc_class", "truesize_tcp", "truesize_udp", "truesize_udp_fragments", "truesize_unix_stream",
           "truesize_unix_dgram", "SKB_MAX_ALLOC", "SKB_MAX_HEAD0", "page_calls_udp", "page_calls_unix_stream",
           "page_calls_unix_dgram"]

SKB_MAX_ALLOC = 16384 - 320  # SKB_MAX_ORDER(0, 2): 4 pages minus skb_shared_info
SKB_MAX_HEAD0 = 4096 - 320  # SKB_MAX_HEAD(0): one page minus skb_shared_info (3776)
PAGE_SIZE = 4096
# the largest frag order an AF_UNIX skb asks for (get_order(UNIX_SKB_FRAGS_SZ) for a stream)
PAGE_ALLOC_COSTLY_ORDER = 3
KMALLOC_MAX_CACHE_SIZE = 8192  # SLUB: KMALLOC_SHIFT_HIGH = PAGE_SHIFT + 1; a larger head is kmalloc_large's pages
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


def truesize_udp_fragments(frags: list[int], modern: bool = True) -> int:
    """Truesize of a datagram cut into IP fragments of ``frags`` IP payload bytes each (the
    first one carries the UDP header): ``__ip_append_data`` allocates one skb per fragment, sized
    as a datagram of that length would be (``alloclen = fraglen``), and ``__ip_make_skb``, then
    ``ip_frag_reasm`` (``inet_frag_reasm_finish``: ``head->truesize += fp->truesize``), charge
    their sum.  At MTU 1500 a 16 KiB datagram is 11 skbs of 2304 B and one of 832 B (26176,
    against 17216 whole)."""
    return sum(truesize_udp(f - 8, modern) for f in frags)


def page_calls_udp(length: int, modern: bool = True) -> int:
    """Page-allocator calls for the skb of a UDP datagram, or of one IP fragment, of ``length``
    bytes past the UDP header (a fragment: its IP payload less 8).  ``__ip_append_data`` keeps it
    linear below SKB_MAX_ALLOC, and a linear head above KMALLOC_MAX_CACHE_SIZE (with its
    headroom and skb_shared_info) comes from ``kmalloc_large``, the page allocator: 1 call from
    7798 to 15988 B (e.g. each 8980-byte fragment at MTU 9000), else 0; the paged skbs above
    take their pages from the task's page_frag, which refills per 32 KiB whatever the MTU, so
    their cost stays in the per-byte copy.  2.6.32: 0 (kmalloc caches up to 128 KiB)."""
    if not modern or length + 28 + 47 >= SKB_MAX_ALLOC:
        return 0
    return 1 if length + 28 + 47 + 320 > KMALLOC_MAX_CACHE_SIZE else 0


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


def _page_align(n: int) -> int:
    """PAGE_ALIGN(n)."""
    return (n + PAGE_SIZE - 1) // PAGE_SIZE * PAGE_SIZE


def _frag_calls(data_len: int) -> int:
    """alloc_skb_with_frags (net/core/skbuff.c): page-allocator calls for ``data_len`` bytes of
    frags, each chunk the largest order <= max_page_order whose size PAGE_ALIGN(what is left)
    fills."""
    left = _page_align(data_len) // PAGE_SIZE  # pages
    calls = 0
    order = PAGE_ALLOC_COSTLY_ORDER
    while left > 0:
        while order and left < (1 << order):
            order -= 1
        left -= 1 << order
        calls += 1
    return calls


def page_calls_unix_stream(size: int, modern: bool = True) -> int:
    """Page-allocator calls for one unix_stream skb of ``size`` bytes.  unix_stream_sendmsg (6.x)
    asks sock_alloc_send_pskb for ``data_len = min(size, PAGE_ALIGN(max(0, size -
    SKB_MAX_HEAD(0))))`` bytes of page frags of order <= get_order(UNIX_SKB_FRAGS_SZ) = 3 and
    the rest as a kmalloc'd linear head: 0 calls up to 3776 B, 1 from 3777 B to 16 KiB (all
    of it in one page of order 0-2), 1 for a full 36544-byte skb (one order-3 page and a
    3776-byte head), 3 for the 28992-byte rest of a 64 KiB write (orders 2, 1, 0).  2.6.32's
    skbs were linear, from kmalloc caches: 0."""
    if not modern or size <= SKB_MAX_HEAD0:
        return 0
    data_len = min(size, _page_align(size - SKB_MAX_HEAD0))
    return _frag_calls(data_len)


def page_calls_unix_dgram(size: int, modern: bool = True) -> int:
    """Page-allocator calls for one unix_dgram skb.  unix_dgram_sendmsg (6.x) keeps up to
    SKB_MAX_ALLOC (16064 B) linear and puts the rest, page-aligned, in frags of order <=
    PAGE_ALLOC_COSTLY_ORDER; a head above KMALLOC_MAX_CACHE_SIZE (8 KiB with its
    skb_shared_info) comes from kmalloc_large, the page allocator: 0 calls up to 7872 B, 1 up
    to 16064 B, 2 at 16 KiB (a 12288-byte head and one page), 4 at 64 KiB (the head, then
    orders 3, 2 and 0).  2.6.32: 0 (kmalloc caches up to 128 KiB)."""
    if not modern:
        return 0
    data_len = _page_align(size - SKB_MAX_ALLOC) if size > SKB_MAX_ALLOC else 0
    head = 1 if size - data_len + 320 > KMALLOC_MAX_CACHE_SIZE else 0
    return _frag_calls(data_len) + head
