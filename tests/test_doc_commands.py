"""Docs that run: every command shown in README.md and docs/*.md is executed here.

See tests/doc_blocks.py for the convention. A new docs/*.md file is picked up by itself.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from doc_blocks import LINKED, ROOT, all_blocks, script
from helpers import traces_missing

BLOCKS = all_blocks()
RUNNABLE = [b for b in BLOCKS if b.lang == "sh" and b.commands()]
BLOCK_TIMEOUT_S = 600


def test_every_command_block_is_tagged():
    """A fence with no language that shows a command must say sh (run) or text (output),
    so no command can slip past this test untagged."""
    untagged = [b.id for b in BLOCKS if b.lang == "" and b.commands()]
    assert not untagged, f"tag these blocks ```sh or ```text: {untagged}"


def test_skip_markers_give_a_reason_and_sit_on_sh_blocks():
    for b in BLOCKS:
        if b.skip is not None:
            assert b.lang == "sh", f"{b.id}: doc-test: skip on a ```{b.lang} block"
            assert len(b.skip) >= 5, f"{b.id}: give the reason for the skip"


def test_the_harness_finds_the_commands():
    """Guards the extraction itself: the quick start's `make run` must be among them."""
    ids = {c for b in RUNNABLE for c in b.commands()}
    assert "make run" in {c.split("#")[0].strip() for c in ids}


@pytest.mark.slow
@pytest.mark.parametrize("block", RUNNABLE, ids=[b.id for b in RUNNABLE])
def test_doc_block_runs(block, tmp_path: Path):
    if block.skip:
        pytest.skip(block.skip)
    if block.needs_traces and traces_missing():
        pytest.skip(traces_missing())
    venv_bin = Path(sys.executable).parent
    for name in LINKED:
        (tmp_path / name).symlink_to(ROOT / name)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOMENODE_")}
    if "HOMENODE_TRACES_DIR" in os.environ:
        env["HOMENODE_TRACES_DIR"] = os.environ["HOMENODE_TRACES_DIR"]
    env.update(HOMENODE_SOCKET=str(tmp_path / "status.sock"), XDG_RUNTIME_DIR=str(tmp_path),
               COLUMNS="120", NO_COLOR="1")
    proc = subprocess.run(["bash", "-c", script(block, ROOT, venv_bin)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=BLOCK_TIMEOUT_S)
    assert proc.returncode == 0, (
        f"{block.id} failed (exit {proc.returncode}):\n"
        + "\n".join(block.commands()) + f"\n--- stdout\n{proc.stdout[-3000:]}"
        f"\n--- stderr\n{proc.stderr[-3000:]}")


def test_a_failing_command_fails_its_block(tmp_path: Path):
    from doc_blocks import Block
    bad = Block(ROOT / "README.md", 1, "sh", ["homenode no-such-command", "homenode --version"],
                None)
    venv_bin = Path(sys.executable).parent
    proc = subprocess.run(["bash", "-c", script(bad, ROOT, venv_bin)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "no-such-command" in proc.stderr
