"""The shipped results (results/): present in the one-file layout, current against the declared
model version and the costs, and the README's numbers written from them."""

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
    assert (folder / "results.parquet").is_file() and (folder / "experiment.toml").is_file()
    assert list((folder / "figures").glob("*.png"))
    shipped = {p.relative_to(folder).parts[0] for p in folder.rglob("*") if p.is_file()}
    assert shipped <= {"experiment.toml", "manifest.json", "results.parquet", "figures"}, shipped
    assert {p.suffix for p in (folder / "figures").iterdir()} == {".png"}


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_shipped_results_are_not_stale(name):
    """Regenerate (make results) whenever MODEL_VERSION or the default costs change (and only then)."""
    from lbsim.model.version import MODEL_VERSION

    m = json.loads((RESULTS / name / "manifest.json").read_text())
    assert lbsim.load_costs().hash in json.dumps(m["costs_hash"]), \
        f"results/{name} were made with other costs: run make results"
    df = lbsim.load_results(RESULTS / name)
    stale = f"results/{name} were made by model version {m.get('model_version')}, not {MODEL_VERSION}: run make results"
    assert m.get("model_version") == MODEL_VERSION and set(df.model_version) == {MODEL_VERSION}, stale
    assert set(df.status) <= {"ok", "skipped"}
    # make results sets LBSIM_COSTS to the default costs' profile: rows name it, whatever host made them
    from lbsim.profiles import DEFAULT_PROFILE

    ok = df[df.status == "ok"]
    assert set(ok.costs_profile) == {DEFAULT_PROFILE}, f"results/{name}: costs_profile {set(ok.costs_profile)}"


def test_shipped_results_stay_small():
    size = sum(p.stat().st_size for p in RESULTS.rglob("*") if p.is_file())
    assert size < 20 * 1024 * 1024


def test_readme_numbers_match_the_shipped_results():
    mod = _readme_numbers()
    text = (ROOT / "README.md").read_text()
    assert mod.replace_block(text, mod.render()) == text, "run scripts/readme_numbers.py"
