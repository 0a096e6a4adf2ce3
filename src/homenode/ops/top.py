"""`homenode top`: an esxtop-like live NUMA screen, fed by the status API.

The screen, top to bottom: one header line, a line per node (CPU load bar, free-memory
bar), the client table (esxtop's NUMA columns: NHN home node, NMIG home changes, NLMEM
and NRMEM local and remote MiB, N%L locality; plus CPU demand and received), the last
home changes, and a key line.  Everything is sized to the terminal; at 80x24 a host of
8 nodes still shows 8 clients and 3 actions.

``render(status, view, width, height)`` is pure (status document in, rich renderable
out); ``run_top`` polls the API and reads single key presses from the terminal.  The
``v`` key swaps NLMEM/NRMEM for one column of MiB per node (``N<id>MB``, numastat -p).
"""

from __future__ import annotations

import contextlib
import os
import select
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from homenode.errors import HomenodeError, InputError
from homenode.ops.api import StatusClient

REFRESH_S = 1.0          # default time between two polls of the API
ACTION_LINES = 3         # last home changes shown (fewer if the terminal is short)
MIN_CLIENT_ROWS = 5      # nodes are packed several per line before clients drop below this
NODE_CELL_WIDTH = 40     # width of one node's bars when several share a line
NAME_WIDTH = 16


@dataclass(frozen=True)
class SortKey:
    key: str
    column: str
    value: Callable[[dict[str, Any]], Any]
    descending: bool    # the natural order: worst/biggest first


def _loc(c: dict[str, Any]) -> float:
    return c["locality"] if c["locality"] is not None else 1.0


SORT_KEYS: dict[str, SortKey] = {k.key: k for k in (
    SortKey("n", "NAME", lambda c: c["name"], False),
    SortKey("h", "NHN", lambda c: (c["home"] if c["home"] is not None else -1), False),
    SortKey("m", "NMIG", lambda c: c["nmig"], True),
    SortKey("l", "N%L", _loc, False),
    SortKey("r", "NRMEM", lambda c: c["remote_mib"], True),
    SortKey("c", "CPU", lambda c: c["cpu_received"] or 0.0, True),
    SortKey("d", "DEM", lambda c: c["cpu_demand"] or 0.0, True),
)}
DEFAULT_SORT = "l"


@dataclass
class View:
    """What the user chose: the sort column and whether it is reversed."""

    sort: str = DEFAULT_SORT
    reverse: bool = False
    error: str | None = None
    per_node: bool = False      # memory per node (numastat -p) instead of NLMEM/NRMEM

    def press(self, key: str) -> bool:
        """Apply one key press; False means quit."""
        if key in ("q", "Q", "\x03"):
            return False
        if key in SORT_KEYS:
            if key == self.sort:
                self.reverse = not self.reverse
            else:
                self.sort, self.reverse = key, False
        elif key in ("-", "R"):
            self.reverse = not self.reverse
        elif key == "v":
            self.per_node = not self.per_node
        return True

    def order(self, clients: list[dict[str, Any]]) -> list[dict[str, Any]]:
        k = SORT_KEYS[self.sort]
        # Stable ties: by name, so rows do not jump between refreshes.
        rows = sorted(clients, key=lambda c: c["name"])
        return sorted(rows, key=k.value, reverse=k.descending != self.reverse)


# --- rendering -----------------------------------------------------------------------------

def _bar(frac: float, width: int, style: str) -> Text:
    frac = min(max(frac, 0.0), 1.0)
    full = round(frac * width)
    return Text.assemble(("█" * full, style), ("░" * (width - full), "grey35"))


def _gib(mib: float) -> str:
    return f"{mib / 1024:.1f}G"


def _load_style(load: float) -> str:
    return "red" if load > 1.0 else "yellow" if load > 0.85 else "green"


def node_cell(n: dict[str, Any], width: int) -> Text:
    """``N0 cpu ██████░░░  53% free ████░░ 41.2G``: CPU load and free memory of one node."""
    load = n["load"] or 0.0
    mem = n["mem_mib"] or 0.0
    free_frac = n["free_mib"] / mem if mem > 0 else 0.0
    label = f"N{n['id']:<2}"
    free_txt = f"{_gib(n['free_mib']):>6}"
    fixed = len(label) + len(" cpu ") + len(" 1000% free ") + len(" ") + len(free_txt)
    bars = max(4, width - fixed)
    cpu_w = bars // 2
    mem_w = bars - cpu_w
    return Text.assemble(
        (label, "bold"), " cpu ", _bar(load, cpu_w, _load_style(load)),
        f" {100 * load:4.0f}% free ", _bar(free_frac, mem_w, "cyan"), f" {free_txt}")


def _header(status: dict[str, Any], width: int, view: View) -> Text:
    src = status.get("scenario") or status.get("source", "")
    t = status.get("time")
    tick = status.get("tick_seconds")
    imb = status.get("imbalance")
    parts = [
        ("homenode top", "bold"), f"  {status.get('source', '')}",
        f" {src}" if src != status.get("source") else "", f"  policy {status.get('policy') or '-'}",
        f"  t={t:.0f}s" if t is not None else "  t=-",
        f"  imb {100 * imb:.0f}%" if imb is not None else "",
        f"  tick {1000 * tick:.1f}ms" if tick is not None else "",
        f"  clients {len(status.get('clients', []))}",
    ]
    text = Text.assemble(*parts)
    if view.error:
        # The last good screen stays up; the header says it is stale.
        text = Text.assemble(("homenode top ", "bold"), ("DISCONNECTED ", "bold red"),
                             (view.error, "red"))
    text.truncate(width, overflow="ellipsis")
    return text


def _client_table(clients: list[dict[str, Any]], view: View, rows: int, width: int,
                  node_ids: list[int]) -> Table:
    name_w = max(8, min(NAME_WIDTH + (width - 80) // 2, 40))
    table = Table(box=None, show_edge=False, pad_edge=False, padding=(0, 1), expand=False)
    arrow = "↑" if view.reverse else "↓"
    mem_cols = [(f"N{i}MB", 7, "right") for i in node_ids] if view.per_node else \
        [("NLMEM", 7, "right"), ("NRMEM", 7, "right")]
    cols = [("NAME", name_w, "left"), ("NHN", 3, "right"), ("NMIG", 4, "right"),
            *mem_cols, ("N%L", 4, "right"), ("DEM", 5, "right"), ("CPU", 5, "right")]
    sorted_col = SORT_KEYS[view.sort].column
    for name, w, just in cols:
        head = f"{name}{arrow}" if name == sorted_col else name
        table.add_column(head, width=max(w, len(head)), justify=just, no_wrap=True,
                         overflow="ellipsis", header_style="bold reverse" if
                         name == sorted_col else "bold")
    for c in view.order(clients)[:max(rows, 0)]:
        loc = _loc(c)
        mem = [f"{m:.0f}" for m in (c.get("mem_by_node_mib") or [0] * len(node_ids))] \
            if view.per_node else [f"{c['local_mib']:.0f}", f"{c['remote_mib']:.0f}"]
        table.add_row(
            Text(c["name"], style="" if c["managed"] else "dim"),
            "-" if c["home_id"] is None else str(c["home_id"]),
            str(c["nmig"]), *mem,
            Text(f"{100 * loc:.0f}", style="red" if loc < 0.8 else
                 "yellow" if loc < 0.95 else ""),
            f"{c['cpu_demand'] or 0:.2f}", f"{c['cpu_received'] or 0:.2f}")
    return table


def _action_line(a: dict[str, Any], width: int) -> Text:
    src = "-" if a["src"] < 0 else str(a["src"])
    score = "-" if a["score"] is None else f"{a['score']:.1f}"
    ok = "" if a["ok"] else " REFUSED"
    t = Text(f"{a['time']:8.1f}s {a['client']} N{src}→N{a['dst']} {a['reason']} "
             f"score {score}{ok}  {a['detail']}")
    t.truncate(width, overflow="ellipsis")
    return t


def _footer(width: int, shown: int, total: int) -> Text:
    keys = "sort: n name h NHN m NMIG l N%L r NRMEM c CPU d DEM  - rev  v MiB/node  q quit"
    more = f"  [{shown}/{total}]" if shown < total else ""
    # The count matters more than the key list: the keys give way first.
    t = Text(keys, style="dim")
    t.truncate(max(0, width - len(more)), overflow="ellipsis")
    return t + Text(more, style="dim")


def render(status: dict[str, Any], view: View, width: int, height: int) -> RenderableType:
    """The whole screen for one status document, fitted to ``width`` x ``height``."""
    nodes = status.get("nodes", [])
    clients = status.get("clients", [])
    actions = [a for a in status.get("actions", []) if a["reason"] != "initial"] or \
        status.get("actions", [])
    n_actions = min(ACTION_LINES, len(actions), max(0, (height - 10) // 4))
    fixed = 1 + 1 + (1 + n_actions if n_actions else 0) + 1   # header, table head, actions, keys
    per_line = 1
    if fixed + len(nodes) + MIN_CLIENT_ROWS > height:
        per_line = max(1, width // NODE_CELL_WIDTH)
    node_lines = -(-len(nodes) // per_line) if nodes else 0
    rows = max(0, height - fixed - node_lines)
    cell_w = width // per_line - (1 if per_line > 1 else 0)
    parts: list[RenderableType] = [_header(status, width, view)]
    for k in range(0, len(nodes), per_line):
        line = Text(" ").join(node_cell(n, cell_w) for n in nodes[k:k + per_line])
        line.truncate(width, overflow="crop")
        parts.append(line)
    parts.append(_client_table(clients, view, rows, width, [n["id"] for n in nodes]))
    if n_actions:
        parts.append(Text("last home changes", style="bold"))
        parts.extend(_action_line(a, width) for a in actions[-n_actions:][::-1])
    parts.append(_footer(width, min(rows, len(clients)), len(clients)))
    return Group(*parts)


# --- the live loop ---------------------------------------------------------------------------

@contextlib.contextmanager
def _keys() -> Iterator[Callable[[float], str]]:
    """Single key presses from the terminal (cbreak mode), restored on exit.

    Yields ``read(timeout) -> str``: the keys typed within ``timeout`` seconds, or ""."""
    fd = sys.stdin.fileno() if sys.stdin and sys.stdin.isatty() else None
    if fd is None:
        yield lambda timeout: (time.sleep(timeout), "")[1]
        return
    import termios
    import tty
    saved = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)

        def read(timeout: float) -> str:
            ready, _, _ = select.select([fd], [], [], max(timeout, 0.0))
            return os.read(fd, 64).decode("utf-8", "replace") if ready else ""
        yield read
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def fetch(client: StatusClient, view: View, last: dict[str, Any] | None) -> dict[str, Any]:
    """The newest status, or the last one with ``view.error`` set when the API is gone."""
    try:
        doc = client.request("status")
        view.error = None
        return doc
    except HomenodeError as e:
        view.error = f"[{e}]"
        return last or {"source": "-", "nodes": [], "clients": [], "actions": []}


def run_top(client: StatusClient, *, interval: float = REFRESH_S, sort: str = DEFAULT_SORT,
            once: bool = False, console: Console | None = None) -> None:
    """Poll the API every ``interval`` s and redraw; keys change the sort; q quits."""
    if sort not in SORT_KEYS:
        raise InputError("--sort", sort, f"choose from {', '.join(SORT_KEYS)}")
    if interval <= 0:
        raise InputError("--interval", interval, "must be positive")
    console = console or Console()
    view = View(sort=sort)
    if once:
        doc = client.request("status")      # one-shot: a dead API is an error
        w, h = console.size
        console.print(render(doc, view, w, h))
        return
    doc = fetch(client, view, None)
    with _keys() as read, Live(console=console, screen=True, auto_refresh=False,
                               redirect_stdout=False, redirect_stderr=False) as live:
        next_poll = time.monotonic() + interval
        while True:
            w, h = console.size
            live.update(render(doc, view, w, h), refresh=True)
            keys = read(next_poll - time.monotonic())
            if not all(view.press(k) for k in keys):
                return
            if time.monotonic() >= next_poll:
                doc = fetch(client, view, doc)
                next_poll = time.monotonic() + interval
