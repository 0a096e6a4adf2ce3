"""`homenode status` and `homenode top --batch`: one-shot and batch views of the status API.

``status_text(doc)`` is a full-width snapshot for a terminal or a pipe: the header, one line
per node, then every client with its memory on each node in MiB, as ``numastat -p`` shows
a process (one column per node, then the total), and the last home changes.  Nothing is
cut to the terminal: a pipe gets every client.

``BatchWriter`` is esxtop's batch mode (``-b -d DELAY -n COUNT``) as CSV: one row per
client per sample, the header once, per-node memory in ``mem_n<ID>_mib`` columns.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable
from typing import Any, TextIO

from homenode.errors import HomenodeError, InputError

ACTIONS_SHOWN = 10
BATCH_FIELDS = ("time_s", "client", "name", "managed", "home", "nmig", "local_mib",
                "remote_mib", "locality", "cpu_demand", "cpu_received", "pages_migrated")


def _num(v: Any, fmt: str = ".2f") -> str:
    return "-" if v is None else format(v, fmt)


def header_line(doc: dict[str, Any]) -> str:
    parts = [f"homenode {doc.get('homenode', '')}".strip(), doc.get("source", "-")]
    if doc.get("scenario"):
        parts.append(f"scenario {doc['scenario']}")
    parts.append(f"policy {doc.get('policy') or '-'}")
    t = doc.get("time")
    parts.append(f"t={t:.1f}s" if t is not None else "t=-")
    imb = doc.get("imbalance")
    parts.append(f"imbalance {100 * imb:.1f}%" if imb is not None else "imbalance -")
    parts.append(f"clients {len(doc.get('clients', []))}")
    return "  ".join(parts)


def _table(head: list[str], rows: list[list[str]], left: int = 1) -> list[str]:
    """Columns as wide as their widest cell; the first ``left`` columns left-aligned."""
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]

    def fmt(r: list[str]) -> str:
        return "  ".join(c.ljust(w) if i < left else c.rjust(w)
                         for i, (c, w) in enumerate(zip(r, widths, strict=True))).rstrip()
    return [fmt(head), *(fmt(r) for r in rows)]


def status_text(doc: dict[str, Any], actions: int = ACTIONS_SHOWN) -> str:
    nodes = doc.get("nodes", [])
    ids = [n["id"] for n in nodes]
    out = [header_line(doc), ""]
    out += _table(["node", "cores", "load %", "cpu used %", "MiB", "free MiB", "clients"],
                  [[f"N{n['id']}", f"{n['cores']:g}", _num(100 * (n["load"] or 0), ".0f"),
                    _num(100 * (n["cpu_used"] or 0), ".0f"), f"{n['mem_mib']:.0f}",
                    f"{n['free_mib']:.0f}", str(n["clients"])] for n in nodes])
    out.append("")
    rows = []
    for c in sorted(doc.get("clients", []), key=lambda c: c["name"]):
        by_node = c.get("mem_by_node_mib") or [0] * len(ids)
        loc = c.get("locality")
        rows.append([c["name"] + ("" if c["managed"] else " (unmanaged)"),
                     "-" if c["home_id"] is None else str(c["home_id"]), str(c["nmig"]),
                     *(f"{m:.0f}" for m in by_node), f"{sum(by_node):.0f}",
                     "-" if loc is None else f"{100 * loc:.0f}",
                     _num(c.get("cpu_demand")), _num(c.get("cpu_received"))])
    head = ["client", "NHN", "NMIG", *(f"N{i} MiB" for i in ids), "total MiB", "N%L",
            "DEM", "CPU"]
    out += _table(head, rows)
    acts = [a for a in doc.get("actions", []) if a.get("reason") != "initial"][-actions:]
    if acts:
        out += ["", "last home changes (newest first)"]
        for a in reversed(acts):
            src = "-" if a["src"] < 0 else a["src"]
            score = "-" if a["score"] is None else f"{a['score']:.1f}"
            ok = "" if a["ok"] else " REFUSED"
            out.append(f"  {a['time']:8.1f}s {a['client']} N{src}→N{a['dst']} {a['reason']} "
                       f"score {score}{ok}  {a['detail']}")
    return "\n".join(out)


class BatchWriter:
    """CSV rows of successive status documents; the header comes from the first."""

    def __init__(self, out: TextIO):
        self.out = out
        self.writer = csv.writer(out, lineterminator="\n")
        self.node_ids: list[int] | None = None

    def write(self, doc: dict[str, Any]) -> None:
        ids = [n["id"] for n in doc.get("nodes", [])]
        if self.node_ids is None:
            self.node_ids = ids
            self.writer.writerow([*BATCH_FIELDS, *(f"mem_n{i}_mib" for i in ids)])
        t = doc.get("time")
        for c in doc.get("clients", []):
            by_id = dict(zip(ids, c.get("mem_by_node_mib") or [], strict=False))
            row = [t, c["id"], c["name"], int(bool(c["managed"])), c["home_id"], c["nmig"],
                   c["local_mib"], c["remote_mib"], c["locality"], c["cpu_demand"],
                   c["cpu_received"], c["pages_migrated"]]
            row += [by_id.get(i, 0) for i in self.node_ids]
            self.writer.writerow(["" if v is None else _cell(v) for v in row])
        self.out.flush()


def _cell(v: Any) -> Any:
    return round(v, 4) if isinstance(v, float) else v


def run_batch(request: Callable[[], dict[str, Any]], out: TextIO, *, delay: float,
              count: int, sleep: Callable[[float], None] = time.sleep) -> int:
    """``count`` samples ``delay`` seconds apart (0 = until the API goes away); returns the
    samples written.  A dead API before the first sample is an error; after it, the end."""
    if delay <= 0:
        raise InputError("--delay", delay, "must be positive")
    if count < 0:
        raise InputError("--count", count, "must not be negative")
    writer = BatchWriter(out)
    done = 0
    next_at = time.monotonic()
    while count == 0 or done < count:
        try:
            doc = request()
        except HomenodeError:
            if done == 0:
                raise
            break
        writer.write(doc)
        done += 1
        if count and done >= count:
            break
        next_at += delay
        sleep(max(0.0, next_at - time.monotonic()))
    return done
