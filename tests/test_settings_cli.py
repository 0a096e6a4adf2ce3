"""`homenode settings NAME` and `--json`: names that copy whole into --set."""

from __future__ import annotations

import json

from click.testing import CliRunner

from homenode.cli import _register, cli
from homenode.settings import Settings


def _run(*args: str, width: int = 80):
    _register()
    return CliRunner().invoke(cli, ["settings", *args], env={"COLUMNS": str(width)})


def test_json_lists_every_setting():
    doc = json.loads(_run("--json").output)
    assert [d["name"] for d in doc] == [f.name for f in Settings.specs()]
    assert {"name", "default", "unit", "esxi", "doc"} == set(doc[0])


def test_one_setting_by_name_with_its_set_line():
    r = _run("min_residence")
    assert r.exit_code == 0
    assert r.output.splitlines()[0] == "min_residence"
    assert "  set: --set min_residence=10.0" in r.output
    assert json.loads(_run("min_residence", "--json").output)[0]["unit"] == "s"


def test_an_unknown_name_suggests_the_close_ones(capsys):
    import pytest

    from homenode.cli import main
    with pytest.raises(SystemExit) as e:
        main(["settings", "residence"])
    assert e.value.code == 2
    assert "NAME = 'residence': no such setting; did you mean min_residence?" in \
        capsys.readouterr().err


def test_names_never_break_at_80_columns():
    out = _run(width=80).output
    for f in Settings.specs():
        assert f.name in out, f.name
