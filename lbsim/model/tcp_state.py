"""The state of one TCP socket (``struct tcp_sock``), declared for the type checker only.

``TcpSock`` (lbsim.model.tcp) is built from mixins split as the kernel's files are
(tcp_output, tcp_input, tcp_recv, tcp_timer); its state lives in ``TcpSock.__slots__`` and
is set in ``TcpSock.__init__``.  The mixins derive from :class:`TcpState` only when type
checking (at run time their base is ``object``), so mypy knows the attributes and the
methods one mixin calls on another.  Nothing imports this module at run time.
"""

from __future__ import annotations

from abc import abstractmethod
from collections import deque
from collections.abc import Generator, Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import simpy

    from lbsim.model.cpu import CPU
    from lbsim.model.netdev import Net
    from lbsim.model.sim import Sim
    from lbsim.model.task import WaitQueue
    from lbsim.model.tcp import TcpSock
    from lbsim.model.tcp_cc import Bbr
    from lbsim.model.timers import LazyTimer
    from lbsim.model.zerocopy import MsgZerocopy


class TcpState:
    """The fields of ``TcpSock`` (the names of ``TcpSock.__slots__``) and the methods the
    mixins call across files (abstract here: mypy checks ``TcpSock`` has each).  A plain
    class, not a Protocol: mypy cannot infer a Protocol member a subclass both reads and
    assigns in one method."""

    # set-up (TcpSock.__init__)
    sim: Sim
    env: simpy.Environment
    net: Net
    name: str
    flow: int
    stats: Any
    modern: bool
    nodelay: bool
    tso: bool
    gso_max_size: int
    advmss: int
    wmem_max: int
    rmem_max: int
    quickacks_max: int
    delack_ns: float
    rto_ns: float
    peer: TcpSock
    skb_overhead: int
    # send side (TcpSock._init_send_side)
    write_q: deque[int]
    write_psh: deque[bool]
    pushed_seq: int
    tail_open: bool
    rtx: deque[list[int]]  # [end_seq, len, truesize, segs, msg, the rate-sample fields (us), psh]
    write_seq: int
    snd_una: int
    snd_nxt: int
    wmem_queued: int
    packets_out: int
    cwnd: int
    delivered: int
    delivered_mstamp: int
    first_tx_mstamp: int
    app_limited: int
    rtt_min_us: float
    mss_clamp: int
    cc: Bbr | None
    snd_wnd: int
    max_window: int
    _goal_for: int
    _goal: int
    user_sndbuf: bool
    sndbuf: int
    wq_space: WaitQueue
    rto_token: int
    rto_armed: bool
    rto_timer: LazyTimer
    msg_ends: deque[tuple[int, int]]
    tx_cpu: CPU | None
    zc: MsgZerocopy | None
    rx_cpu: CPU | None
    # receive side (TcpSock._init_receive_side)
    rcv_nxt: int
    rcv_wup: int
    rcv_wnd: int
    copied_seq: int
    rcvq: deque[list[Any]]
    rmem: int
    user_rcvbuf: bool
    rcvbuf: int
    ratio: float
    rcv_mss: int
    ack_pending: bool
    pushed: bool
    quick: int
    pingpong: bool
    last_rcv: float
    delack_token: int
    delack_armed: bool
    delack_timer: LazyTimer
    rcvq_space: int
    rcvq_time: float
    rcvq_space_prev: int
    wq_data: WaitQueue
    ep: Any  # an epoll receiver's item (lbsim.model.eventpoll.EpollItem) or None
    window_clamp: int
    rcv_wscale: int
    # the socket lock
    last_cpu: CPU | None
    owned: bool
    backlog: deque[tuple[Any, ...]]
    backlog_bytes: int
    deferred_delack: bool
    deferred_rto: bool
    deferred_tsq: bool
    # internal pacing (tcp_pacing)
    wstamp_ns: float
    pace_timer: Any
    # counters
    out_segs: int
    in_segs: int
    retrans_segs: int
    pure_acks_sent: int
    data_packets: int
    backlog_drops: int
    ofo_queued: int
    ofo: dict[int, tuple[Any, ...]]
    lost_bytes: int

    # tcp_output
    @abstractmethod
    def mss(self) -> int: ...
    @abstractmethod
    def window(self) -> int: ...
    @abstractmethod
    def write_xmit(self, cpu: CPU, in_task: bool, push: bool) -> Generator[Any, None, None]: ...
    @abstractmethod
    def send_ack(self, cpu: CPU, in_task: bool) -> Generator[Any, None, None]: ...

    # tcp_recv
    @abstractmethod
    def select_window_unscaled(self) -> int: ...

    # tcp_pacing
    @abstractmethod
    def pacing_check(self, cpu: CPU, clock_ns: float) -> int: ...
    @abstractmethod
    def arm_work(self) -> list[Any]: ...
    @abstractmethod
    def pacing_sent(self, length: int, clock_ns: float) -> None: ...

    # tcp_timer
    @abstractmethod
    def _arm_rto(self, cpu: CPU) -> None: ...
    @abstractmethod
    def _arm_delack(self, cpu: CPU) -> None: ...

    # tcp (the socket lock)
    @abstractmethod
    def lock_sock(self) -> None: ...
    @abstractmethod
    def release_sock(self, cpu: CPU) -> Iterable[Any]: ...
    @abstractmethod
    def _release_sock(self, cpu: CPU) -> Generator[Any, None, None]: ...
