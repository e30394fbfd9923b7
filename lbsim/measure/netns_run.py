"""Run the harness inside a private network + mount namespace with per-namespace knobs set.

Started as ``unshare --net --mount --propagation private -- PYTHON -m lbsim.measure.netns_run
--knobs JSON --exe HARNESS -- ARGV...`` (:func:`netns_argv`).  It brings the namespace's own
``lo`` up (a new namespace's lo is down: drivers/net/loopback.c ``loopback_net_init``),
mounts a sysfs so ``/sys/class/net/lo`` is this namespace's lo, applies the knobs (lo MTU,
TSO by the SIOCETHTOOL ioctl, rx-0 ``rps_cpus`` and ``rps_flow_cnt``, per-namespace sysctls), reads them back,
runs the harness and prints its JSON line with ``"netns"`` (the values read back) and
``"counters"`` (kernel counter deltas; /proc/net/snmp is this namespace's) added.  Whatever
it set dies with the namespace, even on SIGKILL.  127.0.0.1 is the new lo's; the UNIX socket
paths are filesystem paths, which the mount namespace shares with the host.

It runs as a script (``python -I .../netns_run.py``), so it imports nothing of lbsim: a
knob run pays no package import; :mod:`.knobs` re-exports its sysctl and counter readers.
"""

from __future__ import annotations

import array
import fcntl
import json
import socket
import struct
import subprocess
import sys
from pathlib import Path

PROC_SYS = Path("/proc/sys")
Value = int | str


__all__ = ["netns_argv", "set_tso", "get_tso", "main", "read_counters", "counter_delta",
           "read_sysctl", "write_sysctl", "sysctl_path", "COUNTERS", "PROC_SYS"]

SIOCETHTOOL = 0x8946
ETHTOOL_GTSO, ETHTOOL_STSO = 0x1E, 0x1F
RPS = "/sys/class/net/lo/queues/rx-0/rps_cpus"
RPS_FLOW_CNT = "/sys/class/net/lo/queues/rx-0/rps_flow_cnt"


def sysctl_path(name: str, proc_sys: Path = PROC_SYS) -> Path:
    return Path(proc_sys) / name.replace(".", "/")


def read_sysctl(name: str, proc_sys: Path = PROC_SYS) -> Value | None:
    """A sysctl's value: an int, or the whitespace-normalised text (tcp_rmem), None if absent."""
    try:
        raw = sysctl_path(name, proc_sys).read_text()
    except OSError:
        return None
    parts = raw.split()
    if len(parts) == 1 and parts[0].lstrip("-").isdigit():
        return int(parts[0])
    return " ".join(parts)


def write_sysctl(name: str, value: Value, proc_sys: Path = PROC_SYS) -> None:
    sysctl_path(name, proc_sys).write_text(f"{value}\n")


#: kernel counters recorded per run, as deltas (see read_counters)
COUNTERS = ("softnet_dropped", "softnet_time_squeeze", "udp_rcvbuf_errors", "udp_in_errors",
            "tcp_retrans_segs", "tcp_autocork_events", "busy_poll_rx_packets")


def parse_snmp(text: str) -> dict:
    """/proc/net/snmp or /proc/net/netstat (header and value line pairs) as ``{"Proto.Name": value}``."""
    out, lines = {}, text.splitlines()
    for hdr, val in zip(lines[::2], lines[1::2]):
        proto = hdr.split(":", 1)[0]
        for k, v in zip(hdr.split()[1:], val.split()[1:]):
            out[f"{proto}.{k}"] = int(v)
    return out


def read_counters(proc: Path = Path("/proc")) -> dict:
    """softnet_stat dropped and time_squeeze (columns 2 and 3, hex, summed over CPUs:
    net/core/net-procfs.c softnet_seq_show) and /proc/net/snmp's Udp RcvbufErrors, InErrors
    and Tcp RetransSegs, /proc/net/netstat's TcpExt TCPAutoCorking (net/ipv4/tcp.c tcp_push) and
    BusyPollRxPackets (net/core/dev.c napi_busy_loop) (the reading process's
    network namespace)."""
    c = dict.fromkeys(COUNTERS)
    try:
        rows = [ln.split() for ln in (proc / "net/softnet_stat").read_text().splitlines() if ln.strip()]
        c["softnet_dropped"] = sum(int(r[1], 16) for r in rows)
        c["softnet_time_squeeze"] = sum(int(r[2], 16) for r in rows)
    except (OSError, ValueError, IndexError):
        pass
    try:
        s = parse_snmp((proc / "net/snmp").read_text())
        c["udp_rcvbuf_errors"] = s.get("Udp.RcvbufErrors")
        c["udp_in_errors"] = s.get("Udp.InErrors")
        c["tcp_retrans_segs"] = s.get("Tcp.RetransSegs")
    except (OSError, ValueError):
        pass
    try:   # the same header/value line pairs as snmp
        x = parse_snmp((proc / "net/netstat").read_text())
        c["tcp_autocork_events"] = x.get("TcpExt.TCPAutoCorking")
        c["busy_poll_rx_packets"] = x.get("TcpExt.BusyPollRxPackets")
    except (OSError, ValueError):
        pass
    return c


def counter_delta(before: dict, after: dict) -> dict:
    return {k: (after[k] - before[k] if before.get(k) is not None and after.get(k) is not None
                else None) for k in COUNTERS}


def netns_argv(knobs: dict, exe: str, argv: list) -> list:
    """The command line that runs the harness ``exe`` (``argv``) in a private namespace."""
    return ["unshare", "--net", "--mount", "--propagation", "private", "--",
            sys.executable, "-I", __file__, "--knobs", json.dumps(knobs),
            "--exe", str(exe), "--", *argv]


def _ethtool(cmd: int, data: int = 0, dev: str = "lo") -> int:
    ev = array.array("I", [cmd, data])            # struct ethtool_value {u32 cmd; u32 data;}
    addr, _ = ev.buffer_info()
    ifr = struct.pack("16sP", dev.encode(), addr) + b"\0" * 16   # struct ifreq, ifr_data
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        fcntl.ioctl(s.fileno(), SIOCETHTOOL, ifr)
    return ev[1]


def get_tso(dev: str = "lo") -> str:
    return "on" if _ethtool(ETHTOOL_GTSO, 0, dev) else "off"


def set_tso(on: bool, dev: str = "lo") -> None:
    _ethtool(ETHTOOL_STSO, 1 if on else 0, dev)


def _ip(*args: str) -> None:
    r = subprocess.run(["ip", "link", "set", "lo", *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise OSError(f"ip link set lo {' '.join(args)}: {r.stderr.strip()}")


def apply(knobs: dict) -> dict:
    """Set the knobs in this (private) namespace; return the values read back."""
    _ip("up")
    r = subprocess.run(["mount", "-t", "sysfs", "sysfs", "/sys"], capture_output=True, text=True)
    if r.returncode != 0:
        raise OSError(f"mount sysfs: {r.stderr.strip()}")
    if knobs.get("mtu") is not None:
        _ip("mtu", str(knobs["mtu"]))
    if knobs.get("tso") is not None:
        set_tso(knobs["tso"] == "on")
    if knobs.get("rps_cpus") is not None:
        Path(RPS).write_text(f"{knobs['rps_cpus']}\n")
    if knobs.get("rps_flow_cnt") is not None:  # RFS: rx-0's flow table (net/core/net-sysfs.c)
        Path(RPS_FLOW_CNT).write_text(f"{knobs['rps_flow_cnt']}\n")
    for name, v in (knobs.get("sysctl") or {}).items():
        write_sysctl(name, v)
    seen = {"mtu": int(Path("/sys/class/net/lo/mtu").read_text()), "tso": get_tso(),
            "rps_cpus": Path(RPS).read_text().strip()}
    for name in (knobs.get("sysctl") or {}):
        seen[name] = read_sysctl(name)
    return seen


def main(argv: list | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        cut = argv.index("--")
        opts, harness = argv[:cut], argv[cut + 1:]
        knobs = json.loads(opts[opts.index("--knobs") + 1])
        exe = opts[opts.index("--exe") + 1]
    except (ValueError, IndexError):
        print(json.dumps({"error": "usage: netns_run --knobs JSON --exe HARNESS -- ARGV..."}))
        return 2
    try:
        seen = apply(knobs)
    except (OSError, ValueError) as e:
        print(json.dumps({"error": f"netns knob: {e}", "knob_error": True}))
        return 2
    c0 = read_counters()
    p = subprocess.run(harness, executable=exe, capture_output=True, text=True)
    c1 = read_counters()
    lines = [ln for ln in p.stdout.splitlines() if ln.strip()]
    try:
        res = json.loads(lines[-1])
    except (IndexError, ValueError):
        sys.stdout.write(p.stdout)
        sys.stderr.write(p.stderr)
        return p.returncode or 1
    if isinstance(res, dict) and "error" not in res:
        res["netns"] = seen
        res["counters"] = counter_delta(c0, c1)
    print(json.dumps(res))
    sys.stderr.write(p.stderr)
    return p.returncode


if __name__ == "__main__":
    sys.exit(main())
