"""The `homenode` command: one group, one module per command family."""

from __future__ import annotations

import importlib
import signal
import sys
import threading

import click

from homenode import __version__
from homenode.errors import HomenodeError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="homenode")
def cli() -> None:
    """homenode: an ESXi-style NUMA scheduler for Linux hosts, and a NUMA host simulator."""


# The module defining each command: ``homenode run`` imports the daemon's code only,
# not the simulator, the comparison tables or the report plots (a fast start).  A
# command missing here still works: everything is imported for it (and for --help).
COMMANDS = {"run": "linux", "topology": "linux", "place": "linux", "compare": "compare",
            "top": "ops", "explain": "ops", "report": "ops", "simulate": "simulate",
            "scenarios": "simulate", "settings": "simulate", "status": "ops",
            "include": "ops", "exclude": "ops", "check": "check", "files": "files",
            "manpage": "manpage", "sweep": "sweep"}
MODULES = ("check", "compare", "files", "linux", "manpage", "ops", "simulate", "sweep")


def _register(argv: list[str] | None = None) -> None:
    """Import the command modules that ``argv`` needs (all of them when it is None)."""
    name = next((a for a in argv or () if not a.startswith("-")), None)
    wanted = [COMMANDS[name]] if name in COMMANDS else MODULES
    for module in wanted:
        importlib.import_module(f"homenode.cli.{module}")


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors become one line on stderr and a non-zero exit."""
    # A process started in the background by a non-interactive shell inherits SIGINT
    # ignored, and Ctrl-C (or a supervisor's SIGINT) would then never stop a simulation.
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)
    _register(sys.argv[1:] if argv is None else argv)
    try:
        rc = cli.main(args=argv, prog_name="homenode", standalone_mode=False)
        # Without standalone mode click returns a command's Exit(code) instead of exiting.
        if isinstance(rc, int) and rc:
            sys.exit(rc)
    except HomenodeError as e:
        click.echo(f"homenode: error: {e}", err=True)
        sys.exit(e.exit_code)
    except click.exceptions.Abort:
        click.echo("homenode: aborted", err=True)
        sys.exit(130)
    except click.ClickException as e:
        click.echo(f"homenode: error: {e.format_message()}", err=True)
        sys.exit(e.exit_code)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
