"""Client kinds: what differs between a process, a cgroup and (through the process kind)
a vNUMA slice of a VM, behind one small interface (``ClientKind``).

Code outside these modules never asks which kind a client is: it asks the client's kind
(``kind_of(c)``) to set its home, migrate its pages, say what was acted on, keep its
record for the state file, or check that it is still there.  A new kind of client (a
libvirt domain, a systemd scope) is one new module here, a line in ``_KINDS`` and a line
in discovery.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, Protocol

from homenode.linux.actions_io import ActionIo, KernelIo
from homenode.linux.clients import CgroupClient, ProcessClient, Tracked
from homenode.linux.kinds.cgroup import CgroupKind
from homenode.linux.kinds.process import ProcessKind
from homenode.linux.kinds.vmslice import VmSliceKind
from homenode.linux.migrate import Moved
from homenode.linux.state import Cpus, Saved
from homenode.linux.vmslice import VmSlice

Check = Callable[[], None]


class ClientKind(Protocol):
    def target(self, c: Any) -> str:
        """What an action acted on, for the action log (a process: PID@start time)."""

    def acting(self, c: Any, io: ActionIo) -> AbstractContextManager[Check | None]:
        """Held for a whole action; gives the liveness check each call makes first."""

    def after(self, c: Any, io: ActionIo, alive: Check | None) -> None:
        """After the calls: raise ProcessGone if the client went during them."""

    def set_home(self, c: Any, cpus: Cpus, io: ActionIo, alive: Check | None) -> None: ...

    def migrate(self, c: Any, src: int, dst: int, pages: int, now: float, io: ActionIo,
                alive: Check | None) -> Moved: ...

    def queue(self, c: Any, src: int, dst: int, pages: int, now: float,
              io: ActionIo) -> bool:
        """Hand the copy to the migration engine, off the loop; False: copy it now."""

    def adopt(self, c: Any, carried: Saved, io: KernelIo, topo: Any,
              from_wall: Callable[[float], float], act: bool) -> str | None:
        """Take over the previous daemon's record of ``c`` from ``carried`` (popped):
        "adopted", "completed", "nothing set", "re-bound"; None if it had none."""

    def restore(self, c: Any, io: KernelIo) -> int:
        """Put back what homenode changed; the threads (or cgroups) put back."""

    def keep_home(self, c: Any, cpus: Cpus, io: ActionIo) -> None:
        """Each tick: keep the home promise (CPUs that came or went, new threads or
        members)."""

    def resettle(self, c: Any, io: KernelIo) -> None:
        """Repair masks a failed put-back left disagreeing with the bookkeeping."""

    def capture_originals(self, c: Any, io: KernelIo) -> None:
        """Read what to put back, before the first change (the write-ahead)."""

    def record(self, c: Any, pending: Cpus | None, to_wall: Callable[[float], float],
               into: Saved) -> None:
        """Add the client's state-file record to ``into`` (if it has one)."""

    def still_there(self, c: Any, io: KernelIo) -> bool: ...

    def settled(self, c: Any, io: KernelIo) -> bool:
        """Do the kernel's masks agree with the bookkeeping (after an error)?"""


_KINDS: dict[type, ClientKind] = {ProcessClient: ProcessKind(), CgroupClient: CgroupKind(),
                                   VmSlice: VmSliceKind()}


def kind_of(c: Tracked) -> ClientKind:
    return _KINDS[type(c)]
