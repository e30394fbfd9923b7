"""lbsim profiles: the cost profiles, and which one ``auto`` picks here (or for a measurement)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from lbsim.cli._common import InputError

__all__ = ["add_commands"]


def cmd_profiles(a: argparse.Namespace) -> int:
    from lbsim import profiles

    if a.match is None:
        print(profiles.format_profiles_table())
        return 0
    if not Path(a.match).is_file():
        raise InputError(f"--match {a.match}: no such file (a measurement's .host.json)")
    choice = profiles.match_host_json(a.match)
    host = choice.extra.get("host") or {}
    fms = "/".join("?" if host.get(k) is None else str(host[k]) for k in ("cpu_family", "model", "stepping"))
    print(f"host: {host.get('vendor_id') or 'unknown vendor'} {fms}, {host.get('kernel') or 'unknown kernel'}")
    print(f"auto: {choice.name}, {choice.reason}")
    if choice.notice:
        print(choice.notice)
    return 0


def add_commands(sub: Any, parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser("profiles", parents=[parent],
                       help="list the cost profiles and which one --costs auto picks on this host",
                       description="List the cost profiles (shipped and your own) and which one --costs auto "
                                   "picks on this host; LBSIM_COSTS, when set, replaces that choice.")
    p.add_argument("--match", default=None, metavar="HOST.json",
                   help="instead: which profile auto would pick for the machine a measurement's "
                        ".host.json describes")
    p.set_defaults(func=cmd_profiles)
