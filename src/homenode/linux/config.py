"""The daemon's TOML configuration: which clients, how often, and policy settings.

Every key is optional (the defaults are numad-like: big busy processes and every QEMU
VM).  Every bad key or value is one ``InputError`` naming the file, the key and the
value; nothing is half-applied.  docs/linux.md documents the format.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from homenode.errors import InputError
from homenode.linux.groups import GroupRules, parse_rules
from homenode.settings import Settings
from homenode.units import MIB, parse_duration, parse_size

DEFAULT_PATH = Path("/etc/homenode.toml")
MIN_INTERVAL = 0.05          # s: below this a tick's own cost dominates
NUMAD_MIN_RSS = 300 * MIB    # numad's MEMORY_THRESHOLD
NUMAD_MIN_CPU = 0.5          # numad's CPU_THRESHOLD (cores)
MIGRATION_MODES = ("paced", "bulk")
LOG_FORMATS = ("auto", "journal", "json", "text")


@dataclass(frozen=True)
class DaemonConfig:
    policy: str = "esxi"
    interval: float = 2.0
    dry_run: bool = False
    restore_on_exit: bool = True
    scan_interval: float = 10.0
    numa_maps_interval: float = 10.0
    migration: str = "paced"
    manage_bound: bool = False
    log_format: str = "auto"
    state_file: str = "auto"      # "auto", "off" or a path: see docs/reliability.md


@dataclass(frozen=True)
class ProcessRules:
    pids: tuple[int, ...] = ()
    cmdline: tuple[re.Pattern, ...] = ()
    auto: bool = True
    min_rss: int = NUMAD_MIN_RSS
    min_cpu: float = NUMAD_MIN_CPU
    vms: bool = True
    exclude: tuple[re.Pattern, ...] = ()


@dataclass(frozen=True)
class CgroupRules:
    root: Path | None = None          # None: find the cgroup v2 mount
    parents: tuple[str, ...] = ()


@dataclass(frozen=True)
class Config:
    daemon: DaemonConfig = field(default_factory=DaemonConfig)
    processes: ProcessRules = field(default_factory=ProcessRules)
    cgroups: CgroupRules = field(default_factory=CgroupRules)
    settings: Settings = field(default_factory=Settings)
    source: str = "(defaults)"
    groups: GroupRules = field(default_factory=GroupRules)   # [[groups]], [[constraints]]

    def with_overrides(self, *, dry_run: bool | None = None,
                       interval: float | None = None) -> Config:
        d = self.daemon
        if dry_run:
            d = replace(d, dry_run=True)
        if interval is not None:
            if interval < MIN_INTERVAL:
                raise InputError("--interval", interval, f"must be at least {MIN_INTERVAL} s")
            d = replace(d, interval=interval)
        return replace(self, daemon=d)


# --- loading ------------------------------------------------------------------------------

def load(path: str | Path | None) -> Config:
    """The config at ``path``; None means /etc/homenode.toml if present, else defaults."""
    if path is None:
        if not DEFAULT_PATH.exists():
            return Config()
        path = DEFAULT_PATH
    p = Path(path)
    try:
        text = p.read_text()
    except FileNotFoundError:
        raise InputError("--config", str(path), "no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError("--config", str(path), f"cannot read: {e}") from None
    return parse(text, str(p))


def parse(text: str, where: str = "(config)") -> Config:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise InputError("toml", str(e).split("\n")[0], "not valid TOML", where) from None
    _known(raw, {"daemon", "processes", "cgroups", "settings",
                 "groups", "constraints", "auto_groups"}, "", where)
    daemon = _daemon(_table(raw, "daemon", where), where)
    procs = _processes(_table(raw, "processes", where), where)
    cgroups = _cgroups(_table(raw, "cgroups", where), where)
    settings = Settings.from_mapping(_table(raw, "settings", where), where=where)
    return Config(daemon, procs, cgroups, settings, where,
                  groups=parse_rules(raw, where))


def _table(raw: dict, name: str, where: str) -> dict[str, Any]:
    t = raw.get(name, {})
    if not isinstance(t, dict):
        raise InputError(name, t, f"expected a table ([{name}])", where)
    return t


def _known(t: dict, keys: set[str], prefix: str, where: str) -> None:
    for k in t:
        if k not in keys:
            raise InputError(f"{prefix}{k}", t[k], f"unknown key; expected one of "
                             f"{', '.join(sorted(keys))}", where)


def _bool(t: dict, key: str, default: bool, name: str, where: str) -> bool:
    v = t.get(key, default)
    if not isinstance(v, bool):
        raise InputError(name, v, "expected true or false", where)
    return v


def _choice(t: dict, key: str, default: str, choices: tuple[str, ...], name: str,
            where: str) -> str:
    v = t.get(key, default)
    if v not in choices:
        raise InputError(name, v, f"expected one of {', '.join(choices)}", where)
    return v


def _duration(t: dict, key: str, default: float, name: str, where: str,
              minimum: float = MIN_INTERVAL) -> float:
    if key not in t:
        return default
    v = parse_duration(t[key], name, where)
    if v < minimum:
        raise InputError(name, t[key], f"must be at least {minimum} s", where)
    return v


def _daemon(t: dict, where: str) -> DaemonConfig:
    keys = {f for f in DaemonConfig.__dataclass_fields__}
    _known(t, keys, "daemon.", where)
    d = DaemonConfig()
    policy = t.get("policy", d.policy)
    from homenode.policy import policy_names
    if policy not in policy_names():
        raise InputError("daemon.policy", policy, f"unknown policy; choose from "
                         f"{', '.join(policy_names())}", where)
    return DaemonConfig(
        policy=policy,
        interval=_duration(t, "interval", d.interval, "daemon.interval", where),
        dry_run=_bool(t, "dry_run", d.dry_run, "daemon.dry_run", where),
        restore_on_exit=_bool(t, "restore_on_exit", d.restore_on_exit,
                              "daemon.restore_on_exit", where),
        scan_interval=_duration(t, "scan_interval", d.scan_interval, "daemon.scan_interval",
                                where),
        numa_maps_interval=_duration(t, "numa_maps_interval", d.numa_maps_interval,
                                     "daemon.numa_maps_interval", where),
        migration=_choice(t, "migration", d.migration, MIGRATION_MODES, "daemon.migration",
                          where),
        manage_bound=_bool(t, "manage_bound", d.manage_bound, "daemon.manage_bound", where),
        log_format=_choice(t, "log_format", d.log_format, LOG_FORMATS, "daemon.log_format",
                           where),
        state_file=_state_file(t, d.state_file, where))


def _state_file(t: dict, default: str, where: str) -> str:
    """``daemon.state_file``: "auto" (the default place), "off", or an absolute path."""
    v = t.get("state_file", default)
    if not isinstance(v, str) or not (v in ("auto", "off") or v.startswith("/")):
        raise InputError("daemon.state_file", v, 'expected "auto", "off" or an absolute '
                         "path", where)
    if v.startswith("/") and (v.endswith("/") or "\0" in v):
        raise InputError("daemon.state_file", v, "expected a file path", where)
    return v


def _list(t: dict, key: str, name: str, where: str) -> list:
    v = t.get(key, [])
    if not isinstance(v, list):
        raise InputError(name, v, "expected a list", where)
    return v


def _regexes(t: dict, key: str, where: str) -> tuple[re.Pattern, ...]:
    out = []
    for i, pat in enumerate(_list(t, key, f"processes.{key}", where)):
        name = f"processes.{key}[{i}]"
        if not isinstance(pat, str) or not pat:
            raise InputError(name, pat, "expected a non-empty regular expression", where)
        try:
            out.append(re.compile(pat))
        except re.error as e:
            raise InputError(name, pat, f"bad regular expression: {e}", where) from None
    return tuple(out)


def _processes(t: dict, where: str) -> ProcessRules:
    _known(t, set(ProcessRules.__dataclass_fields__), "processes.", where)
    d = ProcessRules()
    pids = []
    for i, pid in enumerate(_list(t, "pids", "processes.pids", where)):
        if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 1:
            raise InputError(f"processes.pids[{i}]", pid,
                             "expected a process id above 1 (PID 1 is never managed)", where)
        pids.append(pid)
    min_cpu = t.get("min_cpu", d.min_cpu)
    if isinstance(min_cpu, bool) or not isinstance(min_cpu, int | float) or min_cpu < 0:
        raise InputError("processes.min_cpu", min_cpu, "expected cores (a number >= 0)",
                         where)
    return ProcessRules(
        pids=tuple(pids), cmdline=_regexes(t, "cmdline", where),
        auto=_bool(t, "auto", d.auto, "processes.auto", where),
        min_rss=parse_size(t.get("min_rss", d.min_rss), "processes.min_rss", where),
        min_cpu=float(min_cpu), vms=_bool(t, "vms", d.vms, "processes.vms", where),
        exclude=_regexes(t, "exclude", where))


def _cgroups(t: dict, where: str) -> CgroupRules:
    _known(t, {"root", "parents"}, "cgroups.", where)
    root = t.get("root", "")
    if not isinstance(root, str):
        raise InputError("cgroups.root", root, "expected a path", where)
    parents = []
    for i, p in enumerate(_list(t, "parents", "cgroups.parents", where)):
        name = f"cgroups.parents[{i}]"
        if not isinstance(p, str) or not p.strip("/"):
            raise InputError(name, p, "expected a cgroup path such as machine.slice", where)
        if ".." in Path(p).parts:
            raise InputError(name, p, "must not contain '..'", where)
        parents.append(p.strip("/"))
    return CgroupRules(Path(root) if root else None, tuple(parents))
