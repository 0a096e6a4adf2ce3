"""`homenode check FILE`: validate a daemon config or a scenario, running nothing.

It reads the file as `homenode run --config` or `homenode simulate FILE` would, so the
same one-line error (exit 2) comes out; it needs no privileges and touches no host.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import click

from homenode.cli.group import cli
from homenode.errors import InputError

CONFIG_TABLES = frozenset({"daemon", "processes", "cgroups", "settings", "groups",
                           "constraints", "auto_groups"})
KINDS = ("auto", "config", "scenario")


def guess_kind(path: Path) -> str:
    """A config has only the config's tables; anything else is taken for a scenario, whose
    parser then names the field it does not know."""
    try:
        doc = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return "scenario" if path.suffix != ".toml" or "scenario" in path.name else "config"
    return "config" if doc and set(doc) <= CONFIG_TABLES else "scenario"


def check_config(path: Path) -> str:
    from homenode.linux import config
    cfg = config.load(path)
    d, p = cfg.daemon, cfg.processes
    rules = [f"{len(p.pids)} pids", f"{len(p.cmdline)} cmdline rules",
             "auto on" if p.auto else "auto off", "VMs on" if p.vms else "VMs off",
             f"{len(cfg.cgroups.parents)} cgroup parents"]
    return (f"{path}: ok: daemon config, policy {d.policy}, interval {d.interval:g} s, "
            f"{'dry run, ' if d.dry_run else ''}{', '.join(rules)}")


def check_scenario(path: Path) -> str:
    from homenode.settings import Settings
    from homenode.sim import scenario as scenarios
    sc = scenarios.load(str(path))
    Settings.from_mapping(sc.settings, where=sc.source)
    return (f"{path}: ok: scenario {sc.name}, {sc.host.topology.n} nodes, "
            f"{len(sc.clients)} clients, {len(sc.events)} events, {sc.duration:g} s, "
            f"{len(sc.expect)} expectations")


@cli.command("check")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--kind", type=click.Choice(KINDS), default="auto", show_default=True,
              help="What FILE is (auto: a file of only [daemon], [processes], [cgroups], "
              "[settings], [[groups]], [[constraints]] tables is a config).")
def check_cmd(file: Path, kind: str) -> None:
    """Validate a daemon config or a scenario without running it: one line `ok` (exit 0),
    or the one-line error every command gives (exit 2). Needs no privileges."""
    if not file.is_file():
        raise InputError("FILE", str(file), "no such file")
    kind = guess_kind(file) if kind == "auto" else kind
    click.echo(check_config(file) if kind == "config" else check_scenario(file))
