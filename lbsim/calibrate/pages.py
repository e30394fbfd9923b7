"""The page-allocator costs of an AF_UNIX skb: unix_stream's skb takes a page frag past
SKB_MAX_HEAD(0) = 3776 B (net/unix/af_unix.c, unix_stream_sendmsg -> sock_alloc_send_pskb), so
its split write and read step up there by one __alloc_pages and one __free_pages."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from lbsim.calibrate.params import with_pages
from lbsim.calibrate.sim import sim_split_us
from lbsim.costs import CostModel
from lbsim.fitdata import SplitPoint
from lbsim.model.skb import page_calls_unix_dgram, page_calls_unix_stream


@dataclass
class PageStep:
    """unix_stream's split write and read grow by ``write_us`` and ``read_us`` more from
    ``below`` (no page frag) to ``above`` bytes (one page frag) than ``reference``'s do (None:
    the growth itself)."""

    below: int
    above: int
    write_us: float
    read_us: float
    reference: str | None = None

    @property
    def transports(self) -> list[str]:
        """The transports whose split points the step was read from."""
        return ["unix_stream"] + ([self.reference] if self.reference else [])


#: the widest size gap a page step is read across on its own: 256 B more of copy costs a few ns
PAGE_STEP_MAX_GAP = 256


def page_step(splits: list[SplitPoint]) -> PageStep | None:
    """What the page frag a unix_stream skb takes past SKB_MAX_HEAD(0) = 3776 B costs
    (``page_calls_unix_stream``), from the split: the growth of unix_stream's write and read
    from the largest size with no page call to the smallest with one (at most 4 KiB).

    Sizes at most ``PAGE_STEP_MAX_GAP`` apart (``lbsim measure``'s grid has 3776 and 3840 B)
    give the step directly.  Sizes further apart (1024 and 4096 B in older grids) give it
    against unix_dgram's growth between the same sizes, which takes no page up to 7872 B and
    whose copies cost the same per byte: the difference of the two growths."""
    us = {p.msg_bytes: p for p in splits if p.transport == "unix_stream"}
    dg = {p.msg_bytes: p for p in splits if p.transport == "unix_dgram" and page_calls_unix_dgram(p.msg_bytes) == 0}

    def ends(sizes: Iterable[int]) -> tuple[int, int] | None:
        below = [n for n in sizes if page_calls_unix_stream(n) == 0]
        above = [n for n in sizes if page_calls_unix_stream(n) == 1 and n <= 4096]
        return (max(below), min(above)) if below and above else None

    near = ends(us)
    if near is not None and near[1] - near[0] <= PAGE_STEP_MAX_GAP:
        a, b = near
        return PageStep(a, b, us[b].write_us - us[a].write_us, us[b].read_us - us[a].read_us)
    both = ends(set(us) & set(dg))
    if both is None:
        return None
    a, b = both
    return PageStep(a, b, (us[b].write_us - us[a].write_us) - (dg[b].write_us - dg[a].write_us),
                    (us[b].read_us - us[a].read_us) - (dg[b].read_us - dg[a].read_us), "unix_dgram")


def page_costs(model: CostModel, step: PageStep) -> tuple[float, float]:
    """The step less the model's own step without page calls (its copies of the bytes
    between, and the reference's growth when there is one), in ns."""
    m = with_pages(model, 0.0, 0.0)

    def growth(tr: str) -> tuple[float, float]:
        w0, r0 = sim_split_us(m, tr, step.below)
        w1, r1 = sim_split_us(m, tr, step.above)
        return w1 - w0, r1 - r0

    w, r = growth("unix_stream")
    if step.reference is not None:
        wr, rr = growth(step.reference)
        w, r = w - wr, r - rr
    return (step.write_us - w) * 1e3, (step.read_us - r) * 1e3

