"""Affinity groups and node constraints on a Linux host: the config tables, the selectors
on fixture trees, and automatic groups of real processes that share memory."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from linux_support import CGROUP, FIXTURES, PROC, SYS_SPARSE, SYS_TWO, StepClock

from homenode.errors import InputError
from homenode.linux import config, groups
from homenode.linux.host import LinuxHost
from homenode.linux.kernel import procmaps

DRY = "[daemon]\ndry_run = true\n[processes]\nauto = false\ncmdline = ['worker']\n"


def fixture_host(text: str, proc: Path = PROC, cg: Path | None = None) -> LinuxHost:
    return LinuxHost(config.parse(text), StepClock(), proc_root=str(proc),
                     sys_root=SYS_SPARSE, cgroup_root=cg, self_pid=999999)


# --- the tables --------------------------------------------------------------------------

def test_tables_are_parsed():
    cfg = config.parse("""
[[groups]]
name = "web"
members = ["cmdline:nginx", "cgroup:/system.slice/redis.service/", "name:db[0-9]", "pid:42"]
[[constraints]]
members = ["name:vm7"]
allowed_nodes = "0-1"
prefer_ht = true
[auto_groups]
shared_memory = true
min_shared = "16MiB"
""")
    r = cfg.groups
    assert [s.kind for s in r.groups[0].members] == ["cmdline", "cgroup", "name", "pid"]
    assert r.groups[0].members[1].text == "system.slice/redis.service"
    assert r.constraints[0].allowed_nodes == {0, 1} and r.constraints[0].prefer_ht
    assert (r.shared_memory, r.min_shared) == (True, 16 << 20)
    assert config.parse("").groups == groups.GroupRules()


@pytest.mark.parametrize("text, field", [
    ('[[groups]]\nname = "a"\nmembers = ["regex:x"]', "groups[0].members[0]"),
    ('[[groups]]\nname = "a"\nmembers = ["cmdline:("]', "groups[0].members[0]"),
    ('[[groups]]\nname = "a"\nmembers = []', "groups[0].members"),
    ('[[groups]]\nmembers = ["pid:3"]', "groups[0].name"),
    ('[[groups]]\nname = "shm:x"\nmembers = ["pid:3"]', "groups[0].name"),
    ('[[groups]]\nname = "a"\nmembers = ["pid:3"]\n[[groups]]\nname = "a"\n'
     'members = ["pid:4"]', "groups[1].name"),
    ('[[groups]]\nname = "a"\nmembers = ["pid:1"]', "groups[0].members[0]"),
    ('[[groups]]\nname = "a"\nmembers = ["cgroup:../etc"]', "groups[0].members[0]"),
    ('[[groups]]\nname = "a"\nmembers = ["pid:3"]\ncolour = 1', "groups[0].colour"),
    ('[[constraints]]\nmembers = ["pid:3"]\nallowed_nodes = [-1]',
     "constraints[0].allowed_nodes"),
    ('[[constraints]]\nmembers = ["pid:3"]\nallowed_nodes = "x"',
     "constraints[0].allowed_nodes"),
    ('[[constraints]]\nmembers = ["pid:3"]\nallowed_nodes = []',
     "constraints[0].allowed_nodes"),
    ('[[constraints]]\nmembers = ["pid:3"]\nprefer_ht = "yes"', "constraints[0].prefer_ht"),
    ('groups = 3', "groups"),
    ('[auto_groups]\nshared_memory = 1', "auto_groups.shared_memory"),
    ('[auto_groups]\nmin_shared = "lots"', "auto_groups.min_shared"),
])
def test_bad_tables_are_one_line_naming_the_field(text: str, field: str):
    with pytest.raises(InputError) as e:
        config.parse(text, "x.toml")
    assert e.value.field == field and "\n" not in str(e.value)


# --- selectors on fixture trees -----------------------------------------------------------

def test_groups_and_constraints_reach_the_policys_clients():
    snap = fixture_host(DRY + """vms = true
[[groups]]
name = "app"
members = ["name:vm1", "cmdline:worker\\\\.py"]
[[constraints]]
members = ["cmdline:worker"]
allowed_nodes = [2, 3]
prefer_ht = true
[[constraints]]
members = ["name:vm1"]
allowed_nodes = [7]
""").snapshot()
    vm, worker = (snap.clients[snap.index_of(i)] for i in ("pid:100", "pid:200"))
    assert vm.affinity_group == worker.affinity_group == "app"
    # kernel nodes 2 and 3 are indices 1 and 2 of the sparse fixture (nodes 0, 2, 3)
    assert worker.allowed_nodes == {1, 2} and worker.prefer_ht
    assert vm.allowed_nodes is None             # node 7 does not exist: no constraint
    assert snap.vectors().allowed[snap.index_of("pid:200")].tolist() == [False, True, True]


def test_a_cgroup_selector_takes_the_cgroup_and_the_processes_in_it():
    text = ("[daemon]\ndry_run = true\n[processes]\nauto = false\nvms = false\n"
            "cmdline = ['worker']\n[cgroups]\nparents = ['machine.slice']\n"
            "[[groups]]\nname = 'vms'\nmembers = ['cgroup:machine.slice']\n"
            "[[groups]]\nname = 'users'\nmembers = ['cgroup:user.slice']\n")
    snap = fixture_host(text, cg=CGROUP).snapshot()
    got = {c.id: c.affinity_group for c in snap.clients}
    assert got == {"pid:200": "users",
                   "cg:machine.slice/machine-qemu\\x2d1\\x2dvm1.scope": "vms",
                   "cg:machine.slice/machine-qemu\\x2d2\\x2dpinned.scope": "vms"}


def test_a_vms_guest_name_selects_all_its_slices():
    snap = fixture_host("[daemon]\ndry_run = true\n[processes]\nauto = false\n"
                        "[[constraints]]\nmembers = ['name:vm2']\nallowed_nodes = '0,2'\n",
                        FIXTURES / "vnuma" / "proc").snapshot()
    assert [(c.id, c.allowed_nodes) for c in snap.clients] == \
        [("pid:700/0", {0, 1}), ("pid:700/1", {0, 1})]


# --- shared memory ------------------------------------------------------------------------

MAPS = """\
55d0c0a00000-55d0c0b00000 rw-p 00000000 00:00 0 [heap]
7f0000000000-7f0004000000 rw-s 00000000 00:1a 1001 /dev/shm/pg.1
7f0004000000-7f0008000000 rw-s 00000000 00:01 2002 /memfd:memory-backend-memfd (deleted)
7f0008000000-7f000c000000 rw-s 00000000 00:01 3003 /SYSV0052e2c1 (deleted)
7f000c000000-7f0010000000 rw-s 00000000 00:01 4004 /dev/zero (deleted)
7f0010000000-7f0014000000 rw-s 00000000 fe:00 5005 /var/lib/db/data.file
7f0014000000-7f0018000000 r--s 00000000 00:1a 6006 /dev/shm/readonly
7f0018000000-7f0018100000 rw-s 00000000 00:1a 7007 /dev/shm/small
7f0018100000-7f0018200000 rw-s 00000000 00:1a 7007 /dev/shm/small
7f0020000000-7f0024000000 rw-p 00000000 00:1a 8008 /dev/shm/private
"""


def test_shared_objects_in_maps():
    got = procmaps.shared_objects(MAPS, 2 << 20)
    # tmpfs, memfd, SysV and shared anonymous memory; not a file on disk, not read-only,
    # not private; /dev/shm/small counts its two mappings (2 MiB in all)
    assert got == {("00:1a", 1001): "/dev/shm/pg.1",
                   ("00:01", 2002): "/memfd:memory-backend-memfd",
                   ("00:01", 3003): "/SYSV0052e2c1",
                   ("00:01", 4004): "/dev/zero",
                   ("00:1a", 7007): "/dev/shm/small"}
    assert ("00:1a", 7007) not in procmaps.shared_objects(MAPS, 3 << 20)


SHARER = r"""
import mmap, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
os.ftruncate(fd, 2 << 20)
m = mmap.mmap(fd, 2 << 20, mmap.MAP_SHARED)
m[0] = 1
print("ready", flush=True)
sys.stdin.readline()
"""


@contextmanager
def sharers(*paths: str) -> Iterator[list[subprocess.Popen]]:
    procs = []
    try:
        for path in paths:
            p = subprocess.Popen([sys.executable, "-c", SHARER, path, "hn-shm-test"],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            procs.append(p)
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        yield procs
    finally:
        for p in procs:
            p.kill()
            p.wait(10)
        for path in set(paths):
            Path(path).unlink(missing_ok=True)


@pytest.mark.skipif(not Path("/dev/shm").is_dir(), reason="no /dev/shm")
def test_processes_sharing_memory_form_a_group():
    tag = uuid.uuid4().hex[:8]
    a, b = f"/dev/shm/hn-{tag}-a", f"/dev/shm/hn-{tag}-b"
    with sharers(a, a, b) as procs:
        cfg = config.parse("[daemon]\ndry_run = true\n[processes]\nauto = false\n"
                           "vms = false\ncmdline = ['hn-shm-test']\n"
                           "[auto_groups]\nshared_memory = true\nmin_shared = '1MiB'\n")
        h = LinuxHost(cfg, StepClock(), proc_root="/proc", sys_root=SYS_TWO)
        snap = h.snapshot()
        got = {c.id: c.affinity_group for c in snap.clients}
        p1, p2, p3 = (f"pid:{p.pid}" for p in procs)
        ino = os.stat(a).st_ino
        assert got[p1] == got[p2] == f"shm:{a}@{ino}"
        assert got[p3] == ""                    # maps a file of its own: no group
        # the first one exits: its partner is alone, and leaves the group next scan
        procs[0].kill()
        procs[0].wait(10)
        h.clock.t = 60.0                        # type: ignore[attr-defined]
        snap = h.snapshot()
        assert {c.id: c.affinity_group for c in snap.clients} == {p2: "", p3: ""}
