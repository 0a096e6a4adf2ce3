"""`homenode explain CLIENT`: why a client is where it is.

From a running daemon (the status API's ``explain`` request) or from a run's output
directory (decisions.jsonl + actions.csv + timeseries.csv), the same document is built:

    {"client", "policy", "current": row or None, "decisions": [record, ...],
     "pages": [{"src", "dst", "pages"}], "settings": {...} or None}

where a record is ``{"time", "actions": [...], "considered": [...]}`` for this client.
``explain_lines`` turns it into text: where the client lives and why, then its last
decisions, newest first, each alternative with its score and the rule that stopped it.

A rule is the name of the filter that rejected the move (``rebalance.would_thrash``...).
Its explanation is the filter's own docstring, with the current value of every setting
it names, so a new filter in any policy module is explained without touching this file.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from functools import cache
from pathlib import Path
from typing import Any

from homenode.errors import InputError
from homenode.ops import rundata
from homenode.report import ACTIONS, DECISIONS, SUMMARY, TIMESERIES
from homenode.settings import Settings

DEFAULT_LAST = 5           # decisions shown by default
ALTERNATIVES_SHOWN = 6     # alternatives listed per decision
_SETTING_REF = re.compile(r"``(\w+)``")


@cache
def _filters() -> dict[str, str]:
    """Every public function of the policy modules, by name, with its docstring's first
    paragraph (a verdict is the name of the filter that stopped a move)."""
    import homenode.policy as pkg
    out: dict[str, str] = {}
    for mod in pkgutil.iter_modules(pkg.__path__):
        m = importlib.import_module(f"homenode.policy.{mod.name}")
        for name, obj in vars(m).items():
            doc = getattr(obj, "__doc__", None)
            if callable(obj) and not name.startswith("_") and doc and \
                    getattr(obj, "__module__", "") == m.__name__:
                out[name] = " ".join(doc.strip().split("\n\n")[0].split())
    return out


def rule_text(verdict: str, settings: dict[str, Any] | None = None) -> str:
    """A verdict in words: 'taken', 'passed every rule...', or the rule's docstring with
    the values of the settings it names."""
    if verdict == "taken":
        return "taken"
    if verdict == "ok":
        return "passed every rule, but another move scored higher"
    doc = _filters().get(verdict)
    if doc is None:
        return f"stopped by {verdict}"
    values = settings if settings is not None else Settings().as_dict()
    units = {f.name: f.metadata["unit"] for f in Settings.specs()}
    refs = [n for n in dict.fromkeys(_SETTING_REF.findall(doc)) if n in values]
    text = _SETTING_REF.sub(r"\1", doc).rstrip(".")
    if refs:
        text += " (" + ", ".join(f"{n} = {values[n]:g} {units.get(n, '')}".rstrip()
                                 if isinstance(values[n], int | float)
                                 and not isinstance(values[n], bool)
                                 else f"{n} = {values[n]}" for n in refs) + ")"
    return f"stopped by {verdict}: {text}"


# --- building the document from an output directory -------------------------------------------

def from_directory(path: Path, client: str) -> dict[str, Any]:
    path = Path(path)
    if not path.is_dir():
        raise InputError("--from", str(path), "no such directory")
    if not (path / DECISIONS).is_file():
        raise InputError("--from", str(path), f"no {DECISIONS} there (not the output "
                         "directory of `homenode simulate` or `homenode run --out`)")
    summary = rundata.read_json(path / SUMMARY) if (path / SUMMARY).is_file() else {}
    settings = Settings().as_dict()
    settings.update(summary.get("settings") or {})
    records: dict[float, dict[str, Any]] = {}
    pages: dict[tuple[int, int], int] = {}
    seen = False
    for rec in rundata.read_decisions(path / DECISIONS):
        mine = [c for c in rec["considered"] if c.get("client") == client]
        if mine:
            seen = True
            records.setdefault(rec["time"], _record(rec["time"]))["considered"] = mine
    last_pages_at = None
    if (path / ACTIONS).is_file():
        for a in rundata.read_actions(path / ACTIONS):
            if a["client"] != client:
                continue
            seen = True
            if a["kind"] == "pages":
                if a["ok"]:
                    pages[(a["src"], a["dst"])] = pages.get((a["src"], a["dst"]), 0) + a["pages"]
                    last_pages_at = a["time"]
            else:
                records.setdefault(a["time"], _record(a["time"]))["actions"].append(a)
    current = _last_row(path / TIMESERIES, client) if (path / TIMESERIES).is_file() else None
    if current is not None:
        by: dict[str, int] = {}
        for r in records.values():
            for a in r["actions"]:
                if a["kind"] == "home" and a["ok"] and a["reason"] != "initial":
                    by[a["reason"]] = by.get(a["reason"], 0) + 1
        current["nmig_by_reason"] = dict(sorted(by.items()))
    if not seen and current is None:
        raise InputError("CLIENT", client, f"not found in {path}")
    return {"client": client, "policy": summary.get("policy", ""), "current": current,
            "decisions": [records[t] for t in sorted(records)],
            "pages": [{"src": s, "dst": d, "pages": n} for (s, d), n in sorted(pages.items())],
            "last_pages_at": last_pages_at, "settings": settings}


def _record(t: float) -> dict[str, Any]:
    return {"time": t, "actions": [], "considered": []}


def _last_row(path: Path, client: str) -> dict[str, Any] | None:
    """The client's last timeseries.csv row, in the status API's field names."""
    last = None
    for line, r in rundata.read_csv(path, ("time_s", "client", "home", "locality")):
        if r["client"] == client:
            last = (line, r)
    if last is None:
        return None
    line, r = last
    home = rundata.number(r, "home", path, line, int)
    return {"id": client, "name": client, "home": home if home >= 0 else None,
            "home_id": home if home >= 0 else None,
            "time": rundata.number(r, "time_s", path, line),
            "nmig": rundata.number(r, "nmig", path, line, int) if r.get("nmig") else None,
            "locality": rundata.number(r, "locality", path, line),
            "local_mib": float(r.get("local_mib") or 0), "remote_mib":
            float(r.get("remote_mib") or 0), "cpu_demand": float(r.get("cpu_demand") or 0),
            "cpu_received": float(r.get("cpu_received") or 0)}


# --- text ---------------------------------------------------------------------------------------

def _node(i: int) -> str:
    return "none" if i is None or i < 0 else f"node {i}"


def _score(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f}"


def summary_line(doc: dict[str, Any]) -> str:
    """One sentence: where the client is, since when and why; or why it stayed."""
    cur = doc.get("current")
    homes = [(r["time"], a) for r in doc["decisions"] for a in r["actions"]
             if a["kind"] == "home" and a["ok"]]
    where = "is not on the host now" if cur is None else (
        "is unplaced" if cur.get("home") is None else
        f"lives on {_node(cur['home_id'] if cur.get('home_id') is not None else cur['home'])}"
        + (f", {100 * cur['locality']:.1f} % of its memory local"
           if cur.get("locality") is not None else ""))
    text = f"{doc['client']} {where}."
    if homes:
        t, a = homes[-1]
        text += (f" It moved there at t={t:.1f} s ({a['reason']}, score {_score(a['score'])}"
                 + (f": {a['detail']}" if a.get("detail") else "") + ").")
    later = [r for r in doc["decisions"] if not homes or r["time"] > homes[-1][0]]
    blocked = [r for r in later if any(c["verdict"] not in ("taken", "ok")
                                       for c in r["considered"])]
    if blocked:
        # The latest decision that turned a move down says why it is still there.
        r = blocked[-1]
        best = max((c for c in r["considered"] if c["verdict"] not in ("taken", "ok")),
                   key=lambda c: c["score"] if c["score"] is not None else -1e300)
        text += (f" At t={r['time']:.1f} s its best alternative ({_node(best['src'])} → "
                 f"{_node(best['dst'])}, {best['reason']}, score {_score(best['score'])}) "
                 f"was {rule_text(best['verdict'], doc.get('settings'))}"
                 + (f" [{best['detail']}]" if best.get("detail") else "") + ".")
    return text


def explain_lines(doc: dict[str, Any], last: int = DEFAULT_LAST) -> list[str]:
    settings = doc.get("settings")
    lines = [summary_line(doc)]
    cur = doc.get("current")
    if cur is not None and cur.get("nmig") is not None:
        by = cur.get("nmig_by_reason")
        lines.append(f"Home changes: {cur['nmig']}" + (
            " (" + ", ".join(f"{k} {v}" for k, v in by.items()) + ")" if by else ""))
    for p in doc.get("pages", []):
        lines.append(f"Memory: {p['pages']} pages ({p['pages'] * 4096 / 2**20:.0f} MiB) "
                     f"granted to migrate {_node(p['src'])} → {_node(p['dst'])}")
    records = doc["decisions"][-last:][::-1] if last > 0 else []
    if records:
        lines.append(f"Last {len(records)} decision(s), newest first:")
    for r in records:
        acts = [a for a in r["actions"] if a["kind"] == "home"]
        head = f"  t={r['time']:.1f} s: "
        if acts:
            a = acts[-1]
            head += (f"{'moved' if a['ok'] else 'move REFUSED by the host'} "
                     f"{_node(a['src'])} → {_node(a['dst'])} ({a['reason']}, score "
                     f"{_score(a['score'])})" + (f": {a['detail']}" if a.get("detail") else ""))
        else:
            head += "not moved"
        lines.append(head)
        alts = sorted(r["considered"], key=lambda c: -(c["score"] if c["score"] is not None
                                                        else -1e300))
        for c in alts[:ALTERNATIVES_SHOWN]:
            lines.append(f"      {_node(c['src'])} → {_node(c['dst'])} {c['reason']:<9} "
                         f"score {_score(c['score']):>7}  {rule_text(c['verdict'], settings)}")
            if c.get("detail"):
                lines.append(f"          {c['detail']}")
        if len(alts) > ALTERNATIVES_SHOWN:
            lines.append(f"      ... and {len(alts) - ALTERNATIVES_SHOWN} more")
    if not records:
        lines.append("No decision about it has been recorded.")
    return lines
