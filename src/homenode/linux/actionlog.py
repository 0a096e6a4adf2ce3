"""One log line per action: client, from, to, reason, score (and pages, and the outcome).

A recorder for the control loop (``decision`` is called with the applied results), so
the daemon logs exactly what it did -- or, in a dry run, what it would have done.
Nodes are shown as kernel node ids.
"""

from __future__ import annotations

import logging
from typing import Any

from homenode.model import ActionResult, Decision, MigratePages, SetHome, Snapshot

log = logging.getLogger("homenode.actions")
# The quiet set is pruned of departed clients once it holds more than this many entries
# per present client (plus the slack): a bound, checked at no cost per tick.
QUIET_PER_CLIENT = 4
QUIET_SLACK = 64


class ActionLog:
    """Logs every action, except that a pages action which moves nothing (pages that
    cannot move, or any pages action in a dry run) is logged once for its (client,
    from, to) until something else happens to that client: the policy asks again
    every tick, and a log line per tick would flood the journal."""

    def __init__(self, dry_run: bool = False, logger: logging.Logger = log):
        self.dry_run = dry_run
        self.log = logger
        self._quiet: set[tuple[str, int, int]] = set()

    def decision(self, snap: Snapshot, decision: Decision,
                 applied: list[ActionResult]) -> None:
        if len(self._quiet) > QUIET_PER_CLIENT * len(snap.clients) + QUIET_SLACK:
            # Clients that left keep no entry: churn must not grow this set.
            present = {c.id for c in snap.clients}
            self._quiet = {k for k in self._quiet if k[0] in present}
        results = list(applied) + [None] * (len(decision.actions) - len(applied))
        for a, r in zip(decision.actions, results, strict=False):
            fields = action_fields(snap, a, r, self.dry_run)
            if self._repeat(a, fields):
                continue
            self.log.info("%s", format_text(fields), extra={"action": fields})

    def _repeat(self, a: SetHome | MigratePages, fields: dict[str, Any]) -> bool:
        if isinstance(a, SetHome) or fields.get("moved", 0) > 0 or not fields["ok"]:
            self._quiet = {k for k in self._quiet if k[0] != a.client}
            return False
        key = (a.client, a.src, a.dst)
        if key in self._quiet:
            return True
        self._quiet.add(key)
        if self.dry_run:
            fields["note"] = "repeats not logged"
        elif fields.get("note") == "queued":       # handed to the migration engine
            fields["note"] = "queued for the copiers; repeats not logged"
        else:
            fields["note"] = "nothing moved; repeats not logged"
        return False

    def sample(self, snap: Snapshot) -> None:
        pass


def _node(snap: Snapshot, idx: int) -> int | None:
    return snap.topology.node_ids[idx] if 0 <= idx < snap.topology.n else None


def action_fields(snap: Snapshot, a: SetHome | MigratePages, result: ActionResult | None,
                  dry_run: bool) -> dict[str, Any]:
    try:
        name = snap.clients[snap.index_of(a.client)].name
    except KeyError:
        name = a.client
    out: dict[str, Any] = {
        "kind": "home" if isinstance(a, SetHome) else "pages", "client": name,
        "id": a.client, "from": _node(snap, a.src), "to": _node(snap, a.dst),
        "reason": str(a.reason), "score": round(float(a.score), 3)}
    if isinstance(a, MigratePages):
        out["pages"] = int(a.pages)
        if result is not None and not dry_run:
            out["moved"] = int(result.moved or 0)
    out["ok"] = result.ok if result is not None else True
    target = result.target if result is not None else ""
    if target:
        out["target"] = target          # PID@start time: which process, exactly
    note = result.note if result is not None else ""
    if note and note != "dry-run":
        out["note"] = note
    if a.detail:
        out["detail"] = a.detail
    if dry_run:
        out["dry_run"] = True
    return out


def format_text(f: dict[str, Any]) -> str:
    src = "-" if f["from"] is None else f["from"]
    line = (f"{'dry-run: ' if f.get('dry_run') else ''}{f['kind']:<5} client={f['client']} "
            f"id={f['id']} from={src} to={f['to']} reason={f['reason']} "
            f"score={f['score']:.3f}")
    if "pages" in f:
        line += f" pages={f['pages']}"
    if "moved" in f:
        line += f" moved={f['moved']}"
    line += " ok" if f["ok"] else f" failed: {f.get('note', '')}"
    if f["ok"] and f.get("note"):
        line += f" [{f['note']}]"
    if "detail" in f:
        line += f" ({f['detail']})"
    return line
