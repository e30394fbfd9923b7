"""Knob grids: which knob values to measure on which runs, interleaved against the default.

A grid file (``knobs/default.toml``) has ``[[group]]`` tables, each one knob and its values
over a set of runs (transports x workloads x sizes x placements), with other knobs ``fixed``
for the whole group (its default and knob rows alike)::

    name = "knobs-default"
    reps = 2                 # repetitions of each interleaved sequence
    max_minutes = 12         # wall-time bound: no run starts after it
    [run]                    # counts of every run (a group may override them)
    count_pingpong = 400
    count_stream = 1500
    max_seconds = 2
    [[group]]
    name = "mtu-tcp"
    knob = "mtu"
    values = [1500, 9000, 16436]
    transports = ["tcp"]
    workloads = ["stream", "pingpong"]
    sizes = [1024, 65536]
    placements = ["same", "cross"]
    fixed = { tso = "off" }
    [quick]                  # the --quick variant: these groups, these overrides
    groups = ["mtu-tcp"]
    reps = 1
    sizes = [1024]
    values = 1               # the first value of each group only

Interleaving (:func:`sequence`): for each run point, the default (``D``) and the knob's
values run as ``D V1 V2 ... Vn D`` (the default shared at the start and the end), and the
whole pass is repeated ``reps`` times, so slow drift of the host cancels between a knob
value and its default.  Running is in :mod:`.knob_run`.
"""

from __future__ import annotations

import itertools
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .harness_base import TRANSPORTS
from .knobs import KNOBS, KnobError, knob, parse_value

__all__ = ["Group", "Grid", "GridError", "load_grid", "parse_grid", "grid_from_specs",
           "parse_spec", "sequence", "plan", "estimate_seconds"]

GROUP_KEYS = ("name", "knob", "values", "transports", "workloads", "sizes", "placements",
              "fixed", "count_pingpong", "count_stream", "max_seconds")
RUN_KEYS = ("count_pingpong", "count_stream", "max_seconds")
TOP_KEYS = ("name", "reps", "max_minutes", "run", "group", "quick")
QUICK_KEYS = ("groups", "reps", "sizes", "values", "max_minutes") + RUN_KEYS


class GridError(ValueError):
    """A bad grid file or knob option; one line naming the file/key or knob."""


@dataclass(frozen=True)
class Group:
    name: str
    knob: str
    values: tuple
    transports: tuple = ("tcp",)
    workloads: tuple = ("pingpong",)
    sizes: tuple = (64,)
    placements: tuple = ("same",)
    fixed: tuple = ()                 # ((knob, value), ...)
    count_pingpong: int = 500
    count_stream: int = 2000
    max_seconds: float = 2.0


@dataclass(frozen=True)
class Grid:
    name: str
    groups: tuple
    reps: int = 1
    max_minutes: float = 12.0
    source: str = "<options>"


@dataclass(frozen=True)
class Run:
    """One harness run of the plan."""
    group: Group
    setting: str          # '<group>/default' or '<group>/<knob>=<value>'
    value: object         # the knob's value, 'default' for the default
    transport: str
    workload: str
    size: int
    placement: str
    rep: int
    index: int = field(default=0)   # position in the D V1 .. Vn D sequence


def parse_spec(spec: str) -> tuple:
    """``NAME=V1,V2,...`` -> (name, (v1, v2, ...)), each checked; GridError in one line."""
    name, eq, vals = spec.partition("=")
    name = name.strip()
    if not eq or not vals.strip():
        raise GridError(f"--knob {spec!r}: expected NAME=V1,V2,...; knobs: {', '.join(KNOBS)}")
    try:
        knob(name)
        sep = ";" if name in ("tcp_rmem", "tcp_wmem") else ","   # their values hold spaces
        return name, tuple(parse_value(name, v) for v in vals.split(sep))
    except KnobError as e:
        raise GridError(str(e)) from None


def _tuple(where: str, v, conv=None) -> tuple:
    if not isinstance(v, list) or not v:
        raise GridError(f"{where}: expected a non-empty list")
    return tuple(conv(x) if conv else x for x in v)


def _group(src: str, i: int, g: dict, run: dict) -> Group:
    where = f"{src}: group[{i}]"
    if not isinstance(g, dict):
        raise GridError(f"{where}: expected a table")
    bad = sorted(set(g) - set(GROUP_KEYS))
    if bad:
        raise GridError(f"{where}: unknown key {bad[0]!r}; allowed: {', '.join(GROUP_KEYS)}")
    name = str(g.get("name") or g.get("knob") or f"group{i}")
    try:
        kn = knob(str(g.get("knob")))
        values = tuple(parse_value(kn.name, v) for v in _tuple(f"{where}.values", g.get("values")))
        fixed = tuple((k, parse_value(k, v)) for k, v in (g.get("fixed") or {}).items())
    except KnobError as e:
        raise GridError(f"{where} ({name}): {e}") from None
    kw: dict[str, Any] = {k: g.get(k, run.get(k)) for k in RUN_KEYS if g.get(k, run.get(k)) is not None}
    axes: dict[str, Any] = {k: _tuple(f"{where}.{k}", g[k]) for k in ("transports", "workloads", "placements")
                            if k in g}
    if "sizes" in g:
        axes["sizes"] = _tuple(f"{where}.sizes", g["sizes"], int)
    grp = Group(name, kn.name, values, fixed=fixed, **kw, **axes)
    for t in grp.transports:
        if t not in TRANSPORTS:
            raise GridError(f"{where}.transports: {t!r} is not one of {', '.join(TRANSPORTS)}")
    socktypes = [*(grp.values if kn.name == "socktype" else ()), *(v for k, v in fixed if k == "socktype")]
    if any(v != "default" for v in socktypes) and set(grp.transports) != {"unix_dgram"}:
        raise GridError(f"{where} ({name}): socktype seqpacket replaces unix_dgram's sockets; "
                        "allowed: transports = [\"unix_dgram\"]")
    for w in grp.workloads:
        if w not in ("pingpong", "stream"):
            raise GridError(f"{where}.workloads: {w!r} is not pingpong or stream")
    for p in grp.placements:
        if p not in ("same", "cross"):
            raise GridError(f"{where}.placements: {p!r} is not same or cross")
    return grp


def parse_grid(data: dict, source: str = "<grid>", quick: bool = False) -> Grid:
    bad = sorted(set(data) - set(TOP_KEYS))
    if bad:
        raise GridError(f"{source}: unknown key {bad[0]!r}; allowed: {', '.join(TOP_KEYS)}")
    run = dict(data.get("run") or {})
    bad = sorted(set(run) - set(RUN_KEYS))
    if bad:
        raise GridError(f"{source}: run: unknown key {bad[0]!r}; allowed: {', '.join(RUN_KEYS)}")
    raw_groups = data.get("group") or []
    reps, minutes = int(data.get("reps", 1)), float(data.get("max_minutes", 12))
    q = dict(data.get("quick") or {})
    bad = sorted(set(q) - set(QUICK_KEYS))
    if bad:
        raise GridError(f"{source}: quick: unknown key {bad[0]!r}; allowed: {', '.join(QUICK_KEYS)}")
    if quick:
        run.update({k: q[k] for k in RUN_KEYS if k in q})
        reps, minutes = int(q.get("reps", 1)), float(q.get("max_minutes", 1))
        if "groups" in q:
            known = [g.get("name") or g.get("knob") for g in raw_groups]
            for n in q["groups"]:
                if n not in known:
                    raise GridError(f"{source}: quick.groups: no group {n!r}; groups: {', '.join(map(str, known))}")
            raw_groups = [g for g in raw_groups if (g.get("name") or g.get("knob")) in q["groups"]]
        raw_groups = [dict(g, **{k: q[k] for k in RUN_KEYS if k in q}) for g in raw_groups]
    groups = tuple(_group(source, i, g, run) for i, g in enumerate(raw_groups))
    if quick:
        nv = int(q.get("values", 1))
        groups = tuple(replace(g, values=g.values[:nv],
                               sizes=tuple(q["sizes"]) if "sizes" in q else g.sizes[:1])
                       for g in groups)
    if not groups:
        raise GridError(f"{source}: no [[group]] tables")
    return Grid(str(data.get("name", Path(source).stem)), groups, max(1, reps), minutes, source)


def load_grid(path, quick: bool = False) -> Grid:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except OSError as e:
        raise GridError(f"{path}: {e.strerror or e}") from None
    except tomllib.TOMLDecodeError as e:
        raise GridError(f"{path}: {e}") from None
    return parse_grid(data, str(path), quick)


def grid_from_specs(specs, transports=("tcp", "udp", "unix_stream", "unix_dgram"),
                    workloads=("pingpong", "stream"), sizes=(64, 16384),
                    placements=("same", "cross"), reps: int = 2, **run) -> Grid:
    """A grid of one group per ``--knob NAME=V1,V2`` spec over the given runs."""
    groups = []
    for spec in specs:
        name, values = parse_spec(spec)
        # socktype only has a setting on unix_dgram runs (it replaces their sockets)
        trs = tuple(t for t in transports if name != "socktype" or t == "unix_dgram")
        if not trs:
            raise GridError(f"--knob {spec!r}: socktype needs the unix_dgram transport (--transports unix_dgram)")
        groups.append(Group(name, name, values, trs, tuple(workloads),
                            tuple(int(s) for s in sizes), tuple(placements), **run))
    if not groups:
        raise GridError("no --knob given")
    return Grid("knobs", tuple(groups), reps)


def sequence(values, reps: int) -> list:
    """The interleaved order of one run point: ``D V1 .. Vn D``, ``reps`` times, as
    (rep, index, value) with 'default' for D."""
    seq = ["default", *values, "default"]
    return [(r, i, v) for r in range(reps) for i, v in enumerate(seq)]


def plan(grid: Grid) -> list:
    """Every run of the grid, in the order they are run."""
    runs = []
    for g in grid.groups:
        points = list(itertools.product(g.transports, g.workloads, g.sizes, g.placements))
        for rep in range(grid.reps):
            for (t, w, s, p) in points:
                for (_r, i, v) in sequence(g.values, 1):
                    setting = f"{g.name}/default" if v == "default" else f"{g.name}/{g.knob}={v}"
                    runs.append(Run(g, setting, v, t, w, int(s), p, rep, i))
    return runs


def estimate_seconds(runs) -> float:
    """A rough wall time, about a quarter above what was measured: 0.08 s of set-up per run
    (namespace, harness start), a datagram stream's 0.05 s idle tail, and the messages at a few
    microseconds each (a quiet 2-vCPU AMD guest ran the 976-run grid of 2026-12-07 in 158 s,
    which this gives as 200 s)."""
    total = 0.0
    for r in runs:
        flows = max([1] + [v for k, v in r.group.fixed if k == "flows"]
                    + ([r.value] if r.group.knob == "flows" and r.value != "default" else []))
        per = 25e-6 if r.workload == "pingpong" else 3e-6 + r.size / 1e9
        n = (r.group.count_pingpong if r.workload == "pingpong" else r.group.count_stream) * flows
        tail = 0.05 if r.workload == "stream" and r.transport in ("udp", "unix_dgram") else 0.0
        total += 0.08 + tail + min(r.group.max_seconds, n * per)
    return total
