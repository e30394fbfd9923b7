"""Command line: thin; parses arguments and calls one function per command.

Exit status: 0 ok, 1 an internal error (a bug: the traceback is printed), 2 bad input
(one line naming the field and what is allowed).
"""

from __future__ import annotations

import argparse
import difflib
import json
import math
import sys
from typing import Any, Sequence

from lbsim.config import TRANSPORTS, WORKLOADS, ConfigError, SimConfig, make_config
from lbsim.costs import CostFileError

__all__ = ["main"]


class InputError(Exception):
    """Bad input from the user: reported in one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's own errors: one line, exit 2
        raise InputError(message)


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _parse_sets(items: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    fields = list(SimConfig.model_fields)
    for item in items:
        if "=" not in item:
            raise InputError(f"--set {item!r}: expected key=value")
        key, value = item.split("=", 1)
        key = key.strip()
        if key not in fields:
            close = difflib.get_close_matches(key, fields, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f"; allowed: {', '.join(fields)}"
            raise InputError(f"--set: unknown key {key!r}{hint}")
        out[key] = _parse_value(value.strip())
    return out


def _common_sim_args(p: argparse.ArgumentParser, *, transport: bool) -> None:
    if transport:
        p.add_argument("--transport", default="tcp", help=f"one of {', '.join(TRANSPORTS)} (default tcp)")
    p.add_argument("--workload", default="pingpong", help=f"one of {', '.join(WORKLOADS)} (default pingpong)")
    p.add_argument("--msg-bytes", type=int, default=64, help="payload of one send() (default 64)")
    p.add_argument("--messages", type=int, default=2000, help="round trips or writes per flow (default 2000)")
    p.add_argument("--mtu", type=int, default=None, help="lo MTU (default: the kernel profile's)")
    p.add_argument("--cpus", type=int, default=2, help="number of CPUs (default 2)")
    p.add_argument("--placement", default="same", help="same | cross | JSON list of [sender, receiver] CPUs")
    p.add_argument("--kernel", default="linux-6.12", help="linux-6.12 (default) | linux-2.6.32 | host")
    p.add_argument("--costs", default="default", help="cost model: 'default' or a JSON file")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any other configuration field, e.g. --set netdev_max_backlog=10")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def _config_from_args(a: argparse.Namespace, transport: str | None = None) -> SimConfig:
    data: dict[str, Any] = {
        "transport": transport or a.transport, "workload": a.workload, "msg_bytes": a.msg_bytes,
        "messages": a.messages, "cpus": a.cpus, "kernel": a.kernel, "costs": a.costs, "seed": a.seed,
        "placement": _parse_value(a.placement) if a.placement.startswith("[") else a.placement,
    }
    if a.mtu is not None:
        data["mtu"] = a.mtu
    data.update(_parse_sets(a.set))
    return make_config(data)


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


def cmd_simulate(a: argparse.Namespace) -> int:
    from lbsim.simulate import simulate

    cfg = _config_from_args(a)
    r = simulate(cfg)
    if a.json:
        print(json.dumps(r.to_dict(), default=float))
    else:
        _print_result(r)
    return 0


def cmd_compare(a: argparse.Namespace) -> int:
    from lbsim.simulate import simulate

    results = {}
    skipped = {}
    for tr in TRANSPORTS:
        try:
            cfg = _config_from_args(a, transport=tr)
        except ConfigError as e:
            if "too large" in str(e):
                skipped[tr] = str(e)
                print(f"lbsim: skipping {tr}: {e}", file=sys.stderr)
                continue
            raise
        print(f"lbsim: simulating {tr} ...", file=sys.stderr)
        results[tr] = simulate(cfg)
    one_way_tput = a.workload in ("stream", "burst")
    ref = results.get("unix_stream")

    def metric(r: Any) -> float:
        return r.throughput["bytes_per_s"] / 1e6 if one_way_tput else r.latency_us["p50"]

    if a.json:
        out = {"workload": a.workload, "metric": "throughput_MBps" if one_way_tput else "latency_p50_us",
               "transports": {tr: r.to_dict() for tr, r in results.items()},
               "ratio_to_unix_stream": {tr: (metric(r) / metric(ref) if ref else None) for tr, r in results.items()},
               "skipped": skipped}
        print(json.dumps(out, default=float))
        return 0
    head = "MB/s" if one_way_tput else "p50 us"
    print(f"{a.workload}, msg_bytes={a.msg_bytes}, messages={a.messages}, placement={a.placement}, "
          f"kernel={a.kernel}, seed={a.seed}")
    print(f"{'transport':12s} {head:>10s} {'p99 us':>10s} {'MB/s' if not one_way_tput else 'msg/s':>10s} "
          f"{'vs unix_stream':>15s}  status")
    for tr in TRANSPORTS:
        if tr in skipped:
            print(f"{tr:12s} {'skipped':>10s}  ({skipped[tr]})")
            continue
        r = results[tr]
        other = r.throughput["msgs_per_s"] if one_way_tput else r.throughput["bytes_per_s"] / 1e6
        ratio = metric(r) / metric(ref) if ref else float("nan")
        print(f"{tr:12s} {metric(r):10.2f} {r.latency_us['p99']:10.2f} {other:10.1f} {ratio:14.2f}x  {r.status}")
    return 0


def _csv_list(text: str, allowed: Sequence[str] | None, what: str) -> list[str]:
    items = [x.strip() for x in text.split(",") if x.strip()]
    if not items:
        raise InputError(f"{what}: empty list")
    if allowed is not None:
        for x in items:
            if x not in allowed:
                raise InputError(f"{what}: {x!r} is not allowed; allowed: {', '.join(allowed)}")
    return items


def _int_list(text: str, what: str) -> list[int]:
    try:
        out = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise InputError(f"{what}: {text!r} is not a comma-separated list of integers") from None
    if not out or any(v < 1 for v in out):
        raise InputError(f"{what}: sizes must be integers >= 1 (got {text!r})")
    return out


def cmd_measure(a: argparse.Namespace) -> int:
    from pathlib import Path

    from lbsim.measure.knob_cli import KnobUsageError, run as run_knobs

    try:   # --knobs / --knob / --restore-knobs: a knob run instead of the plain grid
        rc = run_knobs(a, a.out, emit=lambda m: print(f"lbsim: {m}", file=sys.stderr),
                       progress=None if a.quiet else (lambda m: print(m, file=sys.stderr)))
    except KnobUsageError as e:
        raise InputError(str(e)) from None
    if rc is not None:
        return rc
    from lbsim.measure import measure, write_csv

    transports = _csv_list(a.transports, TRANSPORTS, "--transports")
    workloads = _csv_list(a.workloads, ("pingpong", "stream", "split"), "--workloads")
    placements = _csv_list(a.placements, ("same", "cross"), "--placements")
    sizes = _int_list(a.sizes, "--sizes")
    if a.reps < 1:
        raise InputError("--reps: must be >= 1")
    load = Path("/proc/loadavg").read_text().split()[0] if Path("/proc/loadavg").exists() else "?"
    print(f"lbsim: measuring (1-min loadavg {load}; run this on a quiet machine)", file=sys.stderr)
    progress = None if a.quiet else (lambda m: print(m, file=sys.stderr))
    df = measure(transports, workloads, sizes, placements, reps=a.reps, busy=[False, True] if a.busy else False,
                 progress=progress)
    out = write_csv(df, a.out)
    print(f"lbsim: wrote {len(df)} rows to {out} (+ {out}.host.json)", file=sys.stderr)
    if a.stages:
        from lbsim.measure.stages import StagesUnavailable, measure_stages, tracefs_available

        ok, why = tracefs_available()
        if not ok:
            print(f"lbsim: --stages skipped: {why}", file=sys.stderr)
            return 0
        from lbsim.measure.harness import null_syscall_ns

        runs = []
        for tr in transports:
            for pl in placements:
                for size in sizes:
                    if tr == "udp" and size > 65507:
                        continue
                    try:
                        r = measure_stages(tr, size=size, placement=pl, count=2000)
                    except StagesUnavailable as e:
                        print(f"lbsim: --stages skipped: {e}", file=sys.stderr)
                        return 0
                    runs.append({"transport": tr, "placement": pl, "size": size, "result": r})
                    if progress:
                        progress(f"stages {tr} {pl} {size} B: overhead {r.get('overhead_ns_per_event')} ns/event")
        stages_path = Path(str(out).removesuffix(".csv") + ".stages.json")
        stages_path.write_text(json.dumps({"null_syscall_ns": null_syscall_ns(), "runs": runs}, indent=1,
                                          default=str) + "\n")
        print(f"lbsim: wrote {stages_path}", file=sys.stderr)
    return 0


def cmd_calibrate(a: argparse.Namespace) -> int:
    from pathlib import Path

    from lbsim import calibrate as cal

    measured = Path(a.measured)
    if not measured.is_file():
        raise InputError(f"{measured}: no such measured-data file")
    stages = Path(a.stages) if a.stages else Path(str(measured).removesuffix(".csv") + ".stages.json")
    if not stages.is_file():
        alt = measured.with_name("stages-host.json")
        if a.stages is None and alt.is_file():
            stages = alt
        else:
            raise InputError(f"{stages}: no tracepoint stage file (give --stages, made by lbsim measure --stages)")
    try:
        cal.load_measured(measured)
    except ValueError as e:
        raise InputError(str(e)) from None
    sizes = _int_list(a.fit_sizes, "--fit-sizes")
    return cal.main([str(measured), str(stages), "-o", a.out, "--fit-sizes", ",".join(map(str, sizes))])


def cmd_validate(a: argparse.Namespace) -> int:
    from lbsim.validate import main as validate_main

    return validate_main(a.rest)


def cmd_run(a: argparse.Namespace) -> int:
    """Run an experiment file; exit 1 if some runs failed (they are stored with status error)."""
    from pathlib import Path

    from lbsim.experiment import ExperimentError
    from lbsim.runner import RunnerError, run_experiment

    path = Path(a.experiment)
    if not path.is_file() and not path.suffix and (Path("experiments") / f"{a.experiment}.toml").is_file():
        path = Path("experiments") / f"{a.experiment}.toml"
    if not path.is_file():
        raise InputError(f"{a.experiment}: no such experiment file")
    if a.jobs is not None and a.jobs < 1:
        raise InputError(f"--jobs: must be >= 1 (got {a.jobs})")
    executor = a.executor or ("dask" if a.dask_scheduler else "local")
    if a.dask_scheduler and executor != "dask":
        raise InputError("--dask-scheduler needs --executor dask")
    try:
        df = run_experiment(path, smoke=a.smoke, jobs=a.jobs, executor=executor, dask_scheduler=a.dask_scheduler,
                            out=a.out, force=a.force, quiet=a.quiet)
    except (ExperimentError, RunnerError) as e:
        raise InputError(str(e)) from None
    except KeyboardInterrupt:
        print("lbsim: interrupted; finished runs are stored, run the same command again to resume",
              file=sys.stderr)
        return 130
    return 1 if df.attrs["summary"]["counts"].get("error", 0) else 0


def cmd_trace(a: argparse.Namespace) -> int:
    """One steady-state ping-pong round trip, function_graph style (see lbsim.trace)."""
    from lbsim import trace as tr

    def one(transport: str) -> Any:
        if transport not in TRANSPORTS:
            raise InputError(f"transport {transport!r} is not allowed; allowed: {', '.join(TRANSPORTS)}")
        data: dict[str, Any] = {
            "transport": transport, "workload": "pingpong", "msg_bytes": a.msg_bytes, "cpus": a.cpus,
            "kernel": a.kernel, "costs": a.costs, "messages": tr.WARMUP + a.round_trips, "flows": 1,
            "deterministic": True, "trace": True,
            "placement": _parse_value(a.placement) if a.placement.startswith("[") else a.placement,
        }
        if a.mtu is not None:
            data["mtu"] = a.mtu
        return make_config(data)

    if a.round_trips < 1:
        raise InputError(f"--round-trips: must be >= 1 (got {a.round_trips})")
    names = [a.transport] + ([a.compare] if a.compare else [])
    if a.plot and not a.compare:
        names.append("unix_stream" if a.transport != "unix_stream" else "tcp")
    from lbsim.simulate import simulate

    cfgs = {name: one(name) for name in names}
    results = {name: simulate(cfg) for name, cfg in cfgs.items()}
    shown = [a.transport] + ([a.compare] if a.compare else [])
    lat = {}
    for i, name in enumerate(shown):
        df = tr.round_trip_records(results[name])
        lat[name] = df.attrs["latency_ns"]
        if i:
            print()
        print(f"=== {name} ===")
        sys.stdout.write(tr.format_function_graph(df))
    if a.compare:
        x, y = lat[a.transport], lat[a.compare]
        print(f"\n{a.transport} / {a.compare} round trip: {x / 1e3:.3f} us / {y / 1e3:.3f} us = {x / y:.2f}x")
    if a.plot:
        fig = tr.timeline_figure({name: tr.few_round_trips(r, a.round_trips) for name, r in results.items()})
        fig.savefig(a.plot, dpi=120)
        print(f"lbsim: wrote {a.plot}", file=sys.stderr)
    return 0


def cmd_plot(a: argparse.Namespace) -> int:
    """Redraw the figures of a results folder from its stored rows (no simulation)."""
    from pathlib import Path

    folder = Path(a.results)
    if not folder.is_dir():
        raise InputError(f"{a.results}: no such results folder")
    if not (any((folder / "runs").glob("*.parquet")) or any(folder.glob("*.parquet"))):
        raise InputError(f"{a.results}: no stored results (no runs/*.parquet); run lbsim run first")
    from lbsim.figures import applicable, draw_all
    from lbsim.results import load_results

    df = load_results(folder)
    out = Path(a.out) if a.out else folder / "figures"
    figs = applicable(df)
    if not figs:
        print(f"lbsim: no figure applies to the results in {folder}", file=sys.stderr)
        return 0
    written = draw_all(df, out)
    for f in figs:
        files = [p.name for p in written if p.stem == f.name]
        print(f"{f.name}: {f.title} -> {', '.join(files)}")
    print(f"lbsim: wrote {len(figs)} figures ({len(written)} files) to {out}", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="lbsim", description="Discrete-event model of Linux loopback vs UNIX domain sockets")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    s = sub.add_parser("simulate", help="run one simulation and print its results")
    _common_sim_args(s, transport=True)
    s.set_defaults(func=cmd_simulate)
    c = sub.add_parser("compare", help="one workload on all four transports, side by side")
    _common_sim_args(c, transport=False)
    c.set_defaults(func=cmd_compare)
    m = sub.add_parser("measure", help="measure this host's loopback and UNIX sockets (C harness)")
    m.add_argument("--transports", default=",".join(TRANSPORTS))
    m.add_argument("--workloads", default="pingpong,stream,split",
                   help="pingpong, stream, split (one thread writes a message, then reads it: the "
                        "write and the read timed apart; sizes up to 64 KiB, same CPU only)")
    m.add_argument("--sizes", default="16,64,256,1024,4096,16384,65536")
    m.add_argument("--placements", default="same,cross")
    m.add_argument("--reps", type=int, default=3)
    m.add_argument("--busy", action="store_true", help="also measure with the peer's CPU busy (a nice-19 spinner)")
    m.add_argument("--stages", action="store_true", help="also record kernel tracepoints (root + tracefs)")
    m.add_argument("--out", default="measured.csv", help="the long-format CSV to write (default measured.csv)")
    m.add_argument("--quiet", action="store_true", help="no progress lines")
    from lbsim.measure.knob_cli import add_arguments as knob_arguments
    knob_arguments(m)
    m.set_defaults(func=cmd_measure)
    k = sub.add_parser("calibrate", help="fit a cost model to measured data")
    k.add_argument("measured", help="long-format CSV written by lbsim measure")
    k.add_argument("--stages", default=None, help="tracepoint stage file (default: beside MEASURED)")
    k.add_argument("--fit-sizes", default="64,4096,65536")
    k.add_argument("-o", "--out", default="costs.json", help="the cost-model file to write")
    k.set_defaults(func=cmd_calibrate)
    r = sub.add_parser("run", help="run an experiment file (a parameter sweep) into a results folder")
    r.add_argument("experiment", help="experiments/<name>.toml (or just <name>)")
    r.add_argument("--smoke", action="store_true", help="apply the file's [smoke] overrides (a small version)")
    r.add_argument("--jobs", type=int, default=None, help="parallel workers (default: the number of CPUs)")
    r.add_argument("--executor", choices=("local", "dask"), default=None,
                   help="local process pool (default) or dask")
    r.add_argument("--dask-scheduler", default=None, metavar="ADDRESS",
                   help="an existing dask scheduler, e.g. tcp://10.0.0.1:8786 (implies --executor dask)")
    r.add_argument("--out", default=None, metavar="DIR", help="the results folder (default runs/<name>/)")
    r.add_argument("--force", action="store_true", help="recompute runs that are already stored")
    r.add_argument("--quiet", action="store_true", help="no progress and no summary")
    r.set_defaults(func=cmd_run)
    v = sub.add_parser("validate", add_help=False,
                       help="simulate measured points and report the error: MEASURED [--costs FILE] "
                            "[--max-error PCT] [--json] [--figure FILE] (see lbsim validate --help)")
    v.add_argument("rest", nargs=argparse.REMAINDER)
    v.set_defaults(func=cmd_validate)
    t = sub.add_parser("trace", help="one ping-pong round trip through the kernel stages, ftrace function_graph style")
    t.add_argument("--transport", default="tcp", help=f"one of {', '.join(TRANSPORTS)} (default tcp)")
    t.add_argument("--msg-bytes", type=int, default=64, help="payload of one send() (default 64)")
    t.add_argument("--placement", default="same", help="same | cross | JSON list of one [client, server] CPU pair")
    t.add_argument("--kernel", default="linux-6.12", help="linux-6.12 (default) | linux-2.6.32 | host")
    t.add_argument("--cpus", type=int, default=2, help="number of CPUs (default 2)")
    t.add_argument("--mtu", type=int, default=None, help="lo MTU (default: the kernel profile's)")
    t.add_argument("--costs", default="default", help="cost model: 'default' or a JSON file")
    t.add_argument("--compare", default=None, metavar="T2", help="also trace this transport and print the ratio")
    t.add_argument("--round-trips", type=int, default=3, help="round trips drawn by --plot (default 3)")
    t.add_argument("--plot", default=None, metavar="FILE",
                   help="per-CPU timeline of --transport vs --compare (default unix_stream), PNG or SVG")
    t.set_defaults(func=cmd_trace)
    pl = sub.add_parser("plot", help="redraw the figures of a results folder (PNG and SVG under DIR/figures/)")
    pl.add_argument("results", metavar="DIR", help="a results folder written by lbsim run")
    pl.add_argument("--out", default=None, metavar="DIR", help="where to write the figures (default DIR/figures/)")
    pl.set_defaults(func=cmd_plot)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    import signal

    # `lbsim ... | head` ends quietly, as other tools do; restored afterwards, so that callers
    # of main() (and processes they fork) keep Python's own SIGPIPE handling
    old = signal.signal(signal.SIGPIPE, signal.SIG_DFL) if hasattr(signal, "SIGPIPE") else None
    parser = build_parser()
    try:
        argv = list(sys.argv[1:] if argv is None else argv)
        if argv[:1] == ["validate"]:
            # everything after it goes to lbsim.validate's own parser as it is (argparse's
            # REMAINDER would not take a leading option such as --help)
            return int(cmd_validate(argparse.Namespace(rest=argv[1:])))
        args = parser.parse_args(argv)
        return int(args.func(args))
    except (InputError, ConfigError, CostFileError) as e:
        print(f"lbsim: error: {e}", file=sys.stderr)
        return 2
    finally:
        if old is not None:
            signal.signal(signal.SIGPIPE, old)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
