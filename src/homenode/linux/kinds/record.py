"""The fields of a kind's record in the state file (homenode.linux.state): CPU lists and
numbers, read back strictly -- a damaged file raises TypeError/ValueError, which the
state file turns into one warning and a fresh start."""

from __future__ import annotations

from typing import Any

from homenode.linux.kernel.sysfs import format_cpulist, parse_cpulist

Cpus = frozenset[int]


def cpus_out(c: Cpus | None) -> str | None:
    return None if c is None else format_cpulist(c)


def cpus_in(v: Any) -> Cpus | None:
    if v is None:
        return None
    if not isinstance(v, str):
        raise TypeError(f"expected a CPU list, got {v!r}")
    return frozenset(parse_cpulist(v))


def int_in(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError(f"expected an integer, got {v!r}")
    return v


def opt_int_in(v: Any) -> int | None:
    return None if v is None else int_in(v)


def float_in(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise TypeError(f"expected a number, got {v!r}")
    return float(v)
