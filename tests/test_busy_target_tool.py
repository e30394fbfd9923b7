"""tools/cross-cpu/busy_target.py: what an IPI and a ping-pong take from a busy CPU.  Its arithmetic
on the C programs' output alone: no harness run, no CPU pinned."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _tool():
    spec = importlib.util.spec_from_file_location("busy_target", ROOT / "tools" / "cross-cpu" / "busy_target.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_an_ipi_costs_the_loss_beyond_the_background_rate():
    # 1 s of background losing 5 ms; 1.2 s with 1000 calls losing 6 + 6.6 ms: 6.6 us per IPI
    d = {"calls": 1000, "call_p50_ns": 9000,
         "background": {"elapsed_ns": 1_000_000_000, "gaps": 500, "gap_ns": 5_000_000},
         "with_calls": {"elapsed_ns": 1_200_000_000, "gaps": 1600, "gap_ns": 12_600_000}}
    ipi = _tool().ipi_from(d)
    assert ipi["lost_us_per_ipi"] == pytest.approx(6.6)
    assert ipi["gaps_per_ipi"] == pytest.approx(1.0)
    assert ipi["call_p50_us"] == pytest.approx(9.0)


def test_gap_median_from_the_histogram():
    hist = [0] * 1001
    hist[40] = 3   # 10.0-10.25 us
    hist[60] = 2   # 15.0-15.25 us
    assert _tool().gap_p50_us({"hist": hist, "gaps": 5, "bin_ns": 250}) == pytest.approx(10.125)
