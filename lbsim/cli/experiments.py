"""lbsim run and plot: an experiment file into a results folder, and its figures."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from lbsim.cli._common import InputError, log, output_dir

__all__ = ["add_commands"]


def _experiment_path(name: str) -> Path:
    path = Path(name)
    if not path.is_file() and not path.suffix and (Path("experiments") / f"{name}.toml").is_file():
        path = Path("experiments") / f"{name}.toml"
    if not path.is_file():
        raise InputError(f"{name}: no such experiment file")
    try:
        path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: not a text file (byte {e.start} is not UTF-8); an experiment file "
                         "is TOML text") from None
    except OSError as e:
        raise InputError(f"{path}: cannot read experiment file ({e.strerror})") from None
    return path


def cmd_run(a: argparse.Namespace) -> int:
    """Run an experiment file; exit 1 if some runs failed (they are stored with status error)."""
    from lbsim.experiment import ExperimentError
    from lbsim.runner import RunnerError, run_experiment

    path = _experiment_path(a.experiment)
    if a.jobs is not None and a.jobs < 1:
        raise InputError(f"--jobs: must be >= 1 (got {a.jobs})")
    if a.out is not None:
        output_dir(a.out, "--out")
    executor = a.executor or ("dask" if a.dask_scheduler else "local")
    if a.dask_scheduler and executor != "dask":
        raise InputError("--dask-scheduler needs --executor dask")
    try:
        df = run_experiment(path, smoke=a.smoke, jobs=a.jobs, executor=executor, dask_scheduler=a.dask_scheduler,
                            out=a.out, force=a.force, quiet=a.quiet > 0)
    except (ExperimentError, RunnerError) as e:
        raise InputError(str(e)) from None
    except KeyboardInterrupt:
        log.error("lbsim: interrupted; finished runs are stored, run the same command again to resume")
        return 130
    names = sorted(set(df["costs_profile"].dropna())) if "costs_profile" in df.columns else []
    if names:
        log.info(f"lbsim: costs: {', '.join(names)}")
    return 1 if df.attrs["summary"]["counts"].get("error", 0) else 0


def cmd_plot(a: argparse.Namespace) -> int:
    """Redraw the figures of a results folder from its stored rows (no simulation)."""
    folder = Path(a.results)
    if not folder.is_dir():
        raise InputError(f"{a.results}: no such results folder")
    from lbsim.figures import applicable, draw_all
    from lbsim.results import ResultsError, load_results, read_table

    try:
        if not read_table(folder, ["status"]).num_rows:
            raise InputError(f"{a.results}: no stored results (no results.parquet or parts/); run lbsim run first")
        df = load_results(folder)
    except ResultsError as e:
        raise InputError(f"{e}; delete it and run lbsim run again to recompute it") from None
    out = output_dir(a.out, "--out") if a.out else folder / "figures"
    figs = applicable(df)
    if not figs:
        log.warning(f"lbsim: no figure applies to the results in {folder}")
        return 0
    written = draw_all(df, out)
    for f in figs:
        files = [p.name for p in written if p.stem == f.name]
        print(f"{f.name}: {f.title} -> {', '.join(files)}")
    log.info(f"lbsim: wrote {len(figs)} figures ({len(written)} files) to {out}")
    return 0


def add_commands(sub: Any, parent: argparse.ArgumentParser) -> None:
    r = sub.add_parser("run", parents=[parent],
                       help="run an experiment file (a parameter sweep) into a results folder",
                       description="Run an experiment file (a parameter sweep) into a results folder; "
                                   "runs already stored are kept (exit 1 if some runs failed).")
    r.add_argument("experiment", help="experiments/<name>.toml (or just <name>)")
    r.add_argument("--smoke", action="store_true", help="apply the file's [smoke] overrides (a small version)")
    r.add_argument("--jobs", type=int, default=None, help="parallel workers (default: the number of CPUs)")
    r.add_argument("--executor", choices=("local", "dask"), default=None,
                   help="local process pool (default) or dask")
    r.add_argument("--dask-scheduler", default=None, metavar="ADDRESS",
                   help="an existing dask scheduler, e.g. tcp://10.0.0.1:8786 (implies --executor dask)")
    r.add_argument("--out", default=None, metavar="DIR", help="the results folder (default runs/<name>/)")
    r.add_argument("--force", action="store_true", help="recompute runs that are already stored")
    r.set_defaults(func=cmd_run)
    pl = sub.add_parser("plot", parents=[parent],
                        help="redraw the figures of a results folder (PNG and SVG under DIR/figures/)",
                        description="Redraw the figures of a results folder from its stored rows (no simulation).")
    pl.add_argument("results", metavar="DIR", help="a results folder written by lbsim run")
    pl.add_argument("--out", default=None, metavar="DIR", help="where to write the figures (default DIR/figures/)")
    pl.set_defaults(func=cmd_plot)
