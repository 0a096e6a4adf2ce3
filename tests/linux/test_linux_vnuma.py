"""Guest NUMA of QEMU VMs: command-line parsing, finding each backend's mapping, and the
slices a VM becomes on a fixture host.

Fixtures (tests/fixtures/linux/vnuma/): ``proc/700`` is a copy of a live QEMU 7.2 (TCG,
``-S``) with two guest nodes of 128 MiB (``prealloc``), two vCPUs each, and a VGA device
(16 MiB of device RAM); its numa_maps was edited to show ram-node1's pages on nodes 0
and 2 of the sparse fixture /sys (README).  ``libvirt-db7.cmdline`` is a libvirt 10-style
command line: JSON objects, one ``cpus=`` per range, a hugetlbfs file backend, a memfd
backend, a memory-only node and a DIMM.
"""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from linux_support import FIXTURES, SYS_SPARSE, StepClock

from homenode.linux import config, guestmem, migrate, qemu
from homenode.linux.host import LinuxHost
from homenode.linux.kernel import procfs, procmaps
from homenode.linux.kernel.procfs import Mapping
from homenode.model import Reason, SetHome
from homenode.policy import make_policy

VNUMA = FIXTURES / "vnuma"
PROC = VNUMA / "proc"
GIB = 1 << 30
MIB = 1 << 20
# ram-node0 was created first, so it lies above ram-node1 (top-down layout); the 16 MiB
# at 0x7f14aec00000 is the VGA's vga.vram, created after both.
NODE0 = (0x7F14AFE00000, 0x7F14B7E00000)
NODE1 = (0x7F1497E00000, 0x7F149FE00000)
DRY = "[daemon]\ndry_run = true\n[processes]\nauto = false\n"


def argv(name: str) -> list[str]:
    return [a.decode() for a in (VNUMA / name).read_bytes().split(b"\0") if a]


def layout_700() -> qemu.GuestLayout:
    layout = qemu.parse_guest_numa(procfs.read_cmdline(str(PROC), 700))
    assert layout is not None
    return layout


# --- the command line -----------------------------------------------------------------------

def test_libvirt_command_line():
    lay = qemu.parse_guest_numa(argv("libvirt-db7.cmdline"))
    assert lay is not None
    n0, n1, n2 = lay.nodes
    # cpus=0-2,cpus=6-8: libvirt writes one cpus= per range
    assert n0.vcpus == {0, 1, 2, 6, 7, 8} and n1.vcpus == {3, 4, 5, 9, 10, 11}
    assert n2.vcpus == frozenset()                 # a memory-only node
    assert n0.backends == ("ram-node0",)
    assert n1.backends == ("ram-node1", "memdimm0")   # -device pc-dimm,node=1
    assert lay.mem_bytes(n1) == 6 * GIB and lay.mem_bytes(n2) == 2 * GIB
    b = lay.backends
    assert (b["ram-node0"].kind, b["ram-node0"].mem_path, b["ram-node0"].share) == \
        ("file", "/dev/hugepages/libvirt/qemu/3-db7", True)
    assert (b["ram-node1"].kind, b["ram-node1"].share) == ("memfd", True)
    assert [x.id for x in sorted(b.values(), key=lambda x: x.order)] == \
        ["ram-node0", "ram-node1", "ram-node2", "memdimm0"]


def test_numa_cpu_options_and_qemus_default_node():
    # 4 sockets of 2 cores; socket 1 named for node 1, the others by QEMU's x86 default
    # (socket % nodes): sockets 0 and 2 -> node 0, socket 3 -> node 1
    lay = qemu.parse_guest_numa([
        "qemu-system-x86_64", "-smp", "8,sockets=4,cores=2",
        "-object", "memory-backend-ram,id=m0,size=1G",
        "-object", "memory-backend-ram,id=m1,size=1G",
        "-numa", "node,nodeid=0,memdev=m0", "-numa", "node,nodeid=1,memdev=m1",
        "-numa", "cpu,node-id=1,socket-id=1"])
    assert lay is not None
    assert lay.nodes[0].vcpus == {0, 1, 4, 5} and lay.nodes[1].vcpus == {2, 3, 6, 7}


@pytest.mark.parametrize("args", [
    [],                                                                    # no guest NUMA
    ["-object", "memory-backend-ram,id=m0,size=1G", "-numa", "node,memdev=m0"],  # one node
    ["-m", "2G", "-numa", "node,mem=1G", "-numa", "node,mem=1G"],           # legacy mem=
    ["-object", "memory-backend-ram,id=m0,size=1G", "-numa", "node,memdev=m0",
     "-numa", "node,memdev=nosuch"],                                       # unknown memdev
    ["-object", "memory-backend-ram,id=m0,size=1G", "-object",
     "memory-backend-ram,id=m1,size=1G", "-numa", "node,memdev=m0,cpus=x",
     "-numa", "node,memdev=m1"],                                           # bad cpus
])
def test_no_split(args):
    assert qemu.parse_guest_numa(["qemu-system-x86_64", *args]) is None


def test_option_syntax():
    assert qemu.keyval("node,nodeid=1,cpus=0-1,cpus=4", "type") == \
        {"type": ["node"], "nodeid": ["1"], "cpus": ["0-1", "4"]}
    assert qemu.keyval("file,path=/a,,b", "x") == {"x": ["file"], "path": ["/a,b"]}
    assert [qemu.parse_size(s) for s in ("1024", "64M", "1.5G", "2g", "4096k")] == \
        [1024, 64 * MIB, 3 * GIB // 2, 2 * GIB, 4 * MIB]
    assert qemu.parse_size("512", "M") == 512 * MIB
    # -smp: missing counts as QEMU 6.2+ machine types fill them (cores preferred)
    s = qemu.parse_smp(["-smp", "8"])
    assert (s.cpus, s.sockets, s.cores, s.threads) == (8, 1, 8, 1)
    s = qemu.parse_smp(["-smp", "8,sockets=2,maxcpus=16"])
    assert (s.cpus, s.maxcpus, s.sockets, s.cores) == (8, 16, 2, 8)
    assert qemu.Smp(8, 8, 2, 1, 1, 2, 2).ids(5) == \
        {"thread-id": 1, "core-id": 0, "module-id": 0, "die-id": 0, "socket-id": 1}


# --- each backend's mapping ------------------------------------------------------------------

def test_backends_of_a_real_qemu_found_by_size_and_order():
    maps = procfs.read_maps(str(PROC), 700)
    smaps_read = []

    def flags() -> dict[int, frozenset[str]]:
        smaps_read.append(1)
        return procmaps.parse_vmflags((PROC / "700" / "smaps").read_text())

    assert guestmem.resolve(layout_700(), maps, flags) == \
        {"ram-node0": (NODE0,), "ram-node1": (NODE1,)}
    assert smaps_read == []                # two candidates for two backends: no smaps


def test_an_earlier_mapping_of_the_same_size_is_told_apart_by_vmflags():
    # A 128 MiB heap-like mapping made before the backends (above them) has no "dc".
    maps = procfs.read_maps(str(PROC), 700)
    gap = next(a.end for a, b in itertools.pairwise(maps)
               if a.end > NODE0[1] and b.start - a.end > 128 * MIB)
    fake = Mapping(gap, gap + 128 * MIB, "rw-p", "")
    maps = sorted([*maps, fake], key=lambda m: m.start)
    flags = procmaps.parse_vmflags((PROC / "700" / "smaps").read_text())
    assert "dc" in flags[NODE0[0]] and fake.start not in flags
    assert guestmem.resolve(layout_700(), maps, lambda: flags) == \
        {"ram-node0": (NODE0,), "ram-node1": (NODE1,)}
    # without smaps the order alone would take the fake one: the limit that smaps covers
    assert guestmem.resolve(layout_700(), maps)["ram-node0"] == ((fake.start, fake.end),)


def test_file_memfd_and_anonymous_backends_of_the_libvirt_vm():
    lay = qemu.parse_guest_numa(argv("libvirt-db7.cmdline"))
    assert lay is not None
    g = 1 << 30
    lines = [  # as QEMU 7.2 maps them (top-down: created first = highest); guard pages
        f"7f0000000000-{0x7f0000000000 + 2 * g:x} rw-p 00000000 00:00 0 ",
        f"{0x7f0000000000 + 2 * g:x}-{0x7f0000000000 + 2 * g + 4096:x} ---p 00000000 00:00 0 ",
        f"7f0100000000-{0x7f0100000000 + 2 * g:x} rw-p 00000000 00:00 0 ",
        f"{0x7f0100000000 + 2 * g:x}-{0x7f0100000000 + 2 * g + 4096:x} ---p 00000000 00:00 0 ",
        f"7f0200000000-{0x7f0200000000 + 4 * g:x} rw-s 00000000 00:01 15498 "
        "/memfd:memory-backend-memfd (deleted)",
        f"7f0400000000-{0x7f0400000000 + 4 * g:x} rw-s 00000000 00:2e 343 "
        "/dev/hugepages/libvirt/qemu/3-db7/qemu_back_mem.ram-node0.ZwamZB (deleted)",
        "7f1000000000-7f1000200000 r-xp 00000000 fe:00 339380 /usr/lib/libc.so.6",
    ]
    maps = procfs.parse_maps("\n".join(lines))
    got = guestmem.resolve(lay, maps)
    assert got == {
        "ram-node0": ((0x7F0400000000, 0x7F0400000000 + 4 * g),),
        "ram-node1": ((0x7F0200000000, 0x7F0200000000 + 4 * g),),
        "ram-node2": ((0x7F0100000000, 0x7F0100000000 + 2 * g),),   # created before ...
        "memdimm0": ((0x7F0000000000, 0x7F0000000000 + 2 * g),),    # ... the DIMM's
    }
    # bottom-up (legacy) layout: the libraries lie below, later mappings higher
    libc_low = "100000000-100200000 r-xp 00000000 fe:00 339380 /usr/lib/libc.so.6"
    low = procfs.parse_maps("\n".join([*lines[:4], libc_low]))
    got = guestmem.resolve(lay, low)
    assert got["ram-node2"] == ((0x7F0000000000, 0x7F0000000000 + 2 * g),)


def test_a_split_vma_is_still_one_backend():
    lay = layout_700()
    maps = procfs.read_maps(str(PROC), 700)
    lo, hi = NODE1
    mid = lo + 64 * MIB                    # an mbind over half of it split the VMA
    maps = sorted([m for m in maps if m.start != lo] +
                  [Mapping(lo, mid, "rw-p", ""), Mapping(mid, hi, "rw-p", "")],
                  key=lambda m: m.start)
    assert guestmem.resolve(lay, maps)["ram-node1"] == ((lo, hi),)


# --- slices on a fixture host ----------------------------------------------------------------

def test_a_vm_with_guest_numa_becomes_one_client_per_guest_node():
    h = LinuxHost(config.parse(DRY), StepClock(), proc_root=str(PROC), sys_root=SYS_SPARSE,
                  self_pid=999999)
    snap = h.snapshot()
    assert [c.id for c in snap.clients] == ["pid:700/0", "pid:700/1"]
    s0, s1 = snap.clients
    assert (s0.name, s0.vcpus, s0.mem_bytes, s0.vm) == ("vm2/0", 2, 128 * MIB, "pid:700")
    assert (s1.name, s1.vcpus, s1.vm) == ("vm2/1", 2, "pid:700")
    assert s0.managed and s1.managed
    # only each backend's pages (nodes 0, 2, 3 are indices 0, 1, 2)
    assert snap.pages.tolist() == [[32768, 0, 0], [8192, 24576, 0]]
    threads = {c.id: c.tids for c in h.procs.values()}
    assert threads == {"pid:700/0": [702, 703], "pid:700/1": [704, 705]}   # CPU 0-1, 2-3
    d = make_policy("esxi", config.parse(DRY).settings).decide(snap)
    homes = {a.client: a for a in d.actions if isinstance(a, SetHome)}
    assert set(homes) == {"pid:700/0", "pid:700/1"}
    assert all(a.reason is Reason.INITIAL and "sibling" in a.detail for a in homes.values())


def test_a_migration_of_a_slice_scans_only_its_backend():
    h = LinuxHost(config.parse(DRY), StepClock(), proc_root=str(PROC), sys_root=SYS_SPARSE,
                  self_pid=999999)
    h.snapshot()
    c1 = next(c for c in h.procs.values() if c.id == "pid:700/1")
    assert c1.mem_ranges == (NODE1,)
    got = migrate.movable_mappings(str(PROC), 700, c1.vmas_on(0), c1.mem_ranges)
    assert [(m.start, m.end) for m in got] == [NODE1]
    # even when numa_maps' VMAs are stale (no start matches), never the whole process
    assert [(m.start, m.end) for m in
            migrate.movable_mappings(str(PROC), 700, {1}, c1.mem_ranges)] == [NODE1]
    assert len(migrate.movable_mappings(str(PROC), 700, {1})) > 50   # a plain process


def test_without_named_vcpu_threads_the_vm_stays_one_client(tmp_path: Path, caplog):
    proc = tmp_path / "proc"
    shutil.copytree(PROC, proc)
    cmdline = (proc / "700" / "cmdline").read_bytes()
    (proc / "700" / "cmdline").write_bytes(cmdline.replace(b"guest=vm2,debug-threads=on",
                                                           b"guest=vm2"))
    for comm in (proc / "700" / "task").glob("*/comm"):
        comm.write_text("qemu-system-x86\n")
    h = LinuxHost(config.parse(DRY + "vms = true\n"), StepClock(), proc_root=str(proc),
                  sys_root=SYS_SPARSE, self_pid=999999)
    with caplog.at_level("WARNING", logger="homenode.linux"):
        snap = h.snapshot()
    assert [c.id for c in snap.clients] == ["pid:700"]
    assert "debug-threads=on" in caplog.text


def test_a_vm_still_creating_its_vcpus_is_looked_at_again(tmp_path: Path):
    proc = tmp_path / "proc"
    shutil.copytree(PROC, proc)
    for tid in (704, 705):                           # CPU 2/TCG and CPU 3/TCG not yet
        shutil.rmtree(proc / "700" / "task" / str(tid))
    clock = StepClock()
    h = LinuxHost(config.parse(DRY + "vms = true\n"), clock, proc_root=str(proc),
                  sys_root=SYS_SPARSE, self_pid=999999)
    assert h.snapshot().clients == ()
    shutil.copytree(PROC / "700" / "task" / "704", proc / "700" / "task" / "704")
    shutil.copytree(PROC / "700" / "task" / "705", proc / "700" / "task" / "705")
    clock.t = 2.0
    assert [c.id for c in h.snapshot().clients] == ["pid:700/0", "pid:700/1"]


# --- properties ------------------------------------------------------------------------------

def ranges_of(cpus: list[int]) -> list[str]:
    """libvirt's spelling: one ``cpus=`` per run of consecutive vCPUs."""
    out: list[list[int]] = []
    for c in sorted(cpus):
        if out and c == out[-1][-1] + 1:
            out[-1].append(c)
        else:
            out.append([c])
    return [f"cpus={r[0]}-{r[-1]}" if len(r) > 1 else f"cpus={r[0]}" for r in out]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 3), min_size=2, max_size=24))
def test_vcpus_of_each_node_read_back(owner: list[int]):
    nodes = sorted(set(owner))
    assume(len(nodes) >= 2)
    args = ["qemu-system-x86_64", "-smp", str(len(owner))]
    for n in nodes:
        cpus = [i for i, o in enumerate(owner) if o == n]
        args += ["-object", f"memory-backend-ram,id=m{n},size=1G",
                 "-numa", ",".join([f"node,nodeid={nodes.index(n)}", *ranges_of(cpus),
                                    f"memdev=m{n}"])]
    lay = qemu.parse_guest_numa(args)
    assert lay is not None
    for k, n in enumerate(nodes):
        assert lay.nodes[k].vcpus == {i for i, o in enumerate(owner) if o == n}


@settings(max_examples=60, deadline=None)
@given(sizes=st.lists(st.sampled_from([64, 128, 256]), min_size=2, max_size=6),
       kinds=st.lists(st.sampled_from(["ram", "memfd"]), min_size=6, max_size=6),
       noise=st.lists(st.sampled_from([1, 8, 64, 128]), max_size=6),
       early=st.lists(st.booleans(), min_size=6, max_size=6),
       bottom_up=st.booleans())
def test_backends_are_found_in_any_layout_qemu_makes(sizes, kinds, noise, early, bottom_up):
    """QEMU maps the backends in command-line order, each followed by a guard page; device
    RAM of any size is mapped after them; other mappings (no ``dc``: malloc arenas, thread
    stacks) are made before or after, of any size."""
    args = ["qemu-system-x86_64", "-smp", str(len(sizes))]
    for i, mib in enumerate(sizes):
        args += ["-object", f"memory-backend-{kinds[i]},id=b{i},size={mib}M",
                 "-numa", f"node,nodeid={i},cpus={i},memdev=b{i}"]
    lay = qemu.parse_guest_numa(args)
    assert lay is not None
    made = [(f"b{i}", mib, kinds[i]) for i, mib in enumerate(sizes)]
    made += [(f"dev{j}", mib, "ram") for j, mib in enumerate(noise)]    # after the backends
    maps, flags, want = [], {}, {}
    step = 1 << 40
    base = 0x100000000000 if bottom_up else 0x7F0000000000
    for k, (name, mib, kind) in enumerate(made):
        start = base + k * step if bottom_up else base - (k + 1) * step
        path = "" if kind == "ram" else "/memfd:memory-backend-memfd (deleted)"
        perms = "rw-p" if kind == "ram" else "rw-s"
        maps += [Mapping(start, start + (mib << 20), perms, path),
                 Mapping(start + (mib << 20), start + (mib << 20) + 4096, "---p", "")]
        flags[start] = frozenset({"rd", "wr", "dc"})
        if name.startswith("b"):
            want[name] = ((start, start + (mib << 20)),)
    for j, mib in enumerate(noise):                    # a malloc arena, a thread stack ...
        if early[j]:                                   # made before the backends
            start = 0x080000000000 + j * step // 16 if bottom_up else \
                0x7FE000000000 - (j + 1) * step // 16
        else:
            start = 0x200000000000 + j * step
        maps.append(Mapping(start, start + (mib << 20), "rw-p", ""))
    libc = 0x050000000000 if bottom_up else 0x7FF000000000
    maps.append(Mapping(libc, libc + 4096, "r-xp", "/usr/lib/libc.so.6"))
    maps.sort(key=lambda m: m.start)
    assert guestmem.resolve(lay, maps, lambda: flags) == want
