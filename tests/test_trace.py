"""lbsim trace: one round trip through the kernel stages, function_graph style, and its timeline."""

from __future__ import annotations

import re

import pytest

from lbsim.cli import main
from lbsim.trace import format_function_graph, path_split, round_trip_records, timeline_figure, trace_run

NET_STAGES = ("loopback_xmit", "netif_rx", "tcp_v4_rcv")


@pytest.fixture(scope="module")
def runs():
    return {(tr, pl): trace_run(tr, placement=pl)
            for tr in ("tcp", "unix_stream") for pl in ("same", "cross")}


@pytest.mark.parametrize("tr", ["tcp", "unix_stream"])
@pytest.mark.parametrize("pl", ["same", "cross"])
def test_printed_durations_add_up_to_the_simulated_latency(runs, tr, pl):
    r = runs[(tr, pl)]
    df = round_trip_records(r)
    x = float(r.latency_samples_ns[df.attrs["index"]])
    assert df.attrs["latency_ns"] == pytest.approx(x, rel=1e-12)
    text = format_function_graph(df, x)
    m = re.search(r"round trip: ([\d.]+) us \(sum of stages on the path: ([\d.]+) us, idle/IPI wait: ([\d.]+) us\)",
                  text)
    assert m, text
    X, Y, Z = (float(v) for v in m.groups())
    assert X == pytest.approx(x / 1e3, abs=1e-3)
    assert Y + Z == pytest.approx(X, rel=1e-6, abs=1.5e-3)  # printed with 3 decimals
    sp = path_split(df, x)
    assert sp["Y"] + sp["Z"] == pytest.approx(x, rel=1e-9)
    assert sp["Z"] >= 0
    # every stage line's printed duration: their sum is Y plus the work running in parallel (W)
    durs = [float(v) for v in re.findall(r"^ +\d+\) [ +!#] +([\d.]+) us  \|  +(?!\})[a-z_]", text, re.M)]
    assert len(durs) == len(df)
    assert sum(durs) == pytest.approx((sp["Y"] + sp["W"]) / 1e3, abs=1e-3 * len(durs))
    if pl == "same":  # one CPU: nothing in parallel, no idle time; the stages are the round trip
        assert sp["W"] == pytest.approx(0, abs=1e-6) and sp["Z"] == pytest.approx(0, abs=1e-6)
        assert df.dur_ns.sum() == pytest.approx(x, rel=1e-9)


@pytest.mark.parametrize("pl", ["same", "cross"])
def test_tcp_runs_the_receive_path_on_the_senders_cpu_unix_has_none(runs, pl):
    df = round_trip_records(runs[("tcp", pl)])
    text = format_function_graph(df)
    for stage in NET_STAGES:
        assert stage in text
    client_cpu = int(df[(df.context == "client0")].cpu.iloc[0])
    server_cpu = int(df[(df.context == "server0")].cpu.iloc[0])
    assert (client_cpu != server_cpu) == (pl == "cross")
    req, rep = 2 * df.attrs["index"], 2 * df.attrs["index"] + 1
    for msg, cpu in ((req, client_cpu), (rep, server_cpu)):
        net = df[(df.msg == msg) & df.stage.isin(NET_STAGES)]
        assert set(net.stage) == set(NET_STAGES)
        assert set(net.cpu) == {cpu}  # loopback: the sender's CPU runs the receive softirq
    u = format_function_graph(round_trip_records(runs[("unix_stream", pl)]))
    for stage in NET_STAGES + ("do_softirq",):
        assert stage not in u


def test_cli_trace_and_compare(capsys):
    assert main(["trace", "--transport", "tcp", "--msg-bytes", "64"]) == 0
    out = capsys.readouterr().out
    assert "=== tcp ===" in out and "loopback_xmit" in out and "do_softirq {" in out
    assert main(["trace", "--transport", "tcp", "--compare", "unix_stream", "--placement", "cross"]) == 0
    out = capsys.readouterr().out
    assert "=== tcp ===" in out and "=== unix_stream ===" in out
    assert out.count("\nround trip: ") == 2
    m = re.search(r"tcp / unix_stream round trip: ([\d.]+) us / ([\d.]+) us = ([\d.]+)x", out)
    assert m and float(m.group(3)) == pytest.approx(float(m.group(1)) / float(m.group(2)), abs=0.01)


def test_cli_plot_writes_a_png_with_two_timelines(tmp_path, capsys):
    png = tmp_path / "t.png"
    assert main(["trace", "--transport", "tcp", "--plot", str(png), "--round-trips", "2"]) == 0
    assert png.stat().st_size > 1000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    r = {tr: trace_run(tr, round_trips=2) for tr in ("tcp", "unix_stream")}
    from lbsim.trace import few_round_trips

    fig = timeline_figure({tr: few_round_trips(res, 2) for tr, res in r.items()})
    axes = [ax for ax in fig.axes if ax.patches]
    assert len(axes) == 2
    assert all("µs" in ax.get_xlabel() for ax in axes)


@pytest.mark.parametrize("argv", [["trace", "--transport", "sctp"], ["trace", "--compare", "quic"],
                                  ["trace", "--placement", "diagonal"], ["trace", "--round-trips", "0"]])
def test_bad_input_exits_2_with_one_line(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("lbsim: error:") and err.count("\n") == 1


@pytest.mark.parametrize("tr", ["tcp", "unix_stream"])
def test_large_messages_window_ends_after_the_window_update_softirq(tr):
    # 64 KiB over TCP: the client's recv returns after the softirq of its own window-update ACK
    r = trace_run(tr, msg_bytes=65536, round_trips=1)
    df = round_trip_records(r)
    sp = path_split(df)
    assert sp["X"] == pytest.approx(float(r.latency_samples_ns[df.attrs["index"]]), rel=1e-12)
    assert sp["Y"] + sp["Z"] == pytest.approx(sp["X"], rel=1e-9)
    assert df.dur_ns.sum() == pytest.approx(sp["X"], rel=1e-9)  # one CPU: no idle time
