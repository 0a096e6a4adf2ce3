"""Helpers for the ops tests (a module name of its own: tests/ has no packages)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path


def homenode_argv() -> list[str]:
    """The `homenode` command of this interpreter's environment."""
    exe = Path(sys.executable).with_name("homenode")
    if exe.exists():
        return [str(exe)]
    found = shutil.which("homenode")
    return [found] if found else [sys.executable, "-m", "homenode"]
