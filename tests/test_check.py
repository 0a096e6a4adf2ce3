"""`homenode check FILE`: a config or a scenario is validated without running anything."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from homenode.cli import _register, cli, main

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True, scope="module")
def _cli():
    _register()


def test_the_example_config_and_every_builtin_scenario_check_ok():
    r = CliRunner().invoke(cli, ["check", str(ROOT / "packaging/homenode.toml")])
    assert r.exit_code == 0 and "ok: daemon config, policy esxi" in r.output
    for name in ("burst", "shift", "wide", "pools"):
        path = ROOT / "src/homenode/sim/scenarios" / f"{name}.toml"
        r = CliRunner().invoke(cli, ["check", str(path)])
        assert r.exit_code == 0 and f"ok: scenario {name}," in r.output, r.output


@pytest.mark.parametrize(("text", "kind", "message"), [
    ('[daemon]\ninterval = "fast"\n', "auto",
     "daemon.interval = 'fast': expected a duration"),
    ("[processes]\nmin_rss = \"lots\"\n", "auto", "processes.min_rss = 'lots'"),
    ('name = "x"\n[host]\nnodes = 0\n', "auto", "host.nodes = 0: must be between 1 and 1024"),
    ('name = "x"\n[settings]\nno_such_setting = 1\n', "auto", "no_such_setting"),
    ('[daemon]\npolicy = "esxi"\n', "scenario", "daemon"),     # --kind forces the parser
])
def test_a_bad_file_is_one_line_and_exit_2(tmp_path, capsys, text, kind, message):
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(SystemExit) as e:
        main(["check", str(f), "--kind", kind])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("homenode: error: ") and message in err, err


def test_a_missing_file_is_an_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["check", str(tmp_path / "nope.toml")])
    assert e.value.code == 2 and "no such file" in capsys.readouterr().err
