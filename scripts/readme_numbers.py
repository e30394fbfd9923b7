"""Write the README's key numbers from the shipped results (between the results markers).

    .venv/bin/python scripts/readme_numbers.py           # rewrite the block in README.md
    .venv/bin/python scripts/readme_numbers.py --check   # exit 1 if README.md is out of date
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BEGIN = "<!-- results:begin (written by scripts/readme_numbers.py from results/; do not edit) -->"
END = "<!-- results:end -->"
TRANSPORTS = ("tcp", "udp", "unix_stream", "unix_dgram")


def _mean(df, metric: str, **where) -> float:
    d = df[(df.status == "ok") & (df.metric == metric)]
    for k, v in where.items():
        d = d[d[k] == v]
    return float(d.value.mean()) if len(d) else float("nan")


def _profiles(df) -> str:
    """The cost profile(s) the rows were simulated with (their costs_profile column)."""
    names = sorted(set(df["costs_profile"].dropna())) if "costs_profile" in df.columns else []
    return ", ".join(f"`{n}`" for n in names) or "not recorded"


def render(results: Path = ROOT / "results") -> str:
    from lbsim.results import load_results

    lat = load_results(results / "latency_vs_size")
    tput = load_results(results / "throughput_vs_size")
    lines = [BEGIN, "",
             f"Ping-pong p50 round trip (µs; mean of 3 replications, `results/latency_vs_size`, cost profile "
             f"{_profiles(lat)}), and the ratio to `unix_stream`:", "",
             "| size, placement | " + " | ".join(TRANSPORTS) + " |",
             "|---|" + "---|" * len(TRANSPORTS)]
    for size in (64, 4096, 65536):
        for pl in ("same", "cross"):
            vals = {t: _mean(lat, "latency_us_p50", transport=t, placement=pl, msg_bytes=size) for t in TRANSPORTS}
            ref = vals["unix_stream"]
            cells = [f"{v:.2f} ({v / ref:.2f}x)" if v == v else "-" for v in vals.values()]
            lines.append(f"| {size} B, {pl} CPU | " + " | ".join(cells) + " |")
    lines += ["", f"Stream throughput (MB/s, `results/throughput_vs_size`, cost profile {_profiles(tput)}):", "",
              "| write size, placement | " + " | ".join(TRANSPORTS) + " |",
              "|---|" + "---|" * len(TRANSPORTS)]
    for size in (64, 4096, 65536, 1048576):
        for pl in ("same", "cross"):
            vals = [_mean(tput, "throughput_bytes_per_s", transport=t, placement=pl, msg_bytes=size) / 1e6
                    for t in TRANSPORTS]
            cells = [f"{v:,.0f}" if v == v else "-" for v in vals]
            lines.append(f"| {size} B, {pl} CPU | " + " | ".join(cells) + " |")
    lines += ["", END]
    return "\n".join(lines)


def replace_block(text: str, block: str) -> str:
    if BEGIN not in text or END not in text:
        raise SystemExit("README.md has no results markers")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return head + block + tail


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--check", action="store_true")
    a = ap.parse_args(argv)
    readme = ROOT / "README.md"
    text = readme.read_text()
    new = replace_block(text, render())
    if a.check:
        if new != text:
            print("README.md numbers are out of date: run scripts/readme_numbers.py", file=sys.stderr)
            return 1
        return 0
    readme.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
