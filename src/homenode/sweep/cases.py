"""A spec expanded into cases: one ``simulation.simulate`` run each, keyed by a content
hash of everything that decides its result.

A case's scenario is TOML text: for a trace set it is written here (the shape's [host]
table, one [[traces]] table listing the group's files, ``offset`` = day x day_samples);
for a scenario set it is the file's or the built-in's own text.  Trace files are named
relative to the traces directory and carried as (path, sha256) pairs: the local pool
reads them from that directory, a Dask worker gets their bytes (see ``runner``).

The key is sha256 over the scenario text, the trace files' hashes, the policy, the
settings, the seed and the homenode version: change any of them and the case is new.
"""

from __future__ import annotations

import glob
import hashlib
import itertools
import json
import math
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from homenode import __version__
from homenode.errors import InputError
from homenode.sim import scenario as scenarios
from homenode.sim.traces import ENV_TRACES_DIR, Trace, footprint, read_trace, traces_dir, window
from homenode.sweep import grouping
from homenode.sweep.spec import SYNTHETIC, Spec, TraceSet
from homenode.units import parse_size

FAMILY_TRACES = "traces"
FAMILY_SCENARIO = "scenario"


@dataclass(frozen=True)
class Case:
    key: str
    label: str                          # the instance: everything but policy, seed, grid
    family: str
    set: str
    day: int | None
    shape: str
    group: int | None
    policy: str
    seed: int
    settings: tuple[tuple[str, Any], ...]
    text: str
    traces: tuple[tuple[str, str], ...]  # (path relative to the traces dir, sha256)
    facts: tuple[tuple[str, Any], ...]   # demand and memory of the case, for the table

    @property
    def grid(self) -> str:
        return ",".join(f"{k}={v}" for k, v in self.settings)

    @property
    def instance(self) -> str:
        """What policies are compared on: the case less its policy."""
        return f"{self.label} seed {self.seed}" + (f" {self.grid}" if self.settings else "")

    def meta(self) -> dict[str, Any]:
        return {"key": self.key, "label": self.label, "family": self.family, "set": self.set,
                "day": self.day, "shape": self.shape, "group": self.group,
                "policy": self.policy, "seed": self.seed, "grid": self.grid,
                **dict(self.facts)}


@dataclass(frozen=True)
class Plan:
    spec: Spec
    cases: list[Case]
    root: Path                           # the traces directory
    files: dict[str, Path]               # sha256 -> a file with those bytes


def case_key(text: str, traces: tuple[tuple[str, str], ...], policy: str,
             settings: tuple[tuple[str, Any], ...], seed: int) -> str:
    blob = json.dumps({"scenario": text, "traces": [list(t) for t in traces], "policy": policy,
                       "settings": [list(s) for s in settings], "seed": seed,
                       "version": __version__}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def expand(spec: Spec) -> Plan:
    """Every case of the spec; bad input (a missing trace file, a shape the footprints
    cannot fit, ...) is an ``InputError`` before anything runs."""
    root = traces_dir(spec.traces_dir or None)
    files: dict[str, Path] = {}
    combos = _grid_points(spec)
    cases: list[Case] = []
    for ts in spec.trace_sets:
        cases += _trace_cases(spec, ts, root, files, combos)
    labels: set[str] = set()
    for ss_i, ss in enumerate(spec.scenario_sets):
        cases += _scenario_cases(spec, ss_i, ss, root, files, combos, labels)
    keys = [c.key for c in cases]
    if len(set(keys)) != len(keys):
        dup = next(c for c in cases if keys.count(c.key) > 1)
        raise InputError("cases", dup.instance, "the spec names this case twice", spec.source)
    return Plan(spec, cases, root, files)


def _grid_points(spec: Spec) -> list[tuple[tuple[str, Any], ...]]:
    names = [n for n, _ in spec.grid]
    return [tuple(zip(names, vals, strict=True))
            for vals in itertools.product(*(v for _, v in spec.grid))]


def _sha(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _resolve(patterns: tuple[str, ...] | list[str], root: Path, field: str,
             where: str) -> list[Path]:
    if not root.is_dir():
        raise InputError("traces_dir", str(root), f"no such directory (set ${ENV_TRACES_DIR} "
                         "or the spec's traces_dir)", where)
    found: list[Path] = []
    for pat in patterns:
        hits = sorted(Path(h) for h in glob.glob(str(root / pat)) if Path(h).is_file())
        if not hits:
            raise InputError(field, pat, f"matches no file in {root}", where)
        found += [h for h in hits if h not in found]
    return found


# --- trace sets -------------------------------------------------------------------------

def _trace_cases(spec: Spec, ts: TraceSet, root: Path, files: dict[str, Path],
                 combos: list[tuple[tuple[str, Any], ...]]) -> list[Case]:
    i = spec.trace_sets.index(ts)
    field = f"traces[{i}]"
    paths = _resolve(ts.files, root, f"{field}.files", spec.source)
    names = {p.name for p in paths}
    for ex in ts.exclude:
        if ex not in names:
            raise InputError(f"{field}.exclude", ex, "is not among the files matched",
                             spec.source)
    paths = [p for p in paths if p.name not in ts.exclude]
    if not paths:
        raise InputError(f"{field}.exclude", list(ts.exclude), "excludes every file",
                         spec.source)
    vcpus = int(ts.scenario.get("vcpus", 1))
    traces = {p: read_trace(p, ts.fmt, vcpus) for p in paths}
    shas = {p: _sha(p) for p in paths}
    for p, h in shas.items():
        files.setdefault(h, p)
    fixed_mem = parse_size(ts.scenario["memory"], "memory") if "memory" in ts.scenario \
        else None
    mem_min = parse_size(ts.scenario.get("memory_min", 0), "memory_min")
    stat = ts.scenario.get("memory_stat", "max")
    n_days = max(len(tr) for tr in traces.values()) // ts.day_samples
    days = ts.days if ts.days is not None else tuple(range(n_days))
    for d in days:
        if d >= n_days:
            raise InputError(f"{field}.days", d, f"the traces hold {n_days} full day(s) of "
                             f"{ts.day_samples} samples", spec.source)
    cases: list[Case] = []
    for shape_name in ts.shapes:
        shape = spec.shapes[shape_name]
        vms = [grouping.VM(p.name, float(tr.cpu.mean()),
                           max(fixed_mem if fixed_mem is not None else
                               int(tr.mem_bytes.max()), mem_min))
               for p, tr in traces.items()]
        groups = grouping.plan(vms, shape.cores, shape.memory, load=ts.group_load,
                               memory_share=ts.group_memory, groups=ts.groups,
                               field=f"shapes.{shape_name}.memory_per_node",
                               where=spec.source)
        by_name = {p.name: p for p in paths}
        for d in days:
            for g, members in enumerate(groups):
                offset = d * ts.day_samples
                # A VM whose trace does not cover the whole day is not on the host then.
                day = [by_name[m] for m in members
                       if len(traces[by_name[m]]) >= offset + ts.day_samples]
                if not day:
                    continue
                facts = _facts(ts, [traces[p] for p in day], offset, shape, fixed_mem,
                               mem_min, stat, f"shapes.{shape_name}.memory_per_node",
                               spec.source)
                rel = tuple((str(p.relative_to(root)), shas[p]) for p in day)
                label = f"{ts.name}/d{d:02d}/{shape_name}/g{g}"
                for k in range(ts.seeds):
                    seed = ts.seed + k
                    text = _trace_text(spec, ts, label, shape.table, rel, offset, seed,
                                       f"day {d} of {ts.name}, group {g} of {len(groups)} "
                                       f"on {shape_name}")
                    cases += _cases(text, rel, ts.policies, combos, seed, label,
                                    FAMILY_TRACES, ts.name, d, shape_name, g, facts)
    return cases


def _facts(ts: TraceSet, trs: list[Trace], offset: int, shape: Any, fixed_mem: int | None,
           mem_min: int, stat: str, field: str, where: str) -> tuple[tuple[str, Any], ...]:
    wins = [window(tr, offset, ts.day_samples) for tr in trs]
    demand = np.sum([w.cpu for w in wins], axis=0)
    mem = sum(max(fixed_mem if fixed_mem is not None else footprint(w, stat), mem_min)
              for w in wins)
    if mem > shape.memory:
        raise InputError(field, f"{shape.memory / 2**30:g} GiB", f"the day's footprints "
                         f"({mem / 2**30:.1f} GiB) do not fit the host", where)
    return (("clients", len(trs)), ("cores", shape.cores),
            ("demand_mean_share", round(float(demand.mean()) / shape.cores, 4)),
            ("demand_peak_share", round(float(demand.max()) / shape.cores, 4)),
            ("memory_share", round(mem / shape.memory, 4)))


def _trace_text(spec: Spec, ts: TraceSet, label: str, host: dict[str, Any],
                rel: tuple[tuple[str, str], ...], offset: int, seed: int, what: str) -> str:
    lines = [f"name = {_toml(label)}",
             f"description = {_toml(f'sweep {spec.name}: {what}')}",
             f"duration = {_toml(ts.day_samples * ts.step)}", f"seed = {seed}", "", "[host]"]
    lines += [f"{k} = {_toml(v)}" for k, v in host.items()]
    lines += ["", "[[traces]]", f"format = {_toml(ts.fmt)}",
              f"files = {_toml([r for r, _ in rel])}", f"step = {_toml(ts.step)}",
              f"offset = {offset}"]
    lines += [f"{k} = {_toml(v)}" for k, v in ts.scenario.items()]
    return "\n".join(lines) + "\n"


def _toml(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            raise ValueError(v)
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_toml(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} into a case's TOML")


def _cases(text: str, rel: tuple[tuple[str, str], ...], policies: tuple[str, ...],
           combos: list[tuple[tuple[str, Any], ...]], seed: int, label: str, family: str,
           set_name: str, day: int | None, shape: str, group: int | None,
           facts: tuple[tuple[str, Any], ...]) -> list[Case]:
    return [Case(case_key(text, rel, p, combo, seed), label, family, set_name, day, shape,
                 group, p, seed, combo, text, rel, facts)
            for combo in combos for p in policies]


# --- scenario sets ------------------------------------------------------------------------

def _scenario_cases(spec: Spec, ss_i: int, ss: Any, root: Path, files: dict[str, Path],
                    combos: list[tuple[tuple[str, Any], ...]], labels: set[str]) -> list[Case]:
    field = f"scenarios[{ss_i}]"
    sources: list[tuple[str, str]] = []          # (text, where)
    for name in ss.names:
        names = scenarios.builtin_names() if name == SYNTHETIC else [name]
        for n in names:
            text = resources.files("homenode.sim.scenarios").joinpath(f"{n}.toml").read_text()
            if name == SYNTHETIC and "traces" in tomllib.loads(text):
                continue
            sources.append((text, f"{n}.toml"))
    for p in ss.files:
        try:
            sources.append((p.read_text(), str(p)))
        except (OSError, UnicodeDecodeError) as e:
            raise InputError(f"{field}.files", str(p), f"cannot read: {e}") from None
    cases: list[Case] = []
    for text, where in sources:
        doc = tomllib.loads(text) if text else {}
        rel: tuple[tuple[str, str], ...] = ()
        if "traces" in doc:
            if "traces_dir" in doc:
                raise InputError("traces_dir", doc["traces_dir"], "a sweep resolves trace "
                                 "files itself (spec traces_dir or $" + ENV_TRACES_DIR +
                                 "); remove it from the scenario", where)
            paths = []
            for tt in doc["traces"] if isinstance(doc["traces"], list) else []:
                pats = tt.get("files") if isinstance(tt, dict) else None
                pats = [pats] if isinstance(pats, str) else pats
                if isinstance(pats, list):
                    paths += _resolve([x for x in pats if isinstance(x, str)], root,
                                      "traces.files", where)
            shas = [(p, _sha(p)) for p in paths]
            for p, h in shas:
                files.setdefault(h, p)
            rel = tuple(sorted((str(p.relative_to(root)), h) for p, h in shas))
        sc = scenarios.parse(text, where) if not rel else _parse_at(text, where, root)
        if sc.name in labels:
            raise InputError(f"{field}.names", sc.name, "two scenarios of the spec have this "
                             "name", spec.source)
        labels.add(sc.name)
        facts = (("clients", len(sc.clients)), ("cores", float(sc.host.topology.cores.sum())),
                 ("demand_mean_share", None), ("demand_peak_share", None),
                 ("memory_share", None))
        for k in range(ss.seeds):
            cases += _cases(text, rel, ss.policies, combos, sc.seed + k, sc.name,
                            FAMILY_SCENARIO, f"scenarios[{ss_i}]", None, "", None, facts)
    return cases


def _parse_at(text: str, where: str, root: Path) -> scenarios.Scenario:
    return scenarios.parse(with_traces_dir(text, root), where)


def with_traces_dir(text: str, root: Path) -> str:
    """The scenario text with its traces read from ``root`` (a top-level key, so first)."""
    return f"traces_dir = {json.dumps(str(root))}\n{text}"
