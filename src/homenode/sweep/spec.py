"""The sweep spec: a TOML file (or a built-in name) read through the scenario format's
checked ``Table``, so a bad field is one line naming it and its value.

    name = "train"
    policies = ["esxi", "static", "numad", "autonuma", "optimal"]
    [shapes.2x12]            # a scenario [host] table
    [[traces]]               # a trace set: days x host-sized groups x shapes
    [[scenarios]]            # built-in names or scenario files, x seeds
    [grid]                   # settings: every combination of the lists

The full reference is docs/sweep.md.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from homenode.errors import InputError
from homenode.inputs import packaged_names, read_named
from homenode.policy import policy_names
from homenode.settings import Settings
from homenode.sim.scenario import HostSpec, Table, parse_host
from homenode.sim.traces import FORMATS, MEMORY_STATS
from homenode.units import GIB, PAGE_SIZE

DEFAULT_POLICIES = ("esxi", "static", "numad", "autonuma", "optimal")
DAY_SAMPLES = 288           # 5-minute samples in a day: one trace case per day
GROUP_LOAD = 0.7            # a group's mean demand as a share of the host's cores
GROUP_MEMORY = 0.9          # a group's footprints may fill this share of host memory
SYNTHETIC = "synthetic"     # every built-in scenario without [[traces]]


@dataclass(frozen=True)
class Shape:
    name: str
    table: dict[str, Any]       # the [host] table as written (goes into each case's text)
    host: HostSpec

    @property
    def cores(self) -> float:
        return float(self.host.topology.cores.sum())

    @property
    def memory(self) -> int:
        return int(self.host.topology.mem_pages.sum()) * PAGE_SIZE


@dataclass(frozen=True)
class TraceSet:
    name: str
    fmt: str
    files: tuple[str, ...]
    exclude: tuple[str, ...]
    shapes: tuple[str, ...]
    days: tuple[int, ...] | None
    day_samples: int
    step: float
    groups: int                 # 0: as many as the load target asks (see grouping)
    group_load: float
    group_memory: float
    seeds: int
    seed: int
    policies: tuple[str, ...]
    scenario: dict[str, Any]    # [[traces]] fields copied into every case's scenario


@dataclass(frozen=True)
class ScenarioSet:
    names: tuple[str, ...]      # built-in scenario names
    files: tuple[Path, ...]
    seeds: int
    policies: tuple[str, ...]


@dataclass(frozen=True)
class Spec:
    name: str
    description: str
    source: str
    text: str
    traces_dir: str
    shapes: dict[str, Shape]
    trace_sets: tuple[TraceSet, ...]
    scenario_sets: tuple[ScenarioSet, ...]
    grid: tuple[tuple[str, tuple[Any, ...]], ...] = field(default=())


def builtin_specs() -> list[str]:
    return packaged_names("homenode.sweep.specs")


def load(name_or_path: str) -> Spec:
    """A built-in spec by name, or a TOML file by path."""
    return parse(*read_named(name_or_path, "homenode.sweep.specs", "SPEC", "spec"))


def parse(text: str, where: str, base: Path | None) -> Spec:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise InputError("toml", where, f"not valid TOML: {e}") from None
    t = Table(doc, "", where)
    name = t.str("name", Path(where).stem)
    desc = t.str("description", "")
    policies = _policies(t, "policies", DEFAULT_POLICIES)
    traces_dir = t.str("traces_dir", "")
    if traces_dir and base is not None and not Path(traces_dir).expanduser().is_absolute():
        traces_dir = str(base / traces_dir)
    shapes = _shapes(t.sub("shapes"))
    trace_sets = tuple(_trace_set(tt, shapes, policies) for tt in t.list("traces"))
    names = [s.name for s in trace_sets]
    for i, n in enumerate(names):
        if n in names[:i]:
            raise InputError(f"traces[{i}].name", n, "must be unique", where)
    scen_sets = tuple(_scenario_set(st, policies, base) for st in t.list("scenarios"))
    grid = _grid(t.sub("grid"))
    t.done()
    if not trace_sets and not scen_sets:
        raise InputError("traces", [], "a spec needs at least one [[traces]] or "
                         "[[scenarios]] table", where)
    return Spec(name, desc, where, text, traces_dir, shapes, trace_sets, scen_sets, grid)


def _policies(t: Table, key: str, default: tuple[str, ...]) -> tuple[str, ...]:
    v = t.raw(key, list(default))
    known = policy_names()
    if not isinstance(v, list) or not v or not all(isinstance(p, str) for p in v):
        raise InputError(t.prefix + key, v, "must be a non-empty list of policy names",
                         t.where)
    for p in v:
        if p not in known:
            raise InputError(t.prefix + key, p, f"unknown policy; choose from "
                             f"{', '.join(known)}", t.where)
    if len(set(v)) != len(v):
        raise InputError(t.prefix + key, v, "a policy is named twice", t.where)
    return tuple(v)


def _shapes(t: Table) -> dict[str, Shape]:
    out = {}
    for name in list(t.data):
        st = t.sub(name)
        out[name] = Shape(name, dict(st.data), parse_host(st))
    return out


def _str_list(t: Table, key: str, default: list[str] | None) -> list[str] | None:
    v = t.raw(key, default)
    if v is None:
        return None
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, list) or not all(isinstance(x, str) and x for x in v):
        raise InputError(t.prefix + key, v, "must be a string or a list of strings", t.where)
    return v


def _trace_set(tt: Table, shapes: dict[str, Shape], policies: tuple[str, ...]) -> TraceSet:
    name = tt.str("name", "")
    if not name or "/" in name:
        raise InputError(f"{tt.prefix}name", name, "must be a non-empty name without '/'",
                         tt.where)
    fmt = tt.str("format", "")
    if fmt not in FORMATS:
        raise InputError(f"{tt.prefix}format", fmt, f"must be one of {', '.join(FORMATS)}",
                         tt.where)
    files = _str_list(tt, "files", None)
    if not files:
        raise InputError(f"{tt.prefix}files", tt.data.get("files"), "name the trace files "
                         "(a glob or a list, relative to the traces directory)", tt.where)
    exclude = _str_list(tt, "exclude", []) or []
    on = _str_list(tt, "shapes", None)
    if not on:
        raise InputError(f"{tt.prefix}shapes", tt.data.get("shapes"),
                         "name at least one host shape from [shapes]", tt.where)
    for s in on:
        if s not in shapes:
            raise InputError(f"{tt.prefix}shapes", s, f"no such shape in [shapes] "
                             f"({', '.join(shapes) or 'none defined'})", tt.where)
    days = tt.raw("days", None)
    if days is not None and (not isinstance(days, list) or not days or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in days)):
        raise InputError(f"{tt.prefix}days", days, "must be a list of day indices (0 = the "
                         "first day)", tt.where)
    day_samples = tt.int("day_samples", DAY_SAMPLES, lo=1)
    step = tt.duration("step", 5.0)
    if step <= 0:
        raise InputError(f"{tt.prefix}step", step, "must be positive", tt.where)
    scenario: dict[str, Any] = {}
    if fmt == "planetlab":
        scenario["vcpus"] = tt.int("vcpus", 1, lo=1, hi=4096)
        scenario["memory"] = tt.raw("memory", "2GiB")
        tt.size("memory", 2 * GIB)
    else:
        stat = tt.str("memory_stat", "max")
        if stat not in MEMORY_STATS:
            raise InputError(f"{tt.prefix}memory_stat", stat,
                             f"must be one of {', '.join(MEMORY_STATS)}", tt.where)
        scenario["memory_stat"] = stat
    if "memory_min" in tt.data:
        tt.size("memory_min", 0)
        scenario["memory_min"] = tt.data["memory_min"]
    scenario["mem_intensity"] = tt.float("mem_intensity", 0.5, lo=0.0, hi=1.0)
    if "start_every" in tt.data:
        tt.duration("start_every", 0.0)
        scenario["start_every"] = tt.data["start_every"]
    scenario["name"] = tt.str("client_name", "{stem}")
    ts = TraceSet(
        name, fmt, tuple(files), tuple(exclude), tuple(on),
        tuple(days) if days is not None else None, day_samples, step,
        tt.int("groups", 0, lo=0), tt.float("group_load", GROUP_LOAD, lo=0.01, hi=10.0),
        tt.float("group_memory", GROUP_MEMORY, lo=0.01, hi=1.0),
        tt.int("seeds", 1, lo=1, hi=1000), tt.int("seed", 1, lo=0),
        _policies(tt, "policies", policies), scenario)
    tt.done()
    return ts


def _scenario_set(st: Table, policies: tuple[str, ...], base: Path | None) -> ScenarioSet:
    from homenode.sim.scenario import builtin_names

    names = _str_list(st, "names", []) or []
    known = builtin_names()
    for n in names:
        if n != SYNTHETIC and n not in known:
            raise InputError(f"{st.prefix}names", n, f"no such built-in scenario "
                             f"({SYNTHETIC}, {', '.join(known)})", st.where)
    files = []
    for f in _str_list(st, "files", []) or []:
        p = Path(f).expanduser()
        p = p if p.is_absolute() or base is None else base / p
        if not p.is_file():
            raise InputError(f"{st.prefix}files", f, "no such scenario file", st.where)
        files.append(p)
    if not names and not files:
        raise InputError(f"{st.prefix}names", names, "name built-in scenarios or files",
                         st.where)
    out = ScenarioSet(tuple(names), tuple(files), st.int("seeds", 1, lo=1, hi=1000),
                      _policies(st, "policies", policies))
    st.done()
    return out


def _grid(t: Table) -> tuple[tuple[str, tuple[Any, ...]], ...]:
    out = []
    for name in sorted(t.data):
        values = t.raw(name, None)
        if not isinstance(values, list) or not values:
            raise InputError(f"grid.{name}", values, "must be a non-empty list of values",
                             t.where)
        for v in values:
            try:
                Settings.from_mapping({name: v})
            except InputError as e:
                raise InputError(f"grid.{name}", v, e.problem, t.where) from None
        out.append((name, tuple(values)))
    t.done()
    return tuple(out)
