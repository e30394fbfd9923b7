"""tools/knob-effects/lo_sequence.py and tools/scheduling/dgram_regimes.py: their parsers on synthetic
ftrace text (no root, no tracefs), and the model side of dgram_regimes on a short run."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent


def _tool(folder: str, name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / folder / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _line(cpu: int, t_us: float, event: str, rest: str, task: str = "task-1") -> str:
    return f"          {task}  [{cpu:03d}] d..2.  {1000 + t_us / 1e6:.6f}: {event}: {rest}"


def _xmit(cpu: int, t_us: float, length: int) -> str:
    return _line(cpu, t_us, "net_dev_xmit", f"dev=lo skbaddr=0x1 len={length} rc=0")


def _switch(cpu: int, t_us: float, prev: str, prev_pid: int, state: str, nxt: str, next_pid: int) -> str:
    return _line(cpu, t_us, "sched_switch", f"prev_comm={prev} prev_pid={prev_pid} prev_prio=120 prev_state={state} "
                                            f"==> next_comm={nxt} next_pid={next_pid} next_prio=120")


def test_lo_sequence_orders_packets_probes_and_switches():
    lo = _tool("knob-effects", "lo_sequence")
    text = "\n".join([
        "# tracer: nop",
        _switch(0, 0, "harness", 7, "S", "swapper/0", 0),  # before the first packet: left out
        _xmit(0, 10, 642),
        _line(0, 12, "tcp_probe", "family=AF_INET data_len=576 snd_nxt=0x1 snd_una=0x1 snd_cwnd=10 ssthresh=7 "
                                  "snd_wnd=1152 srtt=5 rcv_wnd=576 sock_cookie=1"),
        _xmit(0, 20, 66),
        _switch(0, 30, "harness", 7, "S", "lbsim-peer", 8),
        _switch(0, 40, "kworker", 9, "R", "swapper/0", 0),  # not the harness's
        _xmit(0, 1010, 514),
    ])
    seq = lo.sequence(text)
    assert [w for _, _, w in seq] == ["xmit 642", "probe data_len=576 snd_wnd=1152 rcv_wnd=576", "xmit 66",
                                      "switch harness[S] -> lbsim-peer", "xmit 514"]
    assert seq[0][0] == 0.0 and seq[-1][0] == pytest.approx(1.0)  # ms since the first packet
    s = lo.summary(seq, messages=1, size=1024)
    # 642 and 514 B on the wire carry 576 and 448 B; the 66 B packet is a pure ACK
    assert s["data_per_msg"] == 2 and s["acks_per_msg"] == 1 and s["bytes_per_segment"] == 512


def test_regimes_count_one_message_cycles_and_batches():
    dg = _tool("scheduling", "dgram_regimes")
    c = dg.CYCLE
    tokens = "W" * 5 + "|tS|" + "R" * 5 + "v" + "|rS|" + c * 3 + "WwW" + c * 9 + "W" * 4 + "|tS|"
    r = dg.regimes(tokens)
    assert r["cycle_runs"] == 2 and r["cycle_messages"] == 12 and r["cycle_run_median"] == 6
    assert r["writer_sleeps"] == 2 and r["reader_sleeps"] == 13 and r["writes"] == 5 + 12 + 2 + 4


def test_host_tokens_name_the_writer_and_reader_by_their_syscalls():
    dg = _tool("scheduling", "dgram_regimes")
    w, r = 11, 12
    text = "\n".join([
        "# tracer: nop",
        _switch(0, 0, "swapper/0", 0, "R", "harness", w),
        _line(0, 1, "sys_enter", "NR 44 (3, 7ffc, 40, 0, 0, 0)"),
        _line(0, 2, "sched_wakeup", f"comm=lbsim-peer pid={r} prio=120 target_cpu=000"),
        _switch(0, 3, "harness", w, "R+", "lbsim-peer", r),
        _line(0, 4, "sys_enter", "NR 45 (3, 7ffc, 40, 0, 0, 0)"),
        _switch(0, 5, "lbsim-peer", r, "S", "harness", w),
        _line(1, 6, "sys_enter", "NR 44 (3, 7ffc, 40, 0, 0, 0)"),  # another CPU: not followed
    ])
    assert dg.host_tokens(text) == dg.CYCLE


def test_model_tokens_show_both_regimes_and_restore_the_model():
    dg = _tool("scheduling", "dgram_regimes")
    import lbsim.model.cpu as cpu_mod

    before = cpu_mod.CPU._block
    tokens = dg.model_tokens("amd-epyc-v1300-2026-12-06", qlen=1000, messages=600)
    assert cpu_mod.CPU._block is before
    r = dg.regimes(tokens)
    assert r["writes"] == 600
    assert r["cycle_messages"] > 0 and r["writer_sleeps"] > 0  # one-message cycles and full-buffer batches



def test_trace_harness_command_traces_one_harness_run(monkeypatch):
    """lbsim.measure.knob_run.trace_harness_command, with the ftrace instance faked: the run goes
    through the grid's own runner (its JSON result, HarnessError on a failed run) and the trace's
    text comes back with it."""
    import contextlib
    import sys

    from lbsim.measure import knob_run as kr
    from lbsim.measure.harness import HarnessError

    class Fake:
        def around(self, fn):
            return fn(), "the trace"

    seen = {}

    @contextlib.contextmanager
    def fake_trace(events, buffer_size_kb):
        seen["events"], seen["kb"] = events, buffer_size_kb
        yield Fake()

    monkeypatch.setattr(kr, "event_trace", fake_trace)
    ev = [("sched", "sched_switch", None)]
    res, text = kr.trace_harness_command(ev, Path(sys.executable),
                                         ["python", "-c", "print('noise'); print('{\"x\": 1}')"])
    assert res["x"] == 1 and text == "the trace" and seen == {"events": ev, "kb": 32768}
    with pytest.raises(HarnessError, match="boom"):
        kr.trace_harness_command(ev, Path(sys.executable), ["python", "-c", "import sys; sys.exit('boom')"])


def test_noise_structure_tells_time_drift_from_per_run_noise():
    """tools/knob-effects/noise_structure.py on synthetic runs (fixed seed): a speed that drifts
    slowly over the rounds gives a high lag-1 autocorrelation, correlated configs and a small
    no-op spread; independent per-run noise of the same CV none of that.  400 runs: the
    autocorrelation of white noise has a standard error of 1/sqrt(400) = 0.05, so |r| < 0.2."""
    ns = _tool("knob-effects", "noise_structure")
    rng = np.random.default_rng(7)
    n = 400
    drift = 1 + 0.25 * np.sin(np.arange(n) * 2 * np.pi / 40)  # a 40-round period
    slow = ns.structure({"a": list(100 * drift * rng.normal(1, 0.02, n)),
                         "b": list(50 * drift * rng.normal(1, 0.02, n))})
    white = ns.structure({"a": list(100 * rng.normal(1, 0.18, n)), "b": list(50 * rng.normal(1, 0.18, n))})
    assert slow["configs"]["a"]["autocorr"][0] > 0.9 and slow["between"]["a/b"] > 0.9
    assert abs(white["configs"]["a"]["autocorr"][0]) < 0.2 and abs(white["between"]["a/b"]) < 0.2
    assert slow["configs"]["a"]["noop_spread"] < 0.1 < white["configs"]["a"]["noop_spread"]
    flat = ns.structure({"a": [5.0] * 12})["configs"]["a"]
    assert flat["cv"] == 0 and flat["noop_spread"] == 0
