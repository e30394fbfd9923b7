"""Knob effects (lbsim.validate.effects) and the calibration's knob-row filter (lbsim.fitdata)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd
import pytest

from lbsim.calibrate.steps import FitState, select_points
from lbsim.fitdata import default_settings_only, is_knob_row, kernel_fields, load_measured

ROOT = Path(__file__).resolve().parents[1]
HOST = ROOT / "data" / "hosts" / "amd-epyc-2026-12-06-v1300"
KNOBS = ROOT / "data" / "knobs" / "amd-epyc-2026-12-06-v1300" / "knobs.csv"
COSTS = HOST / "costs.json"


def _fit_frame(csv: Path) -> tuple[pd.DataFrame, list, list, dict]:
    """What the fit steps are handed: the loaded frame and select_points' points."""
    df = load_measured(csv)
    st = FitState(df=df, base=None)  # type: ignore[arg-type]  (select_points reads no model)
    select_points(st)
    return df, st.pts, st.splits, kernel_fields(df)


def _with_rows(tmp_path: Path, rows: pd.DataFrame, name: str) -> Path:
    base = pd.read_csv(HOST / "measured-host.csv")
    out = tmp_path / name
    pd.concat([base, rows], ignore_index=True).to_csv(out, index=False)
    return out


def _knob_rows() -> pd.DataFrame:
    k = pd.read_csv(KNOBS)
    return k[~k["setting"].str.endswith("/default")]


def test_calibrate_never_sees_a_knob_row(tmp_path, caplog):
    plain = _fit_frame(HOST / "measured-host.csv")
    with caplog.at_level(logging.WARNING, logger="lbsim.fitdata"):
        mixed = _fit_frame(_with_rows(tmp_path, _knob_rows(), "mixed.csv"))
    pd.testing.assert_frame_equal(plain[0], mixed[0])
    assert plain[1:] == mixed[1:]
    assert any("knob-setting rows left out of the fit" in r.getMessage() for r in caplog.records)


def test_negative_control_knob_rows_relabelled_as_defaults_change_the_frame(tmp_path):
    plain = _fit_frame(HOST / "measured-host.csv")
    relabelled = _knob_rows().assign(setting=lambda d: d["group"] + "/default")
    mixed = _fit_frame(_with_rows(tmp_path, relabelled, "relabelled.csv"))
    assert len(mixed[0]) > len(plain[0])
    assert mixed[1] != plain[1]  # the ping-pong medians moved


def test_knob_row_rule():
    df = pd.DataFrame({"setting": ["mtu/default", "mtu/mtu=1500", None, ""], "knob": ["mtu", "mtu", "", None]})
    assert is_knob_row(df).tolist() == [False, True, False, False]
    assert is_knob_row(pd.DataFrame({"knob": ["mtu", None]})).tolist() == [True, False]
    plain = pd.DataFrame({"transport": ["tcp"]})
    assert default_settings_only(plain) is plain


# --------------------------------------------------------------------------------------------
# the effect validation, on a small part of the committed grid
# --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sndbuf_report():
    from lbsim.validate.effects import validate_effects

    df = pd.read_csv(KNOBS)
    sub = df[(df["group"] == "so-sndbuf-stream") & df["transport"].isin(["unix_stream", "tcp"])
             & df["setting"].str.contains("default|so_sndbuf=1$")]
    host = json.loads((KNOBS.parent / "knobs.csv.host.json").read_text())
    return validate_effects(sub, str(COSTS), host=host, workers=1, stream_replications=1)


def test_effects_pair_each_setting_with_its_own_default(sndbuf_report):
    rows = sndbuf_report.rows
    assert sorted(rows["transport"]) == ["tcp", "unix_stream"]
    us = rows[rows["transport"] == "unix_stream"].iloc[0]
    # measured: 2 repetitions, each over the mean of the two default runs around it
    df = pd.read_csv(KNOBS)
    pt = df[(df["group"] == "so-sndbuf-stream") & (df["transport"] == "unix_stream")
            & (df["metric"] == "throughput_MBps")]
    ratios = []
    for rep in (0, 1):
        d = pt[(pt["setting"].str.endswith("/default")) & (pt["rep"] == rep)]["value"].mean()
        ratios.append(float(pt[(pt["setting"].str.endswith("so_sndbuf=1")) & (pt["rep"] == rep)]["value"].iloc[0]) / d)
    assert us["measured_effect"] == pytest.approx(sum(ratios) / 2)
    assert us["spread"] == pytest.approx(abs(ratios[0] - ratios[1]))
    assert us["simulated_effect"] == pytest.approx(us["sim_setting"] / us["sim_default"])
    assert us["effect_error_pct"] == pytest.approx(100 * (us["simulated_effect"] / us["measured_effect"] - 1))
    # a 4608-byte sk_sndbuf throttles an AF_UNIX stream by an order of magnitude, here and there
    assert us["real"] and us["direction_agrees"] and us["simulated_effect"] < 0.3


def test_effects_report_json_and_table(sndbuf_report):
    d = json.loads(json.dumps(sndbuf_report.to_dict()))
    assert {"summary", "effects", "drops", "settings"} <= set(d)
    assert d["summary"]["settings"] == 2
    text = sndbuf_report.format_table()
    assert "so_sndbuf=1" in text and "median |effect error|" in text


def test_not_modelled_settings_say_why():
    from lbsim.validate.effects import run_fields

    row = pd.Series({"transport": "unix_dgram", "workload": "stream", "placement": "cross", "msg_bytes": 64,
                     "knob": "rps_cpus", "setting": "g/rps_cpus=all", "senders": 2})
    fields, why = run_fields(row, {}, messages=100, seed=1)
    assert fields is None and "udp streams only" in why


def test_two_senders_run_on_the_senders_cpu_and_split_the_count():
    """harness.c --senders 2: the second sender (--cpu-c, default --cpu-a) writes --count too,
    and msgs_sent counts both: each simulated sender writes half of it."""
    from lbsim.config import make_config
    from lbsim.validate.effects import run_fields

    row = pd.Series({"transport": "udp", "workload": "stream", "placement": "cross", "msg_bytes": 64,
                     "knob": "rps_cpus", "setting": "g/rps_cpus=all", "senders": 2, "rps_cpus": "3"})
    fields, why = run_fields(row, {}, messages=40000, seed=1)
    assert why == "" and fields is not None
    cfg = make_config(fields)
    assert cfg.senders == 2 and cfg.messages == 20000 and cfg.placements() == [(0, 1)] and cfg.rps_cpus == 3


def test_run_fields_map_the_host_settings():
    from lbsim.config import make_config
    from lbsim.validate.effects import host_fields, run_fields

    df = pd.read_csv(KNOBS)
    row = df[(df["setting"] == "flows-pingpong/flows=4") & (df["placement"] == "cross")].iloc[0]
    host = json.loads((KNOBS.parent / "knobs.csv.host.json").read_text())
    fields, why = run_fields(row, host_fields(host), messages=100, seed=1)
    assert why == "" and fields is not None
    cfg = make_config(fields)
    assert cfg.placements() == [(0, 1)] * 4 and cfg.workload == "rr"  # N concurrent ping-pongs
    assert cfg.tcp_rmem == (4096, 131072, 33554432) and cfg.rmem_max == 4194304
    assert cfg.tcp_congestion_control == "bbr" and cfg.so_rcvbuf is None  # the column holds the socket's own


def test_effects_figure(sndbuf_report, tmp_path):
    from lbsim.plots_effects import effects_figure

    out = tmp_path / "e.png"
    effects_figure(sndbuf_report.rows).savefig(out)
    assert out.stat().st_size > 1000


def test_cli_knob_grid_goes_to_effects(tmp_path, capsys, monkeypatch):
    from lbsim.cli import host as cli_host

    assert cli_host._is_knob_grid(str(KNOBS))
    assert not cli_host._is_knob_grid(str(HOST / "measured-host.csv"))
