"""Parsing of sizes ("8GiB", "512 MiB") and durations ("2s", "100ms") from user input."""

from __future__ import annotations

import re

from homenode.errors import InputError

PAGE_SIZE = 4096
MIB = 1 << 20
GIB = 1 << 30

_SIZE_UNITS = {
    "": 1, "b": 1,
    "k": 1 << 10, "kb": 1000, "kib": 1 << 10,
    "m": 1 << 20, "mb": 1000**2, "mib": 1 << 20,
    "g": 1 << 30, "gb": 1000**3, "gib": 1 << 30,
    "t": 1 << 40, "tb": 1000**4, "tib": 1 << 40,
}
_TIME_UNITS = {"": 1.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "m": 60.0, "min": 60.0, "h": 3600.0}
_NUM = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([a-zA-Z]*)\s*$")


def parse_size(value: object, field: str, where: str | None = None) -> int:
    """Bytes from an int (bytes) or a string with a unit ("8GiB", "300MB")."""
    if isinstance(value, bool):
        raise InputError(field, value, "expected a size such as 8GiB", where)
    if isinstance(value, int | float):
        if value < 0:
            raise InputError(field, value, "must not be negative", where)
        return int(value)
    if isinstance(value, str):
        m = _NUM.match(value)
        if m and m.group(2).lower() in _SIZE_UNITS:
            return int(float(m.group(1)) * _SIZE_UNITS[m.group(2).lower()])
    raise InputError(field, value, "expected a size such as 8GiB, 512MiB or a byte count", where)


def parse_duration(value: object, field: str, where: str | None = None) -> float:
    """Seconds from a number (seconds) or a string with a unit ("2s", "100ms", "5m")."""
    if isinstance(value, bool):
        raise InputError(field, value, "expected a duration such as 2s", where)
    if isinstance(value, int | float):
        if value < 0:
            raise InputError(field, value, "must not be negative", where)
        return float(value)
    if isinstance(value, str):
        m = _NUM.match(value)
        if m and m.group(2).lower() in _TIME_UNITS:
            return float(m.group(1)) * _TIME_UNITS[m.group(2).lower()]
    raise InputError(field, value, "expected a duration such as 2s, 100ms or 5m", where)


def pages(nbytes: int) -> int:
    """Whole 4 KiB pages needed to hold ``nbytes``."""
    return -(-int(nbytes) // PAGE_SIZE)


def pages_to_mib(n: float) -> float:
    return n * PAGE_SIZE / MIB
