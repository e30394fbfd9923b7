"""What one more IP fragment costs the sending CPU: the stage file's ``ip_fragment`` entry.

The default settings never fragment on lo (MTU 65536 carries the largest UDP datagram whole), so
no default-grid point times ``ip_do_fragment`` and ``ip_defrag``.  This micro-benchmark does, in a
private network namespace whose lo has MTU 1500 (gone with the namespace, even on SIGKILL): one
unconnected reader that never reads (``SO_RCVBUF`` at its minimum, so every datagram is dropped
by ``__udp_enqueue_schedule_skb`` after reassembly) and one sender, both pinned to one CPU.  A
``send()`` on lo then runs the whole path inline: ``__ip_append_data`` builds one skb per
fragment, ``ip_do_fragment`` sends each through ``dev_queue_xmit`` -> ``loopback_xmit`` ->
``netif_rx``, the ``local_bh_enable`` of ``__dev_queue_xmit`` runs NET_RX for it (``ip_rcv`` ->
``ip_defrag``), the last fragment reassembles and the datagram is dropped and freed.  The same
65507-byte datagram is timed at MTU 65536 (one packet) and 1500 (45 fragments), in interleaved
rounds; ``per_fragment_ns`` is the median over rounds of the difference per extra fragment.
Python's own per-call overhead is in both and cancels.

Read by ``lbsim.calibrate.calibrate_from_files`` (``params.with_fragment_cost``) into the
ip_fragment and ip_defrag stages (docs/notes/ip-fragments.md).  Run as a script inside
``unshare --net`` (``python -I``: it imports nothing of lbsim).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time

__all__ = ["micro_ipfrag"]

SIZE = 65507  # the largest UDP payload over IPv4: 45 fragments at MTU 1500
MTU_WHOLE, MTU_FRAG = 65536, 1500


def fragments(payload: int, mtu: int) -> int:
    """IP fragments of a UDP datagram (ip_do_fragment: (mtu - 20) & ~7 payload bytes each)."""
    if payload + 8 + 20 <= mtu:
        return 1
    per = (mtu - 20) & ~7
    return -(-(payload + 8) // per)


def micro_ipfrag(rounds: int = 9, sends: int = 1000, max_seconds: float = 30.0) -> dict[str, float] | None:
    """Run the measurement in a private network namespace (root and ``unshare`` needed; None
    without them, or where the namespace cannot be made).  About 2 s on a 2-vCPU guest."""
    if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("ip") is None:
        return None
    argv = ["unshare", "--net", "--", sys.executable, "-I", __file__, str(rounds), str(sends), str(max_seconds)]
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=max_seconds + 30)
    except subprocess.TimeoutExpired:
        return None
    if p.returncode != 0:
        return None
    return json.loads(p.stdout.strip().splitlines()[-1])


def _set_mtu(mtu: int) -> None:
    subprocess.run(["ip", "link", "set", "lo", "mtu", str(mtu)], check=True, capture_output=True)


def _inside(rounds: int, sends: int, max_seconds: float) -> dict[str, float]:
    """In the namespace: lo up, both sockets on this CPU, interleaved rounds (bounded in count
    and in time)."""
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True, capture_output=True)
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)  # clamped to SOCK_MIN_RCVBUF: all dropped
    rx.bind(("127.0.0.1", 0))
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx.connect(rx.getsockname())
    buf = b"\0" * SIZE
    per_send: dict[int, list[float]] = {MTU_WHOLE: [], MTU_FRAG: []}
    deadline = time.monotonic() + max_seconds
    for _ in range(rounds):
        for mtu in (MTU_WHOLE, MTU_FRAG):
            _set_mtu(mtu)
            for _ in range(sends // 4):  # warm the path and the caches at this MTU
                tx.send(buf)
            t0 = time.perf_counter_ns()
            for _ in range(sends):
                tx.send(buf)
            per_send[mtu].append((time.perf_counter_ns() - t0) / sends)
        if time.monotonic() > deadline:
            break
    _set_mtu(MTU_WHOLE)
    extra = fragments(SIZE, MTU_FRAG) - 1
    diffs = [(f - w) / extra for w, f in zip(per_send[MTU_WHOLE], per_send[MTU_FRAG])]
    return {"per_fragment_ns": statistics.median(diffs), "per_fragment_min_ns": min(diffs),
            "per_fragment_max_ns": max(diffs), "send_whole_ns": statistics.median(per_send[MTU_WHOLE]),
            "send_fragmented_ns": statistics.median(per_send[MTU_FRAG]), "fragments": float(extra + 1),
            "rounds": float(len(diffs)), "sends": float(sends)}


if __name__ == "__main__":
    r, n, t = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    print(json.dumps(_inside(r, n, t)))
