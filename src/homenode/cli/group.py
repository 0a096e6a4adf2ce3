"""The `homenode` click group: command modules add themselves to it (cli/__init__.py
loads them), so none of them imports the package that loads it."""

from __future__ import annotations

import click

from homenode import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="homenode")
def cli() -> None:
    """homenode: an ESXi-style NUMA scheduler for Linux hosts, and a NUMA host simulator."""
