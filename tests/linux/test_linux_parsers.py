"""Parsers and readers of sysfs, procfs and cgroup v2, on real-format fixture trees."""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from linux_support import CGROUP, PROC, SYS_SPARSE

from homenode.linux.kernel import cgroup, procfs, sysfs
from homenode.linux.kernel.errors import ParseError
from homenode.units import GIB, PAGE_SIZE

# --- sysfs ---------------------------------------------------------------------------------


@pytest.mark.parametrize("text, ids", [
    ("0-3,8,10-11\n", (0, 1, 2, 3, 8, 10, 11)),
    ("", ()),
    ("\n", ()),
    ("5", (5,)),
    ("0,2-3", (0, 2, 3)),
])
def test_parse_cpulist(text, ids):
    assert sysfs.parse_cpulist(text) == ids


@pytest.mark.parametrize("text", ["0-", "a", "3-1", "1,,2", "-1", "0-2-4"])
def test_parse_cpulist_rejects(text):
    with pytest.raises(ParseError):
        sysfs.parse_cpulist(text)


@given(st.sets(st.integers(0, 300), max_size=40))
def test_cpulist_round_trip(ids):
    assert sysfs.parse_cpulist(sysfs.format_cpulist(ids)) == tuple(sorted(ids))


@given(st.text(max_size=40))
def test_parse_cpulist_only_raises_parse_error(text):
    with contextlib.suppress(ParseError):
        sysfs.parse_cpulist(text)


def test_format_cpulist_like_numad():
    # numad's str_from_id_list: a run of two or more ids is "a-b"
    assert sysfs.format_cpulist([0, 1]) == "0-1"
    assert sysfs.format_cpulist([0, 2, 3, 4, 7]) == "0,2-4,7"
    assert sysfs.format_cpulist([]) == ""


def test_sparse_topology():
    t = sysfs.read_topology(SYS_SPARSE)
    assert t.node_ids == (0, 2, 3)
    # CPU 7 is listed by node 2 but offline
    assert t.cpus == ((0, 1, 2, 3), (4, 5, 6), (8, 9))
    # SMT pairs (0,1) (2,3) | (4,5) (6,7) | (8,9)
    assert t.cores.tolist() == [2.0, 2.0, 1.0]
    # 8 GiB, 8 GiB, memoryless
    assert t.mem_pages.tolist() == [8 * GIB // PAGE_SIZE, 8 * GIB // PAGE_SIZE, 0]
    assert t.distance.tolist() == [[10, 21, 31], [21, 10, 21], [31, 21, 10]]
    assert t.index(2) == 1


def test_free_memory_counts_inactive_file():
    state = sysfs.TopologyReader(SYS_SPARSE).read()
    # node 0: MemFree 4 GiB + Inactive(file) 1 GiB; node 2: 6 GiB; node 3: none
    assert state.free_pages.tolist() == [5 * GIB // PAGE_SIZE, 6 * GIB // PAGE_SIZE, 0]


def test_topology_rebuilt_only_when_it_changes(tmp_path: Path):
    root = tmp_path / "sys"
    shutil.copytree(SYS_SPARSE, root)
    reader = sysfs.TopologyReader(root)
    first = reader.read()
    again = reader.read()
    assert first.changed and not again.changed
    assert again.topology is first.topology
    # CPU 7 comes online, and node 0's memory is hot-added
    (root / "devices/system/cpu/online").write_text("0-9\n")
    (root / "devices/system/cpu/cpu7/topology").mkdir(parents=True)
    (root / "devices/system/cpu/cpu7/topology/thread_siblings_list").write_text("6-7\n")
    meminfo = root / "devices/system/node/node0/meminfo"
    meminfo.write_text(meminfo.read_text().replace("8388608", "12582912", 1))
    later = reader.read()
    assert later.changed
    assert later.topology.cpus[1] == (4, 5, 6, 7)
    assert later.topology.mem_pages[0] == 12 * GIB // PAGE_SIZE


def test_node_meminfo_rejects_garbage():
    with pytest.raises(ParseError):
        sysfs.parse_node_meminfo("Node 0 MemTotal: lots\n")
    with pytest.raises(ParseError):
        sysfs.parse_node_meminfo("Node 0 MemFree: 10 kB\n")     # no MemTotal


# --- /proc/PID/stat --------------------------------------------------------------------------

def test_stat_comm_with_parens_and_spaces():
    s = procfs.read_stat(str(PROC), 100)
    assert s.comm == "qemu) (vm1"
    assert (s.pid, s.state, s.ppid, s.utime, s.stime, s.num_threads, s.starttime) == \
        (100, "S", 1, 300, 100, 3, 5000)
    assert s.rss == 3300 and not s.kernel_thread


def test_kernel_threads_are_recognised():
    assert procfs.read_stat(str(PROC), 2).kernel_thread          # kthreadd
    assert procfs.read_stat(str(PROC), 3).kernel_thread          # PF_KTHREAD, ppid 2
    assert not procfs.read_stat(str(PROC), 200).kernel_thread


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",),
                                      blacklist_characters="\0\n"), max_size=16),
       st.integers(1, 4_000_000), st.integers(0, 10**12))
def test_stat_any_comm(comm, pid, start):
    line = (f"{pid} ({comm}) R 1 1 1 0 -1 4194304 0 0 0 0 7 3 0 0 20 0 1 0 {start} 100 5 "
            "0 0 0 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0")
    s = procfs.parse_stat(line)
    assert (s.pid, s.comm, s.utime, s.stime, s.starttime, s.rss, s.processor) == \
        (pid, comm, 7, 3, start, 5, 1)


@given(st.binary(max_size=200))
def test_parse_stat_only_raises_parse_error(data):
    with contextlib.suppress(ParseError):
        procfs.parse_stat(data)


# --- numa_maps ---------------------------------------------------------------------------------

def test_numa_maps_huge_pages_and_odd_names():
    vmas = procfs.read_numa_maps(str(PROC), 100)
    assert len(vmas) == 6
    anon, huge, libc, memfd, stack, empty = vmas
    assert anon.nodes == {0: 1024, 2: 1024} and anon.counted
    assert huge.huge and huge.page_kb == 2048 and huge.policy == "bind:2"
    assert huge.pages_4k() == {2: 4 * 512}
    assert procfs.unescape_path(huge.file) == "/dev/hugepages/qemu_back_mem.pc.ram.Ab (1)"
    assert not libc.counted                      # a shared library: not the VM's memory
    assert memfd.policy == "prefer (many)=static:0,2" and memfd.shared_memory
    assert memfd.binding and huge.binding and not anon.binding
    assert stack.anon == 33 and empty.nodes == {}
    # counted: anon 1024+1024, huge 2048 on N2, memfd 6+4, stack 33
    assert procfs.node_pages(vmas) == {0: 1024 + 6 + 33, 2: 1024 + 2048 + 4}
    # bound (bind + prefer (many)) = 2058 of 4139 pages: just under half
    assert procfs.bound_fraction(vmas) == pytest.approx(2058 / 4139)


def test_numa_maps_of_this_process():
    import os
    vmas = procfs.read_numa_maps("/proc", os.getpid())
    assert sum(procfs.node_pages(vmas).values()) > 0


@given(st.text(max_size=300))
def test_parse_numa_maps_only_raises_parse_error(text):
    with contextlib.suppress(ParseError):
        procfs.parse_numa_maps(text)


def test_status_and_schedstat():
    status = procfs.read_status(str(PROC), 300, 301)
    assert procfs.allowed_cpus(status) == {4, 5}
    assert procfs.allowed_mems(status) == {0, 2, 3}
    assert procfs.read_schedstat(str(PROC), 100, 101) == (3_000_000_000, 500_000_000)
    with pytest.raises(ParseError):
        procfs.parse_schedstat("x")


def test_maps_writable():
    text = ("55d0a0000000-55d0a0021000 rw-p 00000000 00:00 0                          [heap]\n"
            "7f0000000000-7f0000200000 r-xp 00000000 fe:00 12  /usr/lib/libc.so.6\n")
    heap, lib = procfs.parse_maps(text)
    assert heap.writable and heap.path == "[heap]" and heap.end - heap.start == 0x21000
    assert not lib.writable


# --- cgroup v2 -------------------------------------------------------------------------------

VM_SCOPE = CGROUP / "machine.slice" / "machine-qemu\\x2d1\\x2dvm1.scope"


def test_cgroup_numa_stat_in_bytes():
    stat = cgroup.parse_numa_stat((VM_SCOPE / "memory.numa_stat").read_text())
    assert stat["anon"] == {0: GIB, 2: GIB // 2}
    # anon + shmem, in 4 KiB pages
    assert cgroup.node_pages(VM_SCOPE) == {0: GIB // PAGE_SIZE,
                                           2: (GIB // 2 + GIB // 4) // PAGE_SIZE}


def test_cgroup_cpu_files():
    assert cgroup.usage_us(VM_SCOPE) == 2_500_000
    assert cgroup.waiting_us(VM_SCOPE) == 400_000
    assert cgroup.cpu_limit(VM_SCOPE) == 4.0
    assert cgroup.cpu_weight(VM_SCOPE) == 200
    assert cgroup.parse_cpu_max("max 100000") == np.inf
    with pytest.raises(ParseError):
        cgroup.parse_cpu_max("0 100000")


def test_cgroup_names_and_members():
    assert cgroup.display_name(VM_SCOPE) == "vm1"
    assert cgroup.display_name(Path("/x/docker-abc.scope")) == "docker-abc"
    assert cgroup.member_pids(VM_SCOPE) == [100]
    assert [p.name for p in cgroup.children(CGROUP / "machine.slice")] == [
        "machine-qemu\\x2d1\\x2dvm1.scope", "machine-qemu\\x2d2\\x2dpinned.scope"]


@given(st.text(max_size=200))
def test_parse_numa_stat_only_raises_parse_error(text):
    with contextlib.suppress(ParseError):
        cgroup.parse_numa_stat(text)


def test_private_file_mapping_counts_only_its_anon_share():
    # libc's data segment: 40 pages mapped, of which 10 copied-on-write (anon)
    (vma,) = procfs.parse_numa_maps(
        "7f00 default file=/usr/lib/libc.so.6 anon=10 dirty=10 mapped=40 mapmax=9 "
        "N0=30 N1=10 kernelpagesize_kB=4\n")
    assert vma.counted and vma.own_pages_4k() == {0: 8, 1: 2}
    assert procfs.node_pages([vma]) == {0: 8, 1: 2}
