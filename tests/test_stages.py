"""Tests of the per-stage tracepoint timing (lbsim.measure.stages).

Offline tests (parser/analysis on a synthetic trace) always run; the live tests need
root and tracefs and are skipped with the reason otherwise.  Every live run is small
(count <= 300) and each checks that the tracing state afterwards equals the state
before: tracefs mount lines, the list of instances, and the top-level tracing_on,
current_tracer and set_event.
"""

import ctypes
import os
import subprocess
import tempfile
from pathlib import Path

import pytest

from lbsim.cli import main as cli_main
from lbsim.measure import stages as S
from lbsim.measure.stages import (
    DEVICE_STAGES,
    StagesUnavailable,
    analyze,
    measure_stages,
    parse_trace,
    tracefs_available,
)
from lbsim.measure.stages_parse import Ev

#: tracefs and the harness on this host: one xdist worker runs every such module (Makefile)
pytestmark = pytest.mark.xdist_group("host")
AVAILABLE, REASON = tracefs_available()
CROSS = (os.cpu_count() or 1) >= 2
live = pytest.mark.skipif(not AVAILABLE, reason=f"per-stage tracing unavailable: {REASON}")
LOOPBACK_STAGES = ("send_to_dev", "dev_to_netif_rx", "netif_rx_to_softirq",
                   "softirq_to_receive_skb", "softirq", "after_softirq_to_exit")


# ----------------------------------------------------------------- offline

IDS = {1: "sys_enter_sendto", 2: "sys_exit_sendto", 3: "sys_enter_recvfrom",
       4: "sys_exit_recvfrom", 5: "net_dev_queue", 6: "netif_rx_entry", 7: "netif_rx",
       8: "softirq_entry", 9: "softirq_exit", 10: "netif_receive_skb",
       11: "skb_copy_datagram_iovec", 12: "sched_waking", 13: "sched_wakeup",
       14: "sched_switch"}
TID = {v: k for k, v in IDS.items()}


def _rest(name, **a):
    if name == "sys_enter_sendto":
        return "sys_sendto(fd: 4, buff: 0x1, len: 0x40, flags: 0x4000, addr: 0, addr_len: 0)"
    if name == "sys_enter_recvfrom":
        return "sys_recvfrom(fd: 4, ubuf: 0x1, size: 0x40, flags: 0, addr: 0, addr_len: 0)"
    if name.startswith("sys_exit_"):
        return f"sys_{name[9:]} -> 0x40"
    if name in ("sched_waking", "sched_wakeup"):
        return f"{name}: comm=x pid={a['pid']} prio=120 target_cpu=000"
    if name == "sched_switch":
        return (f"sched_switch: prev_comm=a prev_pid={a['prev']} prev_prio=120 prev_state=S"
                f" ==> next_comm=b next_pid={a['next']} next_prio=120")
    if name.startswith("softirq"):
        return f"{name}: vec=3 [action=NET_RX]"
    return f"{name}: dev=lo skbaddr=00000000{a['skb']} len=106"


def _synthetic_udp_same_cpu(rounds=5, c=100, p=101):
    """Both tasks on CPU 0, each sleeps in recvfrom; every step is 150 ns apart."""
    steps = []

    def msg(s, r, skb):
        steps.extend([(s, "sys_enter_sendto", {}), (s, "net_dev_queue", {"skb": skb}),
                      (s, "netif_rx_entry", {"skb": skb}), (s, "netif_rx", {"skb": skb}),
                      (s, "softirq_entry", {}), (s, "netif_receive_skb", {"skb": skb}),
                      (s, "sched_waking", {"pid": r}), (s, "sched_wakeup", {"pid": r}),
                      (s, "softirq_exit", {}), (s, "sys_exit_sendto", {}),
                      (s, "sys_enter_recvfrom", {}),
                      (s, "sched_switch", {"prev": s, "next": r}),
                      (r, "skb_copy_datagram_iovec", {"skb": skb}),
                      (r, "sys_exit_recvfrom", {})])

    steps.append((p, "sys_enter_recvfrom", {}))
    steps.append((p, "sched_switch", {"prev": p, "next": c}))
    for _ in range(rounds):
        msg(c, p, "aaaa")
        msg(p, c, "bbbb")
    text, raw = ["# tracer: nop", "#"], ["# tracer: nop", "#"]
    ts = 1_000_000_000_000
    for pid, name, a in steps:
        ts += 150
        us = (ts + 500) // 1000
        text.append(f"{'harness':>16}-{pid:<7} [000] d..2. {us // 10**6:5d}.{us % 10**6:06d}: "
                    + _rest(name, **a))
        raw.append(f"{pid} 0 {ts} type: {TID[name]}")
    return "\n".join(text) + "\n", "\n".join(raw) + "\n"


def test_parse_and_analyze_synthetic():
    text, raw = _synthetic_udp_same_cpu()
    evs, info = parse_trace(text, raw, IDS)
    assert info["mismatched"] == 0 and info["ts_resolution_ns"] == 1
    assert len(evs) == 2 + 5 * 2 * 14
    r = analyze(evs, 100, "udp", warmup=1)
    assert r["peer_pid"] == 101 and r["round_trips"] == 4
    st = r["medians"]
    # ns resolution (150 ns steps, not whole microseconds)
    for k in ("send_to_dev", "dev_to_netif_rx", "softirq_to_receive_skb", "waking_to_wakeup",
              "softirq_tail", "after_softirq_to_exit", "recv_entry_to_switch_out",
              "switch_in_to_copy", "copy_to_exit", "switch"):
        assert st[k] == 150, k
    assert st["netif_rx_to_softirq"] == 300 and st["softirq"] == 600
    assert st["send_syscall"] == 9 * 150
    assert st["wakeup_to_switch"] == 4 * 150 and st["wakeup_latency"] == 5 * 150
    assert st["rtt"] == 27 * 150
    assert r["wakeups"]["local"] == r["messages"] and r["unmatched"] == {}
    assert r["events_per_rtt"] > 20


def test_parse_literal_lines():
    """stages_parse on literal lines of each event format: exact records, ns times from raw."""
    text = """# tracer: nop
#
   lbsim-harness-4242    [001] d..2. 12345.678901: sys_sendto(fd: 4, buff: 0x1, len: 0x40, flags: 0x4000, addr: 0, addr_len: 0)
   lbsim-harness-4242    [001] d..2. 12345.678902: net_dev_queue: dev=lo skbaddr=ffff8880aa01 len=106
   lbsim-harness-4242    [001] ..s1. 12345.678903: softirq_entry: vec=3 [action=NET_RX]
   lbsim-harness-4242    [001] d.s5. 12345.678904: sched_waking: comm=lbsim-harness pid=4243 prio=120 target_cpu=000
   lbsim-harness-4242    [001] d..2. 12345.678905: sched_switch: prev_comm=lbsim-harness prev_pid=4242 prev_prio=120 prev_state=S ==> next_comm=swapper/1 next_pid=0 next_prio=120
   lbsim-harness-4242    [001] d..2. 12345.678906: sys_recvfrom -> 0xffffffffffffff95
   lbsim-harness-4242    [001] d..2. 12345.678907: sys_sendto -> 0x40
"""
    raw = """# tracer: nop
#
4242 1 12345678901234 type: 1
4242 1 12345678901700 type: 5
4242 1 12345678903100 type: 8
4242 1 12345678904499 type: 12
4242 1 12345678905000 type: 14
4242 1 12345678906000 type: 4
4242 1 12345678907000 type: 2
"""
    evs, info = parse_trace(text, raw, IDS)
    assert info == {"lost_events": 0, "lost_markers": 0, "mismatched": 0,
                    "ts_resolution_ns": 1, "unknown_lines": 0}
    assert evs == [
        Ev(12345678901234, 1, 4242, "sys_enter_sendto", {}, 0),
        Ev(12345678901700, 1, 4242, "net_dev_queue", {"skb": "ffff8880aa01", "len": 106}, 1),
        Ev(12345678903100, 1, 4242, "softirq_entry", {"vec": 3}, 2),
        Ev(12345678904499, 1, 4242, "sched_waking", {"pid": 4243, "target_cpu": 0}, 3),
        Ev(12345678905000, 1, 4242, "sched_switch",
           {"prev_pid": 4242, "prev_state": "S", "next_pid": 0}, 4),
        Ev(12345678906000, 1, 4242, "sys_exit_recvfrom", {"ret": -107}, 5),
        Ev(12345678907000, 1, 4242, "sys_exit_sendto", {"ret": 64}, 6),
    ]
    # an event id not enabled (not in ids) is counted, not guessed
    evs, info = parse_trace(text, raw.replace("type: 8", "type: 99"), IDS)
    assert len(evs) == 6 and info["unknown_lines"] == 1


def test_parse_lost_marker_and_mismatch():
    text, raw = _synthetic_udp_same_cpu(rounds=2)
    t = text.splitlines()
    rw = raw.splitlines()
    t.insert(5, "CPU:0 [LOST 7 EVENTS]")
    rw.insert(5, "CPU:0 [LOST 7 EVENTS]")
    evs, info = parse_trace("\n".join(t), "\n".join(rw), IDS)
    assert info["lost_events"] == 7 and info["lost_markers"] == 1
    assert info["mismatched"] == 0
    bad = [ln.replace(" 0 1", " 1 1", 1) if ln[:1].isdigit() else ln for ln in rw]
    evs, info = parse_trace("\n".join(t), "\n".join(bad), IDS)
    assert info["mismatched"] > 0 and info["ts_resolution_ns"] == 1000


def test_unavailable_raises(monkeypatch):
    monkeypatch.setattr(S, "tracefs_available", lambda: (False, "no tracefs here"))
    with pytest.raises(StagesUnavailable, match="no tracefs here"):
        measure_stages("udp", count=10)


def test_another_processs_private_tracefs_mount_is_not_borrowed(tmp_path):
    """A private mount (lbsim-tracefs-*) goes away when its process is done: another process
    must mount its own, not read that one (two xdist workers checking at collection time saw an
    empty directory and skipped every tracing test)."""
    info = tmp_path / "mountinfo"
    info.write_text(
        "36 25 0:12 / /sys/kernel/tracing rw,nosuid - tracefs tracefs rw\n"
        "90 25 0:12 / /tmp/lbsim-tracefs-k6dyuv97 rw - tracefs nodev rw\n"
        "91 25 0:12 / /srv/my\\040trace rw - tracefs nodev rw\n"
        "40 25 0:5 / /proc rw - proc proc rw\n")
    assert S._tracefs_mounts(str(info)) == ["/sys/kernel/tracing", "/srv/my trace"]


def test_tracefs_available_reason():
    ok, why = tracefs_available()
    assert isinstance(ok, bool) and isinstance(why, str) and why
    if os.geteuid() != 0:
        assert not ok and "root" in why


def test_cli_bad_arguments(capsys):
    assert cli_main(["measure", "--stages-only", "--transports", "sctp", "--count", "5"]) == 2
    err = capsys.readouterr().err
    assert "--transports" in err and len(err.strip().splitlines()) == 1


# ----------------------------------------------------------------- live

def _mount_lines():
    r = subprocess.run(["mount"], capture_output=True, text=True)
    return sorted(ln for ln in r.stdout.splitlines() if "tracefs" in ln)


def _read_state(root: Path) -> dict:
    st = {"instances": sorted(os.listdir(root / "instances"))}
    for f in ("tracing_on", "current_tracer", "set_event", "set_event_pid", "buffer_size_kb",
              "trace_clock"):
        st[f] = (root / f).read_text()
    st["event-fork"] = (root / "options" / "event-fork").read_text()
    return st


def _snapshot() -> dict:
    """Tracing state; if tracefs is not mounted, peek through a temporary private mount."""
    snap = {"mounts": _mount_lines(),
            "sys_kernel_tracing": sorted(os.listdir("/sys/kernel/tracing"))
            if os.path.isdir("/sys/kernel/tracing") else None}
    mounts = S._tracefs_mounts()
    if mounts:
        snap.update(_read_state(Path(mounts[0])))
        return snap
    d = tempfile.mkdtemp(prefix=S._PRIVATE_PREFIX + "test-")  # other workers' _tracefs_mounts() skip it
    try:
        S._mount_tracefs(d)
        try:
            snap.update(_read_state(Path(d)))
        finally:
            ctypes.CDLL(None).umount2(d.encode(), 0)
    finally:
        os.rmdir(d)
    return snap


def _no_harness_left():
    r = subprocess.run(["pgrep", "-f", "lbsim-harness"], capture_output=True, text=True)
    return r.stdout.strip() == ""


@pytest.fixture(scope="module", autouse=True)
def _private_cache(private_harness_cache):
    """Build into a private cache so the test never races a real user cache (conftest.py)."""


@pytest.fixture
def state_unchanged():
    if not AVAILABLE:
        pytest.skip(f"per-stage tracing unavailable: {REASON}")
    before = _snapshot()
    yield
    assert _snapshot() == before
    assert _no_harness_left()


@live
def test_sigterm_removes_the_instance(state_unchanged):
    # `timeout` or `kill` ends a tool that traces: its instance goes and a private mount is undone, as on
    # Ctrl-C (a SIGKILLed one is swept by the next run; a SIGTERMed one used to stay behind)
    import signal
    import sys

    code = ("import time\n"
            "from lbsim.measure.stages_tracefs import event_trace\n"
            "with event_trace([('sched', 'sched_switch', None)]) as tr:\n"
            "    print('ready', flush=True)\n"
            "    time.sleep(30)\n")
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=20) == 128 + signal.SIGTERM
    finally:
        if p.poll() is None:
            p.kill()
    # state_unchanged: no instance, no mount, no setting left


@live
@pytest.mark.parametrize("placement", ["same", "cross"] if CROSS else ["same"])
@pytest.mark.parametrize("transport", ["tcp", "udp", "unix_stream", "unix_dgram"])
def test_measure_stages(transport, placement, state_unchanged):
    r = measure_stages(transport, size=64, placement=placement, count=300)
    assert r["round_trips"] == 300 and r["messages"] == 600
    assert {"syscalls:sys_enter_sendto", "sched:sched_switch"} <= set(r["events_used"])
    assert r["instance"].startswith("lbsim-")
    st = r["stages"]
    assert st["rtt"]["median_ns"] > 0 and st["send_syscall"]["median_ns"] > 0
    assert r["rtt_untraced_median_ns"] > 0 and r["events_per_rtt"] > 5
    assert r["overhead_ns_per_event"] is not None
    if transport in ("tcp", "udp"):
        for k in LOOPBACK_STAGES:
            assert st[k]["median_ns"] > 0, k
            assert st[k]["per_rtt"] > 1.5, k      # both directions, almost every message
    else:
        assert not set(DEVICE_STAGES) & set(st)
        assert "net:net_dev_queue" in r["events_used"]   # enabled, but nothing on this path
    woken = sum(r["wakeups"][k] for k in ("local", "remote", "early"))
    assert woken > 0
    assert st["wakeup_latency"]["median_ns"] > 0 or st["waking_to_running"]["median_ns"] > 0


@live
def test_cleanup_on_error(monkeypatch, state_unchanged):
    def boom(self):
        raise RuntimeError("boom while tracing")
    monkeypatch.setattr(S._WaitingHarness, "go", boom)
    with pytest.raises(RuntimeError, match="boom"):
        measure_stages("udp", count=20, untraced=False)


@live
def test_cli_table(capsys, state_unchanged):
    assert cli_main(["measure", "--stages-only", "--transports", "udp,unix_dgram", "--placements", "same",
                     "--count", "50"]) == 0
    out = capsys.readouterr().out
    assert "send_to_dev" in out and "rtt untraced" in out and "udp/same" in out


@live
def test_event_trace_counts_around_a_command_and_removes_its_instance():
    """The counting instance the tools under tools/ share: events this kernel lacks are left out,
    the events fire only inside around(), and the instance is gone afterwards."""
    import time

    from lbsim.measure.stages_tracefs import event_trace

    with event_trace([("sched", "sched_switch", None), ("no_such_system", "no_such_event", None)]) as tr:
        assert [ev for _, ev, _ in tr.events] == ["sched_switch"]
        path = tr.inst.path
        _, text = tr.around(lambda: time.sleep(0.05))
        assert tr.inst.get("events/sched/sched_switch/enable").strip() == "0"
    assert "sched_switch:" in text
    assert not path.exists()
