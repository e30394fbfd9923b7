"""The honest held-out split (lbsim.calibrate.split): which points the fit reads is decided from
the points' keys before anything is fitted, the steps see only those, and the cost file records
them for lbsim validate.  Scrambling a held-out value must not change what the fit sees; scrambling
a fitted one must."""

from __future__ import annotations

import json
from dataclasses import replace
from importlib import resources

import numpy as np
import pandas as pd
import pytest

from lbsim.calibrate import calibrate_from_files
from lbsim.calibrate.split import SPLIT_RULE, FitSplit, split_frame
from lbsim.calibrate.steps import FitState, fit_cold, fit_tcp_share, select_points
from lbsim.costs import load_costs
from lbsim.fitdata import load_measured
from lbsim.validate import validate

DATA = resources.files("lbsim") / "data"
MODEL = load_costs("default")


def _data() -> pd.DataFrame:
    return load_measured(DATA / "measured-host.csv")


def _scramble(df: pd.DataFrame, which: pd.Series, seed: int = 7) -> pd.DataFrame:
    """``df`` with every value in the rows ``which`` multiplied by a random factor in [0.5, 2]."""
    out = df.copy()
    rng = np.random.default_rng(seed)
    out.loc[which, "value"] = out.loc[which, "value"] * rng.uniform(0.5, 2.0, int(which.sum()))
    return out


def _fitted_mask(df: pd.DataFrame) -> pd.Series:
    fitted, _, _ = split_frame(df, FitSplit())
    return df.index.isin(fitted.index)


def test_the_rule_fits_the_ping_pong_and_split_sizes_and_the_stream_sizes_the_steps_read():
    df = _data()
    fitted, held, keys = split_frame(df, FitSplit())
    assert len(fitted) + len(held) == len(df) and not set(fitted.index) & set(held.index)
    k = set(keys)
    assert ("tcp", "pingpong", "cross", "busy", 4096) in k and ("tcp", "pingpong", "same", "idle", 1024) not in k
    # the page step's split sizes, and UDP's largest datagram for 64 KiB
    assert {("unix_stream", "split", "same", "idle", n) for n in (3776, 3840)} <= k
    assert ("udp", "split", "same", "idle", 65507) in k
    # streams: every transport across CPUs and TCP on one CPU, at 64 B, 4 KiB, 64 KiB and 1 MiB
    streams = {(tr, pl, n) for tr, wl, pl, bg, n in k if wl == "stream"}
    measured = set(df[df.workload == "stream"][["transport", "placement", "msg_bytes"]]
                   .itertuples(index=False, name=None))
    assert streams == {(tr, pl, n) for tr, pl, n in measured
                       if (pl == "cross" or tr == "tcp") and n in (64, 4096, 65536, 65507, 1 << 20)}
    assert ("udp", "cross", 64) in streams and ("tcp", "same", 1 << 20) in streams
    # every held-out point is a whole point: no key is on both sides
    held_keys = set(map(tuple, held[["transport", "workload", "placement", "background", "msg_bytes"]]
                        .itertuples(index=False, name=None)))
    assert not held_keys & k
    rec = FitSplit().record(keys)
    assert rec["rule"] == SPLIT_RULE and rec["params"]["stream_sizes"] == [64, 4096, 65536, 1 << 20]
    assert json.loads(json.dumps(rec))["fitted_points"][0] == list(keys[0])


def _selected(df: pd.DataFrame) -> FitState:
    st = FitState(df=df, base=MODEL, model=MODEL, stream_writes=100)
    select_points(st)
    return st


def test_scrambling_held_out_values_leaves_what_the_steps_see_unchanged():
    df = _data()
    fitted = _fitted_mask(df)
    a, b = _selected(df), _selected(_scramble(df, ~fitted))
    pd.testing.assert_frame_equal(a.df, b.df)
    assert a.pts == b.pts and a.splits == b.splits and a.fitted_keys == b.fitted_keys
    assert not a.held_out.equals(b.held_out)
    # negative control: one fitted value scrambled changes what the steps see
    one = pd.Series(False, index=df.index)
    one.loc[df.index[fitted & (df.workload == "pingpong") & (df.metric == "rtt_p50_us")][0]] = True
    c = _selected(_scramble(df, one))
    assert not c.df.equals(a.df)


def test_scrambling_held_out_streams_leaves_the_stream_fits_unchanged():
    """The TCP same-CPU stream steps on the shipped data, short streams: the same values whatever
    the held-out streams say; a fitted stream scrambled changes them."""
    df = _data()
    fitted = _fitted_mask(df)
    streams = (df.workload == "stream").to_numpy()

    def fit(d):
        st = _selected(d)
        fit_tcp_share(st)
        fit_cold(st)
        return st.params

    base = fit(df)
    assert fit(_scramble(df, ~fitted & streams)) == base
    big = ((df.workload == "stream") & (df.transport == "tcp") & (df.placement == "same")
           & (df.msg_bytes == 1 << 20)).to_numpy()
    assert fit(_scramble(df, fitted & big, seed=3))["copy_cold_ns_per_byte"] != base["copy_cold_ns_per_byte"]


def _model_with_record(keys, fit_sizes=(64,)):
    prov = {k: v for k, v in MODEL.provenance.items() if k != "fit_split"}
    return replace(MODEL, provenance={**prov, "fit_sizes": list(fit_sizes),
                                      "fit_split": FitSplit(tuple(fit_sizes)).record(keys)})


FAST = {"messages_pingpong": 100, "stream_bytes": 1 << 18, "seed": 1, "stream_replications": 1}


def test_validate_labels_the_points_the_cost_file_records():
    rows = [{"transport": "udp", "workload": wl, "placement": "cross", "msg_bytes": n, "metric": m, "value": 5.0}
            for wl, m in (("pingpong", "rtt_p50_us"), ("stream", "throughput_MBps")) for n in (64, 1024)]
    df = pd.DataFrame(rows)
    model = _model_with_record([("udp", "stream", "cross", "idle", 1024), ("udp", "pingpong", "cross", "idle", 64)])
    rep = validate(df, costs=model, **FAST)
    fitted = rep.rows.set_index(["workload", "msg_bytes"]).fitted
    assert fitted[("stream", 1024)] and fitted[("pingpong", 64)]
    assert not fitted[("stream", 64)] and not fitted[("pingpong", 1024)]
    assert not any("message size only" in n for n in rep.notes)
    # an old cost file (no record): by size, and a note says so
    old = replace(MODEL, provenance={k: v for k, v in model.provenance.items() if k != "fit_split"})
    rep = validate(df, costs=old, **FAST)
    fitted = rep.rows.set_index(["workload", "msg_bytes"]).fitted
    assert fitted[("stream", 64)] and not fitted[("stream", 1024)]
    assert any("no record of the points" in n for n in rep.notes)


@pytest.mark.slow  # one whole calibration: 1-2 minutes on 2 cores
def test_the_full_fit_ignores_held_out_values_and_reproduces_the_expected_costs(tmp_path):
    """The committed data with every held-out value scrambled: the fit must give the shipped
    default cost file (fitted from the same data by tools/profiles/make_shipped.py --refit) exactly.
    That proves the split (no step reads a held-out point) and that the defaults are reproducible.
    The negative control (a scrambled fitted value changes what the steps see) is in
    test_scrambling_held_out_values_leaves_what_the_steps_see_unchanged."""
    from lbsim.model.stages import OPTIONAL_STAGES, STAGES

    df = _data()
    csv = tmp_path / "m.csv"
    (tmp_path / "m.csv.host.json").write_text((DATA / "measured-host.csv.host.json").read_text())
    _scramble(df, ~_fitted_mask(df)).to_csv(csv, index=False)
    calibrate_from_files(csv, DATA / "stages-host.json", tmp_path / "a.json",
                         fit_sizes=load_costs().provenance["fit_sizes"])
    new = json.loads((tmp_path / "a.json").read_text())
    old = json.loads((resources.files("lbsim") / "data" / "costs-default.json").read_text())
    want = {k: v["value"] for k, v in old["provenance"]["params"].items()}
    assert {k: v["value"] for k, v in new["provenance"]["params"].items()} == pytest.approx(want, rel=1e-9)
    # the measured machine's, from the data's .host.json, whatever machine runs the fit
    assert new["cache_bytes"] == old["cache_bytes"] and new["name"] == old["name"]
    assert set(new["stages"]) == set(old["stages"]) == set(STAGES) - set(OPTIONAL_STAGES)  # none measured
    for s in old["stages"]:
        for k in ("fixed_ns", "per_byte_ns", "cv"):
            assert new["stages"][s][k] == pytest.approx(old["stages"][s][k], rel=1e-6, abs=1e-9), (s, k)
    for d, v in old["delays"].items():
        assert new["delays"][d]["mean_ns"] == pytest.approx(v["mean_ns"], rel=1e-6)
    assert new["provenance"]["fit_split"] == old["provenance"]["fit_split"]
