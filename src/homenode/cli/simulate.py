"""`homenode simulate`, `homenode scenarios`, `homenode settings`."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from homenode.cli.group import cli
from homenode.cli.params import Count, Duration, Number
from homenode.errors import InputError
from homenode.inputs import check_out_dir, check_socket_path
from homenode.ops.html import write_report
from homenode.ops.live import LIVE_SPEED, start_live
from homenode.policy import policy_names
from homenode.settings import Settings, parse_assignments
from homenode.settings import profile as settings_profile
from homenode.sim import scenario as scenarios
from homenode.simulation import simulate

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
@click.option("--no-plots", is_flag=True, help="Skip the PNG plots and report.html.")
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
                 out: Path, sets: tuple[str, ...], profile: str | None, no_plots: bool,
                 quiet: bool, live: bool,
                 speed: float, socket_path: Path | None, metrics_addr: str | None) -> None:
    """Run a policy on a simulated NUMA host and write its metrics to --out."""
    if policy not in policy_names():
        raise InputError("--policy", policy, f"unknown policy; choose from "
                         f"{', '.join(policy_names())}")
    sc = scenarios.load(scenario)
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
    print_summary(Console(), result.summary)
    Console().print(f"wrote {out}/")


def print_summary(console: Console, s: dict) -> None:
    t = Table(title=f"{s['scenario']} / {s['policy']} / seed {s['seed']}", show_header=True)
    t.add_column("metric")
    t.add_column("value", justify="right")
    for key in ("duration_s", "sim_speed", "throughput_vs_ideal", "mean_locality",
                "p5_locality", "max_imbalance_settled", "convergence_max_s", "home_changes",
                "max_home_changes_per_client_per_10min", "gib_migrated"):
        v = s.get(key)
        t.add_row(key, "—" if v is None else str(v))
    console.print(t)


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
@click.option("--markdown", is_flag=True, help="Print the README's settings table.")
def settings_cmd(markdown: bool) -> None:
    """List every policy setting with its default, unit and ESXi counterpart."""
    specs = Settings.specs()
    if markdown:
        click.echo("| setting | default | unit | ESXi counterpart | what it does |")
        click.echo("|---|---|---|---|---|")
        for f in specs:
            m = f.metadata
            click.echo(f"| `{f.name}` | {f.default} | {m['unit']} | {m['esxi']} | {m['doc']} |")
        return
    t = Table(show_header=True)
    for col in ("setting", "default", "unit", "ESXi", "what it does"):
        t.add_column(col, overflow="fold")
    for f in specs:
        m = f.metadata
        t.add_row(f.name, str(f.default), m["unit"], m["esxi"], m["doc"])
    Console().print(t)


