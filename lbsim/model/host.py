"""Wires one host: CPUs, the loopback device, the sockets of each flow, the tasks; runs it.

This is the only module that knows every piece; it returns plain numbers (no pandas,
no files) for :mod:`lbsim.simulate` to package.  It models no kernel function itself: it
stands for the set-up a benchmark does with system calls (``socket``/``connect`` or
``socketpair``, ``setsockopt(SO_SNDBUF/SO_RCVBUF, TCP_NODELAY)``, ``sched_setaffinity``).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from lbsim.model import eventpoll
from lbsim.model.batching import batch_gens
from lbsim.model.metrics import FlowDir, RunStats, Tally
from lbsim.model.netdev import Net
from lbsim.model.sim import Sim
from lbsim.model.stages import STAGES
from lbsim.model.task import CTX_BACKGROUND, NICE_19_WEIGHT, PREEMPT, SLEEPING, Task
from lbsim.model.tcp import tcp_connect
from lbsim.model.udp import UdpSocket
from lbsim.model.unix import UnixDgram, UnixSeqpacket, UnixStream
from lbsim.model.workloads import Channel, echo_server, one_way_sender, pingpong_client, sink, split_task
from lbsim.model.zerocopy import MsgZerocopy

__all__ = ["run_model", "STREAM_TRANSPORTS"]

STREAM_TRANSPORTS = ("tcp", "unix_stream")
_S_COPY_TCP = STAGES.index("skb_copy_to_page_nocache")  # copy #1: MSG_ZEROCOPY defers it (zerocopy.py)
_S_COPY_UDP = STAGES.index("ip_generic_getfrag")
_NO_QLEN_LIMIT = 1 << 62


def _msg_of(task: Task) -> int:
    return task.msg


class _Flow:
    def __init__(self, out: Channel, back: Channel, socks: list[Any]) -> None:
        self.out = out
        self.back = back
        self.socks = socks
        #: the channels of the flow's other senders into ``out``'s receiving socket (SimConfig.senders)
        self.more_out: list[Channel] = []


def _build_flow(cfg: Any, k: Any, sim: Sim, net: Net, run: RunStats, i: int, record_one_way: bool) -> _Flow:
    env = sim.env
    stream = cfg.transport in STREAM_TRANSPORTS
    d_out = FlowDir(run, env, stream=stream, record_latency=record_one_way)
    d_back = FlowDir(run, env, stream=stream, record_latency=False)
    modern = k.name != "linux-2.6.32"
    t = cfg.transport
    if t == "tcp":
        a, b = tcp_connect(sim, net, kernel=k, flow=net.socket_hash(i), stats=d_out, nodelay=cfg.tcp_nodelay,
                           sk_sndbuf=cfg.sk_sndbuf(), sk_rcvbuf=cfg.sk_rcvbuf())
        b.stats = d_back
        if cfg.zerocopy:  # SO_ZEROCOPY on both ends, MSG_ZEROCOPY on every send
            a.zc, b.zc = MsgZerocopy(_S_COPY_TCP), MsgZerocopy(_S_COPY_TCP)
        out = Channel(a.sendmsg, b.recvmsg, d_out, True, _msg_of)
        back = Channel(b.sendmsg, a.recvmsg, d_back, True, _msg_of)
        return _Flow(out, back, [a, b])
    if t == "udp":
        # SO_SNDBUF is not modelled for UDP: loopback_xmit's skb_orphan uncharges each skb at once
        rcvbuf = cfg.sk_rcvbuf() or k.rmem_default
        h = net.socket_hash(i)
        srv = UdpSocket(sim, net, rcvbuf=rcvbuf, flow=h, stats=d_out)
        cli = UdpSocket(sim, net, rcvbuf=rcvbuf, flow=h ^ 0x5BD1E995, stats=d_back)
        srv.rfs_established = cfg.senders == 1  # the harness connects the receiver back to one sender only
        if cfg.zerocopy:
            srv.zc, cli.zc = MsgZerocopy(_S_COPY_UDP), MsgZerocopy(_S_COPY_UDP)
        out = Channel(srv.sendmsg, srv.recvmsg, d_out, False, _msg_of)
        back = Channel(cli.sendmsg, cli.recvmsg, d_back, False, _msg_of)
        fl = _Flow(out, back, [srv, cli])
        # sender j > 0 has a socket of its own (its own source port, its own hash): socket
        # number i + 256 j, distinct from every flow's own (flows <= 256)
        fl.more_out = [Channel(srv.sender(net.socket_hash(i + 256 * j)), srv.recvmsg, d_out, False, _msg_of)
                       for j in range(1, cfg.senders)]
        return fl
    sndbuf = cfg.sndbuf_unix()
    x_out: UnixStream | UnixDgram
    x_back: UnixStream | UnixDgram
    if t == "unix_stream":
        max_skb = k.unix_stream_max_skb_bytes
        x_out = UnixStream(sim, sndbuf=sndbuf, max_skb=max_skb, stats=d_out, modern=modern)
        x_back = UnixStream(sim, sndbuf=sndbuf, max_skb=max_skb, stats=d_back, modern=modern)
        # one wait queue per socket (sk->sk_wq): a writer waiting for space and a reader waiting
        # for data on the same socket sleep together, so unix_write_space() after the peer
        # consumed our skb wakes our reader too (measured: the "early" wake-ups of unix_stream)
        x_out.wq_space = x_back.wq_data
        x_back.wq_space = x_out.wq_data
        return _Flow(Channel(x_out.sendmsg, x_out.recvmsg, d_out, True, _msg_of),
                     Channel(x_back.sendmsg, x_back.recvmsg, d_back, True, _msg_of), [x_out, x_back])
    if t == "unix_seqpacket":
        # connected both ways (unix_stream_connect): no max_dgram_qlen in either direction
        x_out = UnixSeqpacket(sim, sndbuf=sndbuf, max_qlen=_NO_QLEN_LIMIT, stats=d_out, modern=modern)
        x_back = UnixSeqpacket(sim, sndbuf=sndbuf, max_qlen=_NO_QLEN_LIMIT, stats=d_back, modern=modern)
        return _Flow(Channel(x_out.sendmsg, x_out.recvmsg, d_out, False, _msg_of),
                     Channel(x_back.sendmsg, x_back.recvmsg, d_back, False, _msg_of), [x_out, x_back])
    # unix_dgram: the client is connected to a bound server that is not connected back, so the
    # server's queue limit applies to requests; replies go to a socket whose peer is the server
    # itself (unix_peer(other) == sk), which af_unix.c exempts from the limit.
    x_out = UnixDgram(sim, sndbuf=sndbuf, max_qlen=k.unix_max_dgram_qlen, stats=d_out, modern=modern)
    # The server replies with sendto(client path) (lbsim/measure/harness.c): unix_find_other per reply.
    x_back = UnixDgram(sim, sndbuf=sndbuf, max_qlen=_NO_QLEN_LIMIT, stats=d_back, modern=modern, addressed=True)
    return _Flow(Channel(x_out.sendmsg, x_out.recvmsg, d_out, False, _msg_of),
                 Channel(x_back.sendmsg, x_back.recvmsg, d_back, False, _msg_of), [x_out, x_back])


def _spinner(tick_ns: float) -> Any:
    """A nice-19 busy loop in user space (the harness's --busy-cpu)."""
    while True:
        yield [tick_ns, ()]
        yield PREEMPT


def _poisson_arrivals(rng: np.random.Generator, rate_per_s: float, start: float) -> Any:
    mean_ns = 1e9 / rate_per_s
    t = start
    while True:
        for gap in rng.exponential(mean_ns, 4096).tolist():
            t += gap
            yield t


def run_model(cfg: Any, costs: Any) -> dict[str, Any]:
    """Simulate ``cfg`` (a SimConfig) with ``costs`` (a CostModel); return raw numbers."""
    k = cfg.kernel_params()
    sim = Sim(cpus=cfg.cpus, costs=costs, kernel=k, seed=cfg.seed, deterministic=cfg.deterministic,
              trace=cfg.trace, policy=cfg.policy)
    env = sim.env
    net = Net(sim, k)
    sim.net = net
    workload = cfg.workload
    closed_loop = workload in ("pingpong", "rr", "split")
    flows_n = cfg.flows if workload not in ("pingpong", "split") else 1
    senders = cfg.senders  # per flow (one-way udp workloads only, see SimConfig)
    total = cfg.messages * flows_n * senders
    done = env.event()
    status = {"value": "ok", "message": ""}
    clients_left = [flows_n * senders]

    def check() -> None:
        if clients_left[0] > 0:  # (tested first: done.triggered is a property call)
            return
        if done.triggered:
            return
        if closed_loop:
            done.succeed()
            return
        # one-way workloads end when every message is accounted for: read or dropped (a byte
        # stream drops nothing, and its last message is read when its last byte is)
        if run.delivered_msgs + run.dropped_msgs >= run.sent_msgs:
            done.succeed()

    run = RunStats(total, check)
    ids = itertools.count()
    flows = [_build_flow(cfg, k, sim, net, run, i, not closed_loop) for i in range(flows_n)]
    epoll: list[eventpoll.EpollItem] = []
    if cfg.receiver == "epoll":  # every receiving side waits in epoll_wait (lbsim.model.eventpoll)
        eventpoll.require_stages(sim.missing_stages, costs.name)
        for fl in flows:
            epoll += eventpoll.watch(sim, [fl.out, fl.back, *fl.more_out])

    def client_done(_t: Task) -> None:
        clients_left[0] -= 1
        check()

    tasks = _make_tasks(cfg, k, sim, run, flows, ids, closed_loop, client_done)

    guard = env.timeout(cfg.max_sim_time_ns)
    guard.callbacks.append(lambda _e: None if done.triggered else _stop_on_guard())

    def _stop_on_guard() -> None:
        status["value"] = "timeout"
        # unresolved: neither delivered nor dropped, sent or not (a round trip is two messages)
        want = total * (2 if workload in ("pingpong", "rr") else 1)
        status["message"] = (f"stopped at max_sim_time_ns={cfg.max_sim_time_ns:g} with "
                             f"{want - run.delivered_msgs - run.dropped_msgs} of {want} messages unresolved "
                             f"({run.sent_msgs - run.delivered_msgs - run.dropped_msgs} sent, "
                             f"{want - run.sent_msgs} not sent)")
        done.succeed()

    for t in tasks:
        t.state = SLEEPING
        t.sleep_start = 0.0
        t.cpu.enqueue_task(t)
    env.run(until=done)
    raw = _collect(cfg, k, sim, net, run, flows, tasks, status)
    if epoll:  # (only then: the default run's counters stay as they were)
        raw["counters"].update(epoll_waits_slept=sum(e.waits for e in epoll),
                               epoll_send_events=sum(e.sends for e in epoll))
    return raw


def _make_tasks(cfg: Any, k: Any, sim: Sim, run: RunStats, flows: list[_Flow], ids: Iterator[int],
                closed_loop: bool, client_done: Callable[[Task], None]) -> list[Task]:
    """The workload's tasks on their CPUs (server and client of each flow, or the split
    workload's one task), then a background spinner on each busy CPU."""
    workload = cfg.workload
    total = cfg.messages * len(flows)
    rt = cfg.policy == "fifo"
    placements = cfg.placements()
    tasks: list[Task] = []
    if workload == "split":
        # one task on the sender's CPU, at both ends of the one flow
        run.write_calls = Tally(total)
        run.read_calls = Tally(total)
        fl = flows[0]
        cli = Task("client0", sim.cpus[placements[0][0]], None, rt=rt)
        cli.on_done = client_done
        cli.gen = split_task(cli, fl.out, messages=cfg.messages, nbytes=cfg.msg_bytes, ids=ids,
                             record=run.latency.add, record_write=run.write_calls.add,
                             record_read=run.read_calls.add)
        tasks.append(cli)
    for i, fl in enumerate(flows if workload != "split" else ()):
        s_cpu, r_cpu = placements[i]
        srv = Task(f"server{i}", sim.cpus[r_cpu], None, rt=rt)
        cli = Task(f"client{i}", sim.cpus[s_cpu], None, rt=rt)
        cli.on_done = client_done
        if closed_loop:
            srv.gen = echo_server(srv, fl.out, fl.back, nbytes=cfg.msg_bytes, ids=ids)
            cli.gen = pingpong_client(cli, fl.out, fl.back, messages=cfg.messages, nbytes=cfg.msg_bytes, ids=ids,
                                      record=run.latency.add)
        else:
            arrivals = None
            burst = None
            if workload == "poisson":
                arrivals = _poisson_arrivals(np.random.default_rng(sim.arrival_rng.integers(2**63)),
                                             cfg.rate_per_s, 0.0)
            elif workload == "burst":
                burst = (cfg.burst_size, float(cfg.burst_gap_ns))
            if cfg.batch > 1:  # sendmmsg/recvmmsg, MSG_MORE (a stream: SimConfig checks it)
                srv.gen, cli.gen = batch_gens(cfg.transport, srv, cli, fl.out, fl.socks[0], messages=cfg.messages,
                                              nbytes=cfg.msg_bytes, ids=ids, batch=cfg.batch)
            else:
                srv.gen = sink(srv, fl.out, nbytes=cfg.msg_bytes)
                cli.gen = one_way_sender(cli, fl.out, messages=cfg.messages, nbytes=cfg.msg_bytes, ids=ids,
                                         arrivals=arrivals, burst=burst)
        tasks += [srv, cli]
        for j, ch in enumerate(fl.more_out, 1):
            # the flow's other senders: on the sender's CPU, as the harness's --cpu-c default
            more = Task(f"client{i}.{j}", sim.cpus[s_cpu], None, rt=rt)
            more.on_done = client_done
            arr = (_poisson_arrivals(np.random.default_rng(sim.arrival_rng.integers(2**63)), cfg.rate_per_s, 0.0)
                   if workload == "poisson" else None)
            if cfg.batch > 1:  # each sender makes its own sendmmsg calls (harness send_loop)
                more.gen = batch_gens(cfg.transport, None, more, ch, fl.socks[0], messages=cfg.messages,
                                      nbytes=cfg.msg_bytes, ids=ids, batch=cfg.batch)[1]
            else:
                more.gen = one_way_sender(more, ch, messages=cfg.messages, nbytes=cfg.msg_bytes, ids=ids,
                                          arrivals=arr, burst=burst)
            tasks.append(more)
    tick_ns = 1e9 / k.hz
    for c in cfg.busy_cpus():
        sp = Task(f"spinner/{c}", sim.cpus[c], _spinner(tick_ns), weight=NICE_19_WEIGHT, kind=CTX_BACKGROUND)
        tasks.append(sp)
    return tasks


def _collect(cfg: Any, k: Any, sim: Sim, net: Net, run: RunStats, flows: list[_Flow], tasks: list[Task],
             status: dict[str, str]) -> dict[str, Any]:
    env = sim.env
    now = env.now
    cpus = sim.cpus
    in_flight_bytes, in_flight_msgs = _in_flight(cfg, flows, cpus)
    elapsed = run.last_recv - run.first_send if run.last_recv > run.first_send else 0.0
    closed_loop = cfg.workload in ("pingpong", "rr", "split")
    rtts = run.latency.n
    if closed_loop:
        msgs_per_s = rtts / (now / 1e9) if now > 0 else 0.0
        bytes_per_s = msgs_per_s * cfg.msg_bytes
    else:
        msgs_per_s = run.delivered_msgs / (elapsed / 1e9) if elapsed > 0 else 0.0
        bytes_per_s = run.delivered_bytes / (elapsed / 1e9) if elapsed > 0 else 0.0
    counters: dict[str, Any] = {
        "messages_sent": run.sent_msgs,
        "messages_delivered": run.delivered_msgs,
        "messages_dropped": run.dropped_msgs,
        "messages_in_flight": in_flight_msgs,
        "bytes_sent": run.sent_bytes,
        "bytes_delivered": run.delivered_bytes,
        "bytes_in_flight": in_flight_bytes,
        "drops_by_site": dict(run.drops_by_site),
        "packet_drops": dict(run.packet_drops),
        "lo_tx_packets": sum(c.lo_tx_packets for c in cpus),
        "lo_tx_bytes": sum(c.lo_tx_bytes for c in cpus),
        # loopback_xmit counts each packet once in lstats; lo's rx counters mirror tx
        "lo_rx_packets": sum(c.lo_tx_packets for c in cpus) - sum(c.dropped for c in cpus),
        "softnet_processed": sum(c.processed for c in cpus),
        "softnet_dropped": sum(c.dropped for c in cpus),
        "softnet_time_squeeze": sum(c.time_squeeze for c in cpus),
        "softnet_received_rps": sum(c.received_rps for c in cpus),
        "backlog_max_qlen": max(c.backlog_max for c in cpus),
        "sender_blocked_ns": run.blocked_ns,
        "sender_blocked_count": run.blocked_count,
        "context_switches": sum(c.switches for c in cpus),
        "ksoftirqd_wakeups": sum(c.ksoftirqd_wakeups for c in cpus),
    }
    if run.write_calls is not None and run.read_calls is not None:  # the split workload
        w, r = run.write_calls.summary(), run.read_calls.summary()
        counters.update(split_write_p50_ns=w["p50"], split_write_mean_ns=w["mean"],
                        split_read_p50_ns=r["p50"], split_read_mean_ns=r["mean"])
    counters.update(_transport_counters(cfg.transport, flows))
    cpu_rows, stage_rows = _rows(sim, net, now)
    return {
        "status": status["value"], "message": status["message"],
        "sim_time_ns": now, "elapsed_ns": elapsed,
        "latency_kind": "write_read" if cfg.workload == "split" else "rtt" if closed_loop else "one_way",
        "latency": run.latency.summary(),
        "latency_samples": run.latency.values(),
        "throughput": {"bytes_per_s": bytes_per_s, "msgs_per_s": msgs_per_s},
        "counters": counters, "cpu": cpu_rows, "stages": stage_rows,
        "trace": sim.trace if cfg.trace else None,
        "kernel": k,
    }


def _in_flight(cfg: Any, flows: list[_Flow], cpus: list[Any]) -> tuple[int | None, int | None]:
    """(bytes, messages) in flight, read from the queues where messages wait: bytes for a
    byte stream, messages otherwise (the other one None)."""
    stream = cfg.transport in STREAM_TRANSPORTS
    if stream:
        in_flight_bytes = 0
        for fl in flows:
            for s in fl.socks:
                in_flight_bytes += s.in_flight_bytes(cpus) if cfg.transport == "tcp" else s.in_flight_bytes()
        in_flight_msgs = None
    else:
        in_flight_bytes = None
        in_flight_msgs = 0
        for fl in flows:
            for s in fl.socks:
                in_flight_msgs += s.in_flight(cpus) if cfg.transport == "udp" else s.in_flight()
    return in_flight_bytes, in_flight_msgs


def _transport_counters(transport: str, flows: list[_Flow]) -> dict[str, Any]:
    """The counters of one transport's sockets (UDP_MIB_RCVBUFERRORS, TCP's MIB, ...)."""
    counters: dict[str, Any] = {}
    if transport == "udp":
        counters["udp_rcvbuf_errors"] = sum(s.rcvbuf_errors for fl in flows for s in fl.socks)
        counters["udp_max_rmem"] = max(s.max_rmem for fl in flows for s in fl.socks)
    if transport == "tcp":
        socks = [s for fl in flows for s in fl.socks]
        counters["tcp_out_segs"] = sum(s.out_segs for s in socks)
        counters["tcp_in_segs"] = sum(s.in_segs for s in socks)
        counters["tcp_retrans_segs"] = sum(s.retrans_segs for s in socks)
        counters["tcp_pure_acks"] = sum(s.pure_acks_sent for s in socks)
        counters["tcp_data_packets"] = sum(s.data_packets for s in socks)
        counters["tcp_ofo_queued"] = sum(s.ofo_queued for s in socks)
        counters["tcp_backlog_drops"] = sum(s.backlog_drops for s in socks)
        counters["tcp_final_cwnd"] = max(s.cwnd for s in socks)
        counters["tcp_final_sndbuf"] = max(s.sndbuf for s in socks)
        counters["tcp_final_rcvbuf"] = max(s.rcvbuf for s in socks)
    zcs = [s.zc for fl in flows for s in fl.socks if getattr(s, "zc", None) is not None]
    if zcs:  # MSG_ZEROCOPY (lbsim/model/zerocopy.py)
        for key in ("sends", "completions", "notifications", "reaps", "copies"):
            counters[f"zerocopy_{key}"] = sum(getattr(z, key) for z in zcs)
    if transport.startswith("unix"):
        counters["unix_sender_blocked"] = sum(s.sender_blocked for fl in flows for s in fl.socks)
    return counters


def side_busy(cfg: Any, cpu_rows: list[dict[str, Any]]) -> tuple[float, float] | None:
    """(senders', receivers') busy share: the ``busy_frac`` of the CPUs each side runs on, as the
    harness's ``cpu_busy_sender`` / ``cpu_busy_receiver`` measure it; None where a CPU holds both
    sides (busy time is kept per CPU, not per task)."""
    pairs = cfg.placements()
    snd, rcv = {p[0] for p in pairs}, {p[1] for p in pairs}
    if snd & rcv:
        return None
    busy = {row["cpu"]: row["busy_frac"] for row in cpu_rows}
    return sum(busy[c] for c in snd), sum(busy[c] for c in rcv)


def _rows(sim: Sim, net: Net, now: float) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The per-CPU rows (busy time, softnet_stat, lo's counters) and the per-stage rows."""
    cpus = sim.cpus
    cpu_rows = []
    for c in cpus:
        cpu_rows.append({
            "cpu": c.idx, "task_ns": c.busy[0], "softirq_ns": c.busy[1], "background_ns": c.busy[2],
            "busy_frac": (c.busy[0] + c.busy[1]) / now if now > 0 else 0.0,
            "softnet_processed": c.processed, "softnet_dropped": c.dropped, "time_squeeze": c.time_squeeze,
            "lo_tx_packets": c.lo_tx_packets, "lo_tx_bytes": c.lo_tx_bytes, "backlog_max_qlen": c.backlog_max,
            "context_switches": c.switches,
        })
    stage_rows: list[dict[str, Any]] = []
    for i, name in enumerate(STAGES):
        if sim.stage_count[i] or sim.stage_wait[i]:
            stage_rows.append({"stage": name, "count": sim.stage_count[i], "busy_ns": sim.stage_busy[i],
                               "wait_ns": sim.stage_wait[i]})
    # time spent queued in the per-CPU backlogs belongs to netif_rx's queue
    if net.backlog_waits:
        for row in stage_rows:
            if row["stage"] == "process_backlog":
                row["wait_ns"] += net.backlog_wait_ns
    return cpu_rows, stage_rows
