"""Units: page size, MiB/GiB, and (re-exported from homenode.inputs, where every input is
checked) the parsing of sizes ("8GiB") and durations ("2s", "100ms")."""

from __future__ import annotations

from homenode.inputs import parse_duration, parse_size

__all__ = ["GIB", "MIB", "PAGE_SIZE", "pages", "pages_to_mib", "parse_duration", "parse_size"]

PAGE_SIZE = 4096
MIB = 1 << 20
GIB = 1 << 30


def pages(nbytes: int) -> int:
    """Whole 4 KiB pages needed to hold ``nbytes``."""
    return -(-int(nbytes) // PAGE_SIZE)


def pages_to_mib(n: float) -> float:
    return n * PAGE_SIZE / MIB
