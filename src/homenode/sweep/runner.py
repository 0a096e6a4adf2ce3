"""One case, on whichever process runs it: parse its scenario, run ``simulate``, return
a record (a JSON-able dict).  Nothing here is specific to the sweep's executor.

Trace files reach the case one of two ways, and both give the scenario the same bytes:

* a directory path (the local pool: the workers share this machine's filesystem); each
  file's sha256 is checked against the case's before it is read;
* a mapping sha256 -> bytes (Dask: the driver scatters each file once, a worker keeps it
  in memory); the bytes are written to a private temporary directory under the case's
  relative names, and the scenario is parsed from there.

A case that raises is a record with ``status = "error"`` and the one-line error: the
sweep goes on.
"""

from __future__ import annotations

import atexit
import hashlib
import shutil
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from homenode.compare import solver_stats
from homenode.policy.optimal import OptimalPolicy, hints_for
from homenode.settings import Settings
from homenode.sim import scenario as scenarios
from homenode.sim import traces
from homenode.simulation import simulate
from homenode.sweep.cases import Case, with_traces_dir

OK, ERROR = "ok", "error"
# Summary and solver keys that depend on wall time: kept out of the results table.
TIMING_KEYS = ("sim_speed", "max_solve_s", "median_solve_s")


_blobs: Path | None = None      # this process's trace files by sha256 (Dask workers)


def _blob(sha: str, data: bytes) -> Path:
    """A file holding ``data`` (whose sha256 is ``sha``), written once per process."""
    global _blobs
    if _blobs is None:
        _blobs = Path(tempfile.mkdtemp(prefix="homenode-sweep-blobs-"))
        atexit.register(shutil.rmtree, _blobs, True)
    p = _blobs / sha
    if not p.exists():
        tmp = p.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(p)
    return p


def run_case(case: Case, source: str | Mapping[str, bytes] | None) -> dict[str, Any]:
    wall0 = time.perf_counter()
    # Worker processes run many cases cut from the same files: keep what they read.
    traces.remember_reads()
    try:
        if case.traces and isinstance(source, Mapping):
            with tempfile.TemporaryDirectory(prefix="homenode-case-") as tmp:
                # The case's names, linked to content-addressed files: the scenario reads
                # the bytes the driver hashed, and the reads are remembered across cases.
                for rel, sha in case.traces:
                    p = Path(tmp) / rel
                    p.parent.mkdir(parents=True, exist_ok=True)
                    p.symlink_to(_blob(sha, source[sha]))
                sc = _parse(case, Path(tmp))
        elif case.traces:
            root = Path(str(source))
            for rel, sha in case.traces:
                if _sha(root / rel) != sha:
                    raise RuntimeError(f"{rel} changed since the sweep was expanded")
            sc = _parse(case, root)
        else:
            sc = scenarios.parse(case.text, f"{case.label}.toml")
        record = _simulate(case, sc)
    except Exception as e:       # a failing case is recorded; the sweep goes on
        record = {"status": ERROR, "error": f"{type(e).__name__}: {e}".splitlines()[0],
                  "summary": {}, "solver": {}, "timing": {}}
    record["timing"]["wall_s"] = round(time.perf_counter() - wall0, 3)
    return {"key": case.key, "meta": case.meta(), **record}


def _parse(case: Case, root: Path) -> scenarios.Scenario:
    return scenarios.parse(with_traces_dir(case.text, root), f"{case.label}.toml")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _simulate(case: Case, sc: scenarios.Scenario) -> dict[str, Any]:
    made: list[OptimalPolicy] = []
    factory = None
    if case.policy == "optimal":
        hints = hints_for(sc)

        def factory(cfg: Settings) -> OptimalPolicy:
            made.append(OptimalPolicy(cfg, hints))
            return made[-1]

    res = simulate(sc, case.policy, seed=case.seed, settings=dict(case.settings) or None,
                   factory=factory)
    summary = dict(res.summary)
    timing = {"sim_speed": summary.pop("sim_speed", None)}
    solver: dict[str, Any] = {}
    if made:
        solver = solver_stats(made[0], summary["duration_s"])
        for k in TIMING_KEYS:
            if k in solver:
                timing[k] = solver.pop(k)
    return {"status": OK, "error": "", "summary": summary, "solver": solver,
            "timing": timing}
