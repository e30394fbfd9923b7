"""One more IP fragment's price: the micro-benchmark (lbsim.measure.micro_ipfrag), the stages it
sets (ip_fragment, ip_defrag: lbsim.calibrate.params.with_fragment_cost) and the path they assume
(docs/notes/ip-fragments.md)."""

import os
import shutil
from pathlib import Path

import pytest

from lbsim.calibrate.params import FRAGMENT_PATH, SHARED_RULES, with_fragment_cost
from lbsim.costs import load_costs
from lbsim.measure.micro_ipfrag import fragments, micro_ipfrag
from lbsim.model.udp import udp_fragments
from lbsim.simulate import SimConfig, simulate


def test_fragment_count_is_the_models():
    for size, mtu in ((65507, 1500), (16384, 1500), (65507, 9000), (1000, 1500), (65507, 65536)):
        assert fragments(size, mtu) == len(udp_fragments(size, mtu))
    assert fragments(65507, 1500) == 45


def test_the_stages_run_per_fragment_are_the_fragment_path_and_the_two():
    """What the calibration subtracts is what the model charges each fragment: the stages whose
    count grows by one per extra fragment (a same-CPU UDP stream, 12 fragments a datagram)."""
    counts = {}
    for mtu in (65536, 1500):
        r = simulate(SimConfig(transport="udp", workload="stream", msg_bytes=16384, messages=200, placement="same",
                               mtu=mtu, seed=1))
        counts[mtu] = {s["stage"]: s["count"] / 200 for s in r.to_dict()["stages"]}
    n = fragments(16384, 1500)
    grew = {s: counts[1500][s] - counts[65536].get(s, 0.0) for s in counts[1500]}
    assert {s for s, g in grew.items() if g == pytest.approx(n - 1)} == set(FRAGMENT_PATH)
    # the two run on every fragment, the first too (with_fragment_cost's n / (n - 1))
    assert {s for s, g in grew.items() if g == pytest.approx(n)} == {"ip_fragment", "ip_defrag"}


def test_what_is_left_of_the_measured_price_goes_to_the_two_stages():
    model = load_costs()
    rest = sum(model.stages[s].fixed_ns for s in FRAGMENT_PATH)
    donors = [model.stages[SHARED_RULES[s][0]].fixed_ns for s in ("ip_fragment", "ip_defrag")]
    m, rules = with_fragment_cost(model, rest + 1000.0, fragments=45)
    got = [m.stages[s].fixed_ns for s in ("ip_fragment", "ip_defrag")]
    assert sum(got) * 45 / 44 == pytest.approx(1000.0)  # 45 of each in the 44 extra fragments' price
    assert got[0] / got[1] == pytest.approx(donors[0] / donors[1])
    assert set(rules) == {"ip_fragment", "ip_defrag"} and all("measured" in r for r in rules.values())
    # the other stages untouched; a price below them leaves both free, never negative
    assert all(m.stages[s] == model.stages[s] for s in model.stages if s not in rules)
    m, _ = with_fragment_cost(model, rest - 300.0, fragments=45)
    assert m.stages["ip_fragment"].fixed_ns == 0.0 and m.stages["ip_defrag"].fixed_ns == 0.0


def test_a_profile_with_the_measurement_says_so_in_its_rules():
    from lbsim.profiles import resolve

    model, _ = resolve("amd-epyc-25-1-1-v1300-2026-12-07")
    rules = model.provenance["rules"]
    assert rules["ip_fragment"].startswith("measured") and rules["ip_defrag"].startswith("measured")
    old, _ = resolve("amd-epyc-v1300-2026-12-06")  # its stage file has no such entry: borrowed
    assert old.provenance["rules"]["ip_fragment"].startswith("= ip_output")
    assert old.stages["ip_fragment"].fixed_ns == old.stages["ip_output"].fixed_ns


@pytest.mark.xdist_group("host")
@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("ip") is None,
                    reason="needs root, unshare and ip (a private network namespace)")
def test_the_micro_benchmark_measures_in_its_own_namespace():
    """Timed, not compared: beside the other test workers the price moves; the lo MTU of this
    namespace is untouched (the measurement sets its own namespace's)."""
    before = Path("/sys/class/net/lo/mtu").read_text()
    r = micro_ipfrag(rounds=3, sends=100)
    assert r is not None
    assert r["fragments"] == 45 and r["rounds"] == 3
    assert r["per_fragment_min_ns"] <= r["per_fragment_ns"] <= r["per_fragment_max_ns"]
    assert r["per_fragment_ns"] > 0 and r["send_fragmented_ns"] > r["send_whole_ns"]
    assert Path("/sys/class/net/lo/mtu").read_text() == before


def test_without_root_there_is_no_measurement(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert micro_ipfrag() is None
