"""The README's settings table is generated from settings.py and must stay in sync."""

from pathlib import Path

from click.testing import CliRunner

from homenode.cli import _register, cli

ROOT = Path(__file__).resolve().parents[1]


def test_readme_settings_table_is_current():
    _register()
    table = CliRunner().invoke(cli, ["settings", "--markdown"]).output
    readme = (ROOT / "README.md").read_text()
    block = readme.split("<!-- settings:begin -->\n")[1].split("<!-- settings:end -->")[0]
    assert block == table, "run `homenode settings --markdown` and paste it into README.md"


def test_readme_lists_every_builtin_scenario():
    from homenode.sim.scenario import builtin_names
    readme = (ROOT / "README.md").read_text()
    for name in builtin_names():
        assert f"`{name}`" in readme, name
