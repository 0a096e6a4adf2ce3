"""`homenode explain`: from a run's output directory and from a live API, in agreement."""

from __future__ import annotations

import json
import re

import pytest

from homenode.cli import main
from homenode.errors import InputError
from homenode.ops.api import serve_status
from homenode.ops.explain import explain_lines, from_directory, rule_text
from homenode.policy import rebalance
from homenode.settings import Settings


def _decisions(out):
    return [json.loads(x) for x in (out / "decisions.jsonl").read_text().splitlines()]


def _refused_client(out) -> tuple[str, str]:
    for d in _decisions(out):
        for c in d["considered"]:
            if c["verdict"] not in ("taken", "ok"):
                return c["client"], c["verdict"]
    raise AssertionError("the scenario refuses no move")


def _moved_client(out) -> str:
    for line in (out / "actions.csv").read_text().splitlines()[1:]:
        f = line.split(",")
        if f[2] == "home" and f[6] not in ("initial",) and f[8] == "1":
            return f[1]
    raise AssertionError("the scenario moves no client")


def test_every_rebalance_filter_is_explained_with_its_settings():
    filters = {f for fs in rebalance.FILTERS.values() for f in fs}
    values = Settings().as_dict()
    assert filters
    for f in filters:
        text = rule_text(f.__name__)
        assert text.startswith(f"stopped by {f.__name__}: "), text
        assert "``" not in text
        first_paragraph = (f.__doc__ or "").strip().split("\n\n")[0]
        for name in re.findall(r"``(\w+)``", first_paragraph):
            if name in values:
                assert f"{name} = " in text, (f.__name__, name, text)


def test_rule_text_uses_the_runs_settings_and_knows_the_plain_verdicts():
    assert rule_text("taken") == "taken"
    assert "another move scored higher" in rule_text("ok")
    assert "min_residence = 33 s" in rule_text("too_soon", {**Settings().as_dict(),
                                                            "min_residence": 33.0})
    assert rule_text("some_future_rule") == "stopped by some_future_rule"


def test_explain_from_a_directory_names_the_rule_that_stopped_a_move(shift_out, capsys):
    cid, verdict = _refused_client(shift_out)
    main(["explain", cid, "--from", str(shift_out), "--last", "50"])
    out = capsys.readouterr().out
    assert out.startswith(f"{cid} lives on node ")
    assert f"stopped by {verdict}: " in out
    assert rule_text(verdict) in out
    assert re.search(r"score +-?\d+\.\d", out)


def test_explain_shows_a_move_with_its_reason_and_score(shift_out, capsys):
    cid = _moved_client(shift_out)
    doc = from_directory(shift_out, cid)
    moves = [a for r in doc["decisions"] for a in r["actions"]
             if a["kind"] == "home" and a["reason"] != "initial"]
    assert moves
    text = "\n".join(explain_lines(doc, last=100))
    a = moves[-1]
    assert f"It moved there at t={a['time']:.1f} s ({a['reason']}, score {a['score']:.1f}" in text
    assert f"moved node {a['src']} → node {a['dst']} ({a['reason']}" in text
    assert doc["current"]["nmig"] == len(moves)
    assert doc["current"]["nmig_by_reason"] == {a["reason"]: len(moves)} or \
        sum(doc["current"]["nmig_by_reason"].values()) == len(moves)
    main(["explain", cid, "--from", str(shift_out), "--json"])
    assert json.loads(capsys.readouterr().out)["client"] == cid


def test_the_api_and_the_directory_tell_the_same_story(shift_state, shift_out, tmp_path,
                                                       capsys):
    """Same scenario, same seed: the live recorder and the files agree decision by
    decision (the API keeps the last DECISIONS_PER_CLIENT of them)."""
    cid, _ = _refused_client(shift_out)
    with serve_status(shift_state.status, tmp_path / "s.sock") as server:
        main(["explain", cid, "--socket", str(server.path), "--json"])
        live = json.loads(capsys.readouterr().out)
        main(["explain", cid, "--socket", str(server.path), "--last", "3"])
        text = capsys.readouterr().out
    files = from_directory(shift_out, cid)

    def key(doc):
        return [(r["time"], sorted((c["src"], c["dst"], c["reason"], c["verdict"])
                                   for c in r["considered"]),
                 [(a["src"], a["dst"], a["reason"], a["ok"]) for a in r["actions"]
                  if a["kind"] == "home"]) for r in doc["decisions"]]

    n = len(live["decisions"])
    assert n > 0 and key(live) == key(files)[-n:]
    assert live["pages"] == files["pages"]
    assert live["current"]["home"] == files["current"]["home"]
    assert text.splitlines()[0] == explain_lines(files, 3)[0]


@pytest.mark.parametrize(("argv", "message"), [
    (["explain", "ghost", "--from", "{out}"], "CLIENT = 'ghost': not found in"),
    (["explain", "vm00", "--from", "{tmp}/nope"], "--from = '{tmp}/nope': no such directory"),
    (["explain", "vm00", "--from", "{tmp}"], "no decisions.jsonl there"),
    (["explain", "vm00", "--from", "{out}", "--socket", "/x"], "give either --socket or --from"),
    (["explain", "vm00", "--socket", "{tmp}/none.sock"], "no status socket"),
    (["explain", "vm00", "--from", "{out}", "--last", "-1"], "--last = -1: must not be negative"),
])
def test_bad_explain_input_is_one_line(shift_out, tmp_path, capsys, argv, message):
    argv = [a.format(out=shift_out, tmp=tmp_path) for a in argv]
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code in (1, 2)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("homenode: error: ")
    assert message.format(tmp=tmp_path) in err


def test_a_malformed_decisions_file_names_file_and_line(shift_out, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    for name in ("summary.json", "actions.csv", "timeseries.csv"):
        (bad / name).write_bytes((shift_out / name).read_bytes())
    lines = (shift_out / "decisions.jsonl").read_text().splitlines()
    (bad / "decisions.jsonl").write_text("\n".join([lines[0], "{not json", *lines[1:]]) + "\n")
    with pytest.raises(InputError, match=r"decisions.jsonl:2 = '\{not json': not valid JSON"):
        from_directory(bad, "vm00")
