"""Reliability tests (issue 7): fault injection, fuzzing, bad input, crash and restart,
churn.  The Linux tests' helpers and the QEMU harness are found through ``pythonpath``
in pyproject.toml; the number of fuzz examples each parser ran is printed at the end of
the session (and written to $HOMENODE_FUZZ_REPORT when set)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from fuzz_support import FUZZ_COUNTS


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if not FUZZ_COUNTS:
        return
    tr = terminalreporter
    tr.section("fuzz examples run per parser")
    for name, n in sorted(FUZZ_COUNTS.items()):
        tr.write_line(f"{name:<28} {n:>8}")
    tr.write_line(f"{'total':<28} {sum(FUZZ_COUNTS.values()):>8}")
    out = os.environ.get("HOMENODE_FUZZ_REPORT")
    if out:
        Path(out).write_text(json.dumps({"examples": dict(sorted(FUZZ_COUNTS.items()))},
                                        indent=1) + "\n")


@pytest.fixture(scope="session")
def guest_ready() -> None:
    """Skip (with the reason) where no QEMU guest can be booted (docs/qemu.md)."""
    from homenode_qemu import assets
    why = assets.missing()
    if why:
        pytest.skip(f"QEMU guest unavailable: {why}")
