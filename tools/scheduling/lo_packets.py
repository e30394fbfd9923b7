"""Packets on lo per write in a stream (the C harness, COUNT writes + 100 warm-up), from lo's tx_packets and
tx_bytes before and after each run (data segments and ACKs together).

Usage: python lo_packets.py TRANSPORT same|cross [COUNT]   (run it on a quiet machine)
"""
import sys
from pathlib import Path

from lbsim.measure.harness import run_harness


def rd(name: str) -> int:
    return int(Path(f"/sys/class/net/lo/statistics/{name}").read_text())


tr, pl = sys.argv[1], sys.argv[2]
count = int(sys.argv[3]) if len(sys.argv) > 3 else 20000
print("loadavg before:", Path("/proc/loadavg").read_text().split()[0])
for size in (64, 256, 1024, 4096):
    for rep in range(3):
        p0, b0 = rd("tx_packets"), rd("tx_bytes")
        r = run_harness(tr, "stream", size, count, 100, 0, 0 if pl == "same" else 1)
        p1, b1 = rd("tx_packets"), rd("tx_bytes")
        print(f"{tr} {pl} {size:5d} B rep {rep}: {r['throughput_Bps'] / 1e6:8.1f} MB/s, "
              f"{(p1 - p0) / (count + 100):.3f} packets per write, {(b1 - b0) / max(1, p1 - p0):.0f} B per packet",
              flush=True)
