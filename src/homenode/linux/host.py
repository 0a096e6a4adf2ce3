"""``LinuxHost``: a real Linux host behind the same ``snapshot()``/``apply()`` interface as
the simulator.

Each ``snapshot()`` re-reads the topology and free memory, finds new clients (new PIDs
every tick; every process re-read once per ``scan_interval``, a slice each tick),
refreshes every client (dropping the ones gone or whose PID was reused), keeps the home
promise for threads born since the last tick, and returns the numpy ``Snapshot`` the
policy decides on.  ``apply()`` carries out the policy's actions: nothing here decides
anything.  An error on one client (ESRCH, EPERM, EACCES, EBUSY, ENOMEM, ...) never stops
the tick for the others; each (client, kind of error) is logged once.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Protocol

import numpy as np

from homenode.linux import affinity, cgroup, migrate, procfs, view
from homenode.linux import numa_syscalls as default_sys
from homenode.linux.clients import CgroupClient, Ctx, ProcessClient, Tracked
from homenode.linux.config import Config
from homenode.linux.discovery import Discovery
from homenode.linux.errors import AccessDenied, ParseError, ProcessGone, SysError
from homenode.linux.sysfs import (
    NodeState,
    TopologyReader,
    read_isolated_cpus,
    read_online_cpus,
)
from homenode.model import Action, Client, MigratePages, SetHome, Snapshot, Topology

log = logging.getLogger("homenode.linux")
# After a whole pass over a process found none of its pages on a node movable (shared,
# pinned, busy), that node is not scanned again for this long -- unless more of the
# client's pages appear there -- so stuck pages cost no scan every tick.
STUCK_BACKOFF_S = 30.0


class Clock(Protocol):
    def now(self) -> float: ...


@dataclass
class Result:
    """What happened to one action (``ok`` is what the loop and the recorder read)."""

    action: Action
    ok: bool
    note: str = ""
    moved: int = 0          # pages moved by a MigratePages


@dataclass
class HostStats:
    pages_moved: int = 0
    pages_failed: int = 0
    errors: Counter = field(default_factory=Counter)      # kind of error -> count
    dropped: int = 0        # clients gone (exited or PID reused)


class LinuxHost:
    def __init__(self, cfg: Config, clock: Clock, *, proc_root: str = "/proc",
                 sys_root: str | Path = "/sys", cgroup_root: Path | None = None,
                 sys: ModuleType = default_sys, self_pid: int | None = None):
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
        self.discovery = Discovery(cfg, proc_root, cgroup_root,
                                   os.getpid() if self_pid is None else self_pid,
                                   warn=self.warn_once)
        self.procs: dict[tuple[int, int], ProcessClient] = {}
        self.cgroups: dict[str, CgroupClient] = {}
        self.ignored: set[object] = set()        # keys never to be picked up again
        self.stats = HostStats()
        self._warned: set[tuple[str, str]] = set()
        self._ticks = 0
        # Every process is re-read once per scan_interval, a slice of them each tick.
        self._slots = max(1, round(cfg.daemon.scan_interval / cfg.daemon.interval))
        self._topology: Topology | None = None
        self._online: frozenset[int] = frozenset()
        self._usable: frozenset[int] = frozenset()
        self._mem_nodes: frozenset[int] = frozenset()
        self._models_key: tuple = ()
        self._models: tuple[Client, ...] = ()
        self._ctx: Ctx | None = None
        self._last_state: NodeState | None = None

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
            self.warn_once("host", "topology", f"reading the topology failed: {e}")
            state = self._last_state
        topo = state.topology
        if state.changed or self._topology is None:
            self._topology_changed(topo)
        slot = (self._slots, self._ticks % self._slots)
        self._ticks += 1
        ctx = self._ctx = self._make_ctx(now, slot)
        self._scan(ctx, slot)
        for key, c in list(self.procs.items()):
            self._guard(c, key, lambda c=c: self._refresh_process(c, ctx, topo))
        for key, g in list(self.cgroups.items()):
            self._guard(g, key, lambda g=g: self._refresh_cgroup(g, ctx, topo))
        return self._build(now, topo, state.free_pages)

    def apply(self, actions: list[Action]) -> list[Result]:
        topo = self._topology
        ctx = self._ctx
        by_id: dict[str, Tracked] = {c.id: c for c in self._tracked()}
        out = []
        for a in actions:
            c = by_id.get(a.client)
            if c is None or topo is None or ctx is None:
                out.append(Result(a, False, "no such client"))
                continue
            if not (0 <= a.dst < topo.n and -1 <= a.src < topo.n):
                out.append(Result(a, False, f"no node index {a.dst}"))
                continue
            key = c.key  # type: ignore[attr-defined]
            out.append(self._guard(c, key, lambda c=c, a=a: self._apply_one(c, a, topo, ctx),
                                   on_error=lambda e, a=a: Result(a, False, str(e))))
        return out

    def next_wakeup(self) -> float | None:
        return None        # the real host has no schedule of future events

    def restore(self) -> tuple[int, int]:
        """Put back every CPU affinity and cpuset.cpus changed; (clients, threads)."""
        clients = threads = 0
        for c in list(self.procs.values()):
            try:
                n = affinity.restore_process(c, self.proc, self.sys)
            except SysError as e:
                if not e.gone:
                    log.warning("restore %s (%s): %s", c.name, c.id, e)
                continue
            clients += n > 0
            threads += n
        for g in list(self.cgroups.values()):
            try:
                n = affinity.restore_cgroup(g, self.proc, self.sys)
            except SysError as e:
                log.warning("restore %s (%s): %s", g.name, g.id, e)
                continue
            clients += n > 0
            threads += n
        return clients, threads

    # --- errors ---------------------------------------------------------------------

    def warn_once(self, key: str, kind: str, message: str) -> None:
        self.stats.errors[kind] += 1
        if (key, kind) not in self._warned:
            self._warned.add((key, kind))
            log.warning("%s", message)

    def _guard(self, c: Tracked, key: object, fn, on_error=None):
        """Run ``fn`` for one client; sort any error into drop / unmanage / retry."""
        try:
            return fn()
        except ProcessGone as e:
            self._drop(key)
            log.info("client %s (%s) gone: %s", c.name, c.id, e)
            return on_error(e) if on_error else None
        except AccessDenied as e:
            if c.managed:
                c.unmanage(f"not permitted: {e}")
            self.warn_once(c.id, type(e).__name__, f"{c.name} ({c.id}): {e}; left unmanaged")
            return on_error(e) if on_error else None
        except (SysError, ParseError) as e:
            self.warn_once(c.id, type(e).__name__, f"{c.name} ({c.id}): {e}")
            return on_error(e) if on_error else None
        except Exception as e:   # a bug must not stop the tick for every other client
            if (c.id, "internal") not in self._warned:
                log.exception("internal error on %s (%s)", c.name, c.id)
            self.warn_once(c.id, "internal", f"{c.name} ({c.id}): internal error: {e!r}")
            return on_error(e) if on_error else None

    def _drop(self, key: object) -> None:
        self.stats.dropped += 1
        self.procs.pop(key, None)  # type: ignore[arg-type]
        self.cgroups.pop(key, None)  # type: ignore[arg-type]

    # --- reading --------------------------------------------------------------------

    def _make_ctx(self, now: float, slot: tuple[int, int] = (1, 0)) -> Ctx:
        return Ctx(self.proc, now, self._online, self._usable, self._mem_nodes,
                   self.cfg.daemon.numa_maps_interval, self.cgroup_root,
                   self.cfg.daemon.manage_bound, slot)

    def _topology_changed(self, topo: Topology) -> None:
        self._topology = topo
        try:
            self._online = read_online_cpus(self.sys_root)
        except FileNotFoundError:
            self._online = frozenset(c for cpus in topo.cpus for c in cpus)
        self._usable = self._online - read_isolated_cpus(self.sys_root)
        self._mem_nodes = frozenset(nid for nid, m in zip(topo.node_ids, topo.mem_pages,
                                                          strict=True) if m > 0)

    def _scan(self, ctx: Ctx, slot: tuple[int, int]) -> None:
        try:
            found = self.discovery.scan(ctx.now, list(self.procs) + [
                k for k in self.ignored if isinstance(k, tuple)], list(self.cgroups), slot)
        except OSError as e:
            self.warn_once("host", "scan", f"scanning for clients failed: {e}")
            return
        for info in found.processes:
            c = ProcessClient(info, ctx.now)
            self.procs[c.key] = c
            log.info("client %s (%s): %s%s", c.name, c.id, info.why,
                     f", VM with {info.vcpus} vCPUs" if info.vm else "")
        for cg in found.cgroups:
            if cg.rel in self.ignored:
                continue
            try:
                g = CgroupClient(cg, ctx)
            except SysError as e:
                self.warn_once(f"cg:{cg.rel}", type(e).__name__, f"cgroup {cg.rel}: {e}")
                continue
            self.cgroups[g.key] = g
            log.info("client %s (%s): child of %s", g.name, g.id, cg.path.parent.name)
        for i, g in enumerate(self.cgroups.values()):
            if i % slot[0] == slot[1]:
                self._guard(g, g.key, lambda g=g: g.refresh_members(ctx))

    def _unreadable(self, c: Tracked, e: AccessDenied) -> None:
        """A client homenode may not even read is dropped for good (it would fail again
        every tick)."""
        self._drop(c.key)  # type: ignore[attr-defined]
        self.ignored.add(c.key)  # type: ignore[attr-defined]
        self.warn_once(c.id, "unreadable", f"{c.name} ({c.id}): cannot read it ({e}); "
                                           f"not managed")

    def _refresh_process(self, c: ProcessClient, ctx: Ctx, topo: Topology) -> None:
        try:
            c.refresh(ctx)
        except AccessDenied as e:
            self._unreadable(c, e)
            return
        if self.dry_run or not c.managed or c.home is None:
            return
        cpus = self._node_cpus(topo, c.home)
        if cpus and c.set_cpus != cpus:
            affinity.set_process_home(c, cpus, self.proc, self.sys)   # CPUs came or went
        else:
            affinity.follow_new_threads(c, self.proc, self.sys)

    def _refresh_cgroup(self, g: CgroupClient, ctx: Ctx, topo: Topology) -> None:
        try:
            g.refresh(ctx)
        except AccessDenied as e:
            self._unreadable(g, e)
            return
        if self.dry_run or not g.managed or g.home is None:
            return
        cpus = self._node_cpus(topo, g.home)
        if cpus and g.set_cpus != cpus:
            affinity.set_cgroup_home(g, cpus, self.proc, self.sys)
        else:
            affinity.follow_cgroup_members(g, self.proc, self.sys)

    @staticmethod
    def _node_cpus(topo: Topology, node_id: int) -> frozenset[int]:
        if node_id not in topo.node_ids:
            return frozenset()
        return frozenset(topo.cpus[topo.index(node_id)])

    def _tracked(self) -> list[Tracked]:
        return [*self.procs.values(), *self.cgroups.values()]

    # --- the snapshot ---------------------------------------------------------------

    def _build(self, now: float, topo: Topology, free: np.ndarray) -> Snapshot:
        tracked = self._tracked()
        key = (id(topo), *((c.id, c.version) for c in tracked))
        if key != self._models_key:
            self._models_key = key
            self._models = tuple(view.client_model(c, topo) for c in tracked)
        return view.build_snapshot(now, topo, tracked, self._models, free)

    # --- actions --------------------------------------------------------------------

    def _apply_one(self, c: Tracked, a: Action, topo: Topology, ctx: Ctx) -> Result:
        if not c.managed:
            return Result(a, False, f"unmanaged: {c.why_unmanaged}")
        if isinstance(c, ProcessClient):
            c.verify(self.proc)            # a reused PID is never acted on, dry run or not
        src_id = topo.node_ids[a.src] if a.src >= 0 else None
        dst_id = topo.node_ids[a.dst]
        if isinstance(a, SetHome):
            cpus = frozenset(topo.cpus[a.dst])
            if not cpus:
                return Result(a, False, f"node {dst_id} has no CPUs")
            if not self.dry_run:
                if isinstance(c, ProcessClient):
                    affinity.set_process_home(c, cpus, self.proc, self.sys)
                elif isinstance(c, CgroupClient):
                    affinity.set_cgroup_home(c, cpus, self.proc, self.sys)
            if c.home != dst_id:
                c.home, c.home_since = dst_id, ctx.now
            return Result(a, True, "dry-run" if self.dry_run else "")
        if isinstance(a, MigratePages):
            if self.dry_run or src_id is None:
                return Result(a, True, "dry-run" if self.dry_run else "")
            moved = self._migrate(c, src_id, dst_id, int(a.pages), ctx)
            return Result(a, True, "", moved)
        return Result(a, False, f"unknown action {type(a).__name__}")

    def _migrate(self, c: Tracked, src: int, dst: int, budget: int, ctx: Ctx) -> int:
        if isinstance(c, ProcessClient):
            return self._migrate_process(c, src, dst, budget, ctx.now)
        assert isinstance(c, CgroupClient)
        moved = 0
        pids = c.pids[c.pid_cursor:] + c.pids[:c.pid_cursor]
        for k, pid in enumerate(pids):
            if budget - moved <= 0:
                c.pid_cursor = (c.pid_cursor + k) % max(len(c.pids), 1)
                break
            try:
                if self.cfg.daemon.migration == "bulk":
                    migrate.move_bulk(pid, src, dst, self.sys)
                    continue
                r = migrate.move_paced(self.proc, pid, src, dst, budget - moved,
                                       c.cursors.get(pid, 0), None, self.sys)
            except ProcessGone:
                continue
            c.cursors[pid] = r.cursor
            moved += r.moved
            self.stats.pages_failed += r.failed
        self.stats.pages_moved += moved
        return moved

    def _migrate_process(self, c: ProcessClient, src: int, dst: int, budget: int,
                         now: float) -> int:
        stuck = c.stuck.get(src)
        if stuck is not None and now < stuck[0] and c.pages.get(src, 0) <= stuck[1]:
            return 0
        if self.cfg.daemon.migration == "bulk":
            before = c.pages.get(src, 0)
            not_moved = migrate.move_bulk(c.pid, src, dst, self.sys)
            c.maps_stale = True            # re-read numa_maps next tick
            moved = max(before - not_moved, 0)
        else:
            r = migrate.move_paced(self.proc, c.pid, src, dst, budget, c.cursor,
                                   c.page_size_kb(), self.sys, c.vmas_on(src))
            c.cursor = r.cursor
            moved = r.moved
            self.stats.pages_failed += r.failed
            c.pages[src] = max(c.pages.get(src, 0) - moved, 0)
            c.pages[dst] = c.pages.get(dst, 0) + moved
            if r.wrapped and moved == 0:
                c.maps_stale = True        # re-read numa_maps next tick
                c.stuck[src] = (now + STUCK_BACKOFF_S, c.pages.get(src, 0))
            elif moved:
                c.stuck.pop(src, None)
        self.stats.pages_moved += moved
        return moved


def kernel_numa_balancing(proc_root: str = "/proc") -> bool:
    """Whether the kernel's automatic NUMA balancing is on (it moves pages too)."""
    try:
        return procfs.read_bytes(f"{proc_root}/sys/kernel/numa_balancing",
                                 "numa_balancing").strip() not in (b"0", b"")
    except SysError:
        return False
