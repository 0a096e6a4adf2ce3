"""The emulated machines: NUMA layout, memory, kernel command line, and QEMU's argv.

Two layouts, as issue 8 asks:

* ``two_nodes()``: nodes 0 and 1, SLIT distances 10 (local) / 21 (remote);
* ``four_nodes()``: two "sockets" of two nodes each, distances 10 (local), 12 (the other
  node of the same socket), 32 (a node of the other socket).

Software emulation (TCG) only: KVM hangs after the BIOS on these machines, and TCG gives
the same kernel NUMA behaviour.  ``-cpu qemu64`` ran the guest's Python about 1.8x faster
than ``-cpu max`` under TCG, but NumPy 2.4 (which homenode imports) needs the x86-64-v2
instructions and dies with SIGILL on a bare qemu64: CPU_MODEL adds exactly those.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from homenode_qemu.assets import QEMU

LOCAL, NEAR, FAR, REMOTE_2 = 10, 12, 32, 21

# qemu64 plus the x86-64-v2 level (SSSE3, SSE4.1, SSE4.2, POPCNT, CX16, LAHF).
CPU_MODEL = "qemu64,+ssse3,+sse4.1,+sse4.2,+popcnt,+cx16,+lahf-lm"

# Kernel command line: quiet serial console, reboot = power off on panic, our init.
BASE_CMDLINE = "console=ttyS0 panic=-1 loglevel=4 rdinit=/init"


@dataclass(frozen=True)
class Machine:
    """One guest: ``nodes`` NUMA nodes of ``cpus_per_node`` vCPUs and ``mem_per_node_mib``."""

    nodes: int
    distance: tuple[tuple[int, ...], ...]
    mem_per_node_mib: int = 512
    cpus_per_node: int = 1
    numa_balancing: bool = False         # the kernel's own balancing (numa_balancing=1)
    cmdline_extra: tuple[str, ...] = field(default_factory=tuple)
    cpu_model: str = CPU_MODEL
    # "multi": one host thread per vCPU (measured faster: migrate_pages of 64 MiB on 4 nodes
    # 0.7 s against 3 s with "single", one thread for all vCPUs)
    tcg_thread: str = "multi"

    def __post_init__(self) -> None:
        if len(self.distance) != self.nodes or any(len(r) != self.nodes for r in self.distance):
            raise ValueError(f"distance must be {self.nodes}x{self.nodes}")

    @property
    def cpus(self) -> int:
        return self.nodes * self.cpus_per_node

    def node_cpus(self, node: int) -> list[int]:
        return list(range(node * self.cpus_per_node, (node + 1) * self.cpus_per_node))

    def cmdline(self) -> str:
        # The kernel's balancing moves pages behind a test's back, so it is off unless a run
        # is about it (Debian builds with CONFIG_NUMA_BALANCING_DEFAULT_ENABLED=y).
        nb = "numa_balancing=enable" if self.numa_balancing else "numa_balancing=disable"
        return " ".join((BASE_CMDLINE, nb, *self.cmdline_extra))

    def qemu_argv(self, kernel: Path, initrd: Path, share: Path) -> list[str]:
        argv = [QEMU, "-accel", f"tcg,thread={self.tcg_thread}", "-cpu", self.cpu_model,
                "-smp", str(self.cpus),
                "-m", f"{self.nodes * self.mem_per_node_mib}M"]
        for i in range(self.nodes):
            cpus = self.node_cpus(i)
            argv += ["-object", f"memory-backend-ram,id=m{i},size={self.mem_per_node_mib}M",
                     "-numa", f"node,nodeid={i},cpus={cpus[0]}-{cpus[-1]},memdev=m{i}"]
        for i in range(self.nodes):
            for j in range(self.nodes):
                if i != j:
                    argv += ["-numa", f"dist,src={i},dst={j},val={self.distance[i][j]}"]
        argv += ["-kernel", str(kernel), "-initrd", str(initrd), "-append", self.cmdline(),
                 "-virtfs", "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,"
                            "multidevs=remap",
                 "-virtfs", f"local,path={share},mount_tag=share,security_model=none,"
                            "multidevs=remap",
                 "-nographic", "-no-reboot", "-net", "none"]
        return argv


def two_nodes(**kw) -> Machine:
    return Machine(2, ((LOCAL, REMOTE_2), (REMOTE_2, LOCAL)), **kw)


def four_nodes(**kw) -> Machine:
    """Nodes {0, 1} form one socket and {2, 3} the other."""
    def d(i: int, j: int) -> int:
        return LOCAL if i == j else NEAR if i // 2 == j // 2 else FAR
    return Machine(4, tuple(tuple(d(i, j) for j in range(4)) for i in range(4)), **kw)
