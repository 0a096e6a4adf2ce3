"""Which processes and cgroups become clients, on the fixture /proc and cgroup trees."""

from __future__ import annotations

from pathlib import Path

import pytest
from linux_support import CGROUP, PROC

from homenode.linux import config, discovery
from homenode.units import MIB


def scan(cfg_text: str, proc: Path = PROC, now: float = 0.0, d=None):
    d = d or discovery.Discovery(config.parse(cfg_text), str(proc), CGROUP, self_pid=999999)
    return d, d.scan(now, [], [])


def test_vm_and_cmdline_matches():
    _, found = scan("[processes]\nauto = false\ncmdline = ['worker\\.py']")
    by_pid = {p.pid: p for p in found.processes}
    assert set(by_pid) == {100, 200}
    vm = by_pid[100]
    # named by -name guest=..., vCPUs from the "CPU n/KVM" threads, size from -m (MiB)
    assert (vm.name, vm.vm, vm.vcpus, vm.mem_bytes, vm.why) == ("vm1", True, 2, 4096 * MIB,
                                                                 "vm")
    assert (by_pid[200].name, by_pid[200].why, by_pid[200].vm) == ("worker", "cmdline", False)


def test_never_pid1_kernel_threads_zombies_or_self():
    _, found = scan("[processes]\nauto = false\ncmdline = ['.']\nvms = false")
    pids = {p.pid for p in found.processes}
    assert not pids & {1, 2, 3, 400}
    d = discovery.Discovery(config.parse("[processes]\ncmdline = ['.']"), str(PROC), None,
                            self_pid=200)
    assert 200 not in {p.pid for p in d.scan(0.0, [], []).processes}


def test_exclude_wins_over_auto_but_not_over_pids():
    _, found = scan("[processes]\nauto = false\nvms = false\ncmdline = ['.']\n"
                    "exclude = ['sshd']")
    assert 500 not in {p.pid for p in found.processes}
    _, found = scan("[processes]\nauto = false\nvms = false\npids = [500]\n"
                    "exclude = ['sshd']")
    assert [p.pid for p in found.processes] == [500]


def test_auto_needs_both_thresholds_over_two_scans(proc_copy: Path):
    # pid 300: 500100 pages resident (> 300 MiB); CPU is known only from the 2nd scan
    text = "[processes]\nvms = false\nmin_cpu = 0.5"
    d, first = scan(text, proc_copy, now=0.0)
    assert first.processes == []
    stat = proc_copy / "300" / "stat"
    stat.write_text(stat.read_text().replace(" 2000 0 0 0 20", " 2100 0 0 0 20"))
    second = d.scan(1.0, [], [])          # 100 ticks in 1 s = 1 CPU
    assert [p.pid for p in second.processes] == [300]
    assert second.processes[0].why == "auto"


def test_a_tracked_process_is_not_found_again():
    d, found = scan("[processes]\nauto = false\nvms = false\ncmdline = ['worker']")
    assert [p.pid for p in found.processes] == [200]
    again = d.scan(1.0, [(200, 6000)], [])
    assert again.processes == []


def test_reused_pid_is_judged_afresh(proc_copy: Path):
    d, found = scan("[processes]\nauto = false\nvms = false\ncmdline = ['worker']", proc_copy)
    assert [(p.pid, p.start) for p in found.processes] == [(200, 6000)]
    # pid 200 exits and the PID is reused by a process that does not match
    (proc_copy / "200" / "cmdline").write_text("/bin/other\0")
    stat = proc_copy / "200" / "stat"
    stat.write_text(stat.read_text().replace(" 6000 ", " 9000 "))
    assert d.scan(1.0, [(200, 6000)], []).processes == []


def test_cgroup_children_are_clients():
    d = discovery.Discovery(config.parse("[cgroups]\nparents = ['machine.slice']\n"
                                         "[processes]\nauto = false\nvms = false"),
                            str(PROC), CGROUP, self_pid=1)
    found = d.scan(0.0, [], [])
    assert [(c.rel, c.name) for c in found.cgroups] == [
        ("machine.slice/machine-qemu\\x2d1\\x2dvm1.scope", "vm1"),
        ("machine.slice/machine-qemu\\x2d2\\x2dpinned.scope", "pinned")]
    assert d.scan(1.0, [], [c.rel for c in found.cgroups]).cgroups == []


@pytest.mark.parametrize("argv, name, smp, mem", [
    (["qemu-system-x86_64", "-name", "guest=db,,prod,debug-threads=on", "-smp", "cpus=8",
      "-m", "size=16G,slots=4,maxmem=64G"], "db,prod", 8, 16 << 30),
    (["/usr/libexec/qemu-kvm", "-name", "web", "-smp", "2", "-m", "2048"], "web", 2,
     2048 * MIB),
    (["qemu-system-aarch64", "-m", "512M"], "", 1, 512 * MIB),
])
def test_qemu_command_lines(argv, name, smp, mem):
    assert discovery.is_qemu(argv, "whatever")
    assert discovery.qemu_name(argv) == name
    assert discovery.qemu_smp(argv) == smp
    assert discovery.qemu_mem(argv) == mem


def test_not_qemu():
    assert not discovery.is_qemu(["/usr/bin/python3", "qemu.py"], "python3")


def test_an_explicit_pid_means_the_process_first_seen_with_it(proc_copy: Path):
    d, found = scan("[processes]\nauto = false\nvms = false\npids = [500]", proc_copy)
    assert [(p.pid, p.start) for p in found.processes] == [(500, 900)]
    stat = proc_copy / "500" / "stat"
    stat.write_text(stat.read_text().replace(" 900 ", " 9900 "))   # exited; PID reused
    assert d.scan(1.0, [(500, 900)], []).processes == []


def test_never_the_cgroup_homenode_runs_in(proc_copy: Path):
    (proc_copy / "100" / "cgroup").write_text(
        "0::/machine.slice/machine-qemu\\x2d1\\x2dvm1.scope/libvirt/emulator\n")
    d = discovery.Discovery(config.parse("[cgroups]\nparents = ['machine.slice']\n"
                                         "[processes]\nauto = false\nvms = false"),
                            str(proc_copy), CGROUP, self_pid=100)
    assert [c.name for c in d.scan(0.0, [], []).cgroups] == ["pinned"]


def test_a_process_seen_inside_its_exec_is_judged_again_after_it(proc_copy: Path):
    # The kernel sets the new comm (begin_new_exec) before the new command line
    # (create_elf_tables): a read in between sees the new comm and no command line,
    # which once read as "a zombie or a kernel helper" for the life of the process.
    cmdline = proc_copy / "200" / "cmdline"
    cmdline.write_text("")
    d, found = scan("[processes]\nauto = false\nvms = false\ncmdline = ['worker']", proc_copy)
    assert found.processes == []
    cmdline.write_text("/opt/worker\0--tag\0managed\0")
    assert [(p.pid, p.start) for p in d.scan(1.0, [], []).processes] == [(200, 6000)]
    # a zombie's empty command line is final
    stat = proc_copy / "200" / "stat"
    cmdline.write_text("")
    stat.write_text(stat.read_text().replace(") R ", ") Z ").replace(") S ", ") Z "))
    d, _ = scan("[processes]\nauto = false\nvms = false\ncmdline = ['worker']", proc_copy)
    assert d._seen[200].start == 6000


def test_a_process_seen_before_its_exec_is_judged_again_after_it(proc_copy: Path):
    # Regression (found by the QEMU churn scenario): discovery looked at pid 200 between
    # fork and exec, saw its parent's command line and rejected it for good.
    (proc_copy / "200" / "cmdline").write_text("/usr/bin/python3\0launcher.py\0")
    stat = proc_copy / "200" / "stat"
    stat.write_text(stat.read_text().replace("(worker)", "(python3)"))
    d, found = scan("[processes]\nauto = false\nvms = false\ncmdline = ['worker']", proc_copy)
    assert found.processes == []
    # exec: same PID and start time, new comm and command line
    (proc_copy / "200" / "cmdline").write_text("/opt/worker\0--tag\0managed\0")
    stat.write_text(stat.read_text().replace("(python3)", "(worker)"))
    assert [(p.pid, p.start) for p in d.scan(1.0, [], []).processes] == [(200, 6000)]
