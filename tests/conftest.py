"""Make benchmarks/make_reference.py importable by the tests (as benchmarks_make_reference)."""

import importlib.util
import sys
from pathlib import Path

_path = Path(__file__).resolve().parent.parent / "benchmarks" / "make_reference.py"
_spec = importlib.util.spec_from_file_location("benchmarks_make_reference", _path)
_mod = importlib.util.module_from_spec(_spec)
sys.modules["benchmarks_make_reference"] = _mod
_spec.loader.exec_module(_mod)
