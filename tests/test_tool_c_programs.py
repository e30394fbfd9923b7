"""The measuring tools' C programs (tools/*/*.c) build as their drivers build them: a bare
``cc -O2 -pthread file.c`` (tools/pinclock.h comes in by relative path).  Nothing is run."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted((ROOT / "tools").glob("*/*.c"))
CC = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")


@pytest.mark.skipif(not CC, reason="no C compiler")
@pytest.mark.parametrize("source", SOURCES, ids=[str(s.relative_to(ROOT)) for s in SOURCES])
def test_tool_program_builds(source, tmp_path):
    r = subprocess.run([CC, "-O2", "-pthread", "-o", str(tmp_path / source.stem), str(source)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


def test_there_are_tool_programs():
    assert len(SOURCES) >= 6
