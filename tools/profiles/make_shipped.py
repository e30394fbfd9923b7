#!/usr/bin/env python3
"""Build the shipped cost profiles (lbsim/data/profiles/*.json) from the committed measurements.

Each profile is a host folder's ``costs.json`` (the defaults' for the Intel v1272 profile),
renamed after the profile and given a ``provenance.profile`` block (lbsim/profiles.py) made from
the folder's ``measured-host.csv.host.json`` (CPU, kernel, host name), the data file's SHA-256
and the own fit's held-out errors (``heldout.json``).  With ``--refit`` each cost file is first
fitted again from its folder's ``measured-host.csv`` and ``stages-host.json`` with the current
calibration (the honest per-point split) and validated on its held-out points; the held-out figures
are kept in the folder's ``heldout.json`` (the defaults': ``tools/profiles/default-heldout.json``).

One profile per machine kind and kernel build measured so far; where a kind and build were
measured more than once, the one listed below is the one kept (the later, or the defaults).

    python tools/profiles/make_shipped.py [--check] [--refit [NAME ...]]

``--check`` exits 1 if a shipped file differs from what would be written.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from lbsim.costs import cost_model_from_dict  # noqa: E402
from lbsim.hostid import HostId  # noqa: E402
from lbsim.profiles import heldout_from_validate, make_profile  # noqa: E402

OUT = ROOT / "lbsim" / "data" / "profiles"
#: the defaults' own-fit held-out figures from the last --refit (their folder keeps no validate.json)
PACKAGE_HELDOUT = ROOT / "tools" / "profiles" / "default-heldout.json"

NO_FMS = ("CPU family, model and stepping were not recorded with this data (the .host.json holds only the "
          "VM's masked model name): auto matches it by vendor and kernel build")

#: name, data folder (relative to the repository), costs file in it, measurement date, notes.
#: Dates: the time of day where it was written down (README, docs/cross-cpu.md), else the day.
SHIPPED = [
    ("amd-epyc-25-1-1-v1300-2026-12-07", "{hosts}/amd-epyc-2026-12-07f-v1300", "costs.json", "2026-12-07T19:58:00+00:00",
     ["the other AMD EPYC model (AuthenticAMD 25/1/1); measured and fitted by the one-command lbsim calibrate at "
      "19:58-20:05 UTC, loadavg 0.90 and falling before (vmstat 100 % idle); its streams' repetitions spread "
      "20-70 %, so its throughput fits worse than the 25/17/1 profile's (held-out 16 % against 8 %)"]),
    ("amd-epyc-v1300-2026-12-06", "{hosts}/amd-epyc-2026-12-06-v1300", "costs.json", "2026-12-06T21:30:00+00:00",
     ["measured with lbsim measure at 21:30 UTC, loadavg 0.45 before; the first data set with the CPU's "
      "family, model and stepping (.host.json \"cpu\"); a second measurement of the machine, not fitted, "
      "is data/hosts/amd-epyc-2026-12-06-v1300b"]),
    ("xeon-v1272-2026-12-06", "lbsim/data", "costs-default.json", "2026-12-06T16:45:00+00:00",
     ["the default costs (lbsim/data/costs-default.json), the same numbers; measured with "
      "scripts/measure_host.py --reps 5 at 16:45 UTC, loadavg 0.33 before (docs/cross-cpu.md, 'Adopted')"]),
    ("xeon-v1252-2026-12-04", "{hosts}/xeon-2026-12-04", "costs.json", "2026-12-04",
     ["the day of the measurement; the time was not recorded"]),
    ("xeon-v769-2026-11-25", "{hosts}/xeon-2026-11-25", "costs.json", "2026-11-25",
     ["the day of the measurement; the time was not recorded",
      "cross-CPU wake-up into an idle CPU ~20 us on this kernel build against ~3 us on v1272"]),
    ("amd-epyc-v1272-2026-12-06", "{hosts}/amd-epyc-2026-12-06", "costs.json", "2026-12-06",
     ["the day of the measurement; the time was not recorded"]),
    ("amd-epyc-v1252-2026-12-04", "{hosts}/amd-epyc-2026-12-04b", "costs.json", "2026-12-04",
     ["the later of the two measurements of that day (amd-epyc-2026-12-04b); the time was not recorded"]),
]

def hosts_folder() -> str:
    """Where the per-host measurements are (docs/hosts/ now; data/hosts/ once moved)."""
    return "data/hosts" if (ROOT / "data" / "hosts").is_dir() else "docs/hosts"


def refit(folder: str, costs_file: str) -> dict:
    """Fit ``folder``'s data again into its cost file; validate it; return the held-out figures
    (also written to the folder's ``heldout.json``; the full report is not kept)."""
    from lbsim.calibrate import calibrate_from_files
    from lbsim.costs import load_costs
    from lbsim.validate import validate

    d = ROOT / folder
    calibrate_from_files(d / "measured-host.csv", d / "stages-host.json", d / costs_file)
    report = validate(d / "measured-host.csv", load_costs(str(d / costs_file))).to_dict()
    heldout = heldout_from_validate(report, f"tools/profiles/make_shipped.py --refit: own fit, {folder}") or {}
    heldout_file(folder).write_text(json.dumps(heldout, indent=1) + "\n")
    return heldout


def heldout_file(folder: str) -> Path:
    """Where a folder's own-fit held-out figures are kept (the package's folder keeps them here)."""
    return PACKAGE_HELDOUT if folder == "lbsim/data" else ROOT / folder / "heldout.json"


def build(name: str, folder: str, costs_file: str, date: str, notes: list[str],
          heldout: dict | None = None) -> dict:
    d = ROOT / folder
    costs = json.loads((d / costs_file).read_text())
    host = HostId.from_host_json(json.loads((d / "measured-host.csv.host.json").read_text()))
    if heldout is None:
        kept = heldout_file(folder)
        heldout = json.loads(kept.read_text()) if kept.exists() else None
    if heldout is not None:
        heldout = {k: (round(v, 2) if isinstance(v, float) else v) for k, v in heldout.items()}
    if host.cpu_family is None:
        notes = [NO_FMS, *notes]
    sha = hashlib.sha256((d / "measured-host.csv").read_bytes()).hexdigest()
    return make_profile(costs, name=name, host=host, date=date, data_sha256=sha, heldout=heldout,
                        data=folder, notes=notes)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compare only; exit 1 on a difference")
    ap.add_argument("--refit", nargs="*", metavar="NAME",
                    help="fit these profiles (default all) again from their data before building")
    a = ap.parse_args()
    hosts, bad = hosts_folder(), 0
    OUT.mkdir(parents=True, exist_ok=True)
    for name, folder, costs_file, date, notes in SHIPPED:
        folder = folder.format(hosts=hosts)
        heldout = None
        if a.refit is not None and (not a.refit or name in a.refit):
            print(f"refitting {name} from {folder} ...", flush=True)
            heldout = refit(folder, costs_file)
        data = build(name, folder, costs_file, date, notes, heldout)
        cost_model_from_dict(data, name)  # it must load
        text = json.dumps(data, indent=2) + "\n"
        path = OUT / f"{name}.json"
        if a.check:
            if not path.exists() or path.read_text() != text:
                print(f"{path.relative_to(ROOT)}: differs from {folder}")
                bad += 1
            continue
        path.write_text(text)
        print(f"{path.relative_to(ROOT)} <- {folder}/{costs_file}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
