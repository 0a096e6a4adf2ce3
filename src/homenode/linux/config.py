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

from homenode.errors import InputError
from homenode.inputs import MAX_CPUS, Table, number
from homenode.linux.grouprules import GroupRules, parse_rules
from homenode.settings import Settings
from homenode.units import MIB

DEFAULT_PATH = Path("/etc/homenode.toml")
MIN_INTERVAL = 0.05          # s: below this a tick's own cost dominates
NUMAD_MIN_RSS = 300 * MIB    # numad's MEMORY_THRESHOLD
NUMAD_MIN_CPU = 0.5          # numad's CPU_THRESHOLD (cores)
MIGRATION_MODES = ("paced", "bulk")
LOG_FORMATS = ("auto", "journal", "json", "text")
PID_MAX = 1 << 22            # the kernel's PID_MAX_LIMIT on 64-bit


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
    nice: int = -10               # the control loop's thread (copiers: page_mig_copier_nice)


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
    t = Table(raw, "", where, hint=True)
    daemon = _daemon(t.sub("daemon"))
    procs = _processes(t.sub("processes"))
    cgroups = _cgroups(t.sub("cgroups"))
    settings = Settings.from_mapping(t.sub("settings").data, where=where)
    groups = parse_rules(t)
    t.done()
    return Config(daemon, procs, cgroups, settings, where, groups=groups)


def _daemon(t: Table) -> DaemonConfig:
    d = DaemonConfig()
    policy = t.raw("policy", d.policy)
    from homenode.policy import policy_names
    if policy not in policy_names():
        raise t.fail("policy", policy, f"unknown policy; choose from "
                     f"{', '.join(policy_names())}")
    cfg = DaemonConfig(
        policy=policy,
        interval=t.duration("interval", d.interval, lo=MIN_INTERVAL),
        dry_run=t.bool("dry_run", d.dry_run),
        restore_on_exit=t.bool("restore_on_exit", d.restore_on_exit),
        scan_interval=t.duration("scan_interval", d.scan_interval, lo=MIN_INTERVAL),
        numa_maps_interval=t.duration("numa_maps_interval", d.numa_maps_interval,
                                      lo=MIN_INTERVAL),
        migration=t.choice("migration", d.migration, MIGRATION_MODES),
        manage_bound=t.bool("manage_bound", d.manage_bound),
        log_format=t.choice("log_format", d.log_format, LOG_FORMATS),
        state_file=_state_file(t, d.state_file),
        nice=t.int("nice", d.nice, lo=-20, hi=19))
    t.done()
    return cfg


def _state_file(t: Table, default: str) -> str:
    """``daemon.state_file``: "auto" (the default place), "off", or an absolute path."""
    v = t.raw("state_file", default)
    if not isinstance(v, str) or not (v in ("auto", "off") or v.startswith("/")):
        raise t.fail("state_file", v, 'expected "auto", "off" or an absolute path')
    if v.startswith("/") and (v.endswith("/") or "\0" in v):
        raise t.fail("state_file", v, "expected a file path")
    return v


def _regexes(t: Table, key: str) -> tuple[re.Pattern, ...]:
    out = []
    for i, pat in enumerate(t.array(key)):
        name = f"{key}[{i}]"
        if not isinstance(pat, str) or not pat:
            raise t.fail(name, pat, "expected a non-empty regular expression")
        try:
            out.append(re.compile(pat))
        except re.error as e:
            raise t.fail(name, pat, f"bad regular expression: {e}") from None
    return tuple(out)


def _processes(t: Table) -> ProcessRules:
    d = ProcessRules()
    pids = []
    for i, pid in enumerate(t.array("pids")):
        if isinstance(pid, bool) or not isinstance(pid, int) or not 1 < pid <= PID_MAX:
            raise t.fail(f"pids[{i}]", pid,
                         "expected a process id above 1 (PID 1 is never managed)")
        pids.append(pid)
    min_cpu = t.raw("min_cpu", d.min_cpu)
    # ``not >= 0`` also refuses NaN, which passes every range check.
    if isinstance(min_cpu, bool) or not isinstance(min_cpu, int | float) or \
            not min_cpu >= 0:
        raise t.fail("min_cpu", min_cpu, "expected cores (a number >= 0)")
    number(min_cpu, t.name("min_cpu"), t.where, hi=MAX_CPUS)
    rules = ProcessRules(
        pids=tuple(pids), cmdline=_regexes(t, "cmdline"),
        auto=t.bool("auto", d.auto), min_rss=t.size("min_rss", d.min_rss),
        min_cpu=float(min_cpu), vms=t.bool("vms", d.vms), exclude=_regexes(t, "exclude"))
    t.done()
    return rules


def _cgroups(t: Table) -> CgroupRules:
    root = t.raw("root", "")
    if not isinstance(root, str):
        raise t.fail("root", root, "expected a path")
    parents = []
    for i, p in enumerate(t.array("parents")):
        name = f"parents[{i}]"
        if not isinstance(p, str) or not p.strip("/"):
            raise t.fail(name, p, "expected a cgroup path such as machine.slice")
        if ".." in Path(p).parts:
            raise t.fail(name, p, "must not contain '..'")
        parents.append(p.strip("/"))
    t.done()
    return CgroupRules(Path(root) if root else None, tuple(parents))
