"""Shared test set-up: benchmarks/make_reference.py importable (as benchmarks_make_reference),
a private harness build cache (private_harness_cache), and the "slow" marker."""

import importlib.util
import os
import sys
from pathlib import Path

import pytest

_path = Path(__file__).resolve().parent.parent / "benchmarks" / "make_reference.py"
_spec = importlib.util.spec_from_file_location("benchmarks_make_reference", _path)
_mod = importlib.util.module_from_spec(_spec)
sys.modules["benchmarks_make_reference"] = _mod
_spec.loader.exec_module(_mod)


def pytest_configure(config):
    # `make test` runs every test; `-m "not slow"` leaves out the ones that take minutes
    config.addinivalue_line("markers", "slow: takes minutes (the whole calibration re-run); deselect with "
                                       "-m 'not slow'")


@pytest.fixture(scope="module")
def private_harness_cache(tmp_path_factory):
    """XDG_CACHE_HOME pointed at a fresh directory for one test module, so the C harness is
    built there and never races a real user cache; restored afterwards."""
    old = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if old is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = old
