"""homenode's own syscall module and /proc and /sys readers, as the guest scenarios call them.

This adapter is the one place in the harness that knows the call signatures of
``numa_syscalls``, ``procfs`` and ``sysfs`` (in ``homenode.linux.kernel``), so the
scenarios stay unchanged when those move.  Results are plain JSON-able data; errors are
recorded as ``"ExceptionName: message"`` strings, not raised, so one failing call does not
hide the others' results.
"""

from __future__ import annotations

import importlib
from typing import Any


class Adapter:
    def __init__(self) -> None:
        self.ok = False
        self.error = ""
        try:
            self.sc = importlib.import_module("homenode.linux.kernel.numa_syscalls")
            self.procfs = importlib.import_module("homenode.linux.kernel.procfs")
            self.sysfs = importlib.import_module("homenode.linux.kernel.sysfs")
            self.ok = True
        except ImportError as e:
            self.error = f"{type(e).__name__}: {e}"

    def describe(self) -> dict[str, Any]:
        return {"available": self.ok, "error": self.error}

    def query(self, pid: int, addrs: list[int]) -> list[int] | str:
        """move_pages(2) with no target nodes: each page's node, or -errno."""
        return _guard(lambda: [int(s) for s in self.sc.move_pages(pid, _u64(addrs), None)])

    def move(self, pid: int, addrs: list[int], node: int) -> list[int] | str:
        return _guard(lambda: [int(s) for s in self.sc.move_pages(pid, _u64(addrs), node)])

    def migrate(self, pid: int, old: list[int], new: list[int]) -> int | str:
        """migrate_pages(2): the number of pages not moved."""
        return _guard(lambda: int(self.sc.migrate_pages(pid, old, new)))

    def read_numa_maps(self, pid: int) -> dict[str, int] | str:
        """homenode's count of the process's own memory per node (4 KiB pages)."""
        def read() -> dict[str, int]:
            vmas = self.procfs.read_numa_maps("/proc", pid)
            return {str(n): int(c) for n, c in sorted(self.procfs.node_pages(vmas).items())}
        return _guard(read)

    def read_topology(self) -> dict[str, Any] | str:
        def read() -> dict[str, Any]:
            t = self.sysfs.read_topology("/sys")
            return {"node_ids": [int(n) for n in t.node_ids],
                    "cpus": [[int(c) for c in cs] for cs in t.cpus],
                    "distance": t.distance.astype(int).tolist(),
                    "mem_pages": [int(m) for m in t.mem_pages]}
        return _guard(read)


def _u64(addrs: list[int]) -> Any:
    import numpy as np
    return np.array(addrs, dtype=np.uint64)


def _guard(call: Any) -> Any:
    try:
        return call()
    except Exception as e:
        return f"{type(e).__name__}: {e}"


def adapter() -> Adapter:
    return Adapter()
