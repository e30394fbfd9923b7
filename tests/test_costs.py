"""The shipped cost model: where it came from, and that it is reproducible from the data."""

from __future__ import annotations

from importlib import resources

import pytest

import lbsim
from lbsim.costs import load_costs
from lbsim.model.stages import OPTIONAL_STAGES, STAGES

DATA = resources.files("lbsim") / "data"


def test_default_costs_cover_every_stage_and_say_where_they_came_from():
    m = load_costs()
    # the optional stages (the epoll receiver's) were not measured for the shipped profile
    assert set(m.stages) == set(STAGES) - set(OPTIONAL_STAGES)
    prov = m.provenance
    assert prov["data_sha256_16"] and prov["fit_sizes"] and prov["method"]
    assert "null_syscall" in prov["base"] or "getppid" in prov["base"]
    assert all(c.fixed_ns >= 0 and c.per_byte_ns >= 0 for c in m.stages.values())


# The re-run of the whole calibration on the committed data (the fit reproduces the default cost
# file, lbsim/data/costs-default.json) is tests/test_fit_split.py's slow test, which runs it
# with every held-out value scrambled: one fit proves both.


def test_cache_bytes_come_from_the_measured_host_file():
    from lbsim.calibrate import cache_bytes_of
    from lbsim.measure.host import l2_bytes

    assert cache_bytes_of({"l2_bytes": 1 << 20}) == 1 << 20
    here = l2_bytes() or (2 << 20)
    for host in (None, {}, {"l2_bytes": 0}, {"l2_bytes": True}, {"l2_bytes": "2M"}):
        assert cache_bytes_of(host) == here


@pytest.mark.parametrize("kernel", ["linux-6.12", "linux-2.6.32", "host"])
@pytest.mark.parametrize("transport", ["tcp", "udp", "unix_stream", "unix_dgram"])
def test_every_kernel_profile_runs_every_transport(kernel, transport):
    r = lbsim.simulate(transport=transport, kernel=kernel, messages=200, msg_bytes=32768, placement="cross")
    assert r.status == "ok" and r.conservation()["ok"]
    if transport == "tcp" and kernel == "linux-2.6.32":
        # MSS 16384 at MTU 16436: a 32 KiB message is two full segments
        assert r.counters["tcp_out_segs"] >= 2 * 2 * 200


def test_the_wake_up_refit_recovers_the_delays_behind_the_models_own_round_trips():
    """calibrate fits the cross-CPU wake-up delays again once every stage cost is final: given the
    model's own zero-load round trips made with known delays, it finds those delays from far off."""
    from lbsim.calibrate.fits import refit_wakeups as _refit_wakeups
    from lbsim.calibrate.params import WAKEUP_DELAYS, with_delays
    from lbsim.calibrate.sim import sim_p50_us as _sim_p50_us
    from lbsim.fitdata import Point

    model = load_costs("default")
    truth = with_delays(model, dict(zip(WAKEUP_DELAYS, (3000.0, 2500.0))))
    pts = []
    for tr in ("udp", "unix_stream", "tcp"):
        for bg in ("idle", "busy"):
            p = Point(tr, "cross", bg, 64, 1.0, 0.2, fitted=True)
            p.measured_us = _sim_p50_us(truth, p, deterministic=True, messages=8)[0]
            pts.append(p)
    start = with_delays(model, dict(zip(WAKEUP_DELAYS, (9000.0, 8000.0))))
    assert _sim_p50_us(start, pts[0], deterministic=True, messages=8)[0] > 1.1 * pts[0].measured_us
    got = _refit_wakeups(start, pts)
    # deterministic simulations of the same model: only the solver's tolerance is left
    assert got["wakeup_remote_idle_ns"] == pytest.approx(3000.0, rel=0.02)
    assert got["wakeup_remote_busy_ns"] == pytest.approx(2500.0, rel=0.02)
    assert _refit_wakeups(start, [Point("udp", "same", "idle", 64, 5.0, 0.1, fitted=True)]) is None


def test_the_page_step_recovers_the_page_allocator_costs_behind_the_models_own_splits():
    """calibrate reads the page-allocator costs from unix_stream's split step across
    SKB_MAX_HEAD(0), less the model's copy of the bytes between: given the model's own splits
    made with known costs, it finds them again (deterministic runs: to rounding)."""
    from lbsim.calibrate.pages import page_costs as _page_costs
    from lbsim.calibrate.pages import page_step
    from lbsim.calibrate.params import with_pages
    from lbsim.calibrate.sim import sim_split_us as _sim_split_us
    from lbsim.fitdata import SplitPoint

    model = load_costs("default")
    truth = with_pages(model, 150.0, 240.0)
    pts = [SplitPoint("unix_stream", n, *_sim_split_us(truth, "unix_stream", n)) for n in (1024, 3776, 3840, 4096)]
    pts.append(SplitPoint("unix_dgram", 3840, 0.1, 0.1))  # another transport's rows are not read
    step = page_step(pts)
    assert (step.below, step.above) == (3776, 3840)
    assert step.write_us * 1e3 > 150.0 and step.read_us * 1e3 > 240.0  # the copies of 64 B more are in it
    alloc, free = _page_costs(with_pages(model, 0.0, 0.0), step)
    assert alloc == pytest.approx(150.0, abs=1e-6) and free == pytest.approx(240.0, abs=1e-6)
    assert page_step(pts[:2]) is None  # 1024 and 3776 B: no size past SKB_MAX_HEAD(0)
    # 1024 and 4096 B only (older grids): 3 KiB more of copy would swamp the step on its own, so
    # it is read against unix_dgram's growth between the same sizes (linear skbs, no pages)
    far = [pts[0], pts[3]] + [SplitPoint("unix_dgram", n, *_sim_split_us(truth, "unix_dgram", n)) for n in (1024, 4096)]
    step = page_step(far)
    assert (step.below, step.above, step.reference) == (1024, 4096, "unix_dgram")
    alloc, free = _page_costs(with_pages(model, 0.0, 0.0), step)
    assert alloc == pytest.approx(150.0, abs=1e-6) and free == pytest.approx(240.0, abs=1e-6)
    assert page_step(far[:2]) is None  # and without unix_dgram, no step
