"""lbsim validate --stages: stage-level truth on traced runs the costs' base did not read."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

from lbsim.calibrate.base import base_from_stage_intervals
from lbsim.cli import main
from lbsim.costs import load_costs
from lbsim.validate import stages as vs

ROOT = Path(__file__).resolve().parent.parent
HOST = ROOT / "data" / "hosts" / "amd-epyc-2026-12-06-v1300"


@pytest.fixture(scope="module")
def report() -> vs.StagesReport:
    path, costs, host = vs.resolve_inputs(str(HOST), None)
    return vs.validate_stages(path, costs, host=host, messages=1000)


def _base(stages: dict) -> dict[str, float]:
    fixed, per_byte, _ = base_from_stage_intervals(stages)
    return {**fixed, **{f"{k}/byte": v for k, v in per_byte.items()}}


def test_no_compared_row_is_on_a_run_the_base_read(report):
    """Independent of base_runs_used: moving a compared row's own intervals in its run, or the run's
    overhead, must leave the base cost of every model stage in the row unchanged."""
    stages = vs.load_stage_file(HOST / "stages-host.json")
    ref = _base(stages)
    assert report.compared
    for row in report.compared:
        i = next(i for i, r in enumerate(stages["runs"])
                 if (r["transport"], r["placement"], r["size"]) == (row.transport, row.placement, row.size))
        for factor in (1e-3, 0.7, 1.5, 1e3):
            runs = json.loads(json.dumps(stages["runs"]))
            med = runs[i]["result"]["medians"]
            for name in med:
                if isinstance(med[name], (int, float)):
                    med[name] *= factor
            runs[i]["result"]["overhead_ns_per_event"] *= factor
            got = _base({**stages, "runs": runs})
            for s in row.model_stages:
                for key in (s, f"{s}/byte"):
                    if key in ref:
                        assert math.isclose(got[key], ref[key]), (row.transport, row.placement, row.size, row.row, key)


def test_the_base_runs_are_left_out_and_named(report):
    # every stage of the base reads the same-CPU 64 B runs; the cross runs give the idle-CPU IPI
    assert not [r for r in report.compared if r.placement == "same" and r.size == 64]
    assert not [r for r in report.compared if "send_call_function_single_ipi" in r.model_stages]
    left = [r for r in report.rows if r.excluded.startswith("base")]
    assert len(left) >= 30 and all("read from this run" in r.excluded for r in left)
    assert "left out because the costs' base read them" in report.format_table()


def test_a_circular_row_is_excluded(monkeypatch):
    """A row made of stages whose base came from the run (udp same 64 B) must not be compared."""
    rows = dict(vs.ROWS)
    rows[("udp", "same")] = (("recv", ("switch_in_to_exit",), ("udp_recvmsg",)),)
    monkeypatch.setattr(vs, "ROWS", rows)
    path, costs, _ = vs.resolve_inputs(str(HOST), None)
    rep = vs.validate_stages(path, costs, messages=200)
    udp64 = [r for r in rep.rows if (r.transport, r.placement, r.size) == ("udp", "same", 64)]
    assert udp64 and all(r.excluded == "base: udp_recvmsg read from this run" for r in udp64)


def test_simulated_side_is_the_stage_costs(report):
    """The device row is dev_queue_xmit + loopback_xmit per call: their mean costs (log-normal draws,
    cv 0.4 over >= 1000 calls: the mean is within 3 % at 2.5 sd)."""
    costs = load_costs(str(HOST / "costs.json"))
    want = costs.stages["dev_queue_xmit"].fixed_ns + costs.stages["loopback_xmit"].fixed_ns
    rows = [r for r in report.compared if r.row == "device"]
    assert rows
    for r in rows:
        assert r.simulated_ns == pytest.approx(want, rel=0.03)


def test_spread_comes_from_the_hosts_repeats(report):
    # amd-epyc-2026-12-06-v1300 was traced three times (v1300b, 2026-12-07-v1300 beside it)
    assert {r.spread_from for r in report.compared} == {"repeats"}
    assert all(r.within == (abs(r.error) <= r.spread) for r in report.compared)
    s = report.summary()
    assert s["within_spread"] == sum(1 for r in report.compared if r.within) and 0 < s["within_spread"] < s["compared"]


def test_cli_json_and_figure(tmp_path, capsys):
    fig = tmp_path / "stages.png"
    assert main(["validate", "--stages", str(HOST), "--json", "--figure", str(fig)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["host"] == HOST.name and out["summary"]["compared"] > 0
    assert fig.stat().st_size > 1000
    assert all(r["excluded"] or r["simulated_ns"] is not None for r in out["rows"])


@pytest.mark.parametrize("case, message", [
    ("missing", "no such stage file or host folder"),
    ("not_stages", "not a stage file (no 'runs' list"),
    ("foreign", "a foreign stage file: traced on kernel 6.18.44-fc-v769"),
    ("no_usable", "no usable traced runs"),
    ("incomplete", "the fit's base cannot be read from this stage file"),
])
def test_bad_input_is_one_line(tmp_path, capsys, case, message):
    costs = str(HOST / "costs.json")
    stages = json.loads((HOST / "stages-host.json").read_text())
    target = tmp_path / "h" / "stages-host.json"
    target.parent.mkdir()
    if case == "missing":
        target = tmp_path / "nowhere.json"
    elif case == "not_stages":
        shutil.copy(ROOT / "data" / "hosts" / "amd-epyc-2026-12-04b" / "stages-cross-64B.json", target)
    elif case == "foreign":
        shutil.copy(ROOT / "data" / "hosts" / "xeon-2026-11-25" / "stages-host.json", target)
    elif case == "no_usable":
        # only the intervals the base reads are left: every other row is untraced or circular
        for r in stages["runs"]:
            if (r["placement"], r["size"]) != ("same", 64):
                r["result"]["medians"] = {k: v for k, v in r["result"]["medians"].items()
                                          if k in ("softirq_tail", "waking_to_exit", "copy_to_exit")}
        target.write_text(json.dumps(stages))
    else:
        stages["runs"] = [r for r in stages["runs"] if r["transport"] != "unix_dgram"]
        target.write_text(json.dumps(stages))
    assert main(["validate", "--stages", str(target), "--costs", costs]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
