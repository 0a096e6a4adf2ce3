"""A sweep from start to end: skip what the store holds, run the rest on an executor,
store each record as it arrives, then write the table and the report."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from homenode.errors import InputError
from homenode.sweep import report, table
from homenode.sweep.cases import Case, Plan
from homenode.sweep.runner import OK
from homenode.sweep.store import Store


class Executor(Protocol):
    name: str

    def run(self, cases: list[Case], on_record: Callable[[dict[str, Any]], None]) -> None:
        ...

    def close(self) -> None:
        ...


@dataclass
class Outcome:
    total: int = 0
    reused: int = 0             # finished in an earlier run: not run again
    executed: int = 0           # records that arrived in this run
    failed: int = 0             # of those, failing cases
    duplicates: int = 0         # a key that arrived twice (stored once)
    rows: list[dict[str, Any]] = field(default_factory=list)


def check_out(out: Path, resume: bool) -> None:
    if Store(out).exists() and not resume:
        raise InputError("--out", str(out), "holds a sweep already: pass --resume to "
                         "continue it, or choose another directory")
    if out.exists() and not out.is_dir():
        raise InputError("--out", str(out), "is not a directory")


def run(plan: Plan, out: Path, executor: Executor, *, resume: bool = False,
        on_progress: Callable[[Outcome, dict[str, Any] | None], None] | None = None
        ) -> Outcome:
    check_out(out, resume)
    store = Store(out)
    keys = [c.key for c in plan.cases]
    done = set()
    if resume:
        done = {k for k in keys if (store.get(k) or {}).get("status") == OK}
    todo = run_order([c for c in plan.cases if c.key not in done])
    res = Outcome(total=len(keys), reused=len(done))
    store.begin(plan.spec.name, plan.spec.source, plan.spec.text, keys)
    if on_progress:
        on_progress(res, None)
    seen: set[str] = set()

    def on_record(rec: dict[str, Any]) -> None:
        if rec["key"] in seen:
            res.duplicates += 1
            return
        seen.add(rec["key"])
        store.put(rec)
        res.executed += 1
        res.failed += rec["status"] != OK
        if on_progress:
            on_progress(res, rec)

    executor.run(todo, on_record)
    res.rows = finish(out, plan.spec.name, keys)
    return res


def run_order(cases: list[Case]) -> list[Case]:
    """Instance by instance (all its policies together), instances in hash order: a
    stopped sweep holds whole instances -- comparable -- sampled evenly from every family,
    rather than the first trace set's days."""
    def order(c: Case) -> tuple[str, str]:
        return hashlib.sha256(c.instance.encode()).hexdigest(), c.policy

    return sorted(cases, key=order)


def finish(out: Path, name: str, keys: list[str]) -> list[dict[str, Any]]:
    """The table and the report from the records of ``keys`` in ``out``."""
    records = Store(out).records(keys)
    rows = table.write(out, records)
    report.write(out, name, rows)
    return rows


def stored(out: Path) -> tuple[str, list[dict[str, Any]]]:
    """The rows of the last sweep in ``out`` (for ``--table``)."""
    import json

    store = Store(out)
    keys = store.keys()
    name = json.loads((out / "sweep.json").read_text()).get("spec", "")
    return name, table.rows(store.records(keys))
