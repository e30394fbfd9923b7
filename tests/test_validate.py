"""lbsim.validate: measured data against the model, its report, what its command runs
(run_validation) and its input checks."""

from __future__ import annotations

import json
from importlib import resources

import pandas as pd
import pytest

import lbsim
from lbsim.fitdata import sim_kernel
from lbsim.validate import (
    INPUT_ERRORS,
    METRICS,
    MeasuredDataError,
    OptionError,
    ValidationReport,
    check_measured,
    check_options,
    parse_fit_sizes,
    run_validation,
    validate,
)

DATA = resources.files("lbsim") / "data"
# one simulation per stream point: the synthetic data below is the model's own output at seed 1
FAST = {"messages_pingpong": 200, "stream_bytes": 1 << 20, "seed": 1, "stream_replications": 1}
FAST_ARGS = ["--messages-pingpong", "200", "--stream-bytes", str(1 << 20), "--seed", "1", "--stream-replications",
             "1", "-q"]
ROW_COLUMNS = {"transport", "workload", "placement", "background", "msg_bytes", "metric", "measured", "simulated",
               "error_pct", "spread", "fitted"}


@pytest.fixture(scope="module")
def subset() -> pd.DataFrame:
    df = pd.read_csv(DATA / "measured-host.csv")
    pp = (df.workload == "pingpong") & df.msg_bytes.isin([64, 4096]) & (df.background == "idle")
    st = (df.workload == "stream") & (df.msg_bytes == 1024)
    return df[pp | st].reset_index(drop=True)


@pytest.fixture(scope="module")
def report(subset: pd.DataFrame) -> ValidationReport:
    return validate(subset, **FAST)


def _synthetic(points: list[dict], reps: int = 1, scale_rtt: float = 1.0) -> pd.DataFrame:
    """The simulator's own output written as measured data (same settings validate uses)."""
    rows = []
    for p in points:
        n = p["msg_bytes"]
        messages = FAST["messages_pingpong"] if p["workload"] == "pingpong" else \
            max(50, min(20000, FAST["stream_bytes"] // n))
        bg = [1] if p.get("background") == "busy" else "idle"
        r = lbsim.simulate(transport=p["transport"], workload=p["workload"], msg_bytes=n, messages=messages,
                           placement=p["placement"], background=bg, seed=FAST["seed"])
        lat = r.latency_us
        if p["workload"] == "pingpong":
            vals = {f"rtt_{k}_us": lat[k] * scale_rtt for k in ("mean", "p50", "p90", "p99", "p999")}
        else:
            vals = {"throughput_MBps": r.throughput["bytes_per_s"] / 1e6, "msgs_per_s": r.throughput["msgs_per_s"]}
        for rep in range(reps):
            for m, v in vals.items():
                rows.append({"transport": p["transport"], "workload": p["workload"], "placement": p["placement"],
                             "msg_bytes": n, "metric": m, "value": v, "rep": rep,
                             "background": p.get("background", "idle"), "harness": "sim"})
    return pd.DataFrame(rows)


SYNTH_POINTS = [
    {"transport": "tcp", "workload": "pingpong", "placement": "same", "msg_bytes": 64},
    {"transport": "unix_stream", "workload": "pingpong", "placement": "same", "msg_bytes": 1024},
    {"transport": "udp", "workload": "pingpong", "placement": "cross", "msg_bytes": 1024, "background": "busy"},
    {"transport": "tcp", "workload": "stream", "placement": "same", "msg_bytes": 1024},
    {"transport": "unix_stream", "workload": "stream", "placement": "same", "msg_bytes": 1024},
]


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    d = tmp_path_factory.mktemp("synth")
    good, slow = d / "synthetic.csv", d / "synthetic-rtt-x1.5.csv"
    _synthetic(SYNTH_POINTS).to_csv(good, index=False)
    _synthetic(SYNTH_POINTS, scale_rtt=1.5).to_csv(slow, index=False)
    return str(good), str(slow)


# --- shape ---------------------------------------------------------------------------------------

def test_rows_have_the_documented_columns_and_one_row_per_point_and_metric(report, subset):
    rows = report.rows
    assert ROW_COLUMNS <= set(rows.columns)
    # every measured (point, metric) present in both: the loss and drop metrics only for datagram
    # transports (lbsim measure writes them for every stream point)
    want = subset[~(subset.metric.isin(["loss_pct", "rcvbuf_drop_pct", "backlog_drop_pct"])
                    & subset.transport.isin(["tcp", "unix_stream"]))]
    assert len(rows) == len(want.groupby(["transport", "workload", "placement", "background", "msg_bytes",
                                          "metric"]))
    assert set(rows.metric) <= set(METRICS)
    # the measured value is the median over repetitions, the spread max - min
    r = rows[(rows.transport == "tcp") & (rows.placement == "same") & (rows.msg_bytes == 64)
             & (rows.metric == "rtt_p50_us")].iloc[0]
    vals = subset[(subset.transport == "tcp") & (subset.placement == "same") & (subset.msg_bytes == 64)
                  & (subset.workload == "pingpong") & (subset.metric == "rtt_p50_us")]["value"]
    assert r.measured == pytest.approx(vals.median())
    assert r.spread == pytest.approx(vals.max() - vals.min())
    assert r.error_pct == pytest.approx(100 * (r.simulated / r.measured - 1))
    # sorted by transport, workload, placement, size
    keys = list(zip(rows.transport, rows.workload, rows.placement, rows.msg_bytes))
    assert keys == sorted(keys)


def test_summary_order_and_json(report):
    s = pd.DataFrame(report.summary)
    assert {"metric", "split", "count", "median_abs_error_pct", "worst_abs_error_pct", "worst_point"} <= set(s.columns)
    assert set(s.split) == {"held-out", "fitted", "all"}
    p50 = s[(s.metric == "rtt_p50_us") & (s.split == "all")].iloc[0]
    assert p50["count"] == len(report.rows[report.rows.metric == "rtt_p50_us"])
    assert p50["worst_point"].startswith(("tcp", "udp", "unix"))
    o = report.order
    assert {"checked", "agreed", "disagreements", "cells"} <= set(o)
    assert o["checked"] > 0 and o["agreed"] + len(o["disagreements"]) == o["checked"]
    for d in o["disagreements"]:
        assert (d["measured_a"] - d["measured_b"]) * (d["simulated_a"] - d["simulated_b"]) <= 0
    d = json.loads(json.dumps(report.to_dict()))  # strictly JSON-able (NaN -> null)
    assert d["rows"] and d["summary"] and "order" in d
    table = report.format_table()
    assert table.index("held-out points") < table.index("fitted points") < table.index("order check") \
        < table.index("points (measured")


def test_fitted_and_held_out_follow_fit_sizes(subset):
    small = subset[subset.workload == "pingpong"]
    rep = validate(small, fit_sizes=[64], **FAST)
    assert set(rep.rows[rep.rows.fitted].msg_bytes) == {64}
    assert set(rep.rows[~rep.rows.fitted].msg_bytes) == {4096}
    held = next(s for s in rep.summary if s["metric"] == "rtt_p50_us" and s["split"] == "held-out")
    assert held["count"] == len(rep.rows[(rep.rows.metric == "rtt_p50_us") & (rep.rows.msg_bytes == 4096)])
    # default: the cost model's provenance
    assert validate(small, **FAST).fit_sizes == sorted(lbsim.load_costs().provenance["fit_sizes"])


# --- synthetic data: the model against itself ---------------------------------------------------

def test_the_models_own_output_validates_with_zero_error(synthetic):
    good, _ = synthetic
    rep = validate(good, **FAST)
    assert rep.rows.error_pct.abs().max() < 1e-6
    assert rep.passes(1)
    assert len(rep.rows[~rep.rows.fitted]) > 0  # 1024 B is held out of the default fit sizes


def test_run_validation_passes_and_fails_on_max_error(synthetic, tmp_path):
    good, slow = synthetic
    out = run_validation(good, max_error=1, **FAST)
    assert out.exit_code == 0
    assert "PASS" in out.output and out.output.index("held-out points") < out.output.index("fitted points")
    assert out.output == out.report.format_table(1)
    assert not validate(slow, **FAST).passes(10)
    assert run_validation(slow, max_error=10, **FAST).exit_code == 1
    out = run_validation(slow, max_error=10, as_json=True, fit_sizes="64,4096", **FAST)
    assert out.exit_code == 1 and "\n" not in out.output
    d = json.loads(out.output)
    assert d["passes"] is False and d["fit_sizes"] == [64, 4096]
    p50 = next(h for h in d["headline"] if h["metric"] == "rtt_p50_us")
    assert p50["held_out_median_abs_error_pct"] == pytest.approx(100 / 3, rel=1e-6)
    # no max_error: never fails; a figure when asked
    fig = tmp_path / "v.png"
    assert run_validation(slow, figure=fig, **FAST).exit_code == 0 and fig.stat().st_size > 0


@pytest.mark.parametrize("kwargs, words", [
    ({"messages_pingpong": 0}, ["--messages-pingpong", ">= 1"]),
    ({"stream_bytes": 0}, ["--stream-bytes"]),
    ({"stream_replications": 0}, ["--stream-replications"]),
    ({"seed": -1}, ["--seed >= 0"]),
    ({"max_error": -1.0}, ["--max-error -1.0", "percentage >= 0"]),
    ({"max_error": float("nan")}, ["--max-error nan"]),
])
def test_bad_options_are_one_line_naming_the_option(kwargs, words):
    with pytest.raises(OptionError) as e:
        check_options(**kwargs)
    with pytest.raises(OptionError):
        run_validation("never-read.csv", **kwargs)
    assert "\n" not in str(e.value) and all(w in str(e.value) for w in words)
    assert isinstance(e.value, INPUT_ERRORS)


def test_fit_sizes_text():
    assert parse_fit_sizes(None) is None
    assert parse_fit_sizes("64, 4096,") == [64, 4096]
    with pytest.raises(OptionError, match=r"--fit-sizes '64,x': need comma-separated integers"):
        parse_fit_sizes("64,x")


# --- bad input -----------------------------------------------------------------------------------

GOOD = "transport,workload,placement,msg_bytes,metric,value\ntcp,pingpong,same,64,rtt_p50_us,4.3\n"


@pytest.mark.parametrize("text, words", [
    ("transport,workload,placement,metric,value\ntcp,pingpong,same,rtt_p50_us,4\n", ["column", "msg_bytes"]),
    (GOOD + "sctp,pingpong,same,64,rtt_p50_us,4\n", ["line 3", "transport", "sctp"]),
    (GOOD + "udp,pingpong,same,70000,rtt_p50_us,40\n", ["line 3", "udp", "70000"]),
    (GOOD + "tcp,pingpong,same,64,rtt_p50_ms,4\n", ["line 3", "metric", "rtt_p50_ms"]),
    (GOOD + "tcp,pingpong,diagonal,64,rtt_p50_us,4\n", ["line 3", "placement", "diagonal"]),
    (GOOD + "tcp,pingpong,same,64,write_p50_us,4\n", ["line 3", "write_p50_us", "not a pingpong metric"]),
    (GOOD + "tcp,split,cross,64,write_p50_us,4\n", ["line 3", "placement must be 'same'"]),
])
def test_bad_csv_is_an_input_error_of_one_line(tmp_path, text, words):
    f = tmp_path / "bad.csv"
    f.write_text(text)
    with pytest.raises(INPUT_ERRORS) as e:
        run_validation(str(f))
    err = str(e.value)
    assert len(err.splitlines()) == 1 and str(f) in err
    for w in words:
        assert w in err


def test_missing_file_and_check_measured(tmp_path):
    with pytest.raises(MeasuredDataError) as e:
        run_validation(str(tmp_path / "nope.csv"))
    assert "nope.csv: no such file" in str(e.value) and len(str(e.value).splitlines()) == 1
    df = pd.read_csv(pd.io.common.StringIO(GOOD))
    check_measured(df, "x.csv")
    with pytest.raises(MeasuredDataError, match=r"x\.csv: line 2: column 'workload'") as e:
        check_measured(df.assign(workload="rr"), "x.csv")
    assert isinstance(e.value, ValueError)


def test_lbsim_validate_takes_options_first(synthetic, capsys):
    """`lbsim validate --help` and options before MEASURED reach validate's own parser."""
    from lbsim.cli import main as cli_main

    with pytest.raises(SystemExit) as e:
        cli_main(["validate", "--help"])
    assert e.value.code == 0
    assert "--max-error" in capsys.readouterr().out
    good, _ = synthetic
    assert cli_main(["validate", "--max-error", "1", good, *FAST_ARGS]) == 0


def test_split_points_are_simulated_with_the_split_workload():
    """Split rows (lbsim measure's one-thread write then read) compare with the model's split
    counters; UDP's 65507-byte point counts as the 65536 fit size."""
    df = pd.read_csv(DATA / "measured-host.csv")
    sp = df[(df.workload == "split") & df.msg_bytes.isin([64, 65507]) & df.transport.isin(["udp", "unix_dgram"])]
    assert len(sp)
    rep = validate(sp, fit_sizes=[64, 65536], **FAST)
    assert set(rep.rows.metric) == {"write_p50_us", "read_p50_us", "write_mean_us", "read_mean_us"}
    fitted = rep.rows.set_index(["transport", "msg_bytes"]).fitted.groupby(level=[0, 1]).first()
    assert fitted[("udp", 65507)] and fitted[("udp", 64)] and not fitted[("unix_dgram", 65507)]
    r = lbsim.simulate(transport="udp", workload="split", msg_bytes=64, messages=FAST["messages_pingpong"],
                       seed=FAST["seed"])
    row = rep.rows[(rep.rows.transport == "udp") & (rep.rows.msg_bytes == 64) & (rep.rows.metric == "read_p50_us")]
    assert float(row.simulated.iloc[0]) == pytest.approx(r.counters["split_read_p50_ns"] / 1e3, rel=1e-9)


def test_the_page_step_split_points_count_as_fitted():
    """The split points calibrate read the page-allocator costs from (provenance
    "page_step_sizes" of "page_step_transports") are fitted points, not held out; others not."""
    from dataclasses import replace

    model = lbsim.load_costs()
    model = replace(model, provenance={**model.provenance, "fit_sizes": [64], "page_step_sizes": [3776, 3840],
                                             "page_step_transports": ["unix_stream"]})
    rows = [{"transport": tr, "workload": "split", "placement": "same", "msg_bytes": n, "metric": m, "value": 1.0}
            for tr in ("unix_stream", "unix_dgram") for n in (1024, 3776, 3840)
            for m in ("write_p50_us", "read_p50_us")]
    rep = validate(pd.DataFrame(rows), costs=model, **FAST)
    fitted = rep.rows.set_index(["transport", "msg_bytes"]).fitted.groupby(level=[0, 1]).first()
    assert fitted[("unix_stream", 3776)] and fitted[("unix_stream", 3840)]
    assert not fitted[("unix_stream", 1024)] and not fitted[("unix_dgram", 3840)]


def test_a_stream_point_is_the_median_of_its_replications():
    """Each stream point is simulated stream_replications times (seeds seed, seed + 1, ...) and
    compared by the median, as the measured value is a median of repetitions."""
    df = pd.read_csv(DATA / "measured-host.csv")
    st = df[(df.workload == "stream") & (df.transport == "udp") & (df.placement == "same") & (df.msg_bytes == 256)]
    rep = validate(st, **{**FAST, "stream_replications": 3})
    got = float(rep.rows[rep.rows.metric == "throughput_MBps"].simulated.iloc[0])
    # the data's kernel (6.18.44-fc-v1300) runs the linux-6.18 profile (lbsim.fitdata.sim_kernel)
    runs = [lbsim.simulate(transport="udp", workload="stream", msg_bytes=256, placement="same",
                           messages=max(50, min(20000, FAST["stream_bytes"] // 256)), seed=FAST["seed"] + i,
                           kernel=sim_kernel(st["kernel"].iloc[0]))
            for i in range(3)]
    vals = sorted(r.throughput["bytes_per_s"] / 1e6 for r in runs)
    assert got == pytest.approx(vals[1], rel=1e-9)
    one = validate(st, **FAST)
    assert float(one.rows[one.rows.metric == "throughput_MBps"].simulated.iloc[0]) == pytest.approx(
        runs[0].throughput["bytes_per_s"] / 1e6, rel=1e-9)


def test_side_busy_shares_of_a_cross_cpu_stream():
    # a stream is as fast as its slower side, which is never idle once the stream runs: the model's
    # bottleneck side comes out (nearly) always busy; with both sides on one CPU there are no sides
    from lbsim.validate.compare import _sim_metrics

    for tr in ("tcp", "udp", "unix_stream", "unix_dgram"):
        r = lbsim.simulate(transport=tr, workload="stream", msg_bytes=4096, placement="cross", messages=400,
                           seed=1)
        w, rd = r.side_busy()
        assert 0 < min(w, rd) and 0.9 < max(w, rd) <= 1.0 + 1e-9, (tr, w, rd)
        m = _sim_metrics(r, tr)
        assert (m["cpu_busy_sender"], m["cpu_busy_receiver"]) == (w, rd)
    same = lbsim.simulate(transport="udp", workload="stream", msg_bytes=4096, placement="same", messages=100)
    assert same.side_busy() is None and "cpu_busy_sender" not in _sim_metrics(same, "udp")
