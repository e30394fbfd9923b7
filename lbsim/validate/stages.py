"""Stage-level truth: the model's time per kernel stage against the tracepoint stage times that
``lbsim measure --stages`` took on the same host (``lbsim validate --stages``).

A traced run (:mod:`lbsim.measure.stages_intervals`) times intervals between kernel tracepoints
(``net_dev_queue``, ``netif_receive_skb``, ``sched_waking``, ...): its "stages".  Each row of
:data:`ROWS` names a sum of such intervals and the model stages (:mod:`lbsim.model.stages`) that
run inside it, so the two sides stand for the same kernel code:

* ``send`` (tcp/udp): ``sys_enter_sendto -> net_dev_queue`` plus ``softirq_exit ->
  sys_exit_sendto``: tcp_sendmsg/udp_sendmsg, copy #1, ip_output (net/ipv4/tcp.c,
  net/ipv4/udp.c, net/ipv4/ip_output.c);
* ``device``: ``net_dev_queue -> netif_rx_entry`` (__dev_queue_xmit, loopback_xmit:
  net/core/dev.c, drivers/net/loopback.c); ``backlog``: ``netif_rx_entry -> softirq_entry``
  (enqueue_to_backlog); ``softirq``: ``softirq_entry -> netif_receive_skb`` plus the tail to
  ``softirq_exit`` (net_rx_action, process_backlog);
* ``receive``: ``netif_receive_skb -> sched_waking`` (ip_rcv, tcp_v4_rcv/udp_rcv,
  sock_def_readable: net/ipv4/ip_input.c, net/ipv4/tcp_ipv4.c, net/ipv4/udp.c);
* ``wakeup`` (``sched_waking -> sched_wakeup``: try_to_wake_up, kernel/sched/core.c),
  ``switch`` (``-> sched_switch``: __schedule), ``sleep`` (``sys_enter_recvfrom -> sched_switch``
  out: schedule_timeout);
* ``recv``: ``sched_switch`` in ``-> sys_exit_recvfrom`` (tcp_recvmsg, udp_recvmsg,
  unix_stream_read_generic, __unix_dgram_recvmsg, copy #2: net/unix/af_unix.c);
* ``unix send``: ``sys_enter_sendto -> sys_exit_sendto`` (unix_stream_sendmsg /
  unix_dgram_sendmsg, copy #1, the wake-up).

The measured side is each interval's median less the run's tracing overhead per event (as the
fit's base does, :mod:`lbsim.calibrate.base`); the simulated side is the model's mean time per
call of each stage (per message for the copies and page-allocator calls), from
``lbsim.simulate(...).stages`` with the traced run's transport, size and placement.

The costs' base is read from tracepoint intervals of the same kind of file, so a row on a run
the base read is circular.  :func:`base_runs_used` finds, per model stage, exactly which runs its
base cost depends on (each run's intervals perturbed in turn through
:func:`lbsim.calibrate.base.base_from_stage_intervals`); a row is compared only when none of its
model stages took its base from that run, and the excluded rows are listed with the reason.

The spread a row is judged against is the spread between repeated traced measurements of the
host: (max - min) / median of the row's measured value over the stage files of the host's
other folders (same kernel and CPU) beside this one; with no repeat of the host, the median of
the other hosts' spreads in the same parent folder.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lbsim.costs import CostModel, load_costs

__all__ = ["ROWS", "StageDataError", "StageRow", "StagesReport", "base_runs_used", "load_stage_file",
           "resolve_inputs", "validate_stages"]

RunKey = tuple[str, str, int]

# (row name, tracepoint intervals summed, model stages inside them); by transport and placement
_SCHED = (("wakeup", ("waking_to_wakeup",), ("try_to_wake_up",)),
          ("switch", ("switch",), ("schedule",)),
          ("sleep", ("recv_entry_to_switch_out",), ("schedule_timeout",)))
_CROSS_WAKE = ("ttwu_queue_wakelist", "send_call_function_single_ipi")
_NET_RX = (("device", ("dev_to_netif_rx",), ("dev_queue_xmit", "loopback_xmit")),
           ("backlog", ("netif_rx_to_softirq",), ("netif_rx",)))
_TX = {"tcp": ("tcp_sendmsg", "tcp_stream_alloc_skb", "skb_copy_to_page_nocache", "tcp_transmit_skb", "ip_output"),
       "udp": ("udp_sendmsg", "ip_generic_getfrag", "ip_output")}
_RX = {"tcp": ("ip_rcv", "tcp_v4_rcv", "tcp_ack", "sock_def_readable"),
       "udp": ("ip_rcv", "udp_rcv", "sock_def_readable")}


def _rows(tr: str, pl: str) -> tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...]:
    same = pl == "same"
    wake = ("try_to_wake_up",) if same else _CROSS_WAKE
    # across CPUs the wake-up and the switch in from idle are the model's remote wake-up delay, not stages
    sched = _SCHED if same else _SCHED[2:]
    if tr in ("tcp", "udp"):
        recv = (("recv", ("switch_in_to_copy", "copy_to_exit"),
                 ("tcp_recvmsg", "tcp_cleanup_rbuf", "skb_copy_datagram_msg", "__kfree_skb"))
                if tr == "tcp" else ("recv", ("switch_in_to_exit",), ("udp_recvmsg", "skb_copy_datagram_msg")))
        return (("send", ("send_to_dev", "after_softirq_to_exit"), _TX[tr]), *_NET_RX,
                ("softirq", ("softirq_to_receive_skb", "softirq_tail"),
                 ("net_rx_action", "process_backlog") + (() if same else _CROSS_WAKE)),
                ("receive", ("receive_skb_to_waking",), _RX[tr]), *sched, recv)
    return (("send", ("send_to_waking", "waking_to_exit"),
             (f"{tr}_sendmsg", "skb_copy_datagram_from_iter", "__alloc_pages", "sock_def_readable") + wake),
            *sched,
            ("recv", ("switch_in_to_copy", "copy_to_exit"),
             (f"{tr}_recvmsg", "skb_copy_datagram_msg", "__free_pages", "__kfree_skb")))


#: every transport x placement's rows: (row, intervals, model stages)
ROWS = {(tr, pl): _rows(tr, pl) for tr in ("tcp", "udp", "unix_stream", "unix_dgram") for pl in ("same", "cross")}

#: stages timed per message, not per call: the copies and page-allocator calls (a large
#: message's copy is one traced interval but several model calls)
PER_MESSAGE = frozenset({"skb_copy_to_page_nocache", "ip_generic_getfrag", "skb_copy_datagram_from_iter",
                         "skb_copy_datagram_msg", "__alloc_pages", "__free_pages"})


class StageDataError(ValueError):
    """A stage file or cost model that cannot be compared: one line naming the file."""


def load_stage_file(path: str | Path) -> dict[str, Any]:
    """A stage file written by ``lbsim measure --stages`` (checked for the fields used here)."""
    p = Path(path)
    if not p.is_file():
        raise StageDataError(f"{p}: no such stage file")
    try:
        data = json.loads(p.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise StageDataError(f"{p}: not a stage file (not JSON: {e})") from None
    runs = data.get("runs") if isinstance(data, dict) else None
    if not isinstance(runs, list) or not runs:
        raise StageDataError(f"{p}: not a stage file (no 'runs' list; lbsim measure --stages writes one)")
    for i, r in enumerate(runs):
        ok = (isinstance(r, dict) and {"transport", "placement", "size", "result"} <= set(r)
              and isinstance(r["result"], dict) and isinstance(r["result"].get("medians"), dict))
        if not ok:
            raise StageDataError(f"{p}: run {i} is not a traced run (needs transport, placement, size, "
                                 "result.medians)")
    if not isinstance(data.get("null_syscall_ns"), (int, float)):
        raise StageDataError(f"{p}: not a stage file (no null_syscall_ns)")
    return data


def _key(r: dict[str, Any]) -> RunKey:
    return (str(r["transport"]), str(r["placement"]), int(r["size"]))


def base_runs_used(stages: dict[str, Any]) -> dict[RunKey, frozenset[str]]:
    """For each traced run, the model stages whose base cost depends on it: every run's interval
    medians and overhead are scaled by 0.001, 0.5, 2 and 1000 in turn, and a stage depends on the run if its
    base cost (fixed or per byte) changes."""
    from lbsim.calibrate.base import base_from_stage_intervals

    def costs(d: dict[str, Any]) -> dict[str, float]:
        fixed, per_byte, _ = base_from_stage_intervals(d)
        return {**{f"{s}": v for s, v in fixed.items()}, **{f"{s}/byte": v for s, v in per_byte.items()}}

    try:
        ref = costs(stages)
    except (KeyError, TypeError, ValueError) as e:
        raise StageDataError(f"the fit's base cannot be read from this stage file (missing {e}): "
                             "not a complete lbsim measure --stages file") from None
    used: dict[RunKey, frozenset[str]] = {}
    for i, run in enumerate(stages["runs"]):
        hit: set[str] = set()
        # 1e-3 and 1e3 move a run's value across the others: a median over runs then changes too
        for factor in (1e-3, 0.5, 2.0, 1e3):
            res = dict(run["result"])
            res["medians"] = {k: (v * factor if isinstance(v, (int, float)) else v)
                              for k, v in res["medians"].items()}
            if isinstance(res.get("overhead_ns_per_event"), (int, float)):
                res["overhead_ns_per_event"] = res["overhead_ns_per_event"] * factor
            runs = list(stages["runs"])
            runs[i] = {**run, "result": res}
            try:
                got = costs({**stages, "runs": runs})
            except (KeyError, TypeError, ValueError):
                got = {}
            hit |= {s.split("/")[0] for s, v in ref.items() if not math.isclose(got.get(s, math.nan), v)}
        used[_key(run)] = frozenset(hit)
    return used


def _measured(res: dict[str, Any], intervals: tuple[str, ...]) -> float | None:
    """Sum of the intervals' medians, each less the tracing overhead of one event (0..250 ns, as the
    base: lbsim.calibrate.base)."""
    ov = min(max(float(res.get("overhead_ns_per_event") or 0.0), 0.0), 250.0)
    total = 0.0
    for name in intervals:
        v = res["medians"].get(name)
        if not isinstance(v, (int, float)) or v != v:
            return None
        total += max(float(v) - ov, 0.0)
    return total


@dataclass
class StageRow:
    """One row: a traced run's tracepoint stage, measured against the model's stages inside it."""

    transport: str
    placement: str
    size: int
    row: str
    intervals: tuple[str, ...]
    model_stages: tuple[str, ...]
    measured_ns: float | None
    simulated_ns: float | None = None
    spread: float | None = None
    spread_from: str = ""
    excluded: str = ""  # why the row is not compared ("" = compared)

    @property
    def error(self) -> float | None:
        if self.measured_ns and self.simulated_ns is not None:
            return self.simulated_ns / self.measured_ns - 1.0
        return None

    @property
    def within(self) -> bool | None:
        e = self.error
        return None if e is None or self.spread is None else abs(e) <= self.spread

    def to_dict(self) -> dict[str, Any]:
        return {"transport": self.transport, "placement": self.placement, "size": self.size, "stage": self.row,
                "intervals": list(self.intervals), "model_stages": list(self.model_stages),
                "measured_ns": self.measured_ns, "simulated_ns": self.simulated_ns, "error": self.error,
                "spread": self.spread, "spread_from": self.spread_from, "within_spread": self.within,
                "excluded": self.excluded or None}


@dataclass
class StagesReport:
    host: str
    stage_file: str
    costs: str
    rows: list[StageRow] = field(default_factory=list)

    @property
    def compared(self) -> list[StageRow]:
        return [r for r in self.rows if not r.excluded]

    def summary(self) -> dict[str, Any]:
        cmp = self.compared
        errs = sorted(abs(e) for r in cmp if (e := r.error) is not None)
        return {"host": self.host, "compared": len(cmp), "within_spread": sum(1 for r in cmp if r.within),
                "excluded_base": sum(1 for r in self.rows if r.excluded.startswith("base")),
                "excluded_other": sum(1 for r in self.rows if r.excluded and not r.excluded.startswith("base")),
                "median_abs_error": statistics.median(errs) if errs else None,
                "worst_abs_error": errs[-1] if errs else None}

    def to_dict(self) -> dict[str, Any]:
        return {"host": self.host, "stage_file": self.stage_file, "costs": self.costs, "summary": self.summary(),
                "rows": [r.to_dict() for r in self.rows]}

    def format_table(self) -> str:
        from lbsim.validate.stages_report import format_table

        return format_table(self)


def _host_json(stage_path: Path) -> dict[str, Any]:
    hj = stage_path.parent / "measured-host.csv.host.json"
    try:
        d = json.loads(hj.read_text()) if hj.is_file() else {}
    except (OSError, ValueError):
        d = {}
    return d if isinstance(d, dict) else {}


def _host_identity(stage_path: Path, stages: dict[str, Any]) -> tuple[Any, ...]:
    """(kernel, CPU model name) of a stage file: the kernel it records, the CPU from the folder's
    measured-host.csv.host.json when there is one."""
    host = _host_json(stage_path)
    c = host.get("cpu")
    cpu: dict[str, Any] = c if isinstance(c, dict) else {}
    return (stages["runs"][0]["result"].get("kernel"), cpu.get("model_name") or host.get("cpu_model"))


def _check_same_host(stage_path: Path, stages: dict[str, Any], costs: CostModel) -> None:
    """The costs must have been fitted on the host the stage file was traced on."""
    host = costs.provenance.get("host") if isinstance(costs.provenance, dict) else None
    if not isinstance(host, dict) or not host.get("kernel"):
        raise StageDataError(f"costs {costs.name!r} record no measured host (provenance.host): give the costs "
                             f"fitted on the host of {stage_path} (--costs)")
    ident = _host_identity(stage_path, stages)
    if host["kernel"] != ident[0]:
        raise StageDataError(f"{stage_path}: a foreign stage file: traced on kernel {ident[0]}, costs "
                             f"{costs.name!r} fitted on kernel {host['kernel']}")
    theirs = host.get("cpu_model")
    if ident[1] and theirs and ident[1] != theirs:
        raise StageDataError(f"{stage_path}: a foreign stage file: traced on CPU {ident[1]!r}, costs "
                             f"{costs.name!r} fitted on CPU {theirs!r}")


def _row_values(stages: dict[str, Any]) -> dict[tuple[str, str, int, str], float]:
    out = {}
    for run in stages["runs"]:
        tr, pl, size = _key(run)
        for name, intervals, _ in ROWS.get((tr, pl), ()):
            v = _measured(run["result"], intervals)
            if v:
                out[(tr, pl, size, name)] = v
    return out


def _spread(values: list[float]) -> float:
    return (max(values) - min(values)) / statistics.median(values)


def sibling_spreads(stage_path: Path, stages: dict[str, Any]) -> tuple[dict[Any, float], float | None, str]:
    """Per row, the spread between this host's repeated traced measurements (stage files of the
    other folders beside this one with the same kernel and CPU); and a fallback for rows without
    repeats: the median of those spreads, else of every other host's in the parent folder."""
    own = _host_identity(stage_path, stages)
    groups: dict[tuple[Any, ...], list[dict[Any, float]]] = {}
    for f in sorted(stage_path.parent.parent.glob("*/stages-host.json")):
        try:
            d = stages if f.resolve() == stage_path.resolve() else load_stage_file(f)
        except StageDataError:
            continue
        groups.setdefault(_host_identity(f, d), []).append(_row_values(d))

    def spreads(files: list[dict[Any, float]]) -> dict[Any, float]:
        keys = set().union(*files) if files else set()
        return {k: _spread(v) for k in keys if len(v := [f[k] for f in files if k in f]) >= 2}

    mine = spreads(groups.get(own, []))
    if mine:
        n = len(groups[own])
        return mine, statistics.median(mine.values()), f"{n} traced measurements of this host"
    others = [statistics.median(s.values()) for ident, fs in groups.items() if ident != own and (s := spreads(fs))]
    if others:
        return {}, statistics.median(others), f"no repeat of this host: median of {len(others)} other hosts' spreads"
    return {}, None, "no repeated traced measurement to take a spread from"


def _simulate(key: RunKey, costs: CostModel, messages: int, seed: int) -> tuple[dict[str, float], int]:
    import lbsim

    tr, pl, size = key
    r = lbsim.simulate({"transport": tr, "workload": "pingpong", "msg_bytes": size, "placement": pl,
                        "messages": messages, "seed": seed}, costs=costs)
    sent = int(r.counters.get("messages_sent") or 0)
    return {s["stage"]: s["busy_ns"] / (sent if s["stage"] in PER_MESSAGE else s["count"])
            for s in r.stages if s["count"] and sent}, sent


def validate_stages(stage_path: str | Path, costs: CostModel, *, host: str | None = None, messages: int = 2000,
                    seed: int = 1, progress: Callable[[str], None] | None = None) -> StagesReport:
    """Every traced run's rows: measured, simulated, within the spread between runs or not; the rows
    of runs the costs' base was read from are kept but marked excluded."""
    path = Path(stage_path)
    stages = load_stage_file(path)
    _check_same_host(path, stages, costs)
    used = base_runs_used(stages)
    per_row, fallback, spread_from = sibling_spreads(path, stages)
    rep = StagesReport(host=host or path.parent.name, stage_file=str(path), costs=costs.name)
    for run in stages["runs"]:
        key = _key(run)
        rows = ROWS.get(key[:2], ())
        if not rows:
            continue
        sim: dict[str, float] | None = None
        for name, intervals, model in rows:
            row = StageRow(*key, name, intervals, model, _measured(run["result"], intervals))
            circular = sorted(set(model) & used.get(key, frozenset()))
            if circular:
                row.excluded = f"base: {', '.join(circular)} read from this run"
            elif row.measured_ns is None:
                row.excluded = "not traced in this run"
            else:
                if sim is None:
                    if progress:
                        progress(f"simulating {key[0]} {key[1]} {key[2]} B")
                    sim, _ = _simulate(key, costs, messages, seed)
                ran = [s for s in model if s in sim]
                if not ran:
                    row.excluded = "none of its stages runs in the model"
                else:
                    row.simulated_ns = sum(sim[s] for s in ran)
                    sp = per_row.get((*key, name))
                    row.spread, row.spread_from = (sp, "repeats") if sp is not None else (fallback, spread_from)
            rep.rows.append(row)
    if not rep.compared:
        raise StageDataError(f"{path}: no usable traced runs: every row is on a run the costs' base read "
                             "(trace another size or placement)")
    return rep


def resolve_inputs(target: str, costs_spec: str | None) -> tuple[Path, CostModel, str]:
    """``lbsim validate --stages TARGET``: a host folder (its stages-host.json and, unless --costs is
    given, its costs.json) or a stage file (--costs, default auto)."""
    p = Path(target)
    if p.is_dir():
        stage_file = p / "stages-host.json"
        if not stage_file.is_file():
            raise StageDataError(f"{p}: no stages-host.json in this folder (lbsim measure --stages)")
        if costs_spec is None:
            if not (p / "costs.json").is_file():
                raise StageDataError(f"{p}: no costs.json in this folder: give --costs")
            costs_spec = str(p / "costs.json")
        return stage_file, load_costs(costs_spec), p.name
    if not p.exists():
        raise StageDataError(f"{p}: no such stage file or host folder")
    return p, load_costs(costs_spec or "auto"), p.parent.name
