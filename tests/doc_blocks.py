"""Fenced code blocks of README.md and docs/*.md, for the docs-that-run test.

Convention (docs/contributing section of the README): commands go in ```sh blocks; every
line of such a block that starts with `homenode ` or `make ` is run, in order, by one
shell in a fresh temporary directory. `<!-- doc-test: skip REASON -->` on the line right
before the fence exempts a block that cannot run in a test (root on a real host, QEMU);
`<!-- doc-test: needs-traces -->` skips one that reads the real traces where they are absent.
Output goes in ```text blocks, which are never run.  The directory has links to the
checkout's packaging/, dashboards/ and src/.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUN_PREFIXES = ("homenode ", "make ")
# The temporary directory a block runs in links these from the checkout, read-only by
# convention, so a doc can say `homenode check packaging/homenode.toml`.
LINKED = ("packaging", "dashboards", "src")
SKIP = re.compile(r"<!--\s*doc-test:\s*skip\s+(?P<reason>.+?)\s*-->")
# a block that reads the real traces: skipped, not failed, where they are absent
NEEDS_TRACES = re.compile(r"<!--\s*doc-test:\s*needs-traces\s*-->")
FENCE = re.compile(r"^(?P<indent>\s*)```(?P<lang>[\w+-]*)\s*$")


@dataclass(frozen=True)
class Block:
    path: Path
    line: int               # 1-based line of the opening fence
    lang: str
    body: list[str]
    skip: str | None        # the reason given by a doc-test: skip marker
    needs_traces: bool = False   # a doc-test: needs-traces marker

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    def commands(self) -> list[str]:
        return [ln.strip() for ln in self.body if ln.strip().startswith(RUN_PREFIXES)]


def doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def blocks(path: Path) -> list[Block]:
    lines = path.read_text().splitlines()
    out: list[Block] = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        start, indent = i, m["indent"]
        body = []
        i += 1
        while i < len(lines) and lines[i].strip() != "```":
            body.append(lines[i][len(indent):] if lines[i].startswith(indent) else lines[i])
            i += 1
        prev = next((ln for ln in reversed(lines[:start]) if ln.strip()), "")
        skip = SKIP.search(prev)
        out.append(Block(path, start + 1, m["lang"], body, skip["reason"] if skip else None,
                         bool(NEEDS_TRACES.search(prev))))
        i += 1
    return out


def all_blocks() -> list[Block]:
    return [b for p in doc_files() for b in blocks(p)]


def script(block: Block, root: Path, venv_bin: Path) -> str:
    """The block's runnable lines as one bash script: `homenode` is the checkout's own, and
    `make` runs the checkout's Makefile without reinstalling its virtual environment."""
    venv = venv_bin.parent
    head = [
        "set -euo pipefail",
        f'export PATH="{venv_bin}:$PATH"',
        # Background jobs (`homenode simulate --live &`) end with the block.
        "trap 'kill $(jobs -p) 2>/dev/null || true' EXIT",
        f'make() {{ command make -f "{root}/Makefile" VENV="{venv}" '
        f'-o "{venv}/.installed" "$@"; }}',
    ]
    return "\n".join([*head, *block.commands()]) + "\n"
