"""Every command is in the fast-start map, under the module that defines it: a command
left out still works, but then `homenode CMD` imports every command module."""

from homenode.cli import COMMANDS, MODULES, _register, cli


def test_every_command_is_mapped_to_its_module():
    _register()
    for name, command in cli.commands.items():
        module = command.callback.__module__.rpartition(".")[2]
        assert COMMANDS.get(name) == module, f"{name}: add it to homenode.cli.COMMANDS"
        assert module in MODULES


def test_only_the_commands_module_is_imported_for_a_known_command(monkeypatch):
    imported = []
    monkeypatch.setattr("importlib.import_module", lambda name: imported.append(name))
    _register(["simulate", "shift"])
    assert imported == ["homenode.cli.simulate"]


def test_run_starts_without_the_simulator_plots_or_solver():
    import subprocess
    import sys
    code = ("import sys; from homenode.cli import _register; _register(['run', '--once']);"
            "from homenode.cli.linux import run_cmd;"
            "print(' '.join(m for m in ('highspy', 'matplotlib', 'homenode.sim.host',"
            " 'homenode.report', 'prometheus_client', 'rich.progress') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "", f"imported at start-up: {out}"
