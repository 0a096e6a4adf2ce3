"""The `homenode` click group.  Each command module adds its commands to it when
imported; the group imports a command's module only when that command is asked for, so
``homenode run`` loads the daemon's code and not the simulator, the comparison tables or
the report plots (a fast start), and no command module imports the package that loads it."""

from __future__ import annotations

import importlib

import click

from homenode import __version__

# The module (under homenode.cli) defining each command.  A command missing here is not
# found: tests/test_cli_commands.py checks that the map and the modules agree.
COMMANDS = {"run": "linux", "topology": "linux", "place": "linux", "compare": "compare",
            "top": "ops", "status": "ops", "explain": "ops", "report": "ops",
            "include": "ops", "exclude": "ops", "simulate": "simulate",
            "scenarios": "simulate", "settings": "simulate", "check": "check",
            "files": "files", "manpage": "manpage", "sweep": "sweep"}
MODULES = tuple(sorted(set(COMMANDS.values())))


def load(module: str) -> None:
    importlib.import_module(f"homenode.cli.{module}")


class LazyGroup(click.Group):
    """A group whose commands are imported on first use."""

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            load(COMMANDS[cmd_name])
        return super().get_command(ctx, cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        load_all()
        return super().list_commands(ctx)


def load_all() -> None:
    for module in MODULES:
        load(module)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="homenode")
def cli() -> None:
    """homenode: an ESXi-style NUMA scheduler for Linux hosts, and a NUMA host simulator."""
