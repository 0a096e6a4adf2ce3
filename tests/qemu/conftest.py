"""Shared fixtures of the QEMU tests: the harness on sys.path, skips, one boot per module.

The harness lives in tools/qemu/homenode_qemu (it is also used by bench/ and by hand);
it is not part of the installed package, so it is put on sys.path here.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

TOOLS = Path(__file__).resolve().parents[2] / "tools" / "qemu"
if str(TOOLS) not in sys.path:
    sys.path.insert(0, str(TOOLS))

from homenode_qemu import assets  # noqa: E402


@pytest.fixture(scope="session")
def qemu_missing() -> str | None:
    return assets.missing()


@pytest.fixture(scope="session")
def guest_ready(qemu_missing: str | None) -> None:
    """Skip (with the reason) where no guest can be booted: no QEMU, busybox or kernel."""
    if qemu_missing:
        pytest.skip(f"QEMU guest unavailable: {qemu_missing}")


@pytest.fixture(scope="session")
def worker_bin() -> str:
    """hn-worker, compiled with the host's gcc into the cache (skips without gcc)."""
    try:
        return str(assets.worker_binary(assets.build_dir()))
    except (OSError, FileNotFoundError) as e:
        pytest.skip(f"cannot build hn-worker: {e}")
