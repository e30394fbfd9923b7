"""Building the C harness (``harness.c``) and caching the binary.

The harness is compiled on demand with ``$CC`` (default ``cc``) into
``${XDG_CACHE_HOME:-~/.cache}/lbsim/harness-<sha256[:12] of the source>``; a changed
source gets a new name, so a stale binary is never run.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import subprocess
from pathlib import Path

from .harness_base import HarnessUnavailable

__all__ = ["SOURCE", "CFLAGS", "build_harness"]

SOURCE = Path(__file__).with_name("harness.c")
CFLAGS = ("-std=c11", "-O2", "-Wall")


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "lbsim"


def _source_digest() -> str:
    return hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:12]


def build_harness(force: bool = False) -> Path:
    """Compile harness.c (cached by source hash) and return the binary's path.

    Raises :class:`HarnessUnavailable` if there is no usable C compiler or the
    compilation fails.
    """
    if not SOURCE.is_file():
        raise HarnessUnavailable(f"harness source not found: {SOURCE}")
    digest = _source_digest()
    cache = _cache_dir()
    exe = cache / f"harness-{digest}"
    if not force and exe.is_file() and os.access(exe, os.X_OK):
        return exe

    cc = shlex.split(os.environ.get("CC", "cc")) or ["cc"]
    if shutil.which(cc[0]) is None:
        raise HarnessUnavailable(
            f"no C compiler found (CC={os.environ.get('CC', 'cc')!r}); install gcc/clang "
            "or use python_fallback_pingpong/python_fallback_stream")
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise HarnessUnavailable(f"cannot create cache directory {cache}: {e}") from e
    tmp = cache / f".harness-{digest}.{os.getpid()}.tmp"
    cmd = [*cc, *CFLAGS, "-o", str(tmp), str(SOURCE)]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as e:
        tmp.unlink(missing_ok=True)
        raise HarnessUnavailable(f"running the C compiler failed: {' '.join(cmd)}: {e}") from e
    if r.returncode != 0 or not tmp.is_file():
        tmp.unlink(missing_ok=True)
        raise HarnessUnavailable(
            f"compiling {SOURCE.name} failed (exit {r.returncode}): {' '.join(cmd)}\n"
            f"{r.stderr.strip()}")
    os.chmod(tmp, 0o755)
    os.replace(tmp, exe)   # atomic: concurrent builders are fine
    return exe
