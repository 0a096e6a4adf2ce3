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
