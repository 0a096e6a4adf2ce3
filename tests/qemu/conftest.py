"""Shared fixtures of the QEMU tests: skips, one boot per module.

The harness lives in tools/qemu/homenode_qemu (also used by bench/ and by hand); it is
installed beside homenode (`make`: pip install -e tools/qemu), and pytest finds it
through ``pythonpath`` in pyproject.toml either way.
"""

from __future__ import annotations

import pytest

from homenode_qemu import assets


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
