"""Reading a run's output directory back: what `report` and `explain --from` work on.

The files are those ``homenode.report.write_run`` writes (timeseries.csv, nodes.csv,
actions.csv, decisions.jsonl, summary.json); a compare directory adds compare.json and
holds one such run directory per policy.  A missing or malformed file is a one-line
``InputError`` naming the file, the line and the field.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from homenode.errors import InputError
from homenode.report import ACTIONS, DECISIONS, NODES, SUMMARY, TIMESERIES

COMPARE = "compare.json"
SEARCH_DEPTH = 3   # how deep a compare directory is searched for a policy's run


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError("file", str(path), "not found") from None
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise InputError("file", str(path), f"not valid JSON ({_first_line(e)})") from None


def read_csv(path: Path, need: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, row) pairs; the header must have the ``need`` columns."""
    if not path.is_file():
        raise InputError("file", str(path), "not found")
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in need if c not in (reader.fieldnames or [])]
        if missing:
            raise InputError(f"{path.name}: column", missing[0], "missing from the header",
                             str(path))
        for row in reader:
            yield reader.line_num, row


def number(row: dict[str, str], key: str, path: Path, line: int, kind: type = float) -> Any:
    try:
        return kind(row[key])
    except (TypeError, ValueError):
        raise InputError(f"{path.name}:{line}: {key}", row.get(key), f"expected a "
                         f"{kind.__name__}", str(path)) from None


def _first_line(e: Exception) -> str:
    return str(e).splitlines()[0] if str(e) else type(e).__name__


@dataclass
class RunData:
    """One run's time series as dense arrays (NaN where a client was absent)."""

    path: Path
    summary: dict[str, Any]
    times: np.ndarray            # (T,) sample times
    clients: list[str]
    local_mib: np.ndarray        # (T, C)
    remote_mib: np.ndarray       # (T, C)
    locality: np.ndarray         # (T, C), NaN while absent
    nodes: list[int]
    load: np.ndarray             # (T, N) entitled load
    cpu_used: np.ndarray         # (T, N)
    free_mib: np.ndarray         # (T, N)
    actions: list[dict[str, Any]]
    home: np.ndarray | None = None   # (T, C) home node index, NaN while absent

    def events(self) -> list[float]:
        """The scenario's event times (starts, stops, demand changes; those closer than
        2 s as one), as the summary's convergence figures list them."""
        conv = self.summary.get("convergence_s")
        if not isinstance(conv, list):
            return []
        return [float(c["at_s"]) for c in conv if isinstance(c, dict)
                and isinstance(c.get("at_s"), int | float)]

    @property
    def label(self) -> str:
        return str(self.summary.get("policy", self.path.name))

    def mean_locality(self) -> np.ndarray:
        """Memory-weighted locality of the whole host per sample (1.0 with no memory)."""
        local = np.nansum(self.local_mib, axis=1)
        total = local + np.nansum(self.remote_mib, axis=1)
        return np.where(total > 0, local / np.maximum(total, 1e-12), 1.0)

    def imbalance(self) -> np.ndarray:
        return self.load.max(axis=1) - self.load.min(axis=1) if self.nodes else \
            np.zeros(len(self.times))

    def remote_gib(self) -> np.ndarray:
        return np.nansum(self.remote_mib, axis=1) / 1024.0

    def home_changes(self) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Event times and cumulative counts of accepted home changes, per reason."""
        out: dict[str, list[float]] = {}
        for a in self.actions:
            if a["kind"] == "home" and a["ok"] and a["reason"] != "initial":
                out.setdefault(a["reason"], []).append(a["time"])
        return self.times, {r: np.searchsorted(np.sort(ts), self.times, side="right")
                            for r, ts in sorted(out.items())}

    def pages_granted_gib(self) -> np.ndarray:
        """Cumulative GiB granted to page migrations, at each sample time."""
        ts = [(a["time"], a["pages"]) for a in self.actions if a["kind"] == "pages" and a["ok"]]
        if not ts:
            return np.zeros(len(self.times))
        t = np.array([x[0] for x in ts])
        cum = np.cumsum(np.array([x[1] for x in ts], float)) * 4096 / 2**30
        k = np.searchsorted(t, self.times, side="right")
        return np.where(k > 0, cum[np.maximum(k - 1, 0)], 0.0)


def is_run_dir(path: Path) -> bool:
    return (path / SUMMARY).is_file() and (path / TIMESERIES).is_file()


def load_run(path: Path) -> RunData:
    path = Path(path)
    if not path.is_dir():
        raise InputError("DIR", str(path), "no such directory")
    summary = read_json(path / SUMMARY)
    if not isinstance(summary, dict):
        raise InputError("file", str(path / SUMMARY), "expected a JSON object")
    times, clients, cols = _timeseries(path / TIMESERIES)
    nodes, ncols = _nodes(path / NODES, times)
    return RunData(path, summary, times, clients, cols["local_mib"], cols["remote_mib"],
                   cols["locality"], nodes, ncols["load"], ncols["cpu_used"],
                   ncols["free_mib"], list(read_actions(path / ACTIONS)), cols.get("home"))


def _timeseries(path: Path) -> tuple[np.ndarray, list[str], dict[str, np.ndarray]]:
    names: tuple[str, ...] = ("local_mib", "remote_mib", "locality")
    rows: list[tuple[float, str, tuple[float, ...]]] = []
    for line, r in read_csv(path, ("time_s", "client", *names)):
        if line == 2 and "home" in r:
            names = (*names, "home")         # optional: older files may lack it
        rows.append((number(r, "time_s", path, line), r["client"],
                     tuple(number(r, k, path, line) for k in names)))
    times = np.array(sorted({t for t, _, _ in rows}))
    clients = sorted({c for _, c, _ in rows})
    ti = {t: k for k, t in enumerate(times.tolist())}
    ci = {c: k for k, c in enumerate(clients)}
    cols = {k: np.full((len(times), len(clients)), np.nan) for k in names}
    for t, c, vals in rows:
        for k, v in zip(names, vals, strict=True):
            cols[k][ti[t], ci[c]] = v
    return times, clients, cols


def _nodes(path: Path, times: np.ndarray) -> tuple[list[int], dict[str, np.ndarray]]:
    names = ("load", "cpu_used", "free_mib")
    rows = [(number(r, "time_s", path, line), number(r, "node", path, line, int),
             tuple(number(r, k, path, line) for k in names))
            for line, r in read_csv(path, ("time_s", "node", *names))]
    nodes = sorted({n for _, n, _ in rows})
    ti = {t: k for k, t in enumerate(times.tolist())}
    ni = {n: k for k, n in enumerate(nodes)}
    cols = {k: np.zeros((len(times), len(nodes))) for k in names}
    for t, n, vals in rows:
        if t in ti:
            for k, v in zip(names, vals, strict=True):
                cols[k][ti[t], ni[n]] = v
    return nodes, cols


def read_actions(path: Path) -> Iterator[dict[str, Any]]:
    need = ("time_s", "client", "kind", "src", "dst", "pages", "reason", "score", "ok")
    for line, r in read_csv(path, need):
        yield {"time": number(r, "time_s", path, line), "client": r["client"],
               "kind": r["kind"], "src": number(r, "src", path, line, int),
               "dst": number(r, "dst", path, line, int),
               "pages": number(r, "pages", path, line, int), "reason": r["reason"],
               "score": number(r, "score", path, line), "ok": r["ok"] == "1",
               "detail": r.get("detail") or ""}


def read_decisions(path: Path) -> Iterator[dict[str, Any]]:
    """decisions.jsonl records: {"time": s, "considered": [...]}, one per line."""
    if not path.is_file():
        raise InputError("file", str(path), "not found")
    with open(path) as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                raise InputError(f"{DECISIONS}:{line_no}", line.strip()[:60],
                                 "not valid JSON", str(path)) from None
            if not isinstance(rec, dict) or not isinstance(rec.get("considered"), list):
                raise InputError(f"{DECISIONS}:{line_no}", line.strip()[:60],
                                 'expected {"time": ..., "considered": [...]}', str(path))
            yield rec


def compare_runs(path: Path) -> tuple[dict[str, Any], dict[str, Path | None]]:
    """compare.json and, per policy it names, the run directory holding its series.

    A policy's run is looked for at DIR/NAME, then in DIR/NAME's sub-directories (one
    per seed: the first in name order), then anywhere under DIR whose summary.json
    names the policy; None when there is none (the report then shows the table only)."""
    doc = read_json(path / COMPARE)
    if not isinstance(doc, dict) or not isinstance(doc.get("policies"), dict):
        raise InputError("file", str(path / COMPARE), 'expected {"scenario": ..., '
                         '"policies": {...}}')
    runs: dict[str, Path | None] = {}
    found = list(_run_dirs(path, SEARCH_DEPTH))
    for name in doc["policies"]:
        direct = path / name
        seeds = sorted(p for p in found if p.parent == direct)
        by_summary = [p for p in found if _policy_of(p) == name]
        runs[name] = (direct if is_run_dir(direct) else seeds[0] if seeds
                      else by_summary[0] if by_summary else None)
    return doc, runs


def _run_dirs(root: Path, depth: int) -> Iterator[Path]:
    if depth < 0 or not root.is_dir():
        return
    for p in sorted(root.iterdir()):
        if p.is_dir() and not p.name.startswith("."):
            if is_run_dir(p):
                yield p
            yield from _run_dirs(p, depth - 1)


def _policy_of(run: Path) -> str | None:
    try:
        return json.loads((run / SUMMARY).read_text()).get("policy")
    except (OSError, ValueError, AttributeError):
        return None
