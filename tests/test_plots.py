"""Figures of a results folder: lbsim.plots, lbsim.figures.draw_all and `lbsim plot DIR`."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import lbsim  # noqa: E402
from lbsim import plots  # noqa: E402
from lbsim.cli import main  # noqa: E402
from lbsim.figures import FIGURES, applicable, draw_all  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent

# smoke experiment -> the figures its data supports
EXPECTED = {
    "quickstart": {"latency_cdf", "ratio_to_unix_stream", "stage_breakdown"},
    "latency_vs_size": {"latency_cdf", "latency_vs_size", "ratio_to_unix_stream", "stage_breakdown"},
    "throughput_vs_size": {"latency_cdf", "throughput_vs_size", "ratio_to_unix_stream", "stage_breakdown"},
    "queues": {"latency_cdf", "queue_drops", "stage_breakdown"},
    "load": {"latency_cdf", "latency_vs_load", "stage_breakdown"},
    "cpus": {"latency_cdf", "scaling", "stage_breakdown"},
    "kernels": {"latency_cdf", "kernels", "ratio_to_unix_stream", "stage_breakdown"},
    "mtu": {"latency_cdf", "mtu_tso", "stage_breakdown"},
}


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("smoke")
    out = {}
    for name in EXPECTED:
        d = base / name
        lbsim.run_experiment(ROOT / "experiments" / f"{name}.toml", smoke=True, jobs=1, out=d, quiet=True)
        out[name] = d
    return out


def _has_data(ax) -> bool:
    return bool(ax.lines or ax.patches or ax.collections or ax.images)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_draw_all_per_experiment(smoke: dict[str, Path], name: str, tmp_path: Path) -> None:
    df = lbsim.load_results(smoke[name])
    figs = applicable(df)
    assert {f.name for f in figs} == EXPECTED[name]
    written = draw_all(df, tmp_path / "figs")
    assert {p.stem for p in written} == EXPECTED[name]
    for stem in EXPECTED[name]:
        p = tmp_path / "figs" / f"{stem}.png"
        assert p.is_file() and p.stat().st_size > 1000, p
    assert not list((tmp_path / "figs").glob("*.svg"))  # PNG only
    for f in figs:  # every panel drawn has data, and is labelled
        fig = f.draw(df)
        try:
            assert fig.get_size_inches()[0] * 100 == pytest.approx(700)
            visible = [ax for ax in fig.axes if ax.get_visible() and ax.get_label() != "<colorbar>"]
            assert visible, f.name
            for ax in visible:
                assert _has_data(ax), (f.name, ax.get_title())
                assert ax.get_xlabel() and ax.get_ylabel(), (f.name, ax.get_title())
        finally:
            plt.close(fig)


def test_transport_colours(smoke: dict[str, Path]) -> None:
    df = lbsim.load_results(smoke["latency_vs_size"])
    fig = plots.latency_vs_size(df)
    try:
        colours = {line.get_label(): matplotlib.colors.to_hex(line.get_color()) for line in fig.axes[0].lines}
        for tr, st in plots.TRANSPORT_STYLE.items():
            assert colours[tr] == st["color"]
        assert fig.axes[0].collections  # the p50..p99 band
    finally:
        plt.close(fig)


def test_plot_on_given_axes(smoke: dict[str, Path]) -> None:
    df = lbsim.load_results(smoke["cpus"])
    fig, ax = plt.subplots()
    try:
        assert plots.scaling(df, ax=ax) is fig
        assert ax.lines
    finally:
        plt.close(fig)


def test_ratio_values(smoke: dict[str, Path]) -> None:
    df = lbsim.load_results(smoke["quickstart"])
    (title, table), = plots.ratio_tables(df)
    assert "p50" in title and "unix_stream / same" not in table.index
    ok = df[(df.status == "ok") & (df.metric == "latency_us_p50") & (df.msg_bytes == 64) & (df.placement == "same")]
    v = ok.groupby("transport")["value"].mean()
    assert table.loc["tcp / same", 64] == pytest.approx(v["tcp"] / v["unix_stream"])


def test_empty_and_unrelated_frames(smoke: dict[str, Path], tmp_path: Path) -> None:
    df = lbsim.load_results(smoke["quickstart"])
    assert draw_all(df.iloc[0:0], tmp_path / "none") == []
    assert not (tmp_path / "none").exists()
    errors = df.assign(status="error")
    assert applicable(errors) == []
    assert {f.name for f in FIGURES} >= set().union(*EXPECTED.values())


def test_cli_plot(smoke: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    d = smoke["load"]
    assert main(["plot", str(d)]) == 0
    out = capsys.readouterr().out
    assert "latency_vs_load" in out and "stage_breakdown" in out and "queue_drops" not in out
    for stem in ("latency_vs_load", "stage_breakdown"):
        assert (d / "figures" / f"{stem}.png").stat().st_size > 0
    assert not list((d / "figures").glob("*.svg"))


def test_cli_plot_missing_folder(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "lbsim.cli", "plot", str(tmp_path / "nope")],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "nope" in lines[0] and "Traceback" not in r.stderr
    assert main(["plot", str(tmp_path)]) == 2  # a folder without stored runs


def test_plots_do_not_import_the_model() -> None:
    # `import lbsim` itself imports lbsim.simulate (lbsim/__init__.py), so load the package
    # without its __init__ and check that lbsim.plots and lbsim.figures pull in no model code.
    code = textwrap.dedent(f"""
        import sys, types
        pkg = types.ModuleType("lbsim"); pkg.__path__ = [{str(ROOT / "lbsim")!r}]
        sys.modules["lbsim"] = pkg
        import lbsim.plots, lbsim.figures
        bad = [m for m in sys.modules if m.startswith(("lbsim.model", "lbsim.simulate"))]
        assert not bad, bad
        print("ok")
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr
