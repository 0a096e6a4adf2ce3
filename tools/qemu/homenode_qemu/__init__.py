"""homenode's QEMU harness: real multi-node Linux kernels for the tests and benchmarks.

Host side: :mod:`assets` (kernel, initramfs, worker binary, cached), :mod:`machine` (the 2-
and 4-node layouts and QEMU's argv), :mod:`vm` (boot, run, collect, always within a limit).
Guest side: :mod:`homenode_qemu.guest` (scenarios run inside the guest against real
processes; results as JSON).  See docs/qemu.md.
"""

from homenode_qemu.assets import cache_dir, missing
from homenode_qemu.machine import Machine, four_nodes, two_nodes
from homenode_qemu.vm import GuestRun, run_guest, run_python

__all__ = ["GuestRun", "Machine", "cache_dir", "four_nodes", "missing", "run_guest",
           "run_python", "two_nodes"]
