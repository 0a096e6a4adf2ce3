"""Every command is in the lazy group's map, under the module that defines it, and a
command imports its own module only (the fast start of `homenode run`)."""

import subprocess
import sys

from homenode.cli import COMMANDS, MODULES, _register, cli


def test_every_command_is_mapped_to_its_module():
    _register()
    for name, command in cli.commands.items():
        module = command.callback.__module__.rpartition(".")[2]
        assert COMMANDS.get(name) == module, f"{name}: add it to homenode.cli.group.COMMANDS"
        assert module in MODULES
    assert set(COMMANDS) == set(cli.commands)


def _modules_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", "import sys;" + code +
                          "\nprint(' '.join(sorted(sys.modules)), file=sys.stderr)"],
                         capture_output=True, text=True, check=True).stderr
    return set(out.split())


def test_run_starts_without_the_simulator_plots_or_solver():
    loaded = _modules_after("from homenode.cli import main\n"
                            "try: main(['run', '--help'])\nexcept SystemExit: pass")
    assert "homenode.cli.linux" in loaded
    heavy = {"highspy", "matplotlib", "homenode.sim.host", "homenode.report",
             "prometheus_client", "rich.progress", "homenode.cli.simulate",
             "homenode.cli.sweep"}
    assert not heavy & loaded, f"imported at start-up: {sorted(heavy & loaded)}"


def test_help_lists_every_command():
    out = subprocess.run([sys.executable, "-m", "homenode", "--help"], capture_output=True,
                         text=True, check=True).stdout
    for name in COMMANDS:
        assert name in out, name
