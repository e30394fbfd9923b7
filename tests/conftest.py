"""Shared test set-up: benchmarks/make_reference.py importable (as benchmarks_make_reference),
a private harness build cache (private_harness_cache), the "slow" marker, and cost profiles that
do not depend on the host the tests run on."""

import importlib.util
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

# Tests never depend on the host they run on: costs "auto" (SimConfig's default) resolves to the
# Xeon v1272 profile, whose numbers are lbsim/data/costs-default.json (the golden reference
# outputs were made with them), and no user profile of this machine is seen.  Set in os.environ
# for the whole session, so that the lbsim subprocesses tests start get the same.
from lbsim.profiles import DEFAULT_PROFILE, ENV_VAR

_XDG_DATA_HOME = tempfile.mkdtemp(prefix="lbsim-test-xdg-")
os.environ["XDG_DATA_HOME"] = _XDG_DATA_HOME
os.environ[ENV_VAR] = DEFAULT_PROFILE

_path = Path(__file__).resolve().parent.parent / "benchmarks" / "make_reference.py"
_spec = importlib.util.spec_from_file_location("benchmarks_make_reference", _path)
_mod = importlib.util.module_from_spec(_spec)
sys.modules["benchmarks_make_reference"] = _mod
_spec.loader.exec_module(_mod)


def pytest_unconfigure(config):
    shutil.rmtree(_XDG_DATA_HOME, ignore_errors=True)


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


@pytest.fixture
def socket_buffers(monkeypatch):
    """``read(transport, **config)``: the rcvbuf / sndbuf a 20-message stream's first socket holds
    once its flow is built (TCP: after connect's tcp_init_buffer_space), read from the model's own
    objects."""
    from lbsim.config import make_config
    from lbsim.model import host as model_host
    from lbsim.simulate import simulate

    def read(transport: str, **kw) -> dict[str, int]:
        cfg = make_config(transport=transport, workload="stream", msg_bytes=64, messages=20, placement="same",
                          **kw)
        seen: dict[str, int] = {}
        build = model_host._build_flow

        def spy(*a):
            flow = build(*a)
            for attr in ("rcvbuf", "sndbuf"):
                if hasattr(flow.socks[0], attr):
                    seen.setdefault(attr, getattr(flow.socks[0], attr))
            return flow

        monkeypatch.setattr(model_host, "_build_flow", spy)
        try:
            res = simulate(cfg)
        finally:
            monkeypatch.setattr(model_host, "_build_flow", build)
        assert res.status == "ok"
        return seen

    return read


@pytest.fixture
def simulate_tcp(monkeypatch):
    """``run(**simulate_kwargs)``: a TCP run's result and every TcpSock it built, in order."""
    import lbsim
    from lbsim.model import tcp as tcp_model

    def run(**kw):
        socks: list = []
        init = tcp_model.TcpSock.__init__

        def keep(self, *a, **k):
            init(self, *a, **k)
            socks.append(self)

        monkeypatch.setattr(tcp_model.TcpSock, "__init__", keep)
        try:
            res = lbsim.simulate(**kw)
        finally:
            monkeypatch.setattr(tcp_model.TcpSock, "__init__", init)
        assert res.status == "ok"
        return res, socks

    return run
