"""The `homenode` command: one group, one module per command family."""

from __future__ import annotations

import signal
import sys
import threading

import click

from homenode.cli.group import COMMANDS, MODULES, cli, load_all
from homenode.errors import HomenodeError

__all__ = ["COMMANDS", "MODULES", "cli", "main"]


def _register() -> None:
    """Import every command module (the group imports them on demand; this is for
    callers that read ``cli.commands`` directly)."""
    load_all()


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors become one line on stderr and a non-zero exit."""
    # A process started in the background by a non-interactive shell inherits SIGINT
    # ignored, and Ctrl-C (or a supervisor's SIGINT) would then never stop a simulation.
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)
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
