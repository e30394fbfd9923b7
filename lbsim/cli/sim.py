"""lbsim simulate, compare and trace: one configuration, all four transports, one round trip."""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

from lbsim.cli._common import (
    FIGURE_FORMATS,
    InputError,
    add_sim_options,
    config_from_args,
    log,
    output_file,
    sim_default,
    sim_fields,
)
from lbsim.config import TRANSPORTS, ConfigError, make_config

__all__ = ["add_commands"]


def _fmt(x: Any, nd: int = 2) -> str:
    if isinstance(x, float):
        if math.isnan(x):
            return "-"
        return f"{x:,.{nd}f}"
    return str(x)


def _print_result(r: Any) -> None:
    c = r.config
    lat = r.latency_us
    print(f"{c.transport} {c.workload}  msg_bytes={c.msg_bytes} messages={c.messages} cpus={c.cpus} "
          f"placement={c.placement} kernel={c.kernel} seed={c.seed}  [{r.status}]")
    print(f"costs: {r.costs_label}")
    if c.stage_edits():
        print(f"stage edits: {c.stage_edits()}")
    if r.message:
        print(f"  note: {r.message}")
    print(f"latency ({lat['kind']}, us): mean {_fmt(lat['mean'])}  p50 {_fmt(lat['p50'])}  p90 {_fmt(lat['p90'])}  "
          f"p99 {_fmt(lat['p99'])}  p99.9 {_fmt(lat['p999'])}  (n={lat['count']})")
    t = r.throughput
    print(f"throughput: {_fmt(t['bytes_per_s'] / 1e6)} MB/s, {_fmt(t['msgs_per_s'], 0)} msg/s")
    cons = r.conservation()
    print(f"conservation ({cons['unit']}): sent {cons['sent']} = delivered + dropped + in flight "
          f"{cons['accounted']}  {'ok' if cons['ok'] else 'MISMATCH'}")
    print("counters:")
    for k, v in r.counters.items():
        if v in (None, {}, 0, 0.0) and k not in ("messages_dropped", "softnet_dropped"):
            continue
        print(f"  {k:24s} {_fmt(v, 0) if isinstance(v, float) else v}")
    print("stages (busy time, all CPUs):")
    rows = sorted(r.stages, key=lambda s: -s["busy_ns"])
    total = sum(s["busy_ns"] for s in rows) or 1.0
    for s in rows:
        per = s["busy_ns"] / s["count"] if s["count"] else 0.0
        print(f"  {s['stage']:28s} n={s['count']:>9d}  {per:9.1f} ns each  {100 * s['busy_ns'] / total:5.1f}%"
              + (f"  wait {s['wait_ns'] / 1e3:,.1f} us" if s["wait_ns"] else ""))
    print("cpus:")
    for row in r.cpu:
        print(f"  cpu{row['cpu']}: busy {100 * row['busy_frac']:5.1f}%  task {row['task_ns'] / 1e3:,.1f} us  "
              f"softirq {row['softirq_ns'] / 1e3:,.1f} us  processed {row['softnet_processed']}  "
              f"dropped {row['softnet_dropped']}  time_squeeze {row['time_squeeze']}")


def _result_dict(r: Any, timing: bool) -> dict[str, Any]:
    """Result.to_dict() without the wall time unless asked: the same seed gives the same bytes."""
    d = r.to_dict()
    if not timing:
        d.pop("wall_s", None)
    return d


def _timeout_exit(results: dict[str, Any]) -> int:
    """Exit 1 with one line when a simulation stopped at max_sim_time_ns before its workload ended."""
    late = {tr: r for tr, r in results.items() if r.status == "timeout"}
    if not late:
        return 0
    tr, r = next(iter(late.items()))
    more = f" (and {len(late) - 1} more)" if len(late) > 1 else ""
    print(f"lbsim: error: {tr} did not finish{more}: {r.message}; raise it with --set max_sim_time_ns=NS "
          "or simulate fewer --messages", file=sys.stderr)
    return 1


def cmd_simulate(a: argparse.Namespace) -> int:
    from lbsim.simulate import simulate

    cfg = config_from_args(a)
    r = simulate(cfg)
    if a.json:
        print(json.dumps(_result_dict(r, a.timing), default=float))
    else:
        _print_result(r)
    if a.timing:
        log.warning(f"lbsim: wall time {r.wall_s:.3f} s")
    return _timeout_exit({cfg.transport: r})


def _compare_table(a: argparse.Namespace, cfg0: Any, results: dict[str, Any], skipped: dict[str, str],
                   one_way_tput: bool, metric: Any) -> None:
    ref = results.get("unix_stream")
    head = "MB/s" if one_way_tput else "p50 us"
    print(f"{cfg0['workload']}, msg_bytes={cfg0['msg_bytes']}, messages={cfg0['messages']}, "
          f"placement={cfg0['placement']}, kernel={cfg0['kernel']}, seed={cfg0['seed']}")
    print(f"{'transport':14s} {head:>10s} {'p99 us':>10s} {'MB/s' if not one_way_tput else 'msg/s':>10s} "
          f"{'vs unix_stream':>15s}  status")
    for tr in TRANSPORTS:
        if tr in skipped:
            print(f"{tr:14s} {'skipped':>10s}  ({skipped[tr]})")
            continue
        r = results[tr]
        other = r.throughput["msgs_per_s"] if one_way_tput else r.throughput["bytes_per_s"] / 1e6
        ratio = metric(r) / metric(ref) if ref else float("nan")
        print(f"{tr:14s} {metric(r):10.2f} {r.latency_us['p99']:10.2f} {other:10.1f} {ratio:14.2f}x  {r.status}")
    print(f"costs: {', '.join(sorted({r.costs_label for r in results.values()}))}")


def _one_profile(results: dict[str, Any]) -> str:
    """The profile every transport's run used (one resolution per run: the same unless the user's
    profiles changed meanwhile, then all of them, comma-separated)."""
    return ",".join(sorted({r.costs_profile for r in results.values()}))


def cmd_compare(a: argparse.Namespace) -> int:
    from lbsim.simulate import simulate

    results = {}
    skipped = {}
    shown: dict[str, Any] = {}
    for tr in TRANSPORTS:
        try:
            cfg = config_from_args(a, transport=tr)
        except ConfigError as e:
            if "too large" in str(e):
                skipped[tr] = str(e)
                log.warning(f"lbsim: skipping {tr}: {e}")
                continue
            raise
        shown = cfg.model_dump()
        log.info(f"lbsim: simulating {tr} ...")
        results[tr] = simulate(cfg)
    if not results:
        raise InputError(f"no transport can carry this configuration: {next(iter(skipped.values()))}")
    one_way_tput = shown["workload"] in ("stream", "burst")
    ref = results.get("unix_stream")

    def metric(r: Any) -> float:
        return r.throughput["bytes_per_s"] / 1e6 if one_way_tput else r.latency_us["p50"]

    if a.json:
        out = {"workload": shown["workload"], "metric": "throughput_MBps" if one_way_tput else "latency_p50_us",
               "transports": {tr: _result_dict(r, a.timing) for tr, r in results.items()},
               "ratio_to_unix_stream": {tr: (metric(r) / metric(ref) if ref else None) for tr, r in results.items()},
               "skipped": skipped, "costs_profile": _one_profile(results)}
        print(json.dumps(out, default=float))
    else:
        _compare_table(a, shown, results, skipped, one_way_tput, metric)
    if a.timing:
        log.warning("lbsim: wall time " + ", ".join(f"{tr} {r.wall_s:.3f} s" for tr, r in results.items()))
    return _timeout_exit(results)


def cmd_trace(a: argparse.Namespace) -> int:
    """One steady-state ping-pong round trip, function_graph style (see lbsim.trace)."""
    from lbsim import trace as tr

    plot = output_file(a.plot, "--plot", FIGURE_FORMATS) if a.plot else None
    given = sim_fields(a)
    given.pop("transport", None)

    def one(transport: str) -> Any:
        if transport not in TRANSPORTS:
            raise InputError(f"transport {transport!r} is not allowed; allowed: {', '.join(TRANSPORTS)}")
        return make_config({**given, "transport": transport, "workload": "pingpong",
                            "messages": tr.WARMUP + a.round_trips, "flows": 1, "deterministic": True, "trace": True})

    if a.round_trips < 1:
        raise InputError(f"--round-trips: must be >= 1 (got {a.round_trips})")
    first = a.transport or sim_default("transport")
    names = [first] + ([a.compare] if a.compare else [])
    if plot and not a.compare:
        names.append("unix_stream" if first != "unix_stream" else "tcp")
    from lbsim.simulate import simulate

    cfgs = {name: one(name) for name in names}
    results = {name: simulate(cfg) for name, cfg in cfgs.items()}
    shown = [first] + ([a.compare] if a.compare else [])
    lat = {}
    for i, name in enumerate(shown):
        df = tr.round_trip_records(results[name])
        lat[name] = df.attrs["latency_ns"]
        if i:
            print()
        print(f"=== {name} ===")
        sys.stdout.write(tr.format_function_graph(df))
    if a.compare:
        x, y = lat[first], lat[a.compare]
        print(f"\n{first} / {a.compare} round trip: {x / 1e3:.3f} us / {y / 1e3:.3f} us = {x / y:.2f}x")
    print(f"\ncosts: {', '.join(sorted({r.costs_label for r in results.values()}))}")
    if plot:
        fig = tr.timeline_figure({name: tr.few_round_trips(r, a.round_trips) for name, r in results.items()})
        fig.savefig(plot, dpi=120)
        log.info(f"lbsim: wrote {plot}")
    return 0


def add_commands(sub: Any, parent: argparse.ArgumentParser) -> None:
    s = sub.add_parser("simulate", parents=[parent], help="run one simulation and print its results",
                       description="Run one simulation and print its results.")
    add_sim_options(s, transport=True)
    s.add_argument("--json", action="store_true", help="print one JSON object on stdout (no wall time: "
                                                       "the same seed gives the same bytes)")
    s.add_argument("--timing", action="store_true", help="also report the wall time (stderr, and wall_s in --json)")
    s.set_defaults(func=cmd_simulate)
    c = sub.add_parser("compare", parents=[parent], help="one workload on all four transports, side by side",
                       description="One workload on all four transports, side by side.")
    add_sim_options(c, transport=False)
    c.add_argument("--json", action="store_true", help="print one JSON object on stdout (no wall time)")
    c.add_argument("--timing", action="store_true", help="also report the wall times (stderr, and wall_s in --json)")
    c.set_defaults(func=cmd_compare)
    t = sub.add_parser("trace", parents=[parent],
                       help="one ping-pong round trip through the kernel stages, ftrace function_graph style",
                       description="One steady-state ping-pong round trip through the kernel stages, "
                                   "ftrace function_graph style (deterministic: every cost at its mean).")
    add_sim_options(t, transport=True, sets=False, workload=False, messages=False)
    t.add_argument("--compare", default=None, metavar="T2", help="also trace this transport and print the ratio")
    t.add_argument("--round-trips", type=int, default=3, help="round trips drawn by --plot (default 3)")
    t.add_argument("--plot", default=None, metavar="FILE",
                   help="per-CPU timeline of --transport vs --compare (default unix_stream), PNG, SVG or PDF")
    t.set_defaults(func=cmd_trace)
