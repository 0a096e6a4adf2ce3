"""`homenode sweep`: many cases from one spec, on a local pool or a Dask cluster."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from homenode.cli.group import cli
from homenode.errors import InputError

DEFAULT_OUT = "homenode-sweep"
TABLE_WIDTH = 120


@cli.command("sweep")
@click.argument("spec", required=False, metavar="SPEC|FILE")
@click.option("--out", type=click.Path(path_type=Path), default=DEFAULT_OUT,
              show_default=True, help="Directory for the case store, results and report.")
@click.option("--jobs", type=int, default=None,
              help="Local worker processes (default: one per CPU; 1 runs in-process).")
@click.option("--dask", "dask_addr", default=None, metavar="ADDRESS|local:N",
              help="Run on a Dask scheduler (tcp://host:8786) or a LocalCluster of N "
              "workers started here, instead of the local pool.")
@click.option("--resume", is_flag=True, help="Continue the sweep in --out: finished cases "
              "are not run again.")
@click.option("--table", "table_dir", type=click.Path(path_type=Path), default=None,
              metavar="DIR", help="Print the win/loss table of the sweep stored in DIR and "
              "exit.")
@click.option("--list", "list_only", is_flag=True, help="Print the cases and exit.")
def sweep_cmd(spec: str | None, out: Path, jobs: int | None, dask_addr: str | None,
              resume: bool, table_dir: Path | None, list_only: bool) -> None:
    """Run every case of SPEC (a built-in spec name or a TOML file): see docs/sweep.md."""
    from homenode.sweep import cases, driver
    from homenode.sweep import spec as specs

    console = Console(width=max(Console().width, TABLE_WIDTH))
    if table_dir is not None:
        if not table_dir.is_dir():
            raise InputError("--table", str(table_dir), "no such directory")
        name, rows = driver.stored(table_dir)
        print_tallies(console, name, rows)
        return
    if spec is None:
        raise InputError("SPEC", None, f"name a spec file or a built-in spec "
                         f"({', '.join(specs.builtin_specs())})")
    if jobs is not None and jobs < 1:
        raise InputError("--jobs", jobs, "must be at least 1")
    if jobs is not None and dask_addr is not None:
        raise InputError("--jobs", jobs, "give --jobs or --dask, not both")
    plan = cases.expand(specs.load(spec))
    if list_only:
        for c in plan.cases:
            click.echo(f"{c.key[:12]}  {c.instance}  {c.policy}")
        click.echo(f"{len(plan.cases)} cases")
        return
    driver.check_out(out, resume)
    ex = make_executor(plan, jobs, dask_addr)
    try:
        res = run_with_bar(plan, out, ex, resume)
    finally:
        ex.close()
    console.print(f"{res.total} cases: {res.reused} already done, {res.executed} run now, "
                  f"{res.failed} failed" + (f", {res.duplicates} duplicate results ignored"
                                            if res.duplicates else ""))
    print_tallies(console, plan.spec.name, res.rows)
    console.print(f"wrote {out}/ (results.parquet, results.csv, report.html)")


def make_executor(plan: Any, jobs: int | None, dask_addr: str | None) -> Any:
    import os

    from homenode.sweep import executors

    if dask_addr is not None:
        return executors.Dask(dask_addr, plan.files)
    n = jobs or os.cpu_count() or 1
    return executors.Serial(plan.root) if n == 1 else executors.LocalPool(plan.root, n)


def run_with_bar(plan: Any, out: Path, ex: Any, resume: bool) -> Any:
    from homenode.sweep import driver

    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[failed]} failed"), TimeElapsedColumn(),
                  TextColumn("ETA"), TimeRemainingColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(f"{plan.spec.name} ({ex.name})", total=len(plan.cases),
                            failed=0)

        def progress(res: Any, rec: Any) -> None:
            # Counts this run's cases only, so the ETA is not fooled by resumed ones.
            if rec is None:
                bar.update(task, total=res.total - res.reused, description=(
                    f"{plan.spec.name} ({ex.name}" + (f", {res.reused} done before)"
                                                      if res.reused else ")")))
            bar.update(task, completed=res.executed, failed=res.failed)

        return driver.run(plan, out, ex, resume=resume, on_progress=progress)


def print_tallies(console: Console, name: str, rows: list[dict[str, Any]]) -> None:
    from homenode.sweep import wins

    key = wins.metric(rows)
    note = "" if key == wins.BOUND else " (no throughput_vs_bound in the summaries)"
    t = Table(title=f"{name}: wins / ties / losses by {key}{note}")
    for col in ("policy", "vs peer", "wins", "ties", "losses", "worst ratio", "worst case"):
        t.add_column(col, justify="left" if col in ("policy", "vs peer", "worst case")
                     else "right", no_wrap=col != "worst case")
    for x in wins.tallies(rows, key):
        t.add_row(x.policy, x.peer, str(x.wins), str(x.ties), str(x.losses),
                  "—" if x.worst_ratio is None else f"{x.worst_ratio:.4f}", x.worst_case)
    console.print(t)
    failed = sum(r.get("status") != "ok" for r in rows)
    console.print(f"{len(rows)} stored cases, {failed} failed")
