"""The shipped results (results/): present, current against the model and costs, and the README's
numbers written from them."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

import lbsim

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "results"
EXPERIMENTS = sorted(p.stem for p in (ROOT / "experiments").glob("*.toml"))


def _readme_numbers():
    spec = importlib.util.spec_from_file_location("readme_numbers", ROOT / "scripts" / "readme_numbers.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_has_shipped_results_and_figures(name):
    folder = RESULTS / name
    assert (folder / "manifest.json").is_file(), f"results/{name} missing: run make results"
    assert list((folder / "runs").glob("*.parquet"))
    assert list((folder / "figures").glob("*.png"))


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_shipped_results_are_not_stale(name):
    """Regenerate (make results) whenever the model or the default costs change."""
    m = json.loads((RESULTS / name / "manifest.json").read_text())
    text = json.dumps(m)
    assert lbsim.load_costs().hash in text, f"results/{name} were made with other costs: run make results"
    assert lbsim.__version__ in text, f"results/{name} were made by another lbsim version: run make results"
    from lbsim.simulate import model_hash

    assert m.get("model_hash") == model_hash(), f"results/{name} were made by another model: run make results"
    df = lbsim.load_results(RESULTS / name)
    assert set(df.status) <= {"ok", "skipped"}


def test_shipped_results_stay_small():
    size = sum(p.stat().st_size for p in RESULTS.rglob("*") if p.is_file())
    assert size < 20 * 1024 * 1024


def test_readme_numbers_match_the_shipped_results():
    mod = _readme_numbers()
    text = (ROOT / "README.md").read_text()
    assert mod.replace_block(text, mod.render()) == text, "run scripts/readme_numbers.py"
