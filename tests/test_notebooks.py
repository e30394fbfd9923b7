"""Every notebook executes headless (nbclient + ipykernel) and produces its figures."""

from __future__ import annotations

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))


@pytest.fixture(scope="module")
def smoke_results(tmp_path_factory):
    """Smoke-sized results of the experiments the notebooks read, in a temporary folder."""
    from lbsim.runner import run_experiment

    root = tmp_path_factory.mktemp("results")
    exp = Path(__file__).resolve().parent.parent / "experiments"
    for name in ("quickstart", "latency_vs_size", "throughput_vs_size"):
        run_experiment(exp / f"{name}.toml", smoke=True, jobs=1, out=root / name, quiet=True)
    return root


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_and_draws(path, smoke_results, monkeypatch):
    monkeypatch.setenv("LBSIM_VALIDATE_FAST", "1")
    monkeypatch.setenv("LBSIM_RESULTS", str(smoke_results))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(path, as_version=4)
    nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}}).execute()
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if "image/png" in o.get("data", {})]
    assert images, "the notebook drew no figure"
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors


def test_notebooks_are_committed_without_outputs():
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), path.name
