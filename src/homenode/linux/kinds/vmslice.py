"""The vNUMA slice kind: the vCPU threads of one guest NUMA node of a QEMU VM.

It acts like a process (pinned by its QEMU process's pidfd, affinity on its own threads
only -- ``VmSlice.list_tids`` -- and the pages of its guest node's memory range); what
differs lives in homenode.linux.vmslice, so this kind adds nothing yet.  It is its own
kind so that a difference (say, pages moved by guest range only) has one place to go.
"""

from __future__ import annotations

from homenode.linux.kinds.process import ProcessKind


class VmSliceKind(ProcessKind):
    pass
