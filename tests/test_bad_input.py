"""Bad scenarios, settings and arguments: one line naming the field and value, exit 2."""

import subprocess
import sys

import pytest

GOOD = """
duration = 10
[host]
nodes = 2
[[clients]]
name = "a"
demand = { kind = "constant", cpu = 1 }
"""


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "homenode", *args], capture_output=True,
                          text=True, timeout=60, cwd=cwd)


def assert_one_line_error(proc, *needles):
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    err = proc.stderr.strip()
    assert "Traceback" not in proc.stderr
    assert len(err.splitlines()) == 1, err
    for n in needles:
        assert n in err, (n, err)


@pytest.mark.parametrize("text,needles", [
    ("duration = 'x'\n", ["duration", "'x'"]),
    ("[host]\nnodes = 0\n", ["host.nodes", "0"]),
    ("[host]\nnodes = 'two'\n", ["host.nodes", "'two'"]),
    ("[host]\nmemory_per_node = '12 parsecs'\n", ["host.memory_per_node", "parsecs"]),
    ("[host]\nnodes = 2\ndistances = [[10, 21]]\n", ["host.distances"]),
    ("[host]\nwarp = 9\n", ["host.warp", "unknown field"]),
    ("[[clients]]\nvcpus = -1\n", ["clients[0].vcpus", "-1"]),
    ("[[clients]]\ndemand = { kind = 'wobbly' }\n", ["clients[0].demand.kind", "wobbly"]),
    ("[[clients]]\nreservation = 9\nvcpus = 2\n", ["clients[0].reservation", "9"]),
    ("[[clients]]\ncpu_affinity = [5]\n", ["clients[0].cpu_affinity", "[5]"]),
    ("[[clients]]\nname='a'\n[[clients]]\nname='a'\n", ["clients.name", "'a'", "duplicate"]),
    ("[[clients]]\nname='a'\n[[events]]\nat=5\nclients='zz*'\n", ["events[0].clients",
                                                                  "matches no client"]),
    ("[settings]\nmig_threshold = 'lots'\n", ["settings.mig_threshold", "'lots'"]),
    ("[settings]\nnot_a_setting = 1\n", ["settings.not_a_setting", "unknown setting"]),
    ("this is = = not toml\n", ["not valid TOML"]),
])
def test_bad_scenario_file(tmp_path, text, needles):
    f = tmp_path / "bad.toml"
    f.write_text(text)
    proc = run("simulate", str(f), "--out", str(tmp_path / "o"), "--no-plots")
    assert_one_line_error(proc, "bad.toml", *needles)
    assert not (tmp_path / "o").exists()   # nothing half-written


@pytest.mark.parametrize("args,needles", [
    (["simulate", "no-such-scenario"], ["scenario", "no-such-scenario"]),
    (["simulate", "--policy", "magic"], ["--policy", "magic"]),
    (["simulate", "--duration", "-5"], ["--duration", "-5"]),
    (["simulate", "--set", "rebalance_period=0"], ["settings.rebalance_period", "'0'"]),
    (["simulate", "--set", "nonsense"], ["--set", "nonsense"]),
    (["simulate", "--duration", "abc"], ["abc"]),
])
def test_bad_arguments(tmp_path, args, needles):
    proc = run(*args, "--out", str(tmp_path / "o"))
    assert_one_line_error(proc, *needles)


def test_good_file_runs(tmp_path):
    f = tmp_path / "ok.toml"
    f.write_text(GOOD)
    proc = run("simulate", str(f), "--out", str(tmp_path / "o"), "--no-plots", "-q")
    assert proc.returncode == 0, proc.stderr
