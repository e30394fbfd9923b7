"""Stage edits (SimConfig stage_scale / stage_cost / stage_remove): what a run gives when a
stage costs more, less or nothing; recorded in the output and the results rows."""

from __future__ import annotations

import json

import pytest

import lbsim
from lbsim.cli import main
from lbsim.config import ConfigError, make_config
from lbsim.costs import apply_stage_edits, load_costs, stage_edits_text
from lbsim.expansion import expand, run_id_for
from lbsim.experiment import experiment_to_toml, parse_experiment
from lbsim.model.stages import OPTIONAL_STAGES, STAGES
from lbsim.results import CONFIG_COLUMNS, run_rows

BASE = dict(transport="tcp", msg_bytes=64, messages=150, cpus=1, placement="same", seed=3)


def _busy(r):
    return {s["stage"]: (s["count"], s["busy_ns"]) for s in r.stages}


def test_no_edits_is_the_same_model_and_unit_scale_the_same_numbers():
    m = load_costs()
    assert apply_stage_edits(m) is m
    base = lbsim.simulate(**BASE)
    one = lbsim.simulate(**BASE, stage_scale={"*": 1.0})
    assert one.latency_ns == base.latency_ns and _busy(one) == _busy(base)
    assert base.to_dict()["stage_edits"] == "" and one.to_dict()["stage_edits"] == "scale(*=1)"


def test_scaling_one_stage_leaves_the_other_stages_draws_alone():
    """Common random numbers: every stage draws from its own stream."""
    base = _busy(lbsim.simulate(**BASE))
    edit = _busy(lbsim.simulate(**BASE, stage_scale={"ip_rcv": 0.5}))
    assert {k: v[0] for k, v in edit.items()} == {k: v[0] for k, v in base.items()}
    for stage, (_n, busy) in base.items():
        want = 0.5 * busy if stage == "ip_rcv" else busy
        assert edit[stage][1] == pytest.approx(want, rel=1e-12), stage


def test_set_remove_and_globs_in_deterministic_mode():
    cfg = dict(BASE, deterministic=True)
    m = load_costs()
    r = _busy(lbsim.simulate(**cfg, stage_cost={"ip_rcv": {"fixed_ns": 100.0}}, stage_remove=["netif_rx"],
                             stage_scale={"tcp_*": 0.5, "tcp_v4_rcv": 0.5}))
    assert r["ip_rcv"][1] == pytest.approx(100.0 * r["ip_rcv"][0])
    assert r["netif_rx"][0] > 0 and r["netif_rx"][1] == 0.0
    # glob factors multiply: tcp_v4_rcv is named by both keys
    assert r["tcp_v4_rcv"][1] == pytest.approx(0.25 * m.stages["tcp_v4_rcv"].fixed_ns * r["tcp_v4_rcv"][0])
    assert r["tcp_ack"][1] == pytest.approx(0.5 * m.stages["tcp_ack"].fixed_ns * r["tcp_ack"][0])


def test_delays_can_be_scaled():
    m = apply_stage_edits(load_costs(), {"wakeup_remote_*": 2.0})
    for name, d in load_costs().delays.items():
        assert m.delays[name].fixed_ns == 2 * d.fixed_ns
    slow = lbsim.simulate(**dict(BASE, cpus=2, placement="cross"), stage_scale={"wakeup_remote_idle_ns": 3.0})
    fast = lbsim.simulate(**dict(BASE, cpus=2, placement="cross"))
    assert slow.latency_ns["p50"] > fast.latency_ns["p50"]


@pytest.mark.parametrize("bad, expect", [
    (dict(stage_scale={"ip_rvc": 0.5}), "close: ip_rcv"),
    (dict(stage_scale={"tpc_*": 0.5}), "matches no stage"),
    (dict(stage_remove=["netf_rx"]), "close: netif_rx"),
    (dict(stage_scale={"ip_rcv": -1}), ">= 0"),
    (dict(stage_cost={"ip_rcv": {"fixed": 1}}), "fixed"),
])
def test_bad_edits_are_one_line_errors(bad, expect):
    with pytest.raises(ConfigError, match=expect) as e:
        make_config(**bad)
    assert "\n" not in str(e.value)


def test_cli_options_and_output(capsys):
    args = ["simulate", "--messages", "50", "--stage-scale", "tcp_*=0.9", "--stage-cost", "ip_rcv=100,0.01",
            "--stage-remove", "netif_rx"]
    assert main(args) == 0
    out = capsys.readouterr().out
    text = "scale(tcp_*=0.9);cost(ip_rcv=100+0.01/B);remove(netif_rx)"
    assert f"stage edits: {text}" in out
    assert main([*args, "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["stage_edits"] == text and d["config"]["stage_cost"]["ip_rcv"] == {"fixed_ns": 100.0, "per_byte_ns": 0.01}
    assert main(["simulate", "--messages", "50", "--set", 'stage_remove=["netif_rx"]', "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["stage_edits"] == "remove(netif_rx)"
    assert main(["simulate", "--stage-scale", "ip_rvc=0.5"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "ip_rcv" in err
    assert main(["simulate", "--stage-cost", "ip_rcv"]) == 2


def test_results_rows_have_one_stage_edits_column():
    assert "stage_edits" in CONFIG_COLUMNS and "stage_scale" not in CONFIG_COLUMNS
    r = lbsim.simulate(**BASE, stage_scale={"ip_rcv": 0.7})
    spec = {"run_id": "x", "experiment": "e", "name": "tcp#r0", "replication": 0, "seed": 3,
            "config": r.config.model_dump(mode="json"), "status": "pending"}
    rows = run_rows(spec, {"status": "ok", "result": r.to_dict()}, lbsim_version="t")
    assert {row["stage_edits"] for row in rows} == {"scale(ip_rcv=0.7)"}
    rows = run_rows(dict(spec, config=make_config().model_dump(mode="json")), None, lbsim_version="t")
    assert rows[0]["stage_edits"] == ""


EXP = """
name = "edits"
seed = 1
[base]
messages = 50
[factors]
stage_scale = [{}, {ip_rcv = 0.5}, {"tcp_*" = 0.9}]
stage_remove = [[], ["netif_rx"]]
"""


def test_stage_edits_are_experiment_factors():
    exp = parse_experiment(EXP, "x.toml")
    specs = expand(exp)
    assert len(specs) == 6 and len({s.run_id for s in specs}) == 6
    assert any("stage_scale={\"ip_rcv\":0.5}" in s.name for s in specs)
    again = expand(parse_experiment(experiment_to_toml(exp), "y.toml"))
    assert [s.run_id for s in again] == [s.run_id for s in specs]
    texts = {stage_edits_text(s.config["stage_scale"], s.config["stage_cost"], s.config["stage_remove"])
             for s in specs}
    assert "" in texts and "scale(tcp_*=0.9);remove(netif_rx)" in texts


def test_run_ids_without_edits_do_not_depend_on_the_new_fields():
    cfg = make_config().model_dump(mode="json")
    old = {k: v for k, v in cfg.items() if k not in ("stage_scale", "stage_cost", "stage_remove")}
    assert run_id_for(cfg, 0) == run_id_for(old, 0)
    assert run_id_for({**cfg, "stage_remove": ["netif_rx"]}, 0) != run_id_for(old, 0)


def test_every_stage_is_editable():
    m = apply_stage_edits(load_costs(), {"*": 0.0})
    # (the optional stages the cost file lacks stay absent: nothing to scale)
    assert all(m.stages[s].fixed_ns == 0 for s in STAGES if s not in OPTIONAL_STAGES)
    assert not set(OPTIONAL_STAGES) & set(m.stages)
