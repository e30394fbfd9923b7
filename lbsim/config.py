"""The one simulation configuration: typed, frozen, validated on construction.

Naming rule (the same in Python, ``--set``, experiment files and JSON): kernel names
verbatim for sysctls and device settings (``netdev_max_backlog``, ``tcp_rmem``,
``unix_max_dgram_qlen``, ``mtu``), ``_ns`` / ``_bytes`` / ``_per_s`` suffixes for lbsim's
own quantities.  Kernel fields left at ``None`` take the value of the ``kernel`` profile
(see :mod:`lbsim.kernels`, which cites the source of each default).
"""

from __future__ import annotations

import difflib
import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from lbsim.kernels import KERNELS, KernelParams, kernel_profile, setsockopt_buf
from lbsim.model.tcp_cc import CongestionControl

__all__ = ["SimConfig", "TRANSPORTS", "WORKLOADS", "KERNEL_FIELDS", "ConfigError", "make_config",
           "format_validation_error", "StageCostSet", "STAGE_EDIT_FIELDS"]

#: unix_seqpacket: an AF_UNIX SOCK_SEQPACKET pair (net/unix/af_unix.c unix_seqpacket_ops): unix_dgram's
#: send and receive on a pair connected both ways (lbsim.model.unix.UnixSeqpacket, docs/notes/seqpacket.md)
TRANSPORTS = ("tcp", "udp", "unix_stream", "unix_dgram", "unix_seqpacket")
WORKLOADS = ("pingpong", "stream", "rr", "poisson", "burst", "split")

#: SimConfig fields that override the kernel profile.
KERNEL_FIELDS = (
    "mtu", "tso", "rps_cpus", "netdev_max_backlog", "dev_weight", "netdev_budget",
    "netdev_budget_usecs", "hz", "skb_defer_max", "rmem_default", "wmem_default", "rmem_max", "wmem_max",
    "tcp_rmem", "tcp_wmem",
    "tcp_init_cwnd", "tcp_congestion_control", "unix_max_dgram_qlen", "tcp_autocorking", "busy_read",
    "rps_sock_flow_entries", "rps_flow_cnt",
)


#: split: the largest message (as lbsim measure's harness: a write must fit the default buffers)
SPLIT_MAX_BYTES = 65536


#: the SimConfig fields that edit the cost model (lbsim.costs.apply_stage_edits)
STAGE_EDIT_FIELDS = ("stage_scale", "stage_cost", "stage_remove")


class StageCostSet(BaseModel):
    """A stage's cost set by hand (``stage_cost``): ns per call and per byte."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    fixed_ns: float = Field(ge=0, allow_inf_nan=False)
    per_byte_ns: float = Field(0.0, ge=0, allow_inf_nan=False)


class ConfigError(ValueError):
    """Bad input: the message is one line naming the field and what is allowed."""


class SimConfig(BaseModel):
    """Everything one simulation run needs.  Times in ns, sizes in bytes."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    transport: Literal["tcp", "udp", "unix_stream", "unix_dgram", "unix_seqpacket"] = "tcp"
    #: split: one task writes a message and reads it back (each call timed: lbsim measure's split)
    workload: Literal["pingpong", "stream", "rr", "poisson", "burst", "split"] = "pingpong"
    #: payload of one send() call
    msg_bytes: int = Field(64, ge=1, le=16 * 1024 * 1024)
    #: round trips (pingpong, rr: per flow), writes (stream, poisson, burst: per flow)
    messages: int = Field(2000, ge=1, le=100_000_000)
    #: concurrent sender/receiver pairs (rr, poisson, burst, stream)
    flows: int = Field(1, ge=1, le=256)
    #: sending tasks per flow into the flow's one receiving socket (udp stream, poisson, burst):
    #: each has its own socket (so its own flow hash) and sends ``messages``; all run on the
    #: flow's sender CPU, as the C harness's ``--senders 2`` (``--cpu-c`` defaults to ``--cpu-a``)
    senders: int = Field(1, ge=1, le=64)
    #: messages per batch call of a one-way stream (lbsim.model.batching): udp/unix_dgram one
    #: sendmmsg of N and recvmmsg of up to N (MSG_WAITFORONE), tcp N writes with MSG_MORE on
    #: the first N-1, unix_stream N plain writes (the kernel ignores MSG_MORE there)
    batch: int = Field(1, ge=1, le=64)
    #: open-loop arrival rate per flow (poisson)
    rate_per_s: float = 20_000.0
    #: messages written back to back per burst (burst)
    burst_size: int = Field(1000, ge=1)
    #: idle time between bursts (burst)
    burst_gap_ns: int = Field(1_000_000, ge=0)
    cpus: int = Field(2, ge=1, le=64)
    #: "same" (both ends of a flow on one CPU), "cross" (sender and receiver on different
    #: CPUs) or an explicit list of [sender_cpu, receiver_cpu] pairs, one per flow
    placement: Literal["same", "cross"] | list[tuple[int, int]] = "same"
    #: "idle", "busy" (a nice-19 spinner on every CPU) or the list of busy CPUs
    background: Literal["idle", "busy"] | list[int] = "idle"
    #: scheduler of the measured tasks: "fair" (SCHED_OTHER) or "fifo" (SCHED_FIFO, run to block)
    policy: Literal["fair", "fifo"] = "fair"
    kernel: str = "linux-6.12"
    #: cost profile: "auto" (the one of this host, or $LBSIM_COSTS: lbsim.profiles), "default",
    #: a profile name (lbsim profiles) or a path to a cost-model JSON file
    costs: str = "auto"
    seed: int = Field(0, ge=0)
    #: every stage cost and delay takes its mean: exact, repeatable traces
    deterministic: bool = False
    #: keep a per-stage trace record of every message
    trace: bool = False
    #: TCP_NODELAY on both TCP sockets (the C harness sets it)
    tcp_nodelay: bool = True
    #: SO_SNDBUF / SO_RCVBUF requests; None = default.  The kernel stores min(request, wmem_max /
    #: rmem_max) x 2, at least SOCK_MIN_SNDBUF / SOCK_MIN_RCVBUF (see :meth:`sk_sndbuf`)
    so_sndbuf: int | None = Field(None, ge=1)
    so_rcvbuf: int | None = Field(None, ge=1)
    #: SO_BUSY_POLL request in us on both sockets (None: net.core.busy_read's value).  Recorded;
    #: the model has no busy-poll path because lo has none (include/net/busy_poll.h sk_busy_loop()
    #: polls only a NAPI id >= MIN_NAPI_ID, lo's backlog NAPI has no id, nor has an AF_UNIX socket):
    #: docs/notes/noop-switches.md
    so_busy_poll: int | None = Field(None, ge=0)
    #: MSG_ZEROCOPY on every send, SO_ZEROCOPY set (tcp and udp): on lo the receive path copies
    #: the pinned pages (net/core/dev.c skb_orphan_frags_rx -> skb_copy_ubufs) and the sender
    #: reaps a completion with recvmsg(MSG_ERRQUEUE) after each send: lbsim/model/zerocopy.py
    zerocopy: bool = False
    #: how every receiving side waits for data: "blocking" (recv sleeps in the socket) or "epoll"
    #: (epoll_wait on its one socket, level-triggered, then recv: fs/eventpoll.c,
    #: lbsim.model.eventpoll; the harness's --epoll).  epoll needs the measured ep_* stage costs
    receiver: Literal["blocking", "epoll"] = "blocking"
    #: guard: a run stops at this simulated time even if the workload has not finished
    max_sim_time_ns: float = 120e9

    # --- stage edits (what if a stage cost more or less; see docs/guide/whatif.md) ------------
    #: multiply a stage's or wake-up delay's cost: name or glob -> factor (factors multiply)
    stage_scale: dict[str, float] = Field(default_factory=dict)
    #: set a stage's cost: name or glob -> {fixed_ns, per_byte_ns}
    stage_cost: dict[str, StageCostSet] = Field(default_factory=dict)
    #: stages or delays that cost nothing (names or globs)
    stage_remove: list[str] = Field(default_factory=list)

    # --- kernel overrides (None: the profile's value) ---------------------------------------
    mtu: int | None = Field(None, ge=68, le=65536)
    tso: bool | None = None
    rps_cpus: int | None = Field(None, ge=0)
    netdev_max_backlog: int | None = Field(None, ge=1)
    dev_weight: int | None = Field(None, ge=1)
    netdev_budget: int | None = Field(None, ge=1)
    netdev_budget_usecs: int | None = Field(None, ge=1)
    hz: int | None = Field(None, ge=100, le=1000)
    skb_defer_max: int | None = Field(None, ge=0)
    rmem_default: int | None = Field(None, ge=2304)
    wmem_default: int | None = Field(None, ge=4608)
    #: net.core.rmem_max / wmem_max: the ceiling of SO_RCVBUF / SO_SNDBUF (the sysctl's own floor:
    #: net/core/sysctl_net_core.c extra1 = min_rcvbuf / min_sndbuf)
    rmem_max: int | None = Field(None, ge=2304)
    wmem_max: int | None = Field(None, ge=4608)
    tcp_rmem: tuple[int, int, int] | None = None
    tcp_wmem: tuple[int, int, int] | None = None
    tcp_init_cwnd: int | None = Field(None, ge=1)
    #: net.ipv4.tcp_congestion_control ("reno" behaves as "cubic" on lo: slow start, no loss)
    tcp_congestion_control: CongestionControl | None = None
    unix_max_dgram_qlen: int | None = Field(None, ge=0)
    #: net.ipv4.tcp_autocorking (0 or 1): inert on lo, loopback_xmit() orphans the skb so
    #: net/ipv4/tcp.c tcp_should_autocork() never holds a write back (docs/notes/noop-switches.md)
    tcp_autocorking: int | None = Field(None, ge=0, le=1)
    #: net.core.busy_read in us: the default SO_BUSY_POLL of new sockets; inert on lo (see so_busy_poll)
    busy_read: int | None = Field(None, ge=0)
    #: RFS: net.core.rps_sock_flow_entries (the kernel rounds it up to a power of two; 0: off) and
    #: lo rx-0's rps_flow_cnt; both non-zero steer a flow to the CPU its socket was last read or
    #: written on (net/core/dev.c get_rps_cpu): lbsim/model/rfs.py
    rps_sock_flow_entries: int | None = Field(None, ge=0, le=1 << 29)
    rps_flow_cnt: int | None = Field(None, ge=0, le=1 << 29)

    @field_validator("kernel")
    @classmethod
    def _kernel_known(cls, v: str) -> str:
        allowed = [*KERNELS, "host"]
        if v not in allowed:
            raise ValueError(f"unknown kernel {v!r}; allowed: {', '.join(allowed)}")
        return v

    @field_validator("rate_per_s", "max_sim_time_ns")
    @classmethod
    def _finite(cls, v: float) -> float:
        # checked here, not with Field(gt=0), which lets inf through: a run would never end
        if not (math.isfinite(v) and v > 0):
            raise ValueError("must be a finite number > 0")
        return v

    @field_validator("stage_scale", "stage_cost", "stage_remove")
    @classmethod
    def _stage_names(cls, v: Any) -> Any:
        from lbsim.costs import match_stages

        for key in v:
            match_stages(key)  # ValueError: one line with the close matches
        if isinstance(v, dict):
            for key, f in v.items():
                if isinstance(f, float) and not (math.isfinite(f) and f >= 0):
                    raise ValueError(f"{key}: factor {f!r} must be a finite number >= 0")
        return v

    def stage_edits(self) -> str:
        """The canonical compact text of this run's stage edits ("" when none)."""
        from lbsim.costs import stage_edits_text

        return stage_edits_text(self.stage_scale, self.stage_cost, self.stage_remove)

    @field_validator("tcp_rmem", "tcp_wmem")
    @classmethod
    def _triple(cls, v: tuple[int, int, int] | None) -> tuple[int, int, int] | None:
        if v is not None and not (0 < v[0] <= v[1] <= v[2]):
            raise ValueError(f"{list(v)} must be three sizes min <= default <= max, all > 0")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> SimConfig:
        if isinstance(self.placement, list):
            if len(self.placement) != self.flows:
                raise ValueError(f"placement lists {len(self.placement)} pairs but flows = {self.flows}; "
                                 "give one [sender_cpu, receiver_cpu] pair per flow")
            for pair in self.placement:
                for c in pair:
                    if not 0 <= c < self.cpus:
                        raise ValueError(f"placement CPU {c} out of range; allowed 0..{self.cpus - 1}")
        elif self.placement == "cross" and self.cpus < 2:
            raise ValueError("placement 'cross' needs cpus >= 2")
        if isinstance(self.background, list):
            for c in self.background:
                if not 0 <= c < self.cpus:
                    raise ValueError(f"background CPU {c} out of range; allowed 0..{self.cpus - 1}")
        if self.rps_cpus is not None and self.rps_cpus >= (1 << self.cpus):
            raise ValueError(f"rps_cpus mask {self.rps_cpus:#x} names CPUs beyond cpus = {self.cpus}")
        if self.zerocopy and self.transport not in ("tcp", "udp"):
            raise ValueError(f"zerocopy needs transport 'tcp' or 'udp' (net/core/sock.c refuses SO_ZEROCOPY on "
                             f"{self.transport}), got transport {self.transport!r}")
        if self.senders > 1 and (self.transport != "udp" or self.workload not in ("stream", "poisson", "burst")):
            raise ValueError(f"senders = {self.senders} needs transport 'udp' and a one-way workload "
                             "(stream, poisson, burst): several senders share one receiving datagram socket")
        if self.batch > 1 and self.workload != "stream":
            raise ValueError(f"batch = {self.batch} needs workload 'stream' (a batch call moves several messages "
                             "one way); allowed with other workloads: 1")
        if self.batch > 1 and self.receiver == "epoll":
            raise ValueError(f"batch = {self.batch} with receiver 'epoll': not modelled (the harness's "
                             "recvmmsg does not wait in epoll_wait); allowed with epoll: batch = 1")
        if self.batch > 1 and self.zerocopy:
            raise ValueError(f"batch = {self.batch} with zerocopy: not modelled (the harness sends batches "
                             "without MSG_ZEROCOPY); allowed with zerocopy: batch = 1")
        if self.workload == "split":
            if self.placement != "same" or self.flows != 1:
                raise ValueError("workload 'split' runs one task at both ends of one flow: "
                                 "placement must be 'same' and flows 1")
            if self.msg_bytes > SPLIT_MAX_BYTES:
                raise ValueError(f"msg_bytes {self.msg_bytes} too large for workload 'split' (the write must fit "
                                 f"the socket buffers before the read); allowed 1..{SPLIT_MAX_BYTES}")
        k = self.kernel_params()
        if self.transport == "udp" and self.msg_bytes > k.udp_max_payload:
            raise ValueError(f"msg_bytes {self.msg_bytes} too large for udp; allowed 1..{k.udp_max_payload}")
        if self.transport in ("unix_dgram", "unix_seqpacket"):  # unix_seqpacket_sendmsg -> unix_dgram_sendmsg
            limit = self.sndbuf_unix() - 32
            if self.msg_bytes > limit:
                raise ValueError(f"msg_bytes {self.msg_bytes} too large for {self.transport} (sk_sndbuf - 32); "
                                 f"allowed 1..{limit}")
        return self

    # --- derived -------------------------------------------------------------------------------
    def kernel_params(self) -> KernelParams:
        """The kernel profile with this config's overrides applied."""
        base = kernel_profile(self.kernel)
        over = {f: getattr(self, f) for f in KERNEL_FIELDS if getattr(self, f) is not None}
        return base.replace(**over) if over else base

    def sk_sndbuf(self) -> int | None:
        """sk_sndbuf after the SO_SNDBUF request (net/core/sock.c: min(request, wmem_max) x 2, at
        least SOCK_MIN_SNDBUF); None without one (each transport's default applies)."""
        if self.so_sndbuf is None:
            return None
        k = self.kernel_params()
        return setsockopt_buf(self.so_sndbuf, k.wmem_max, k.sock_min_sndbuf)

    def sk_rcvbuf(self) -> int | None:
        """sk_rcvbuf after the SO_RCVBUF request (net/core/sock.c __sock_set_rcvbuf: min(request,
        rmem_max) x 2, at least SOCK_MIN_RCVBUF); None without one."""
        if self.so_rcvbuf is None:
            return None
        k = self.kernel_params()
        return setsockopt_buf(self.so_rcvbuf, k.rmem_max, k.sock_min_rcvbuf)

    def sndbuf_unix(self) -> int:
        """AF_UNIX sk_sndbuf: the SO_SNDBUF result (:meth:`sk_sndbuf`), else wmem_default (both
        AF_UNIX types charge the sender's sk_sndbuf; sk_rcvbuf is never consulted)."""
        s = self.sk_sndbuf()
        if s is not None:
            return s
        return self.wmem_default if self.wmem_default is not None else kernel_profile(self.kernel).wmem_default

    def placements(self) -> list[tuple[int, int]]:
        """[sender_cpu, receiver_cpu] per flow."""
        if isinstance(self.placement, list):
            return [tuple(p) for p in self.placement]  # type: ignore[misc]
        n = self.cpus
        if self.placement == "same":
            return [(i % n, i % n) for i in range(self.flows)]
        return [((2 * i) % n, (2 * i + 1) % n) for i in range(self.flows)]

    def busy_cpus(self) -> list[int]:
        if self.background == "idle":
            return []
        if self.background == "busy":
            return list(range(self.cpus))
        return list(self.background)


def format_validation_error(err: ValidationError, source: str = "") -> str:
    """One line: where, the field, the bad value, what is allowed (and a 'did you mean')."""
    e = err.errors()[0]
    loc = ".".join(str(p) for p in e["loc"] if not isinstance(p, int) or len(e["loc"]) > 1)
    prefix = f"{source}: " if source else ""
    if e["type"] == "extra_forbidden":
        key = str(e["loc"][-1])
        fields = list(SimConfig.model_fields)
        close = difflib.get_close_matches(key, fields, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else f"; allowed: {', '.join(fields)}"
        return f"{prefix}unknown key {key!r}{hint}"
    msg = e["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    where = f"{loc}: " if loc else ""
    value = e.get("input")
    shown = "" if loc == "" or isinstance(value, dict) else f" (got {value!r})"
    return f"{prefix}{where}{msg}{shown}"


def make_config(data: dict[str, Any] | None = None, source: str = "", **kw: Any) -> SimConfig:
    """Build a config, turning validation failures into a one-line :class:`ConfigError`."""
    merged = {**(data or {}), **kw}
    try:
        return SimConfig(**merged)
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, source)) from None
