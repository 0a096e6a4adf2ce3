"""`homenode simulate`, `homenode scenarios`, `homenode settings`."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from homenode import summarykeys
from homenode.cli.group import cli
from homenode.cli.params import Count, Duration, Number
from homenode.errors import InputError
from homenode.inputs import check_out_dir, check_socket_path
from homenode.ops.html import write_report
from homenode.ops.live import LIVE_SPEED, start_live
from homenode.policy import policy_names
from homenode.report import check_out
from homenode.settings import Settings, parse_assignments
from homenode.settings import profile as settings_profile
from homenode.sim import scenario as scenarios
from homenode.sim import traces
from homenode.simulation import simulate, verdicts

DEFAULT_OUT = "homenode-out"
MAX_SPEED = 1e6   # simulated seconds per wall second for --live; faster is not "live"


@cli.command("simulate")
@click.argument("scenario", default=scenarios.DEFAULT_SCENARIO, metavar="[SCENARIO|FILE]")
@click.option("--policy", default="esxi", show_default=True, help="Policy to run.")
@click.option("--duration", type=Duration(positive=True), default=None, metavar="DURATION",
              help="Simulated time, e.g. 120s or 2m (default: the scenario's).")
@click.option("--seed", type=Count(0), default=None,
              help="RNG seed (default: the scenario's).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_OUT,
              show_default=True, help="Directory for timeseries.csv, summary.json, plots.")
@click.option("--set", "sets", multiple=True, metavar="NAME=VALUE",
              help="Override a policy setting (see `homenode settings`); repeatable.")
@click.option("--profile", default=None, metavar="NAME",
              help="Start from a named settings profile: homenode (default) or "
              "esxi-default (the same policy configured as ESXi ships).")
@click.option("--real-time", is_flag=True, help="Play trace scenarios at the traces' own "
              "time step instead of compressed (docs/baselines.md).")
@click.option("--no-plots", is_flag=True, help="Skip the PNG plots and report.html.")
@click.option("--check", is_flag=True, help="Exit 1 when the run misses one of the "
              "scenario's [expect] entries (the verdicts are printed either way).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar or table; print the "
              "output directory only.")
@click.option("--live", is_flag=True, help="Serve the status API while the simulation runs, "
              "paced to --speed, so `homenode top` can watch it.")
@click.option("--speed", type=Number(0.0, MAX_SPEED, positive=True), default=LIVE_SPEED,
              show_default=True,
              help="With --live: simulated seconds per wall second.")
@click.option("--socket", "socket_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="With --live: the status API socket (default: as for "
              "`homenode top`).")
@click.option("--metrics", "metrics_addr", default=None, metavar="HOST:PORT",
              help="With --live: also serve Prometheus metrics there (loopback only).")
def simulate_cmd(scenario: str, policy: str, duration: float | None, seed: int | None,
                 out: Path, sets: tuple[str, ...], profile: str | None, real_time: bool,
                 no_plots: bool, check: bool, quiet: bool, live: bool,
                 speed: float, socket_path: Path | None, metrics_addr: str | None) -> None:
    """Run a policy on a simulated NUMA host and write its metrics to --out."""
    if policy not in policy_names():
        raise InputError("--policy", policy, f"unknown policy; choose from "
                         f"{', '.join(policy_names())}")
    sc = scenarios.load(scenario)
    check_out(out)
    if real_time:
        sc = traces.real_time(sc)
    overrides = parse_assignments(list(sets))
    Settings.from_mapping(overrides)   # fail before running anything
    if profile:
        settings_profile(profile)
    check_out_dir(out, "--out")
    if live and socket_path is not None:
        check_socket_path(socket_path, "--socket")
    total = duration or sc.duration
    console = Console(stderr=True)
    with start_live(live, sc, policy, overrides=overrides, socket_path=socket_path,
                    speed=speed, metrics_addr=metrics_addr, profile=profile) as lv:
        if quiet:
            result = simulate(sc, policy, seed=seed, duration=duration, settings=overrides,
                              profile=profile, out=out, plots=not no_plots, on_tick=lv.on_tick(),
                              recorder=lv.recorder)
            if not no_plots:
                write_report(out)
            click.echo(str(out))
            _exit_on_failed_check(check, result.summary, sc, quiet=True)
            return
        with Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                      TextColumn("{task.completed:.0f}/{task.total:.0f} s"),
                      TimeElapsedColumn(), console=console, transient=True) as bar:
            task = bar.add_task(f"{sc.name} / {policy}", total=total)
            result = simulate(sc, policy, seed=seed, duration=duration, settings=overrides,
                              profile=profile, out=out, plots=not no_plots, recorder=lv.recorder,
                              on_tick=lv.on_tick(lambda t: bar.update(task, completed=t)))
    if not no_plots:
        write_report(out)
    con = Console(width=max(Console().width, TABLE_WIDTH))
    print_summary(con, result.summary, overrides, sc.expect)
    lines = expectation_lines(result.summary, sc, duration)
    for line in lines:
        con.print(line, markup=False, highlight=False)
    con.print(f"wrote {out}/" + ("" if no_plots else f"  (open {out / 'report.html'})"),
              markup=False, highlight=False)
    _exit_on_failed_check(check, result.summary, sc)


TABLE_WIDTH = 100


def summary_title(s: dict, overrides: dict | None = None) -> str:
    parts = [s["scenario"], s["policy"], f"seed {s['seed']}"]
    if s.get("profile"):
        parts.append(f"profile {s['profile']}")
    if overrides:
        parts.append(" ".join(f"{k}={v}" for k, v in overrides.items()))
    return " / ".join(parts)


def summary_rows(s: dict, expect: dict | None = None) -> list[str]:
    """The core figures, then the ones this scenario is about: those it expects, and
    those only some runs have (wide VMs, affinity groups, pools)."""
    named = {k.rpartition("_")[0] for k in (expect or {})}
    keys = list(summarykeys.CORE)
    keys += [k for k in summarykeys.SCENARIO_SPECIFIC
             if k in named or (k in s and k.startswith(("wide_", "affinity_")))]
    keys += sorted(k for k in named if k in s and k not in keys)
    return keys


def print_summary(console: Console, s: dict, overrides: dict | None = None,
                  expect: dict | None = None) -> None:
    t = Table(title=summary_title(s, overrides), show_header=True)
    t.add_column("metric", no_wrap=True)
    t.add_column("value", justify="right", no_wrap=True)
    t.add_column("unit", no_wrap=True)
    for key in summary_rows(s, expect):
        v = s.get(key)
        ki = summarykeys.info(key)
        t.add_row(key, "—" if v is None else str(v), ki.unit if ki else "")
    console.print(t)


def expectation_lines(s: dict, sc: scenarios.Scenario, duration: float | None) -> list[str]:
    vs = verdicts(s, sc.expect)
    if not vs:
        return [f"{sc.name} states no [expect] entries"]
    failed = sum(not v.ok for v in vs)
    head = (f"[expect] of {sc.name}: {len(vs) - failed} of {len(vs)} met"
            + (f" (run for {duration:g} s, the scenario's duration is {sc.duration:g} s)"
               if duration is not None and duration != sc.duration else ""))
    return [head, *(f"  {v.line()}" for v in vs)]


def _exit_on_failed_check(check: bool, s: dict, sc: scenarios.Scenario,
                          quiet: bool = False) -> None:
    failed = [v for v in verdicts(s, sc.expect) if not v.ok]
    if check and failed:
        if quiet:
            for v in failed:
                click.echo(f"homenode: [expect] {v.line()}", err=True)
        raise click.exceptions.Exit(1)


@cli.command("scenarios")
def scenarios_cmd() -> None:
    """List the built-in scenarios."""
    t = Table(show_header=True)
    for col in ("name", "nodes", "clients", "duration", "description"):
        t.add_column(col)
    for name in scenarios.builtin_names():
        try:
            sc = scenarios.load(name)
        except InputError as e:   # a trace scenario whose traces are not here
            t.add_row(name, "—", "—", "—", f"unavailable: {e.problem}")
            continue
        t.add_row(name, str(sc.host.topology.n), str(len(sc.clients)), f"{sc.duration:g} s",
                  sc.description)
    Console().print(t)


@cli.command("settings")
@click.argument("names", nargs=-1, metavar="[NAME...]")
@click.option("--markdown", is_flag=True, help="Print the README's settings table.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list: name, default, "
              "unit, esxi, doc.")
def settings_cmd(names: tuple[str, ...], markdown: bool, as_json: bool) -> None:
    """List every policy setting with its default, unit and ESXi counterpart; with NAME,
    that setting alone, its name on a line of its own (to copy into --set)."""
    specs = Settings.specs()
    known = {f.name: f for f in specs}
    for n in names:
        if n not in known:
            close = [k for k in known if n in k]
            raise InputError("NAME", n, "no such setting" + (
                f"; did you mean {', '.join(close)}?" if close else "; see `homenode settings`"))
    if names:
        specs = [known[n] for n in names]
    if markdown:
        click.echo("| setting | default | unit | ESXi counterpart | what it does |")
        click.echo("|---|---|---|---|---|")
        for f in specs:
            m = f.metadata
            click.echo(f"| `{f.name}` | {f.default} | {m['unit']} | {m['esxi']} | {m['doc']} |")
        return
    if as_json:
        click.echo(json.dumps([{"name": f.name, "default": f.default, "unit": f.metadata["unit"],
                                "esxi": f.metadata["esxi"], "doc": f.metadata["doc"]}
                               for f in specs], indent=2))
        return
    if names:
        # One block per setting: nothing is folded, the name copies whole.
        for k, f in enumerate(specs):
            m = f.metadata
            unit = f" {m['unit']}" if m["unit"] else ""
            click.echo(("\n" if k else "") + f"{f.name}\n  default: {f.default}{unit}\n"
                       f"  ESXi: {m['esxi']}\n  {m['doc']}\n  set: --set {f.name}={f.default}")
        return
    console = Console()
    wide = console.width >= SETTINGS_WIDE
    t = Table(show_header=True, caption=None if wide else
              "ESXi counterparts: a wider terminal, `homenode settings NAME` or --json")
    # The name never folds (it is what goes into --set); the description does.
    t.add_column("setting", no_wrap=True)
    for col in ("default", "unit", *(("ESXi",) if wide else ()), "what it does"):
        t.add_column(col, overflow="fold")
    for f in specs:
        m = f.metadata
        t.add_row(f.name, str(f.default), m["unit"], *((m["esxi"],) if wide else ()), m["doc"])
    console.print(t)


SETTINGS_WIDE = 140     # columns from which the table also shows the ESXi counterparts
