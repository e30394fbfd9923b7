"""lbsim measure, calibrate and validate: this host's sockets, a cost model fitted to them, the error left.

The library functions called: ``lbsim.measure.measure`` / ``write_csv`` (the C harness grid),
``lbsim.measure.stages.measure_stages`` / ``tracefs_available`` and
``lbsim.measure.harness.null_syscall_ns`` (tracepoints), ``lbsim.calibrate.load_measured`` /
``calibrate_from_files`` / ``PARAMS`` (the fit), ``lbsim.validate.validate`` and the report's
``format_table`` / ``to_dict`` / ``passes``, ``lbsim.plots.validation_figure``; ``lbsim calibrate``
without data runs ``lbsim.calibrate_host.calibrate_this_host`` (measure, fit, validate, install)
and checks data from elsewhere with ``lbsim.calibrate_checks``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lbsim.cli._common import FIGURE_FORMATS, InputError, csv_list, int_list, log, output_dir, output_file, sim_default
from lbsim.config import TRANSPORTS
from lbsim.costs import load_costs

__all__ = ["add_commands", "format_stages_table"]

#: lbsim measure's default sizes; a --stages-only run traces 64 B unless --sizes says otherwise
MEASURE_SIZES = "16,64,256,1024,4096,16384,65536"
STAGES_ONLY_SIZES = "64"
UDP_MAX_PAYLOAD = 65507
#: what lbsim measure runs: unix_seqpacket is measured as knob socktype against unix_dgram
MEASURED_TRANSPORTS = tuple(t for t in TRANSPORTS if t != "unix_seqpacket")


def _fmt_ns(v: float | None) -> str:
    return "-" if v is None else f"{v:,.0f}"


def format_stages_table(results: Sequence[dict]) -> str:
    """A plain-text table of per-stage medians (ns), one column per ``measure_stages`` result."""
    from lbsim.measure.stages import STAGE_ORDER

    cols = [f"{r['transport']}/{r['placement']}" + ("/busy" if r.get("busy") else "")
            + (f"/{r['size']}B" if len({x['size'] for x in results}) > 1 else "")
            for r in results]
    rows: list[tuple[str, list[str]]] = []
    for st in STAGE_ORDER:
        if not any(st in r["stages"] for r in results):
            continue
        cells = []
        for r in results:
            s = r["stages"].get(st)
            cells.append("-" if s is None else f"{s['median_ns']:,.0f} x{s['per_rtt']:.2f}")
        rows.append((st, cells))
    rows.append(("", [""] * len(results)))
    rows.append(("rtt traced (trace)", [_fmt_ns(r["rtt_traced_median_ns"]) for r in results]))
    rows.append(("rtt traced (harness p50)", [_fmt_ns(r["rtt_traced_harness_p50_ns"]) for r in results]))
    rows.append(("rtt untraced (harness p50)", [_fmt_ns(r["rtt_untraced_median_ns"]) for r in results]))
    rows.append(("events per rtt", [f"{r['events_per_rtt']:.1f}" for r in results]))
    rows.append(("overhead ns/event", [_fmt_ns(r["overhead_ns_per_event"]) for r in results]))
    rows.append(("wakeups l/r/early/none",
                 ["/".join(str(r["wakeups"].get(k, 0)) for k in ("local", "remote", "early", "none"))
                  for r in results]))
    rows.append(("unmatched", [str(sum(r["unmatched"].values())) for r in results]))
    rows.append(("lost+overrun", [str(r["lost_events"] + r["overrun"] + r["dropped_events"]) for r in results]))
    w0 = max(len(n) for n, _ in rows)
    ws = [max(len(c), *(len(cells[i]) for _, cells in rows)) for i, c in enumerate(cols)]
    out = ["stage (median ns x per-rtt)".ljust(w0) + "  " + "  ".join(c.rjust(w) for c, w in zip(cols, ws))]
    out.append("-" * len(out[0]))
    for name, cells in rows:
        out.append(name.ljust(w0) + "  " + "  ".join(c.rjust(w) for c, w in zip(cells, ws)))
    return "\n".join(out)


class _TracingUnavailable(Exception):
    pass


def _traced_runs(transports: list[str], placements: list[str], sizes: list[int], count: int | None,
                 busy: bool) -> tuple[list[dict], int]:
    """One traced ping-pong per transport x placement x size: (runs, how many failed)."""
    from lbsim.measure.harness import HarnessError, HarnessUnavailable
    from lbsim.measure.stages import StagesUnavailable, measure_stages, tracefs_available

    ok, why = tracefs_available()
    if not ok:
        raise _TracingUnavailable(why)
    runs, failed = [], 0
    for tr in transports:
        for pl in placements:
            for size in sizes:
                if tr == "udp" and size > UDP_MAX_PAYLOAD:
                    continue
                try:
                    # count None: measure_stages' own default
                    r = (measure_stages(tr, size=size, placement=pl, busy=busy) if count is None
                         else measure_stages(tr, size=size, placement=pl, busy=busy, count=count))
                except (StagesUnavailable, HarnessUnavailable) as e:
                    raise _TracingUnavailable(str(e)) from None
                except (HarnessError, ValueError) as e:
                    log.error(f"lbsim: {tr} {size} B {pl}: {e}")
                    failed += 1
                    continue
                runs.append({"transport": tr, "placement": pl, "size": size, "result": r})
                log.info(f"stages {tr} {pl} {size} B: overhead {r.get('overhead_ns_per_event')} ns/event")
    return runs, failed


def _show_stages(results: list[dict], as_json: bool) -> None:
    if as_json:
        print(json.dumps(results, indent=1, default=str))
    elif results:
        print(format_stages_table(results))
        for n in sorted({n for r in results for n in r["notes"]}):
            print(f"note: {n}")


def _stage_host() -> dict[str, Any]:
    """This machine's CPU and kernel, as lbsim.measure.grid records them in a stage file: without
    them ``lbsim calibrate`` could not tell a stage file traced on another CPU of the same kernel
    build (lbsim.calibrate_checks.check_stages)."""
    from lbsim.hostid import HostId

    h = HostId.current()
    return {"cpu": h.cpu_dict(), "kernel": h.kernel, "hostname": h.hostname}


def cmd_measure(a: argparse.Namespace) -> int:
    from lbsim.measure.knob_cli import KnobUsageError
    from lbsim.measure.knob_cli import run as run_knobs

    points: dict[str, list] | None = None
    if getattr(a, "knob", None):  # --knob runs over --transports/--workloads/--sizes/--placements
        points = {"transports": csv_list(a.transports, MEASURED_TRANSPORTS, "--transports"),
                  "workloads": [w for w in csv_list(a.workloads, ("pingpong", "stream", "split"), "--workloads")
                                if w != "split"] or ["pingpong", "stream"],
                  "placements": csv_list(a.placements, ("same", "cross"), "--placements")}
        if a.sizes:
            points["sizes"] = int_list(a.sizes, "--sizes")
    try:  # --knobs / --knob / --restore-knobs: a knob run instead of the plain grid
        rc = run_knobs(a, a.out, emit=log.warning, progress=log.info, points=points)
    except KnobUsageError as e:
        raise InputError(str(e)) from None
    if rc is not None:
        return int(rc)
    from lbsim.measure import measure, write_csv

    transports = csv_list(a.transports, MEASURED_TRANSPORTS, "--transports")
    workloads = csv_list(a.workloads, ("pingpong", "stream", "split"), "--workloads")
    placements = csv_list(a.placements, ("same", "cross"), "--placements")
    sizes = int_list(a.sizes or (STAGES_ONLY_SIZES if a.stages_only else MEASURE_SIZES), "--sizes")
    if a.reps < 1:
        raise InputError("--reps: must be >= 1")
    if a.count is not None and a.count < 1:
        raise InputError(f"--count: must be >= 1 (got {a.count})")
    if (a.count is not None or a.json) and not (a.stages or a.stages_only):
        raise InputError("--count and --json go with --stages or --stages-only")
    if a.stages_only:  # the traced runs alone, printed (the former python -m lbsim.measure.stages_cli)
        try:
            runs, failed = _traced_runs(transports, placements, sizes, a.count, a.busy)
        except _TracingUnavailable as e:
            raise InputError(f"per-stage tracing unavailable: {e}") from None
        _show_stages([r["result"] for r in runs], a.json)
        return 1 if failed else 0
    out_path = output_file(a.out, "--out")
    load = Path("/proc/loadavg").read_text().split()[0] if Path("/proc/loadavg").exists() else "?"
    log.warning(f"lbsim: measuring (1-min loadavg {load}; run this on a quiet machine)")
    df = measure(transports, workloads, sizes, placements, reps=a.reps, busy=[False, True] if a.busy else False,
                 progress=log.info)
    out = write_csv(df, out_path)
    log.info(f"lbsim: wrote {len(df)} rows to {out} (+ {out}.host.json)")
    if not a.stages:
        return 0
    from lbsim.measure.harness import null_syscall_ns, stage_file_micros

    try:  # idle runs only: lbsim calibrate reads them as the base cost table
        runs, failed = _traced_runs(transports, placements, sizes, a.count, False)
    except _TracingUnavailable as e:
        log.warning(f"lbsim: --stages skipped: {e}")
        return 0
    stages_path = Path(str(out).removesuffix(".csv") + ".stages.json")
    stages_path.write_text(json.dumps({"null_syscall_ns": null_syscall_ns(), "runs": runs,
                                       **stage_file_micros(), "host": _stage_host()},
                                      indent=1, default=str) + "\n")
    log.info(f"lbsim: wrote {stages_path}")
    _show_stages([r["result"] for r in runs], a.json)
    return 1 if failed else 0


def _print_fit(res: Any, params: dict[str, tuple[float, float, str]]) -> None:
    """The fitted parameters with their bounds, then every point's residual (fitted points first)."""
    for k, v in res.params.items():
        lo_hi = params.get(k)
        bound = f"  bounds {lo_hi[0]:g}..{lo_hi[1]:g}" if lo_hi else ""
        print(f"{k:34s} {v:12.4f}{bound}{'  AT BOUND' if k in res.bounds_hit else ''}")
    if res.unidentified:
        print("not identified by the data:", ", ".join(res.unidentified))
    from lbsim.calibrate.output import identifiability_lines

    for line in identifiability_lines(getattr(res, "identifiability", {})):
        print(line)
    print(f"{'point':60s} {'measured':>9s} {'simulated':>9s} {'error':>7s}")
    for r in sorted(res.residuals, key=lambda r: (not r["fitted"], r["transport"], r["placement"], r["msg_bytes"])):
        name = (f"{r['metric']} {r['transport']} {r['placement']}/{r['background']} {r['msg_bytes']} B"
                f"{' (fit)' if r['fitted'] else ''}")
        print(f"{name:44s} {r['measured_us']:9.2f} {r['simulated_us']:9.2f} {r['error_pct']:6.1f}%")


def _stages_file(a: argparse.Namespace, measured: Path) -> Path:
    if a.stages_file and a.stages and a.stages_file != a.stages:
        raise InputError(f"two stage files given ({a.stages_file} and --stages {a.stages}); give one")
    given = a.stages_file or a.stages
    stages = Path(given) if given else Path(str(measured).removesuffix(".csv") + ".stages.json")
    if not stages.is_file():
        alt = measured.with_name("stages-host.json")
        if given is None and alt.is_file():
            stages = alt
        else:
            raise InputError(f"{stages}: no tracepoint stage file (give STAGES or --stages, made by "
                             "lbsim measure --stages)")
    try:
        data = json.loads(stages.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"{stages}: not a JSON stage file ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict) or not isinstance(data.get("runs"), list):
        raise InputError(f"{stages}: not a stage file: need a JSON object with a 'runs' list "
                         "(written by lbsim measure --stages)")
    return stages


def cmd_calibrate(a: argparse.Namespace) -> int:
    if a.measured is None:
        return _calibrate_this_host(a)
    from lbsim import calibrate as cal
    from lbsim.calibrate_checks import CalibrationInputError, check_stages, fit_coverage, read_measured

    for opt in ("out_dir", "name", "reps"):
        if getattr(a, opt) is not None:
            raise InputError(f"--{opt.replace('_', '-')} goes with `lbsim calibrate` without MEASURED "
                             "(measuring this host)")
    if a.force or a.overwrite:
        raise InputError("--force and --overwrite go with `lbsim calibrate` without MEASURED (measuring this host)")
    measured = Path(a.measured)
    if not measured.is_file():
        raise InputError(f"{measured}: no such measured-data file")
    stages = _stages_file(a, measured)
    try:
        df = read_measured(measured)
        check_stages(stages, measured)
    except CalibrationInputError as e:
        raise InputError(str(e)) from None
    out = output_file(a.out or "costs.json", "-o/--out")
    kw: dict[str, Any] = {}
    if a.fit_sizes is not None:
        kw["fit_sizes"] = int_list(a.fit_sizes, "--fit-sizes")
    gap = fit_coverage(df, measured, **kw)
    if gap:  # data from elsewhere may lack points on purpose: said, and fitted
        log.warning(f"lbsim calibrate: {gap}; fitting what is there")
    res = cal.calibrate_from_files(measured, stages, out, progress=lambda rms: log.debug(f"fit: rms {rms:.4g}"),
                                   df=df, **kw)
    _print_fit(res, cal.PARAMS)
    log.info(f"lbsim: wrote {out}")
    return 0


class _Bar:
    """The one-command calibration's progress: a tqdm bar per phase on stderr (lines when stderr
    is not a terminal), nothing with -q."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.tty = sys.stderr.isatty()
        self.bar: Any = None
        self.name = ""

    def phase(self, name: str, total: int | None) -> None:
        self.close()
        self.name = name
        if self.quiet or total == 0:
            return
        if self.tty:
            from tqdm import tqdm

            unit = {"measure": "run", "fit": "eval", "validate": "point"}.get(name, "it")
            self.bar = tqdm(total=total, desc=name, unit=unit, file=sys.stderr, dynamic_ncols=True, leave=True)
        else:
            log.info(f"lbsim calibrate: {name}" + (f" ({total} runs)" if total else ""))

    def tick(self, text: str = "") -> None:
        if self.bar is None:
            return
        import re

        m = re.match(r"\[(\d+)/(\d+)\]", text)
        if text and not m and not text.startswith(("stages ", "rms ")):
            return  # measure()'s notes (skipped points): not a step
        if m and self.name == "validate" and self.bar.total is None:
            self.bar.reset(total=int(m.group(2)))
        self.bar.update(1)
        if text.startswith("rms "):
            self.bar.set_postfix_str(text, refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _calibrate_this_host(a: argparse.Namespace) -> int:
    """`lbsim calibrate` without data: measure, fit, validate, install (lbsim.calibrate_host)."""
    import shutil

    from lbsim import calibrate_host as ch
    from lbsim.calibrate_checks import CalibrationInputError

    if a.stages_file or a.stages:
        raise InputError("STAGES and --stages go with MEASURED; without it lbsim calibrate traces this host")
    reps = 3 if a.reps is None else a.reps
    if reps < 1:
        raise InputError(f"--reps: must be >= 1 (got {reps})")
    out = output_file(a.out, "-o/--out") if a.out else None
    out_dir = output_dir(a.out_dir, "--out-dir") if a.out_dir else None
    kw: dict[str, Any] = {}
    if a.fit_sizes is not None:
        kw["fit_sizes"] = int_list(a.fit_sizes, "--fit-sizes")
    bar = _Bar(quiet=a.quiet > 0)
    try:
        res = ch.calibrate_this_host(out_dir=out_dir, name=a.name, force=a.force, reps=reps,
                                     overwrite=a.overwrite, progress=bar, notice=log.warning, **kw)
    except CalibrationInputError as e:
        raise InputError(str(e)) from None
    if out is not None:
        shutil.copyfile(res.costs, out)
    print(ch.format_summary(res))
    return 0


def _validate_kwargs(a: argparse.Namespace) -> dict[str, Any]:
    """validate()'s keyword arguments given on the command line (the others keep its defaults)."""
    kw: dict[str, Any] = {}
    for name in ("messages_pingpong", "stream_bytes", "stream_replications"):
        v = getattr(a, name)
        if v is not None:
            if v < 1:
                raise InputError(f"--{name.replace('_', '-')}: must be >= 1 (got {v})")
            kw[name] = v
    if a.seed is not None:
        if a.seed < 0:
            raise InputError(f"--seed: must be >= 0 (got {a.seed})")
        kw["seed"] = a.seed
    if a.fit_sizes is not None:
        kw["fit_sizes"] = int_list(a.fit_sizes, "--fit-sizes")
    return kw


def _is_knob_grid(path: str) -> bool:
    """Whether MEASURED is a knob grid (lbsim measure --knobs): its header names setting, knob, group."""
    try:
        with open(path) as f:
            header = {c.strip() for c in f.readline().split(",")}
    except (OSError, UnicodeDecodeError):
        return False  # validate() reports the file
    return {"setting", "knob", "group"} <= header


def cmd_validate_effects(a: argparse.Namespace) -> int:
    """validate on a knob grid: each setting's effect, measured against simulated."""
    from lbsim.validate import MeasuredDataError
    from lbsim.validate.effects import validate_effects

    if a.workers is not None and a.workers < 1:
        raise InputError(f"--workers: must be >= 1 (got {a.workers})")
    if not (0 < a.max_spread):
        raise InputError(f"--max-spread {a.max_spread}: need a percentage > 0")
    figure = output_file(a.figure, "--figure", FIGURE_FORMATS) if a.figure else None
    kw: dict[str, Any] = {k: v for k, v in (("messages_pingpong", a.messages_pingpong), ("seed", a.seed),
                                            ("stream_replications", a.stream_replications)) if v is not None}
    level = logging.INFO if sys.stderr.isatty() else logging.DEBUG
    try:
        rep = validate_effects(a.measured, load_costs(a.costs), max_spread=a.max_spread / 100.0, workers=a.workers,
                               progress=lambda t: log.log(level, f"lbsim validate: {t}"), **kw)
    except MeasuredDataError as e:
        raise InputError(str(e)) from None
    if figure:
        from lbsim.plots_effects import effects_figure

        effects_figure(rep.rows).savefig(figure, dpi=110)
    print(json.dumps(rep.to_dict()) if a.json else rep.format_table())
    return 0


def cmd_validate_stages(a: argparse.Namespace) -> int:
    """validate --stages: each kernel stage's simulated time against the traced runs the fit did not use."""
    from lbsim.validate.stages import StageDataError, resolve_inputs, validate_stages
    from lbsim.validate.stages_report import stages_figure

    figure = output_file(a.figure, "--figure", FIGURE_FORMATS) if a.figure else None
    level = logging.INFO if sys.stderr.isatty() else logging.DEBUG
    try:
        path, costs, host = resolve_inputs(a.measured, a.costs)
        rep = validate_stages(path, costs, host=host, seed=1 if a.seed is None else a.seed,
                              progress=lambda t: log.log(level, f"lbsim validate: {t}"))
    except StageDataError as e:
        raise InputError(str(e)) from None
    if figure:
        stages_figure(rep.rows, title=f"{rep.host}: stage times, traced runs the fit did not use").savefig(
            figure, dpi=110)
    print(json.dumps(rep.to_dict()) if a.json else rep.format_table())
    return 0


def cmd_validate(a: argparse.Namespace) -> int:
    from lbsim.validate import MeasuredDataError, validate

    if a.stages:
        return cmd_validate_stages(a)
    a.costs = a.costs or sim_default("costs")
    if _is_knob_grid(a.measured):
        return cmd_validate_effects(a)
    if a.max_error is not None and not (a.max_error >= 0):
        raise InputError(f"--max-error {a.max_error}: need a percentage >= 0")
    kw = _validate_kwargs(a)
    figure = output_file(a.figure, "--figure", FIGURE_FORMATS) if a.figure else None
    costs = load_costs(a.costs)
    # one line per simulated point: on a terminal, else only with -v
    level = logging.INFO if sys.stderr.isatty() else logging.DEBUG
    try:
        rep = validate(a.measured, costs, progress=lambda t: log.log(level, f"lbsim validate: {t}"), **kw)
    except MeasuredDataError as e:
        raise InputError(str(e)) from None
    if figure:
        from lbsim.plots import validation_figure

        validation_figure(rep.rows).savefig(figure, dpi=110)
    if a.json:
        print(json.dumps(rep.to_dict(a.max_error)))
    else:
        print(rep.format_table(a.max_error))
    if a.max_error is not None and not rep.passes(a.max_error):
        return 1
    return 0


def _add_measure(sub: Any, parent: argparse.ArgumentParser) -> None:
    m = sub.add_parser("measure", parents=[parent],
                       help="measure this host's loopback and UNIX sockets (C harness)",
                       description="Measure this host's loopback and UNIX sockets with the C harness into a "
                                   "long-format CSV; --stages also times the kernel stages from tracepoints "
                                   "(root and tracefs).")
    m.add_argument("--transports", default=",".join(MEASURED_TRANSPORTS),
                   help="comma-separated (default all four; unix_seqpacket is measured as knob socktype)")
    m.add_argument("--workloads", default="pingpong,stream,split",
                   help="pingpong, stream, split (one thread writes a message, then reads it: the "
                        "write and the read timed apart; sizes up to 64 KiB, same CPU only)")
    m.add_argument("--sizes", default=None,
                   help=f"message sizes in bytes (default {MEASURE_SIZES}; with --stages-only {STAGES_ONLY_SIZES})")
    m.add_argument("--placements", default="same,cross", help="same, cross (default both)")
    m.add_argument("--reps", type=int, default=3, help="repetitions of each point (default 3)")
    m.add_argument("--busy", action="store_true",
                   help="also measure with the peer's CPU busy (a nice-19 spinner); with --stages-only, "
                        "trace with the spinner")
    m.add_argument("--out", default="measured.csv", help="the long-format CSV to write (default measured.csv)")
    g = m.add_argument_group("kernel stages (tracepoints; root and tracefs)")
    g.add_argument("--stages", action="store_true",
                   help="also trace each transport x placement x size (idle) into OUT.stages.json, "
                        "the input of lbsim calibrate, and print the per-stage table")
    g.add_argument("--stages-only", action="store_true",
                   help="only the traced runs, printed (no CSV); exit 2 if tracing is unavailable")
    g.add_argument("--count", type=int, default=None, help="round trips per traced run (default 2000)")
    g.add_argument("--json", action="store_true", help="print the traced runs as JSON instead of the table")
    from lbsim.measure.knob_cli import add_arguments as knob_arguments

    knob_arguments(m)
    m.set_defaults(func=cmd_measure)


def _add_calibrate(sub: Any, parent: argparse.ArgumentParser) -> None:
    k = sub.add_parser("calibrate", parents=[parent], help="fit a cost model to this host, or to measured data",
                       description="Without MEASURED: calibrate this host in one command: check that it is quiet, "
                                   "measure the grid and (root and tracefs) the kernel stages, fit the costs, "
                                   "validate them on the held-out points and install them as this host's "
                                   "profile (--costs auto picks it). With MEASURED: fit a cost model to data "
                                   "from elsewhere: a base cost table from the tracepoint stage file, then a "
                                   "bounded least-squares fit to the measured medians; prints the parameters "
                                   "and every point's residual.")
    k.add_argument("measured", nargs="?", default=None, metavar="MEASURED",
                   help="long-format CSV written by lbsim measure (default: measure this host)")
    k.add_argument("stages_file", nargs="?", default=None, metavar="STAGES",
                   help="tracepoint stage file (same as --stages)")
    k.add_argument("--stages", default=None, help="tracepoint stage file (default: MEASURED's .stages.json, "
                                                  "else stages-host.json beside it)")
    k.add_argument("--fit-sizes", default=None,
                   help="comma-separated message sizes fitted on (default 64,4096,65536)")
    k.add_argument("-o", "--out", default=None,
                   help="the cost-model file to write (default costs.json; without MEASURED: a copy of the "
                        "installed profile's costs)")
    g = k.add_argument_group("calibrating this host (no MEASURED)")
    g.add_argument("--out-dir", default=None, metavar="DIR",
                   help="where the measured data, costs.json and validate.json go (default "
                        "$XDG_DATA_HOME/lbsim/hosts/PROFILE)")
    g.add_argument("--name", default=None, help="the profile's name (default vendor-family-model-stepping-"
                                                "kernel build-date)")
    g.add_argument("--reps", type=int, default=None, help="repetitions of each measured point (default 3)")
    g.add_argument("--force", action="store_true", help="measure even if the machine is not quiet")
    g.add_argument("--overwrite", action="store_true", help="replace a profile of the same --name")
    k.set_defaults(func=cmd_calibrate)


def _add_validate(sub: Any, parent: argparse.ArgumentParser) -> None:
    v = sub.add_parser("validate", parents=[parent],
                       help="simulate measured points and report the model's error",
                       description="Compare measured loopback / UNIX socket data (long-format CSV, see "
                                   "docs/measured-data.md) with the model. Exit 1 if --max-error is exceeded.")
    v.add_argument("measured", metavar="MEASURED",
                   help="long-format measured CSV; with --stages a stage file or a host folder (data/hosts/NAME)")
    v.add_argument("--costs", default=None,
                   help="cost profile: a profile name, a JSON file, 'default' or 'auto' "
                        f"(default {sim_default('costs')}; with --stages and a host folder, its costs.json)")
    v.add_argument("--stages", action="store_true",
                   help="compare each kernel stage's simulated time with the tracepoint stage times of "
                        "MEASURED (lbsim measure --stages) on the traced runs the costs' base did not read")
    v.add_argument("--max-error", type=float, default=None, metavar="PCT",
                   help="exit 1 unless the held-out median |error| of rtt_p50_us and throughput_MBps "
                        "are both <= PCT")
    v.add_argument("--fit-sizes", default=None,
                   help="comma-separated sizes counted as fitted (default: the cost file's provenance)")
    v.add_argument("--messages-pingpong", type=int, default=None,
                   help="round trips per ping-pong point (default 1000)")
    v.add_argument("--stream-bytes", type=int, default=None,
                   help="bytes per stream point (default 64 MiB, as lbsim measure writes)")
    v.add_argument("--seed", type=int, default=None, help="seed of the first simulation of a point (default 1)")
    v.add_argument("--stream-replications", type=int, default=None,
                   help="simulations per stream point, seeds SEED, SEED+1, ...; their median is compared "
                        "(default 3)")
    v.add_argument("--json", action="store_true", help="print one JSON object")
    v.add_argument("--figure", default=None, metavar="FILE",
                   help="also draw measured against simulated curves (PNG, SVG or PDF by extension); "
                        "for a knob grid, measured against simulated effect, one panel per knob")
    g = v.add_argument_group("knob grids (a CSV with setting, knob, group columns: lbsim measure --knobs)",
                             "each knob setting's effect (its metric over the default's at the same point), "
                             "measured against simulated with the host's settings")
    g.add_argument("--workers", type=int, default=None,
                   help="simulation processes (default: every CPU)")
    g.add_argument("--max-spread", type=float, default=30.0, metavar="PCT",
                   help="leave a point out of the summary when its measured effect varies more than PCT "
                        "between repetitions (default %(default)s)")
    v.set_defaults(func=cmd_validate)


def add_commands(sub: Any, parent: argparse.ArgumentParser) -> None:
    _add_measure(sub, parent)
    _add_calibrate(sub, parent)
    _add_validate(sub, parent)
