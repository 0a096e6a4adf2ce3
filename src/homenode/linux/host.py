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

import numpy as np

from homenode.linux import view
from homenode.linux.actions import ActionIo, HostStats, Result, apply_one, home_changes
from homenode.linux.adopt import Keeper
from homenode.linux.clients import CgroupClient, Ctx, ProcessClient, Tracked
from homenode.linux.config import Config
from homenode.linux.discovery import Discovery
from homenode.linux.engine import Engine, absorb, shutdown, submit
from homenode.linux.groups import with_labels
from homenode.linux.guard import HOST, Guard
from homenode.linux.kernel import cgroup, procfs
from homenode.linux.kernel import numa_syscalls as default_sys
from homenode.linux.kernel.errors import AccessDenied, ParseError, ProcessGone, SysError
from homenode.linux.kernel.sysfs import (
    NodeState,
    TopologyReader,
    format_cpulist,
    read_isolated_cpus,
    read_online_cpus,
)
from homenode.linux.kinds import kind_of
from homenode.linux.state import StateFile
from homenode.linux.vmslice import new_process_client
from homenode.model import Action, ActionResult, Client, Snapshot, Topology

log = logging.getLogger("homenode.linux")
# Keys of unreadable clients are remembered so they are not picked up again; past this
# many, the ones whose process has exited are forgotten (churn must not grow memory).
IGNORED_PRUNE_AT = 1024


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
        self.procs: dict[tuple[int, int], ProcessClient] = {}
        self.cgroups: dict[str, CgroupClient] = {}
        self.ignored: set[object] = set()        # keys never to be picked up again
        self.unsettled: set[tuple[int, int]] = set()   # masks to repair (failed put-back)
        self.keeper = Keeper(state, proc_root, sys, clock.now, not self.dry_run, cgroup_root)
        self.io = ActionIo(proc_root, sys, self.dry_run, cfg.daemon.migration == "bulk",
                           self.stats, self.keeper, self.failed, self.guard.cooling,
                           None if engine is None else partial(submit, self))
        self._ticks = 0
        # Every process is re-read once per scan_interval, a slice of them each tick.
        self._slots = max(1, round(cfg.daemon.scan_interval / cfg.daemon.interval))
        self._topology: Topology | None = None
        self._online: frozenset[int] = frozenset()
        self._usable: frozenset[int] = frozenset()
        self._recheck_cpus = False          # a read of online/isolated CPUs failed
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
            self.warn_once(HOST, "topology", f"reading the topology failed: {e}")
            state = self._last_state
        topo = state.topology
        if state.changed or self._topology is None or self._recheck_cpus:
            self._topology_changed(topo)
        slot = (self._slots, self._ticks % self._slots)
        self._ticks += 1
        ctx = self._ctx = self._make_ctx(now, slot)
        absorb(self, now)
        self._scan(ctx, slot)
        for key, c in list(self.procs.items()):
            if not self.guard.cooling(key, now):
                self._guard(c, key, lambda c=c: self._refresh(c, ctx, topo))
        for key, g in list(self.cgroups.items()):
            if not self.guard.cooling(key, now):
                self._guard(g, key, lambda g=g: self._refresh(g, ctx, topo))
        self.keeper.save(self._tracked())
        return self._build(now, topo, state.free_pages)

    def apply(self, actions: list[Action]) -> list[ActionResult]:
        topo = self._topology
        ctx = self._ctx
        tracked = self._tracked()
        by_id: dict[str, Tracked] = {c.id: c for c in tracked}
        if topo is not None and ctx is not None:
            self.keeper.write_ahead(home_changes(self.io, actions, by_id, topo, ctx.now),
                                    tracked)
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
            wait = self.guard.cooling(key, ctx.now)
            if wait:
                out.append(Result(a, False, f"backing off after an error ({wait:.1f} s left)"))
                continue
            out.append(self._guard(c, key, lambda c=c, a=a: apply_one(self.io, c, a, topo, ctx),
                                   on_error=lambda e, a=a: Result(a, False, str(e))))
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
        for c in self._tracked():
            try:
                n = kind_of(c).restore(c, self.io)
            except SysError as e:
                log.warning("restore %s (%s): %s", c.name, c.id, e)
                continue
            clients += n > 0
            threads += n
        clients_c, threads_c = self.keeper.restore_carried(self._topology)
        self.keeper.save(self._tracked())
        return clients + clients_c, threads + threads_c

    # --- runtime control (homenode include/exclude, SIGHUP) ----------------------------

    def release(self, pid: int) -> list[str]:
        """Stop managing the process ``pid`` (its affinity put back, unless a dry run) and
        never pick it up again while it lives; the names of the clients released."""
        self.discovery.exclude(pid)
        names = []
        for key, c in list(self.procs.items()):
            if key[0] != pid:
                continue
            if not self.dry_run:
                try:
                    kind_of(c).restore(c, self.io)
                except SysError as e:
                    log.warning("restore %s (%s): %s", c.name, c.id, e)
            self._drop(key)
            self.ignored.add(key)
            names.append(c.name)
        return names

    def include(self, pid: int) -> None:
        self.ignored = {k for k in self.ignored if not (isinstance(k, tuple) and k[0] == pid)}
        self.discovery.include(pid)

    def reload(self, cfg: Config, extra_pids: Iterable[int] = ()) -> None:
        """Take a reloaded config's client rules (processes, cgroups, groups); clients
        already managed stay until they exit or are released."""
        self.cfg = replace(self.cfg, processes=cfg.processes, cgroups=cfg.cgroups,
                           groups=cfg.groups, source=cfg.source)
        self.discovery.set_rules(self.cfg, extra_pids)

    # --- errors ---------------------------------------------------------------------

    def warn_once(self, key: str, kind: str, message: str) -> None:
        self.guard.warn_once(key, kind, message)

    def _guard(self, c: Tracked, key: object, fn, on_error=None):
        """Run ``fn`` for one client; sort any error into drop / unmanage / back off."""
        now = self.clock.now()
        try:
            return fn()
        except ProcessGone as e:
            if self._still_there(c):
                # ESRCH/ENOENT from one call (a thread, a file) while the process itself
                # lives on: dropping it would lose homenode's bookkeeping of it.
                self.failed(c, key, now, "ProcessGone", e)
                self._check_settled(c)
            else:
                self._drop(key)
                log.info("client %s (%s) gone: %s", c.name, c.id, e)
            return on_error(e) if on_error else None
        except AccessDenied as e:
            if c.managed:
                c.unmanage(f"not permitted: {e}")
                self.keeper.dirty = True
            self.warn_once(c.id, type(e).__name__, f"{c.name} ({c.id}): {e}; left unmanaged")
            return on_error(e) if on_error else None
        except (SysError, ParseError) as e:
            self.failed(c, key, now, type(e).__name__, e)
            self._check_settled(c)
            return on_error(e) if on_error else None
        except Exception as e:   # a bug must not stop the tick for every other client
            if not self.guard.warned(c.id, "internal"):
                log.exception("internal error on %s (%s)", c.name, c.id)
            self.failed(c, key, now, "internal", e)
            self._check_settled(c)
            return on_error(e) if on_error else None

    def failed(self, c: Tracked, key: object, now: float, kind: str, e: Exception) -> None:
        delay = self.guard.failed(key, now)
        self.warn_once(c.id, kind, f"{c.name} ({c.id}): {e}; backing off {delay:g} s "
                                   f"(further {kind} errors of this client not logged)")

    def _still_there(self, c: Tracked) -> bool:
        return kind_of(c).still_there(c, self.io)

    def _check_settled(self, c: Tracked) -> None:
        """After an error the threads' masks may disagree with the bookkeeping (an
        affinity change failed half-way and so did its put-back): if so, they are
        repaired at the client's next refresh.  Costs a few calls, on errors only."""
        if c.key in self.unsettled or c.key not in self.procs or not c.managed:
            return
        try:
            ok = kind_of(c).settled(c, self.io)
        except SysError:
            return
        if not ok:
            self.unsettled.add(c.key)

    def _drop(self, key: object) -> None:
        self.stats.dropped += 1
        c = self.procs.pop(key, None) or self.cgroups.pop(key, None)  # type: ignore[arg-type]
        self.unsettled.discard(key)  # type: ignore[arg-type]
        if c is not None:
            self.guard.forget(key, c.id)
            self.keeper.dirty = self.keeper.dirty or c.set_cpus is not None

    # --- reading --------------------------------------------------------------------

    def _make_ctx(self, now: float, slot: tuple[int, int] = (1, 0)) -> Ctx:
        return Ctx(self.proc, now, self._online, self._usable, self._mem_nodes,
                   self.cfg.daemon.numa_maps_interval, self.cgroup_root,
                   self.cfg.daemon.manage_bound, slot)

    def _topology_changed(self, topo: Topology) -> None:
        self._topology = topo
        self._recheck_cpus = False
        node_cpus = frozenset(c for cpus in topo.cpus for c in cpus)
        try:
            online = read_online_cpus(self.sys_root)
            self._online = node_cpus if online is None else online
        except (OSError, ParseError) as e:
            # The nodes' cpulists (just read) list the online CPUs; read again next tick.
            self.warn_once(HOST, "topology", f"reading the online CPUs failed: {e}")
            self._online, self._recheck_cpus = node_cpus, True
        try:
            isolated = read_isolated_cpus(self.sys_root)
        except (OSError, ParseError) as e:
            self.warn_once(HOST, "topology", f"reading the isolated CPUs failed: {e}")
            isolated, self._recheck_cpus = self._online - self._usable, True
        self._usable = self._online - isolated
        self._mem_nodes = frozenset(nid for nid, m in zip(topo.node_ids, topo.mem_pages,
                                                          strict=True) if m > 0)

    def _scan(self, ctx: Ctx, slot: tuple[int, int]) -> None:
        try:
            found = self.discovery.scan(ctx.now, list(self.procs) + [
                k for k in self.ignored if isinstance(k, tuple)], list(self.cgroups), slot)
        except OSError as e:
            self.warn_once(HOST, "scan", f"scanning for clients failed: {e}")
            return
        topo = self._topology
        for info in found.processes:
            c = new_process_client(info, ctx.now)     # a VM with guest NUMA: its slices
            self.procs[c.key] = c
            log.info("client %s (%s): %s%s", c.name, c.id, info.why,
                     f", VM with {info.vcpus} vCPUs" if info.vm else "")
            if topo is not None:
                self._guard(c, c.key, lambda c=c: self._adopted(
                    c, self.keeper.found(c, topo)))
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
            if topo is not None:
                self._guard(g, g.key, lambda g=g: self._adopted(
                    g, self.keeper.found(g, topo)))
        for i, g in enumerate(self.cgroups.values()):
            if i % slot[0] == slot[1]:
                self._guard(g, g.key, lambda g=g: g.refresh_members(ctx))

    def _adopted(self, c: Tracked, verdict: str | None) -> None:
        if verdict in ("adopted", "completed"):
            self.stats.adopted += 1
            log.info("client %s (%s): %s from the state file: home node %s, CPUs %s",
                     c.name, c.id, verdict, c.home, format_cpulist(c.set_cpus or ()))
        elif verdict == "re-bound":
            log.info("client %s (%s): re-bound by someone else while no homenode ran; "
                     "its record in the state file is dropped", c.name, c.id)

    def _prune_ignored(self) -> None:
        alive = set(procfs.list_pids(self.proc))
        self.ignored = {k for k in self.ignored
                        if not isinstance(k, tuple) or k[0] in alive}

    def _unreadable(self, c: Tracked, e: AccessDenied) -> None:
        """A client homenode may not even read is dropped for good (it would fail again
        every tick)."""
        self._drop(c.key)  # type: ignore[attr-defined]
        self.ignored.add(c.key)  # type: ignore[attr-defined]
        if len(self.ignored) > IGNORED_PRUNE_AT:
            self._prune_ignored()
        self.warn_once(c.id, "unreadable", f"{c.name} ({c.id}): cannot read it ({e}); "
                                           f"not managed")

    def _refresh(self, c: Tracked, ctx: Ctx, topo: Topology) -> None:
        kind = kind_of(c)
        if c.key in self.unsettled and not self.dry_run:
            kind.resettle(c, self.io)    # before the binding check
            self.unsettled.discard(c.key)
        try:
            c.refresh(ctx)
        except AccessDenied as e:
            self._unreadable(c, e)
            return
        if self.dry_run or not c.managed or c.home is None:
            return
        kind.keep_home(c, self._node_cpus(topo, c.home), self.io)

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
        self.discovery.labels.update(tracked, now)    # affinity groups, node constraints
        key = (id(topo), *((c.id, c.version) for c in tracked))
        if key != self._models_key:
            self._models_key = key
            self._models = tuple(with_labels(view.client_model(c, topo), c, topo)
                                 for c in tracked)
        return view.build_snapshot(now, topo, tracked, self._models, free)

    # --- actions --------------------------------------------------------------------


def kernel_numa_balancing(proc_root: str = "/proc") -> bool:
    """Whether the kernel's automatic NUMA balancing is on (it moves pages too)."""
    try:
        return procfs.read_numa_balancing(proc_root)
    except SysError:
        return False
