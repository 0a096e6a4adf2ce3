"""`homenode top`, `homenode explain`, `homenode report`: watching and trusting homenode."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from homenode.cli.group import cli
from homenode.cli.params import Count, Duration
from homenode.errors import InputError
from homenode.ops import explain as explain_mod
from homenode.ops.api import StatusClient, default_socket_path
from homenode.ops.html import write_report
from homenode.ops.statusview import run_batch, status_text
from homenode.ops.top import DEFAULT_SORT, REFRESH_S, SORT_KEYS, run_top

_SOCKET_HELP = "Status API socket (default: $HOMENODE_SOCKET, /run/homenode/status.sock " \
               "for root, else $XDG_RUNTIME_DIR/homenode/status.sock)."


@cli.command("top")
@click.option("--socket", "socket_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help=_SOCKET_HELP)
@click.option("--interval", type=Duration(lo=0.05, hi=3600.0), default=REFRESH_S,
              show_default=True, metavar="DURATION",
              help="Time between two refreshes, e.g. 2s or 500ms.")
@click.option("--sort", type=click.Choice(sorted(SORT_KEYS)), default=DEFAULT_SORT,
              show_default=True, help="Initial sort key (the same keys work on screen).")
@click.option("--once", is_flag=True, help="Print one screen and exit (for scripts).")
@click.option("--batch", "-b", is_flag=True, help="Batch mode, as esxtop -b: CSV on stdout, "
              "one row per client per sample, no screen.")
@click.option("--delay", "-d", type=float, default=None, help="With --batch: seconds "
              "between samples (default: --interval).")
@click.option("--count", "-n", type=int, default=0, show_default=True,
              help="With --batch: samples to write (0: until the API goes away).")
def top_cmd(socket_path: Path | None, interval: float, sort: str, once: bool, batch: bool,
            delay: float | None, count: int) -> None:
    """Live NUMA view of a running daemon or `simulate --live`, esxtop-style.

    Columns: NHN home node, NMIG home changes, NLMEM/NRMEM local/remote MiB, N%L
    local %, DEM/CPU CPU demanded/received (cores).  Keys: n h m l r c d sort by that
    column (again: reverse), - reverse, v MiB per node, q quit.
    """
    if not batch and (delay is not None or count):
        raise InputError("--delay" if delay is not None else "--count",
                         delay if delay is not None else count, "needs --batch")
    with StatusClient(socket_path or default_socket_path()) as client:
        if batch:
            run_batch(lambda: client.request("status"), sys.stdout,
                      delay=interval if delay is None else delay, count=count)
            return
        run_top(client, interval=interval, sort=sort, once=once)


@cli.command("status")
@click.option("--socket", "socket_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help=_SOCKET_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print the status document "
              "(docs/operations.md, section 1).")
def status_cmd(socket_path: Path | None, as_json: bool) -> None:
    """One-shot view of a running daemon or `simulate --live`: nodes, then every client
    with its memory on each node in MiB (as numastat -p), then the last home changes."""
    with StatusClient(socket_path or default_socket_path()) as client:
        doc = client.request("status")
    click.echo(json.dumps(doc, indent=2) if as_json else status_text(doc))


@cli.command("explain")
@click.argument("client")
@click.option("--socket", "socket_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help=_SOCKET_HELP)
@click.option("--from", "from_dir", type=click.Path(path_type=Path), default=None,
              help="A run's output directory (simulate --out / run --out) instead of a "
              "running daemon.")
@click.option("--last", type=Count(0, 1_000_000), default=explain_mod.DEFAULT_LAST,
              show_default=True,
              help="How many of its decisions to show.")
@click.option("--json", "as_json", is_flag=True, help="Print the explanation document.")
def explain_cmd(client: str, socket_path: Path | None, from_dir: Path | None, last: int,
                as_json: bool) -> None:
    """Why CLIENT is where it is: its last decisions, the alternatives with their scores,
    and the rule that stopped each move."""
    if socket_path is not None and from_dir is not None:
        raise InputError("--from", str(from_dir), "give either --socket or --from, not both")
    if from_dir is not None:
        doc = explain_mod.from_directory(from_dir, client)
    else:
        with StatusClient(socket_path or default_socket_path()) as api:
            doc = api.request("explain", client=client)
    if as_json:
        click.echo(json.dumps(doc, indent=2))
        return
    for line in explain_mod.explain_lines(doc, last):
        click.echo(line)


@cli.command("report")
@click.argument("directory", type=click.Path(path_type=Path))
def report_cmd(directory: Path) -> None:
    """Write DIRECTORY/report.html for a simulate/run output or a compare directory:
    one self-contained file (no network needed) with the summary and the plots."""
    click.echo(str(write_report(directory)))


def _control(op: str, pid: int, socket_path: Path | None) -> None:
    with StatusClient(socket_path or default_socket_path()) as api:
        api.request(op, pid=pid)
    click.echo(f"{op} pid {pid}: queued for the daemon's next tick (its log says the outcome)")


@cli.command("include")
@click.argument("pid", type=int)
@click.option("--socket", "socket_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help=_SOCKET_HELP)
def include_cmd(pid: int, socket_path: Path | None) -> None:
    """Have the running daemon manage process PID from its next tick on (numad -p), as if
    it were in processes.pids. Needs the socket's permissions, nothing more."""
    _control("include", pid, socket_path)


@cli.command("exclude")
@click.argument("pid", type=int)
@click.option("--socket", "socket_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help=_SOCKET_HELP)
def exclude_cmd(pid: int, socket_path: Path | None) -> None:
    """Have the running daemon stop managing process PID (numad -x): its CPU affinity is
    put back and it is left alone while it lives."""
    _control("exclude", pid, socket_path)
