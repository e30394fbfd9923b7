"""The provenance table (lbsim/model/provenance.py): every model parameter is in it with a kind and
an honest source, and no entry is a knob-specific factor (issue 28)."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from lbsim.calibrate import params as cp
from lbsim.calibrate.fits import BOUNCE_FAMILIES
from lbsim.calibrate.steps import FIT_STEPS, PARAM_ORDER
from lbsim.config import KERNEL_FIELDS, SimConfig
from lbsim.costs import DELAYS
from lbsim.kernels import KernelParams
from lbsim.measure.stages_intervals import STAGE_ORDER
from lbsim.model import provenance as prov
from lbsim.model.stages import OPTIONAL_STAGES, STAGES

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "guide" / "provenance.md"
#: a path in the kernel tree: the kernel constants' sources must name one
KERNEL_PATH = re.compile(r"\b(?:include|net|kernel|drivers|mm|arch|lib|fs)/(?:[\w.-]+/)*[\w.-]*(?:\.[ch]\b|Kconfig)")
#: the parameters known to have no source yet (docs/guide/provenance.md); a new one fails here
KNOWN_UNSOURCED = {"tcp_recv.RCV_RTT_NS"}
STEP_NAMES = {f.__name__ for f in FIT_STEPS}


def _names(params) -> list[str]:
    return [p.name for p in params]


def _by_name(params) -> dict[str, prov.Param]:
    return {p.name: p for p in params}


@pytest.mark.parametrize("section", [s[0] for s in prov.SECTIONS])
def test_no_duplicates_and_known_kinds(section):
    params = dict((t, ps) for t, _, ps in prov.SECTIONS)[section]
    names = _names(params)
    assert len(names) == len(set(names)), f"duplicate entries in {section}"
    for p in params:
        assert p.kind in prov.KINDS, f"{p.name}: kind {p.kind!r}"
        assert p.source.strip(), f"{p.name}: no source"


def test_every_simconfig_field_is_in_the_table():
    assert set(_names(prov.SIMCONFIG)) == set(SimConfig.model_fields)


def test_simconfig_knobs_are_the_kernel_fields_with_the_profiles_source():
    kernel = _by_name(prov.KERNEL_PARAMS)
    knobs = {p.name for p in prov.SIMCONFIG if p.kind == "kernel"}
    assert knobs == set(KERNEL_FIELDS)
    for p in prov.SIMCONFIG:
        if p.kind == "kernel":
            assert p.source == kernel[p.name].source


def test_every_kernel_profile_field_is_in_the_table():
    fields = {f.name for f in dataclasses.fields(KernelParams)} - {"name"}
    assert set(_names(prov.KERNEL_PARAMS)) == fields


def test_every_stage_and_delay_is_in_the_table():
    assert _names(prov.STAGE_COSTS) == list(STAGES)  # the same order as the stage table
    assert set(DELAYS) <= set(_names(prov.COST_MODEL))


def test_every_model_constant_is_in_the_table():
    found = set(prov.model_constants())
    listed = set(_names(prov.MODEL_CONSTANTS)) | {k for k in prov.NOT_PARAMETERS if not k.startswith("costs.")}
    assert found - listed == set(), "ALL_CAPS numbers in lbsim/model without a provenance entry"
    assert listed - found == set(), "provenance entries for constants that are gone"


def test_the_constant_scan_sees_literals_not_stage_ids(tmp_path):
    (tmp_path / "m.py").write_text("A = 3\nB = SID['x']\nclass K:\n    C = (1.5, 2)\n    d = 4\n_E: int = 1 << 4\n")
    assert prov.model_constants(tmp_path) == ["m.A", "m.K.C", "m._E"]


def test_every_kernel_constant_names_a_kernel_source_path():
    for p in prov.all_params():
        if p.kind == "kernel":
            assert KERNEL_PATH.search(p.source), f"{p.name}: source {p.source!r} names no kernel file"


def test_every_fitted_value_comes_from_a_fit_step():
    """Each fitted entry names the fit step that sets it; each value the fit writes is in the table."""
    for p in prov.all_params():
        if p.kind == "fitted" and not p.borrowed_from:
            named = {w for w in re.findall(r"\w+", p.source) if w in STEP_NAMES}
            assert named, f"{p.name}: {p.source!r} names no step of FIT_STEPS"
    text = " ".join(p.source for p in prov.all_params() if p.kind == "fitted")
    for value in PARAM_ORDER:
        assert re.search(rf"\b{value}\b", text), f"fitted value {value} is in no provenance entry"


def test_measured_entries_name_a_measured_quantity():
    measured = set(STAGE_ORDER) | {"null_syscall_ns", "l2_bytes", "ep_send_events_ns", "ep_poll_callback_ns",
                                        "unix_find_other_ns"}
    for p in prov.all_params():
        if p.kind == "measured" and not p.borrowed_from:
            assert set(re.findall(r"\w+", p.source)) & measured, f"{p.name}: {p.source!r}"


def test_stage_sources_match_the_fit():
    """The table says what lbsim/calibrate/params.py does to each stage."""
    table = _by_name(prov.STAGE_COSTS)
    for s, (src, _) in cp.SHARED_RULES.items():
        assert table[s].borrowed_from == src
        assert table[s].kind == table[src].kind
    borrowed = {p.name for p in prov.STAGE_COSTS if p.borrowed_from}
    assert borrowed == set(cp.SHARED_RULES)
    groups = {f"scale_{t}": ss for t, ss in cp.TRANSPORT_STAGES.items()}
    groups |= {"scale_sched": cp.SCHED_STAGES, "scale_net": cp.NET_STAGES,
               "tcp_call_scale": cp.TCP_CALL_STAGES, "tcp_packet_scale": cp.TCP_PACKET_STAGES}
    groups |= {name: ss for name, ss in cp.COPY_STAGE.items()}
    groups |= {"copy_cold_ns_per_byte": cp.COPY_STAGES}
    groups |= {f"{s}_ns": (s,) for s in BOUNCE_FAMILIES}
    for value, stages in groups.items():
        for s in stages:
            if s in borrowed:
                continue  # SHARED_RULES overwrite the scaled cost (apply_params)
            assert value in table[s].source, f"{s}: {value} is missing from {table[s].source!r}"
            assert table[s].kind == "fitted"
    scaled = {s for ss in groups.values() for s in ss}
    for p in prov.STAGE_COSTS:
        if p.kind == "measured" and not p.borrowed_from:
            assert p.name not in scaled, f"{p.name} is scaled by the fit: not a raw measurement"


def test_no_knob_specific_factor():
    """A knob appears only as itself (a kernel setting, its default cited).  No fitted, measured or
    unsourced value outside the stage table (whose names are the kernel functions', checked against
    lbsim.model.stages) is named after a knob, nor is any value the fit writes."""
    knobs = set(KERNEL_FIELDS) | {"so_sndbuf", "so_rcvbuf", "sndbuf", "rcvbuf", "rps", "tso", "mtu", "backlog",
                                  "defer", "qlen", "congestion", "cwnd", "budget", "weight"}
    stages = set(STAGES)
    names = [p.name for p in prov.all_params()
             if p.kind in ("fitted", "measured", "unsourced") and p.name not in stages]
    for name in [*names, *PARAM_ORDER]:
        parts = set(re.split(r"[._]", name.lower())) | {name.lower()}
        assert not parts & knobs, f"{name} is named after a knob"
    for p in prov.STAGE_COSTS:
        assert not re.search(r"\b(if|when) (mtu|tso|rps|rmem|wmem)", p.source), f"{p.name}: a knob-specific rule"


def test_shipped_cost_files_fit_no_value_outside_the_table():
    fitted = " ".join(p.source for p in prov.all_params() if p.kind == "fitted")
    for path in sorted((ROOT / "lbsim" / "data" / "profiles").glob("*.json")):
        params = json.loads(path.read_text()).get("provenance", {}).get("params", {})
        for name in params:
            assert re.search(rf"\b{name}\b", fitted), f"{path.name}: fitted value {name} has no provenance entry"


def test_every_number_of_a_cost_file_is_in_the_table():
    """A shipped cost file holds the stage costs, the delays and the numbers of COST_MODEL, no other."""
    names = set(_names(prov.COST_MODEL)) | {k[len("costs."):] for k in prov.NOT_PARAMETERS if k.startswith("costs.")}
    stage_fields = {"fixed_ns", "per_byte_ns", "cv", "per_byte_cold_ns"}
    for path in sorted((ROOT / "lbsim" / "data" / "profiles").glob("*.json")):
        data = json.loads(path.read_text())
        assert set(STAGES) - set(OPTIONAL_STAGES) <= set(data["stages"]) <= set(STAGES)
        assert set(data["delays"]) <= names
        assert {f for st in data["stages"].values() for f in st} <= stage_fields
        for key in set(data) - {"name", "schema", "provenance", "stages", "delays"}:
            assert key in names, f"{path.name}: {key} has no provenance entry"


def test_unsourced_parameters_are_the_known_ones():
    assert {p.name for p in prov.all_params() if p.kind == "unsourced"} == KNOWN_UNSOURCED


def test_the_docs_page_is_current():
    assert DOC.read_text() == prov.render_markdown(), (
        "docs/guide/provenance.md is stale: regenerate it with .venv/bin/python -c \"from lbsim.model.provenance "
        "import render_markdown; open('docs/guide/provenance.md', 'w').write(render_markdown())\"")
