"""Run one policy on one scenario in the simulator: the job behind `homenode simulate`."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from homenode import loop
from homenode.metrics import RunRecorder, summarize
from homenode.model import Decision, Snapshot
from homenode.policy import Policy, make_policy
from homenode.report import write_run
from homenode.settings import Settings
from homenode.settings import profile as settings_profile
from homenode.sim.host import SimClock, SimHost
from homenode.sim.scenario import Scenario

DEFAULT_INTERVAL = 1.0   # s between control-loop ticks (and samples) in the simulator


@dataclass
class SimResult:
    summary: dict[str, Any]
    recorder: RunRecorder


def simulate(sc: Scenario, policy: str = "esxi", *, seed: int | None = None,
             duration: float | None = None, settings: dict[str, Any] | None = None,
             profile: str | None = None,
             out: Path | None = None, plots: bool = True, interval: float = DEFAULT_INTERVAL,
             on_tick: Callable[[float], None] | None = None,
             recorder: loop.Recorder | None = None,
             factory: Callable[[Settings], Policy] | None = None) -> SimResult:
    """Simulate ``sc`` under ``policy``; write the run's files to ``out`` if given.

    Settings: the named ``profile`` (default "homenode"), then the scenario's
    ``[settings]`` table, then ``settings`` on top.
    ``recorder`` is fed beside the run's own (the live status API of `simulate --live`).
    ``factory`` builds the policy instead of the registry (a policy that needs more than
    settings, such as ``optimal`` with the scenario's hints); ``policy`` still names it.
    """
    base = settings_profile(profile) if profile else Settings()
    cfg = Settings.from_mapping(sc.settings, where=sc.source, base=base)
    if settings:
        cfg = Settings.from_mapping(settings, base=cfg)
    seed = sc.seed if seed is None else seed
    duration = sc.duration if duration is None else duration
    host = SimHost(sc, seed, policy)
    pol = factory(cfg) if factory is not None else make_policy(policy, cfg)
    bind = getattr(pol, "bind_host_costs", None)
    if bind is not None:            # a kernel model that times its own work (autonuma)
        bind(host.costs)
    rec = RunRecorder(extra=host.stats)
    wall0 = time.perf_counter()
    loop.run(host, Accounted(pol, host), SimClock(host), duration=duration, interval=interval,
             recorder=loop.Tee(rec, recorder) if recorder is not None else rec, on_tick=on_tick)
    wall = time.perf_counter() - wall0
    summary = summarize(rec, scenario=sc.name, policy=policy, seed=seed, duration=duration,
                        event_times=[t for t in sc.event_times() if t < duration],
                        wall_s=wall, totals=host.totals())
    over = host.overhead()
    summary["overhead_cpu_s"] = round(sum(over["cpu_s"].values()), 4)
    summary["overhead"] = over
    if profile:
        summary["profile"] = profile
    if cfg.changed():
        summary["settings"] = cfg.changed()
    if out is not None:
        write_run(Path(out), rec, summary, plots=plots)
    return SimResult(summary, rec)


class Accounted:
    """The policy as the simulator runs it: the work each decision reports (hinting
    faults, /proc reads) is handed to the host to be priced and charged."""

    def __init__(self, policy: Policy, host: SimHost):
        self.policy, self.host = policy, host
        self.name = policy.name

    def decide(self, snap: Snapshot) -> Decision:
        d = self.policy.decide(snap)
        if d.work:
            self.host.account(d.work)
        return d



@dataclass(frozen=True)
class Verdict:
    """One ``[expect]`` entry against a run."""

    key: str                 # as written: <summary key>_min / _max
    name: str                # the summary key
    side: str                # "min" or "max"
    bound: float
    value: Any               # the run's figure (None: null or absent)
    ok: bool
    problem: str = ""        # why it is not met

    def line(self) -> str:
        op = ">=" if self.side == "min" else "<="
        mark = "ok  " if self.ok else "FAIL"
        shown = "—" if self.value is None else self.value
        tail = "" if self.ok else f"  ({self.problem})"
        return f"{mark} {self.name} = {shown}  (expected {op} {self.bound:g}){tail}"


def verdicts(summary: dict[str, Any], expect: dict[str, float]) -> list[Verdict]:
    """Each of the scenario's ``[expect]`` entries, met or not, in key order."""
    out = []
    for key, bound in sorted(expect.items()):
        name, _, side = key.rpartition("_")
        value = summary.get(name)
        if side not in ("min", "max") or name not in summary:
            out.append(Verdict(key, key, side, bound, None, False, "no such summary key"))
        elif value is None:
            out.append(Verdict(key, name, side, bound, None, False, "null"))
        elif (side == "min" and value < bound) or (side == "max" and value > bound):
            out.append(Verdict(key, name, side, bound, value, False,
                               "below" if side == "min" else "above"))
        else:
            out.append(Verdict(key, name, side, bound, value, True))
    return out


def unmet_expectations(summary: dict[str, Any], expect: dict[str, float]) -> list[str]:
    """The scenario's ``[expect]`` entries (``<summary key>_min`` / ``_max``) not met."""
    failures = []
    for v in verdicts(summary, expect):
        if v.ok:
            continue
        if v.problem == "no such summary key":
            failures.append(f"{v.key}: no such summary key")
        elif v.value is None:
            failures.append(f"{v.name} is null (expected {v.side} {v.bound})")
        else:
            failures.append(f"{v.name} = {v.value}, expected {v.side} {v.bound}")
    return failures
