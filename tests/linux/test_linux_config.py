"""The daemon's TOML config: the shipped example loads; every bad input is one line."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from linux_support import HOMENODE

from homenode.errors import InputError
from homenode.linux import config

REPO = Path(__file__).resolve().parents[2]


def test_example_config_loads():
    cfg = config.load(REPO / "packaging" / "homenode.toml")
    assert cfg.daemon.interval == 2.0 and cfg.daemon.migration == "paced"
    assert cfg.processes.min_rss == 300 << 20 and cfg.processes.min_cpu == 0.5
    assert [p.pattern for p in cfg.processes.exclude] == ["^/usr/sbin/sshd",
                                                          "^/usr/lib/systemd/"]
    assert cfg.settings.rebalance_period == 2.0


def test_defaults_are_numad_like():
    cfg = config.parse("")
    assert cfg.processes.auto and cfg.processes.vms
    assert cfg.processes.min_rss == 300 << 20 and cfg.processes.min_cpu == 0.5
    assert cfg.daemon.restore_on_exit and not cfg.daemon.dry_run
    assert cfg.daemon.nice == -10       # the copiers' priority (page_mig_copier_nice)


def test_full_config():
    cfg = config.parse("""
        [daemon]
        interval = "500ms"
        scan_interval = 1
        migration = "bulk"
        manage_bound = true
        nice = -5
        [processes]
        pids = [4242]
        cmdline = ['worker\\.py']
        auto = false
        min_rss = "1GiB"
        [cgroups]
        parents = ["/machine.slice/"]
        [settings]
        page_mig_delay = 0.5
    """, "t.toml")
    assert cfg.daemon.interval == 0.5 and cfg.daemon.scan_interval == 1.0
    assert cfg.daemon.nice == -5
    assert cfg.processes.pids == (4242,) and cfg.processes.cmdline[0].search("a/worker.py")
    assert cfg.processes.min_rss == 1 << 30
    assert cfg.cgroups.parents == ("machine.slice",)
    assert cfg.settings.page_mig_delay == 0.5


@pytest.mark.parametrize("text, field", [
    ("[daemon]\ninterval = '2 fortnights'", "daemon.interval"),
    ("[daemon]\ninterval = '1ms'", "daemon.interval"),
    ("[daemon]\nmigration = 'fast'", "daemon.migration"),
    ("[daemon]\ndry_run = 'yes'", "daemon.dry_run"),
    ("[daemon]\npolicy = 'magic'", "daemon.policy"),
    ("[daemon]\nnice = -21", "daemon.nice"),
    ("[daemon]\nnice = 2.5", "daemon.nice"),
    ("[daemon]\nintervall = '2s'", "daemon.intervall"),
    ("[processes]\npids = [1]", "processes.pids[0]"),
    ("[processes]\npids = ['x']", "processes.pids[0]"),
    ("[processes]\ncmdline = ['(unclosed']", "processes.cmdline[0]"),
    ("[processes]\ncmdline = 'worker'", "processes.cmdline"),
    ("[processes]\nmin_rss = 'huge'", "processes.min_rss"),
    ("[processes]\nmin_cpu = -1", "processes.min_cpu"),
    ("[cgroups]\nparents = ['../etc']", "cgroups.parents[0]"),
    ("[cgroups]\nparents = ['']", "cgroups.parents[0]"),
    ("[settings]\nno_such_setting = 1", "settings.no_such_setting"),
    ("[settings]\nrebalance_period = -3", "settings.rebalance_period"),
    ("[extras]\nx = 1", "extras"),
    ("daemon = 3", "daemon"),
    ("[daemon\n", "toml"),
])
def test_bad_config_is_one_line(text, field):
    with pytest.raises(InputError) as e:
        config.parse(text, "bad.toml")
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"bad.toml: {field} = ")


def test_cli_bad_config_exits_2_with_one_line(tmp_path: Path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[daemon]\nmigration = 'fast'\n")
    r = subprocess.run([*HOMENODE, "run", "--config", str(bad), "--once"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        f"homenode: error: {bad}: daemon.migration = 'fast': expected one of paced, bulk"]


def test_cli_missing_config(tmp_path: Path):
    r = subprocess.run([*HOMENODE, "run", "--config", str(tmp_path / "none.toml")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "no such file" in r.stderr and len(r.stderr.splitlines()) == 1


def test_daemon_nice_is_the_loop_threads_own_while_it_runs():
    """The loop thread runs at daemon.nice (threads it starts inherit it) and gets its
    own back after; the process's other threads keep theirs.  Raising nice needs no
    privilege; lowering it without CAP_SYS_NICE is logged, not a failure."""
    import os
    import threading

    from homenode.linux.daemon import _loop_priority

    def mine() -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    main = mine()
    up = min(main + 3, 19)
    seen: dict[str, int] = {}

    def loop_thread() -> None:
        seen["before"] = mine()
        with _loop_priority(up):
            seen["loop"] = mine()
            child = threading.Thread(target=lambda: seen.__setitem__("child", mine()))
            child.start()
            child.join()
        seen["after"] = mine()
        with _loop_priority(-20):       # refused unless privileged: no exception
            seen["low"] = mine()

    t = threading.Thread(target=loop_thread)
    t.start()
    t.join()
    assert seen["loop"] == seen["child"] == up
    assert seen["after"] == seen["before"]
    assert seen["low"] in (-20, seen["before"])
    assert mine() == main
