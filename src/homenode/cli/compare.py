"""`homenode compare`: several policies on one scenario, side by side."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from homenode import compare as cmp
from homenode.cli.group import cli
from homenode.cli.params import Count, Duration
from homenode.errors import InputError
from homenode.inputs import check_out_dir
from homenode.policy import policy_names
from homenode.policy.optimal import SOLVE_TIME_LIMIT
from homenode.sim import scenario as scenarios
from homenode.sim import traces

DEFAULT_OUT = "homenode-compare"
TABLE_WIDTH = 120
MAX_SEEDS = 1000   # seeds per policy: each is a whole simulation
MAX_JOBS = 1024    # worker processes


def parse_policies(text: str) -> list[str]:
    names = [p.strip() for p in text.split(",") if p.strip()]
    if not names:
        raise InputError("--policies", text, "name at least one policy")
    known = policy_names()
    for p in names:
        if p not in known:
            raise InputError("--policies", p, f"unknown policy; choose from {', '.join(known)}")
    if len(set(names)) != len(names):
        raise InputError("--policies", text, "a policy is named twice")
    return names


@cli.command("compare")
@click.argument("scenario", metavar="SCENARIO|FILE")
@click.option("--policies", default=",".join(cmp.DEFAULT_POLICIES), show_default=True,
              help="Comma-separated policies to run side by side.")
@click.option("--seeds", type=Count(1, MAX_SEEDS), default=1, show_default=True,
              help="Seeds per policy (the scenario's seed, then the next ones).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_OUT,
              show_default=True, help="Directory for compare.json, compare.png, report.html "
              "and each policy's run "
              "(DIR/POLICY/, or DIR/POLICY/seed-N/ with several seeds).")
@click.option("--duration", type=Duration(positive=True), default=None, metavar="DURATION",
              help="Simulated time, e.g. 120s or 2m (default: the scenario's).")
@click.option("--jobs", type=Count(1, MAX_JOBS), default=None,
              help="Parallel worker processes (default: one per CPU).")
@click.option("--real-time", is_flag=True, help="Play trace scenarios at the traces' own "
              "time step instead of compressed (docs/baselines.md).")
@click.option("--no-plots", is_flag=True, help="Skip the plots and the reports.")
def compare_cmd(scenario: str, policies: str, seeds: int, out: Path, duration: float | None,
                jobs: int | None, real_time: bool, no_plots: bool) -> None:
    """Run POLICIES on one scenario on identical inputs and print one table."""
    names = parse_policies(policies)
    sc = scenarios.load(scenario)
    check_out_dir(out, "--out")
    if real_time:
        sc = traces.real_time(sc)
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                  TextColumn("{task.completed}/{task.total} runs"), TimeElapsedColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(f"{sc.name}", total=len(names) * seeds)
        doc = cmp.run(sc, names, seeds, out=out, duration=duration, jobs=jobs,
                      plots=not no_plots, on_done=lambda p, s: bar.advance(task))
    # Wide enough for the whole table even when stdout is a pipe (rich assumes 80).
    console = Console(width=max(Console().width, TABLE_WIDTH))
    console.print(table(doc))
    for line in notes(doc):
        console.print(line)
    where = "" if no_plots else (f"  (open {out / 'report.html'}; each policy's run is in "
                                 f"{out}/POLICY/)")
    console.print(f"wrote {out}/{where}", markup=False, highlight=False)


COLUMNS = (("throughput_vs_ideal", "thr/ideal"), ("throughput_vs_bound", "thr/bound"),
           ("mean_locality", "mean loc"),
           ("p5_locality", "p5 loc"), ("max_imbalance_settled", "settled imb"),
           ("convergence_max_s", "conv max s"), ("home_changes", "home chg"),
           ("gib_migrated", "GiB migr"))


def table(doc: dict[str, Any]) -> Table:
    pols = doc["policies"]
    opt = (pols.get("optimal") or pols.get("oracle") or {}).get("throughput_vs_ideal")
    seeds = len(doc["seeds"])
    t = Table(title=f"{doc['scenario']}: {doc['duration_s']:g} s, {seeds} seed"
              f"{'s' if seeds > 1 else ''} (mean)")
    t.add_column("policy", no_wrap=True)
    for _, label in COLUMNS:
        t.add_column(label, justify="right", no_wrap=True)
        if label == "thr/ideal" and opt:
            t.add_column("vs optimal", justify="right", no_wrap=True)
    for name, s in pols.items():
        row = [name]
        for key, label in COLUMNS:
            row.append(_fmt(s.get(key)))
            if label == "thr/ideal" and opt:
                v = s.get(key)
                row.append("—" if v is None else f"{v / opt:.4f}")
        t.add_row(*row)
    return t


def notes(doc: dict[str, Any]) -> list[str]:
    out = []
    opt = doc["policies"].get("optimal") or doc["policies"].get("oracle")
    if opt and "solver" in opt:
        s = opt["solver"]
        gap = 100 * (s.get("max_gap") or 0)
        out.append(f"optimal: {s.get('solves')} MIP solves, {s.get('timeouts')} timed out "
                   f"(limit {SOLVE_TIME_LIMIT:g} s), largest proven gap {gap:.4f} %, "
                   f"slowest {s.get('max_solve_s')} s; MIP bound / demand "
                   f"{s.get('bound_vs_demand')}; its final placement required "
                   f"{opt.get('required_gib')} GiB of copying")
    return out


def _fmt(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) >= 1000 else f"{v:.4f}".rstrip("0").rstrip(".") or "0"
    return str(v)
