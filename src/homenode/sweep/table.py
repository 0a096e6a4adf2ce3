"""The results table: one row per case, every summary.json key, as Parquet and CSV.

Rows are sorted by case key and hold nothing that depends on wall time (``sim_speed``
and the solver's seconds go to ``timings.csv``), so the same spec gives the same bytes
whichever executor ran it.  Nested summary values (convergence list, reasons) are JSON
text; the optimal policy's solver figures are ``solver_*`` columns.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from homenode.ops.html import SUMMARY_KEYS
from homenode.report import write_atomic

RESULTS_PARQUET = "results.parquet"
RESULTS_CSV = "results.csv"
TIMINGS_CSV = "timings.csv"
META = ("key", "label", "family", "set", "day", "shape", "group", "policy", "seed", "grid",
        "clients", "cores", "demand_mean_share", "demand_peak_share", "memory_share",
        "status", "error")
DERIVED = ("home_changes_per_client_per_10min",)
TIMINGS = ("key", "label", "policy", "seed", "status", "wall_s", "sim_speed", "max_solve_s",
           "median_solve_s")
TEN_MIN_S = 600.0


def rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for r in sorted(records, key=lambda r: r["key"]):
        s = r.get("summary") or {}
        row: dict[str, Any] = {k: r["meta"].get(k) for k in META if k in r["meta"]}
        row["status"], row["error"] = r["status"], r.get("error", "")
        row["home_changes_per_client_per_10min"] = _per_client_10min(s)
        row.update({k: _flat(v) for k, v in s.items()})
        row.update({f"solver_{k}": _flat(v) for k, v in (r.get("solver") or {}).items()})
        out.append(row)
    return out


def _per_client_10min(s: dict[str, Any]) -> float | None:
    n, d, h = s.get("clients_seen"), s.get("duration_s"), s.get("home_changes")
    if not n or not d or h is None:
        return None
    return round(h / n / (d / TEN_MIN_S), 6)


def _flat(v: Any) -> Any:
    return json.dumps(v, sort_keys=True) if isinstance(v, dict | list) else v


def columns(table: list[dict[str, Any]]) -> list[str]:
    seen = set().union(*(r.keys() for r in table)) if table else set(META)
    head = [k for k in (*META, *DERIVED) if k in seen or k in META]
    known = [k for k in SUMMARY_KEYS if k in seen and k not in head]
    rest = sorted(k for k in seen if k not in head and k not in known
                  and not k.startswith("solver_"))
    solver = sorted(k for k in seen if k.startswith("solver_"))
    return head + known + rest + solver


def _kind(values: list[Any]) -> str:
    vals = [v for v in values if v is not None]
    if vals and all(isinstance(v, bool) for v in vals):
        return "bool"
    if vals and all(isinstance(v, int) and not isinstance(v, bool) for v in vals):
        return "int"
    if vals and all(isinstance(v, int | float) and not isinstance(v, bool) for v in vals):
        return "float"
    return "str"


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v)
    return str(v)


def to_csv(table: list[dict[str, Any]], cols: list[str]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    for r in table:
        w.writerow([_cell(r.get(c)) for c in cols])
    return buf.getvalue()


def to_parquet(path: Path, table: list[dict[str, Any]], cols: list[str]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    types = {"bool": pa.bool_(), "int": pa.int64(), "float": pa.float64(), "str": pa.string()}
    arrays, fields = [], []
    for c in cols:
        vals = [r.get(c) for r in table]
        kind = _kind(vals)
        if kind == "float":
            vals = [None if v is None else float(v) for v in vals]
        elif kind == "str":
            vals = [None if v is None else str(v) for v in vals]
        arrays.append(pa.array(vals, type=types[kind]))
        fields.append(pa.field(c, types[kind]))
    t = pa.Table.from_arrays(arrays, schema=pa.schema(fields))
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(t, tmp)
    tmp.replace(path)


def write(out: Path, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """results.parquet, results.csv and timings.csv in ``out``; returns the rows."""
    table = rows(records)
    cols = columns(table)
    write_atomic(out / RESULTS_CSV, to_csv(table, cols))
    to_parquet(out / RESULTS_PARQUET, table, cols)
    timing = []
    for r in sorted(records, key=lambda r: r["key"]):
        t = {"key": r["key"], "status": r["status"], **{k: r["meta"].get(k) for k in
                                                         ("label", "policy", "seed")}}
        t.update(r.get("timing") or {})
        timing.append(t)
    write_atomic(out / TIMINGS_CSV, to_csv(timing, list(TIMINGS)))
    return table
