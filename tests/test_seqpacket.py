"""AF_UNIX SOCK_SEQPACKET (docs/notes/seqpacket.md): unix_dgram's send and receive on a pair
connected both ways, so net.unix.max_dgram_qlen never applies and the writer waits only on its
sk_sndbuf.  The model against the kernel's mechanism (counts of calls, sleeps and wake-ups, no
timing), the transport's validation, the knob end to end (registry, harness argv, grid, run_fields)
and the harness's --transport unix_seqpacket on real sockets (a few dozen messages)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from lbsim.config import TRANSPORTS, ConfigError, make_config
from lbsim.measure.knob_grid import GridError, estimate_seconds, grid_from_specs, load_grid, parse_grid, plan
from lbsim.measure.knobs import KNOBS, KnobError, knob, parse_value
from lbsim.simulate import simulate

ROOT = Path(__file__).resolve().parents[1]
GRID = ROOT / "knobs" / "alt-seqpacket.toml"


def _run(transport: str, workload: str, msg_bytes: int, **kw):
    cfg = make_config(transport=transport, workload=workload, msg_bytes=msg_bytes, messages=kw.pop("messages", 400),
                      deterministic=True, seed=2, costs="default", **kw)
    return simulate(cfg)


def _counts(r) -> dict[str, int]:
    return {row["stage"]: row["count"] for row in r.stages}


# --------------------------------------------------------------- the model

def test_transport_is_listed_and_validated():
    assert "unix_seqpacket" in TRANSPORTS
    with pytest.raises(ConfigError, match=r"^transport: .*'unix_seqpacket'"):
        make_config(transport="unix_seqpack")
    # unix_seqpacket_sendmsg -> unix_dgram_sendmsg: EMSGSIZE above sk_sndbuf - 32
    with pytest.raises(ConfigError, match="too large for unix_seqpacket"):
        make_config(transport="unix_seqpacket", msg_bytes=212961)
    assert make_config(transport="unix_seqpacket", msg_bytes=212960).msg_bytes == 212960


@pytest.mark.parametrize("placement", ["same", "cross"])
@pytest.mark.parametrize("size", [64, 4096])
def test_pingpong_runs_unix_dgrams_path(placement, size):
    """A round trip's queue never fills: the same functions, the same number of calls and, the
    default costs having no measured path lookup, the same time as unix_dgram (the qlen test never
    fires; the unix_dgram server's replies to a path are the only difference: unix_find_other)."""
    a = _run("unix_dgram", "pingpong", size, placement=placement, unix_max_dgram_qlen=10)
    b = _run("unix_seqpacket", "pingpong", size, placement=placement, unix_max_dgram_qlen=10)
    ca = _counts(a)
    assert ca.pop("unix_find_other") == 400 and _counts(b).get("unix_find_other", 0) == 0
    assert {k: v for k, v in ca.items() if v} == {k: v for k, v in _counts(b).items() if v}
    assert a.latency_us["p50"] == b.latency_us["p50"]
    c = _counts(b)
    # per round trip: two sends and two reads, each one syscall and one call of the dgram functions
    assert c["unix_dgram_sendmsg"] == c["unix_dgram_recvmsg"] == 2 * 400
    assert c["syscall"] - 4 * 400 in (0, 1)   # (+ the echo server's last read, left waiting)
    assert "unix_stream_sendmsg" not in c


def test_small_datagram_stream_never_waits_on_the_queue_limit():
    """unix_dgram's writer sleeps on the reader's peer_wait once qlen > max_dgram_qlen and is woken
    by every read; a seqpacket writer only sleeps on its sk_sndbuf, woken at 25 %: fewer sleeps
    and fewer wake-ups for the same datagrams.  (One CPU: the writer outruns the reader there; with
    the default costs a reader on its own CPU keeps the queue under 10.)"""
    a = _run("unix_dgram", "stream", 64, placement="same", unix_max_dgram_qlen=10, messages=3000)
    b = _run("unix_seqpacket", "stream", 64, placement="same", unix_max_dgram_qlen=10, messages=3000)
    assert a.counters["messages_delivered"] == b.counters["messages_delivered"] == 3000
    assert b.counters["unix_sender_blocked"] < a.counters["unix_sender_blocked"]
    ca, cb = _counts(a), _counts(b)
    assert cb["unix_dgram_sendmsg"] == cb["unix_dgram_recvmsg"] == 3000   # one call per datagram, as dgram
    wakes = ("try_to_wake_up", "ttwu_queue_wakelist")
    assert sum(cb.get(s, 0) for s in wakes) < sum(ca.get(s, 0) for s in wakes)


def test_max_dgram_qlen_does_nothing_to_a_seqpacket_pair():
    """unix_peer(other) == sk on both ends: the sysctl never reaches the send."""
    for size in (64, 4096):
        lo = _run("unix_seqpacket", "stream", size, unix_max_dgram_qlen=0, messages=1500)
        hi = _run("unix_seqpacket", "stream", size, unix_max_dgram_qlen=100000, messages=1500)
        assert _counts(lo) == _counts(hi)
        assert lo.throughput["bytes_per_s"] == hi.throughput["bytes_per_s"]


def test_large_datagrams_hit_the_send_buffer_first():
    """64 KiB datagrams: three fill sk_sndbuf (212992) before ten fill the queue, so unix_dgram's
    writer too waits on its send buffer only: no difference."""
    a = _run("unix_dgram", "stream", 65536, unix_max_dgram_qlen=10, messages=300)
    b = _run("unix_seqpacket", "stream", 65536, unix_max_dgram_qlen=10, messages=300)
    assert _counts(a) == _counts(b) and a.throughput["bytes_per_s"] == b.throughput["bytes_per_s"]
    assert b.counters["unix_sender_blocked"] > 0


def test_the_send_buffer_is_the_flow_control():
    """A small SO_SNDBUF makes the seqpacket writer block (sock_alloc_send_pskb), never the qlen."""
    small = _run("unix_seqpacket", "stream", 1024, so_sndbuf=4096, unix_max_dgram_qlen=100000, messages=1000)
    big = _run("unix_seqpacket", "stream", 1024, unix_max_dgram_qlen=100000, messages=1000)
    assert small.counters["unix_sender_blocked"] > big.counters["unix_sender_blocked"]
    assert small.counters["messages_delivered"] == 1000


# --------------------------------------------------------------- the knob

def test_registry_and_values():
    k = knob("socktype")
    assert k.scope == "workload" and not k.root and k.default == "default" and "af_unix.c" in k.source
    assert parse_value("socktype", "SeqPacket") == "seqpacket" and parse_value("socktype", "default") == "default"
    with pytest.raises(KnobError, match=r"^knob socktype: bad value 'stream'; allowed: default or seqpacket"):
        parse_value("socktype", "stream")


def _grid_run(value="seqpacket", transport="unix_dgram", fixed=None):
    g = {"name": "g", "knob": "socktype", "values": [value], "transports": [transport],
         "workloads": ["pingpong"], "sizes": [64], "placements": ["same"]}
    if fixed:
        g = dict(g, knob="max_dgram_qlen", values=[10], fixed=fixed)
    return plan(parse_grid({"group": [g]}))


def test_argv_opens_seqpacket_for_the_setting_only():
    import lbsim.measure.knob_run as kr

    defaults = {n: k.default for n, k in KNOBS.items()}
    runs = _grid_run()
    got = [kr._argv(r, kr._settings(r, defaults), 10, 1, 0, 0) for r in runs]
    transports = [a[a.index("--transport") + 1] for a in got]
    assert transports == ["unix_dgram", "unix_seqpacket", "unix_dgram"]   # D V D
    assert "socktype" in kr.KNOB_COLUMNS
    # fixed: the qlen group's default and setting both run seqpacket
    runs = _grid_run(fixed={"socktype": "seqpacket"})
    assert {kr._argv(r, kr._settings(r, defaults), 10, 1, 0, 0)[2] for r in runs} == {"unix_seqpacket"}


def test_socktype_needs_unix_dgram_runs():
    with pytest.raises(GridError, match="socktype seqpacket replaces unix_dgram's sockets"):
        _grid_run(transport="tcp")
    with pytest.raises(GridError, match="socktype seqpacket"):
        _grid_run(transport="udp", fixed={"socktype": "seqpacket"})
    g = grid_from_specs(["socktype=seqpacket"])
    assert g.groups[0].transports == ("unix_dgram",)
    with pytest.raises(GridError, match="needs the unix_dgram transport"):
        grid_from_specs(["socktype=seqpacket"], transports=("tcp",))


def test_grid_file_is_small_and_covers_the_cells():
    g = load_grid(GRID)
    groups = {gr.name: gr for gr in g.groups}
    assert g.reps == 4 and estimate_seconds(plan(g)) <= 60
    pp, st, ql = groups["seqpacket-pingpong"], groups["seqpacket-stream"], groups["seqpacket-qlen-stream"]
    assert set(pp.sizes) == {64, 4096} and set(st.sizes) == {64, 4096, 65536}
    for gr in (pp, st, ql):
        assert gr.transports == ("unix_dgram",) and set(gr.placements) == {"same", "cross"}
    assert ql.knob == "max_dgram_qlen" and ql.values == (1, 1000) and dict(ql.fixed) == {"socktype": "seqpacket"}


def test_run_fields_simulate_the_setting():
    from lbsim.validate.effects import run_fields

    row = pd.Series({"transport": "unix_dgram", "workload": "stream", "placement": "cross", "msg_bytes": 64,
                     "knob": "socktype", "setting": "g/socktype=seqpacket", "socktype": "seqpacket",
                     "unix_max_dgram_qlen": 10})
    fields, why = run_fields(row, {}, messages=100, seed=1)
    assert why == "" and fields is not None
    cfg = make_config(fields)
    assert cfg.transport == "unix_seqpacket" and cfg.unix_max_dgram_qlen == 10
    default = run_fields(row.copy().replace({"seqpacket": "default", "g/socktype=seqpacket": "g/default"}),
                         {}, messages=100, seed=1)[0]
    assert default is not None and default["transport"] == "unix_dgram"
    bad = row.copy()
    bad["transport"] = "tcp"
    fields, why = run_fields(bad, {}, messages=100, seed=1)
    assert fields is None and "unix_dgram runs" in why


# --------------------------------------------------------------- the harness (real sockets, tiny runs)

@pytest.fixture(scope="module")
def exe(private_harness_cache):
    from lbsim.measure.harness import HarnessUnavailable, build_harness
    try:
        return build_harness()
    except HarnessUnavailable as e:
        pytest.skip(str(e))


def _harness(exe, *args: str) -> tuple[int, dict]:
    argv = [str(exe), "--transport", "unix_seqpacket", "--cpu-a", "0", "--cpu-b", "0", "--max-seconds", "3",
            "--warmup", "3", *args]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    return p.returncode, json.loads(p.stdout.splitlines()[-1])


@pytest.mark.xdist_group("host")
@pytest.mark.parametrize("workload", ["pingpong", "stream", "split"])
def test_harness_runs_a_seqpacket_pair(exe, workload):
    rc, r = _harness(exe, "--workload", workload, "--size", "64", "--count", "40")
    assert rc == 0, r
    assert r["transport"] == "unix_seqpacket" and r["workload"] == workload
    if workload == "stream":
        assert r["sent"] == r["received"] == 40   # reliable: nothing dropped


@pytest.mark.xdist_group("host")
def test_harness_refuses_what_the_kernel_refuses(exe):
    rc, r = _harness(exe, "--workload", "stream", "--size", "212961", "--count", "5")
    assert rc == 2 and "UNIX datagram limit" in r["error"]
    rc, r = _harness(exe, "--workload", "stream", "--size", "64", "--count", "5", "--senders", "2")
    assert rc == 2 and "--senders 2" in r["error"]
    p = subprocess.run([str(exe), "--transport", "unix_seqpackets", "--workload", "stream", "--size", "1",
                        "--count", "1", "--warmup", "0", "--cpu-a", "0", "--cpu-b", "0"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 2 and "unix_seqpacket" in json.loads(p.stdout)["error"]
