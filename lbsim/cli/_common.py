"""What every command shares: the bad-input error, the parser class, SimConfig options."""

from __future__ import annotations

import argparse
import difflib
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from lbsim.config import TRANSPORTS, WORKLOADS, SimConfig, make_config
from lbsim.kernels import KERNELS

#: the CLI's own progress and status lines (stderr, through main()'s handler; -q silences them)
log = logging.getLogger("lbsim.cli")


class InputError(Exception):
    """Bad input from the user: reported in one line, exit status 2."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # argparse's own errors: one line, exit 2
        raise InputError(message)


def sim_default(name: str) -> Any:
    """The SimConfig field's default: the one place CLI defaults come from."""
    return SimConfig.model_fields[name].default


def add_verbosity(p: argparse.ArgumentParser, *, top: bool) -> None:
    """-q / -v, on the top-level parser and on every command (``lbsim -q run`` = ``lbsim run -q``).
    A command's copy has no default, so that it does not overwrite the top-level count."""
    default = 0 if top else argparse.SUPPRESS
    p.add_argument("-q", "--quiet", action="count", default=default,
                   help="less on stderr: no progress (-qq: errors only)")
    p.add_argument("-v", "--verbose", action="count", default=default,
                   help="more on stderr: debug messages of the library")


def parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


#: SimConfig fields that have their own option (options dest -> field)
SIM_OPTIONS = {"transport": "transport", "workload": "workload", "msg_bytes": "msg_bytes",
               "messages": "messages", "mtu": "mtu", "cpus": "cpus", "placement": "placement",
               "kernel": "kernel", "costs": "costs", "seed": "seed", "receiver": "receiver"}


def parse_sets(items: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    fields = list(SimConfig.model_fields)
    for item in items:
        if "=" not in item:
            raise InputError(f"--set {item!r}: expected key=value")
        key, value = item.split("=", 1)
        key = key.strip()
        if key not in fields:
            close = difflib.get_close_matches(key, fields, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f"; allowed: {', '.join(fields)}"
            raise InputError(f"--set: unknown key {key!r}{hint}")
        out[key] = parse_value(value.strip())
    return out


def _dflt(name: str) -> str:
    d = sim_default(name)
    return "the kernel profile's" if d is None else str(d)


def add_sim_options(p: argparse.ArgumentParser, *, transport: bool, sets: bool = True,
                    workload: bool = True, messages: bool = True) -> None:
    """The SimConfig fields with their own option; left out, the field keeps SimConfig's default."""
    if transport:
        p.add_argument("--transport", default=None,
                       help=f"one of {', '.join(TRANSPORTS)} (default {_dflt('transport')})")
    if workload:
        p.add_argument("--workload", default=None,
                       help=f"one of {', '.join(WORKLOADS)} (default {_dflt('workload')})")
    p.add_argument("--msg-bytes", type=int, default=None, help=f"payload of one send() (default {_dflt('msg_bytes')})")
    if messages:
        p.add_argument("--messages", type=int, default=None,
                       help=f"round trips or writes per flow (default {_dflt('messages')})")
    p.add_argument("--mtu", type=int, default=None, help=f"lo MTU (default {_dflt('mtu')})")
    p.add_argument("--cpus", type=int, default=None, help=f"number of CPUs (default {_dflt('cpus')})")
    p.add_argument("--placement", default=None,
                   help=f"same | cross | JSON list of [sender, receiver] CPUs (default {_dflt('placement')})")
    p.add_argument("--kernel", default=None,
                   help=f"{' | '.join([*KERNELS, 'host'])} (default {_dflt('kernel')})")
    p.add_argument("--receiver", default=None,
                   help=f"blocking | epoll: how receivers wait for data (default {_dflt('receiver')})")
    p.add_argument("--costs", default=None, metavar="NAME|FILE|default|auto",
                   help=f"cost profile: a name (lbsim profiles lists them), a cost file, 'default' (the Intel "
                        f"Xeon v1272 guest) or 'auto' (this host's profile) (default {_dflt('costs')})")
    add_stage_edit_options(p)
    if sets:
        p.add_argument("--seed", type=int, default=None, help=f"random seed (default {_dflt('seed')})")
        p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="any other configuration field, e.g. --set netdev_max_backlog=10")


def add_stage_edit_options(p: argparse.ArgumentParser) -> None:
    """--stage-scale, --stage-cost, --stage-remove (SimConfig stage_scale, stage_cost, stage_remove)."""
    p.add_argument("--stage-scale", action="append", default=[], metavar="GLOB=FACTOR",
                   help="multiply a stage's (or wake-up delay's) cost, e.g. 'tcp_*=0.9' (repeatable)")
    p.add_argument("--stage-cost", action="append", default=[], metavar="NAME=FIXED[,PER_BYTE]",
                   help="set a stage's cost in ns per call [and per byte], e.g. ip_rcv=100,0.01 (repeatable)")
    p.add_argument("--stage-remove", action="append", default=[], metavar="NAME",
                   help="a stage or delay (or glob) that costs nothing (repeatable)")


def _number(text: str, what: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise InputError(f"{what}: {text!r} is not a number") from None


def stage_edit_fields(a: argparse.Namespace) -> dict[str, Any]:
    """The stage-edit fields given with --stage-scale / --stage-cost / --stage-remove."""
    out: dict[str, Any] = {}
    for item in getattr(a, "stage_scale", None) or []:
        name, sep, value = item.rpartition("=")
        if not sep or not name.strip():
            raise InputError(f"--stage-scale {item!r}: expected NAME=FACTOR, e.g. 'tcp_*=0.9'")
        out.setdefault("stage_scale", {})[name.strip()] = _number(value.strip(), f"--stage-scale {item}")
    for item in getattr(a, "stage_cost", None) or []:
        name, sep, value = item.partition("=")
        nums = value.split(",")
        if not sep or not name.strip() or len(nums) > 2:
            raise InputError(f"--stage-cost {item!r}: expected NAME=FIXED[,PER_BYTE] (ns), e.g. ip_rcv=100,0.01")
        spec = {"fixed_ns": _number(nums[0].strip(), f"--stage-cost {item}")}
        if len(nums) == 2:
            spec["per_byte_ns"] = _number(nums[1].strip(), f"--stage-cost {item}")
        out.setdefault("stage_cost", {})[name.strip()] = spec
    removed = [x.strip() for x in getattr(a, "stage_remove", None) or []]
    if removed:
        out["stage_remove"] = removed
    return out


def sim_fields(a: argparse.Namespace) -> dict[str, Any]:
    """The SimConfig fields given on the command line (options, then --set; a field given both
    ways with different values is an error)."""
    data: dict[str, Any] = {}
    for dest, fld in SIM_OPTIONS.items():
        v = getattr(a, dest, None)
        if v is None:
            continue
        data[fld] = parse_value(v) if fld == "placement" and v.startswith("[") else v
    data.update(stage_edit_fields(a))
    for key, value in parse_sets(getattr(a, "set", [])).items():
        if key in data and data[key] != value:
            opt = "--" + key.replace("_", "-")
            raise InputError(f"--set {key}={value} conflicts with {opt} {data[key]}; give the field once")
        data[key] = value
    return data


def config_from_args(a: argparse.Namespace, **fixed: Any) -> SimConfig:
    """A validated SimConfig from the options; ``fixed`` fields are the command's own (a --set
    of one of them with another value is an error)."""
    data = sim_fields(a)
    for key, value in fixed.items():
        if key in data and data[key] != value:
            raise InputError(f"--set {key}={data[key]}: this command sets {key} itself")
    data.update(fixed)
    return make_config(data)


def csv_list(text: str, allowed: Sequence[str] | None, what: str) -> list[str]:
    items = [x.strip() for x in text.split(",") if x.strip()]
    if not items:
        raise InputError(f"{what}: empty list")
    if allowed is not None:
        for x in items:
            if x not in allowed:
                raise InputError(f"{what}: {x!r} is not allowed; allowed: {', '.join(allowed)}")
    return items


def int_list(text: str, what: str) -> list[int]:
    try:
        out = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise InputError(f"{what}: {text!r} is not a comma-separated list of integers") from None
    if not out or any(v < 1 for v in out):
        raise InputError(f"{what}: sizes must be integers >= 1 (got {text!r})")
    return out


def output_file(text: str, what: str, formats: Sequence[str] | None = None) -> Path:
    """A file the command will write: its folder must exist (checked before any work is done)."""
    path = Path(text)
    parent = path.parent
    if not parent.is_dir():
        raise InputError(f"{what} {text}: no such directory {str(parent)!r}")
    if path.is_dir():
        raise InputError(f"{what} {text}: is a directory; give a file name")
    if formats is not None and path.suffix.lstrip(".").lower() not in formats:
        raise InputError(f"{what} {text}: unknown file type {path.suffix!r}; allowed: "
                         f"{', '.join('.' + f for f in formats)}")
    return path


def output_dir(text: str, what: str) -> Path:
    """A folder the command will create or write into: checked before any work is done, by
    making (and removing) a folder in its nearest existing ancestor; nothing is left behind."""
    import os
    import tempfile

    path = Path(text)
    if path.exists() and not path.is_dir():
        raise InputError(f"{what} {text}: exists and is not a folder")
    anc = path if path.exists() else next((p for p in path.absolute().parents if p.exists()), Path("/"))
    if not anc.is_dir():
        raise InputError(f"{what} {text}: {str(anc)!r} is not a folder")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".lbsim-probe-", dir=anc))
    except OSError as e:
        raise InputError(f"{what} {text}: cannot write in {str(anc)!r} ({e.strerror})") from None
    return path


#: figure files matplotlib writes without extra packages
FIGURE_FORMATS = ("png", "svg", "pdf")
