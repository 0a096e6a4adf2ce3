"""``LinuxHost``: a real Linux host behind the same ``snapshot()``/``apply()`` interface as
the simulator.

Each ``snapshot()`` re-reads the topology and free memory, finds new clients (new PIDs
every tick; every process re-read once per ``scan_interval``, a slice each tick),
refreshes every client (dropping the ones gone or whose PID was reused), keeps the home
promise for threads born since the last tick, and returns the numpy ``Snapshot`` the
policy decides on.  ``apply()`` carries out the policy's actions: nothing here decides
anything.  An error on one client (ESRCH, EPERM, EACCES, EBUSY, ENOMEM, ...) never stops
the tick for the others; each (client, kind of error) is logged once and the client
backs off (homenode.linux.guard).  With a state file (homenode.linux.state) the homes
homenode sets survive a crash of the daemon: a restart adopts them (homenode.linux.adopt).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import replace
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Protocol

from homenode.linux.actions import ActionIo, HostStats, apply_one, home_changes
from homenode.linux.adopt import Keeper
from homenode.linux.clients import CgroupClient, Ctx, ProcessClient, Tracked
from homenode.linux.config import Config
from homenode.linux.discovery import Discovery
from homenode.linux.engine import Engine, absorb, shutdown, submit
from homenode.linux.groups import with_labels
from homenode.linux.guard import HOST, ClientGuard, Guard
from homenode.linux.hostcpus import HostCpus
from homenode.linux.kernel import cgroup, procfs
from homenode.linux.kernel import numa_syscalls as default_sys
from homenode.linux.kernel.errors import AccessDenied, ParseError, SysError
from homenode.linux.kernel.sysfs import NodeState, TopologyReader, format_cpulist
from homenode.linux.kinds import kind_of
from homenode.linux.kinds.vmslice import new_process_client
from homenode.linux.roster import Roster
from homenode.linux.state import StateFile
from homenode.linux.view import Models
from homenode.model import Action, ActionResult, Snapshot, Topology

log = logging.getLogger("homenode.linux")


class Clock(Protocol):
    def now(self) -> float: ...


class LinuxHost:
    def __init__(self, cfg: Config, clock: Clock, *, proc_root: str = "/proc",
                 sys_root: str | Path = "/sys", cgroup_root: Path | None = None,
                 sys: ModuleType = default_sys, self_pid: int | None = None,
                 state: StateFile | None = None, engine: Engine | None = None):
        self.cfg = cfg
        self.clock = clock
        self.dry_run = cfg.daemon.dry_run
        self.proc = proc_root
        self.sys_root = Path(sys_root)
        self.sys = sys
        if cgroup_root is None:
            cgroup_root = cfg.cgroups.root or (cgroup.find_root(proc_root)
                                               if cfg.cgroups.parents else None)
        self.cgroup_root = cgroup_root
        self.topology_reader = TopologyReader(sys_root)
        self.stats = HostStats()
        self.engine = engine            # page copies off the loop (homenode.linux.engine)
        self.guard = Guard(log, self.stats.errors)
        self.discovery = Discovery(cfg, proc_root, cgroup_root,
                                   os.getpid() if self_pid is None else self_pid,
                                   warn=self.warn_once)
        self.keeper = Keeper(state, proc_root, sys, clock.now, not self.dry_run, cgroup_root)
        self.roster = Roster(self.stats, self.guard, self.keeper)
        self.io = ActionIo(proc_root, sys, self.dry_run, cfg.daemon.migration == "bulk",
                           self.stats, self.keeper, self.failed, self.guard.cooling,
                           None if engine is None else partial(submit, self))
        self.client_guard = ClientGuard(self.guard, self.roster, self.keeper, self.io,
                                        clock.now, log)
        self.cpus = HostCpus(self.sys_root, self.warn_once)
        self.models = Models()
        self._ticks = 0
        # Every process is re-read once per scan_interval, a slice of them each tick.
        self._slots = max(1, round(cfg.daemon.scan_interval / cfg.daemon.interval))
        self._topology: Topology | None = None
        self._ctx: Ctx | None = None
        self._last_state: NodeState | None = None

    # The tracked clients (homenode.linux.roster), as the engine and the tests see them.
    @property
    def procs(self) -> dict[tuple[int, ...], ProcessClient]:
        return self.roster.procs

    @property
    def cgroups(self) -> dict[str, CgroupClient]:
        return self.roster.cgroups

    @property
    def unsettled(self) -> set[tuple[int, ...]]:
        return self.roster.unsettled

    @property
    def ignored(self) -> set[object]:
        return self.roster.ignored

    # --- the host interface ---------------------------------------------------------

    def prime(self) -> None:
        """Read the topology and find the first clients, before the privilege check."""
        now = self.clock.now()
        self._topology_changed(self.topology_reader.read().topology)
        self._scan(self._make_ctx(now), (1, 0))

    def snapshot(self) -> Snapshot:
        now = self.clock.now()
        try:
            state = self._last_state = self.topology_reader.read()
        except (OSError, ParseError) as e:
            if self._last_state is None:
                raise
            # A node or CPU going away mid-read: keep the last good view for this tick.
            self.warn_once(HOST, "topology", f"reading the topology failed: {e}")
            state = self._last_state
        topo = state.topology
        if state.changed or self._topology is None or self.cpus.recheck:
            self._topology_changed(topo)
        slot = (self._slots, self._ticks % self._slots)
        self._ticks += 1
        ctx = self._ctx = self._make_ctx(now, slot)
        absorb(self, now)
        self._scan(ctx, slot)
        for c in self.roster.all():
            if not self.guard.cooling(c.key, now):
                self.client_guard.run(c, c.key, lambda c=c: self._refresh(c, ctx, topo))
        tracked = self.roster.all()
        self.keeper.save(tracked)
        self.discovery.labels.update(tracked, now)    # affinity groups, node constraints
        return self.models.snapshot(now, topo, tracked, state.free_pages, with_labels)

    def apply(self, actions: list[Action]) -> list[ActionResult]:
        topo = self._topology
        ctx = self._ctx
        tracked = self.roster.all()
        by_id: dict[str, Tracked] = {c.id: c for c in tracked}
        if topo is not None and ctx is not None:
            self.keeper.write_ahead(home_changes(self.io, actions, by_id, topo, ctx.now),
                                    tracked)
        out = []
        for a in actions:
            c = by_id.get(a.client)
            if c is None or topo is None or ctx is None:
                out.append(ActionResult(a, False, "no such client", 0))
                continue
            if not (0 <= a.dst < topo.n and -1 <= a.src < topo.n):
                out.append(ActionResult(a, False, f"no node index {a.dst}", 0))
                continue
            wait = self.guard.cooling(c.key, ctx.now)
            if wait:
                out.append(ActionResult(a, False,
                                        f"backing off after an error ({wait:.1f} s left)", 0))
                continue
            out.append(self.client_guard.run(
                c, c.key, lambda c=c, a=a: apply_one(self.io, c, a, topo, ctx),
                on_error=lambda e, a=a: ActionResult(a, False, str(e), 0)))
        if self.keeper.pending:
            self.keeper.pending.clear()
            self.keeper.dirty = True
        self.keeper.save(tracked)
        return out

    def next_wakeup(self) -> float | None:
        return None        # the real host has no schedule of future events

    def restore(self) -> tuple[int, int]:
        """Put back every CPU affinity and cpuset.cpus changed; (clients, threads)."""
        shutdown(self)                  # no copy may run on while affinities go back
        clients = threads = 0
        for c in self.roster.all():
            try:
                n = kind_of(c).restore(c, self.io)
            except SysError as e:
                log.warning("restore %s (%s): %s", c.name, c.id, e)
                continue
            clients += n > 0
            threads += n
        clients_c, threads_c = self.keeper.restore_carried(self._topology)
        self.keeper.save(self.roster.all())
        return clients + clients_c, threads + threads_c

    # --- runtime control (homenode include/exclude, SIGHUP) ----------------------------

    def release(self, pid: int) -> list[str]:
        """Stop managing the process ``pid`` (its affinity put back, unless a dry run) and
        never pick it up again while it lives; the names of the clients released."""
        self.discovery.exclude(pid)
        names = []
        for key, c in list(self.roster.procs.items()):
            if key[0] != pid:
                continue
            if not self.dry_run:
                try:
                    kind_of(c).restore(c, self.io)
                except SysError as e:
                    log.warning("restore %s (%s): %s", c.name, c.id, e)
            self.roster.drop(key)
            self.roster.ignored.add(key)
            names.append(c.name)
        return names

    def include(self, pid: int) -> None:
        self.roster.include(pid)
        self.discovery.include(pid)

    def reload(self, cfg: Config, extra_pids: Iterable[int] = ()) -> None:
        """Take a reloaded config's client rules (processes, cgroups, groups); clients
        already managed stay until they exit or are released."""
        self.cfg = replace(self.cfg, processes=cfg.processes, cgroups=cfg.cgroups,
                           groups=cfg.groups, source=cfg.source)
        self.discovery.set_rules(self.cfg, extra_pids)

    # --- errors (homenode.linux.guard; the engine reports through these too) ------------

    def warn_once(self, key: str, kind: str, message: str) -> None:
        self.guard.warn_once(key, kind, message)

    def failed(self, c: Tracked, key: object, now: float, kind: str, e: Exception) -> None:
        self.client_guard.failed(c, key, now, kind, e)

    # --- reading --------------------------------------------------------------------

    def _make_ctx(self, now: float, slot: tuple[int, int] = (1, 0)) -> Ctx:
        return Ctx(self.proc, now, self.cpus.online, self.cpus.usable, self.cpus.mem_nodes,
                   self.cfg.daemon.numa_maps_interval, self.cgroup_root,
                   self.cfg.daemon.manage_bound, slot)

    def _topology_changed(self, topo: Topology) -> None:
        self._topology = topo
        self.cpus.update(topo)

    def _scan(self, ctx: Ctx, slot: tuple[int, int]) -> None:
        try:
            found = self.discovery.scan(ctx.now, self.roster.known_processes(),
                                        list(self.roster.cgroups), slot)
        except OSError as e:
            self.warn_once(HOST, "scan", f"scanning for clients failed: {e}")
            return
        for info in found.processes:
            c = new_process_client(info, ctx.now)     # a VM with guest NUMA: its slices
            self.roster.procs[c.key] = c
            log.info("client %s (%s): %s%s", c.name, c.id, info.why,
                     f", VM with {info.vcpus} vCPUs" if info.vm else "")
            self._adopt(c)
        for cg in found.cgroups:
            if cg.rel in self.roster.ignored:
                continue
            try:
                g = CgroupClient(cg, ctx)
            except SysError as e:
                self.warn_once(f"cg:{cg.rel}", type(e).__name__, f"cgroup {cg.rel}: {e}")
                continue
            self.roster.cgroups[g.key] = g
            log.info("client %s (%s): child of %s", g.name, g.id, cg.path.parent.name)
            self._adopt(g)
        for i, g in enumerate(self.roster.cgroups.values()):
            if i % slot[0] == slot[1]:
                self.client_guard.run(g, g.key, lambda g=g: g.refresh_members(ctx))

    def _adopt(self, c: Tracked) -> None:
        """A client just found: adopted from the previous daemon's record, if any."""
        topo = self._topology
        if topo is not None:
            self.client_guard.run(c, c.key, lambda: self._adopted(
                c, self.keeper.found(c, topo)))

    def _adopted(self, c: Tracked, verdict: str | None) -> None:
        if verdict in ("adopted", "completed"):
            self.stats.adopted += 1
            log.info("client %s (%s): %s from the state file: home node %s, CPUs %s",
                     c.name, c.id, verdict, c.home, format_cpulist(c.set_cpus or ()))
        elif verdict == "re-bound":
            log.info("client %s (%s): re-bound by someone else while no homenode ran; "
                     "its record in the state file is dropped", c.name, c.id)

    def _refresh(self, c: Tracked, ctx: Ctx, topo: Topology) -> None:
        kind = kind_of(c)
        if c.key in self.roster.unsettled and not self.dry_run:
            kind.resettle(c, self.io)    # before the binding check
            self.roster.unsettled.discard(c.key)
        try:
            c.refresh(ctx)
        except AccessDenied as e:
            # A client homenode may not even read would fail again every tick.
            self.roster.ignore(c.key, self.proc)
            self.warn_once(c.id, "unreadable", f"{c.name} ({c.id}): cannot read it ({e}); "
                                               f"not managed")
            return
        if self.dry_run or not c.managed or c.home is None:
            return
        node = c.home
        cpus = frozenset(topo.cpus[topo.index(node)]) if node in topo.node_ids else \
            frozenset()
        kind.keep_home(c, cpus, self.io)


def kernel_numa_balancing(proc_root: str = "/proc") -> bool:
    """Whether the kernel's automatic NUMA balancing is on (it moves pages too)."""
    try:
        return procfs.read_numa_balancing(proc_root)
    except SysError:
        return False
