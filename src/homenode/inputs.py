"""The one validated input layer: every file, flag and request is read through here.

Scenario and trace tables, the daemon's config and group rules, ``[settings]`` and
``--set``, command-line flags (cli/params.py wraps these checks as click types) and
status API requests.  A value that cannot work is one ``InputError`` naming the field
and the value (exit 2); a value that is odd but valid gets one warning line on stderr.

Every size, count, duration and rate has a bound that fits a real machine, so no input
can make homenode allocate without limit or run for ever: NaN and the infinities are
refused everywhere a number is read (a float that overflows, such as ``1e400s``, reads
as infinity and is refused too).
"""

from __future__ import annotations

import math
import os
import re
import sys
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any

from homenode.errors import InputError

# --- bounds -----------------------------------------------------------------------------------
# 1 PiB: no machine has more memory (the largest today have tens of TiB), and byte counts
# stay well inside int64 page arithmetic.
MAX_SIZE = 1 << 50
# One year: the longest trace (Bitbrains, a month) fits many times; a longer run is a typo.
MAX_DURATION = 366 * 86400.0
# Linux's own limits: MAX_NUMNODES with NODES_SHIFT=10, and NR_CPUS of the largest
# distribution kernels (x86 MAXSMP 8192; twice that for headroom).
MAX_NODES = 1024
MAX_CPUS = 16384
MAX_VCPUS = 4096          # KVM_MAX_VCPUS on x86 (kernel 6.x)
MAX_CLIENTS = 100_000     # simulated clients in one scenario, wide-VM slices included
# Cells of the simulator's per-client x per-node arrays (pages, demand): 4M int64 cells
# is 32 MiB an array, a few hundred MiB in all.
MAX_CLIENT_NODE_CELLS = 1 << 22

_SIZE_UNITS = {
    "": 1, "b": 1,
    "k": 1 << 10, "kb": 1000, "kib": 1 << 10,
    "m": 1 << 20, "mb": 1000**2, "mib": 1 << 20,
    "g": 1 << 30, "gb": 1000**3, "gib": 1 << 30,
    "t": 1 << 40, "tb": 1000**4, "tib": 1 << 40,
}
_TIME_UNITS = {"": 1.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "m": 60.0, "min": 60.0, "h": 3600.0,
               "d": 86400.0}
_NUM = re.compile(r"^\s*([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([a-zA-Z]*)\s*$")

SIZE_HELP = "expected a size such as 8GiB, 512MiB or a byte count"
DURATION_HELP = "expected a duration such as 2s, 100ms or 5m"


def warn(message: str) -> None:
    """One warning line on stderr: the input is odd, but it is used as given."""
    print(f"homenode: warning: {' '.join(message.split())}", file=sys.stderr)


def _fmt(x: float) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


# --- numbers, sizes, durations -----------------------------------------------------------------

def number(value: object, field: str, where: str | None = None, *, integer: bool = False,
           lo: float | None = None, hi: float | None = None,
           allow_inf: bool = False) -> Any:
    """A finite int or float within [lo, hi] (``allow_inf``: +inf is "no limit")."""
    if isinstance(value, bool) or not isinstance(value, int | float) or (
            integer and not isinstance(value, int)):
        raise InputError(field, value, f"expected {'an integer' if integer else 'a number'}",
                         where)
    if isinstance(value, float) and (math.isnan(value) or
                                     (math.isinf(value) and not (allow_inf and value > 0))):
        raise InputError(field, value, "not a finite number", where)
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        rng = f"at least {lo}" if hi is None else f"between {lo} and {hi}"
        raise InputError(field, value, f"must be {rng}", where)
    return int(value) if integer else float(value)


def _amount(value: object, field: str, where: str | None, units: dict[str, Any],
            what: str, example: str, help_text: str) -> float:
    """A non-negative, finite quantity from a plain number or a number with a unit."""
    if isinstance(value, bool):
        raise InputError(field, value, f"expected a {what} such as {example}", where)
    if isinstance(value, int | float):
        n = float(value)
    elif isinstance(value, str):
        if _is_special(value):
            raise InputError(field, value, f"not a finite {what}", where)
        m = _NUM.match(value)
        if not (m and m.group(2).lower() in units):
            raise InputError(field, value, help_text, where)
        n = float(m.group(1)) * units[m.group(2).lower()]
    else:
        raise InputError(field, value, help_text, where)
    if not math.isfinite(n):           # NaN, the infinities, and 1e400 (read as inf)
        raise InputError(field, value, f"not a finite {what}", where)
    if n < 0:
        raise InputError(field, value, "must not be negative", where)
    return n + 0.0                     # -0 reads as 0


def parse_size(value: object, field: str, where: str | None = None, *, lo: int = 0,
               hi: int = MAX_SIZE) -> int:
    """Bytes from an int (bytes) or a string with a unit ("8GiB", "300MB")."""
    n = _amount(value, field, where, _SIZE_UNITS, "size", "8GiB", SIZE_HELP)
    if n > hi:
        raise InputError(field, value, f"must be at most {_size_text(hi)}", where)
    if n < lo:
        raise InputError(field, value, f"must be at least {_size_text(lo)}", where)
    return value if isinstance(value, int) else int(n)


def parse_duration(value: object, field: str, where: str | None = None, *, lo: float = 0.0,
                   hi: float = MAX_DURATION, positive: bool = False) -> float:
    """Seconds from a number (seconds) or a string with a unit ("2s", "100ms", "5m")."""
    s = _amount(value, field, where, _TIME_UNITS, "duration", "2s", DURATION_HELP)
    if positive and s <= 0:
        raise InputError(field, value, "must be positive", where)
    if s > hi:
        raise InputError(field, value, f"must be at most {_duration_text(hi)}", where)
    if s < lo:
        raise InputError(field, value, f"must be at least {_fmt(lo)} s", where)
    return s


def _is_special(text: str) -> bool:
    """"nan", "inf", "-Infinity"...: what float() reads as a non-finite number."""
    t = text.strip().lower().lstrip("+-")
    return t in ("nan", "inf", "infinity")


def _size_text(n: int) -> str:
    for unit, k in (("PiB", 50), ("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << k and n % (1 << k) == 0:
            return f"{n >> k} {unit}"
    return f"{n} byte{'s' if n != 1 else ''}"


def _duration_text(s: float) -> str:
    if s >= 86400 and s % 86400 == 0:
        return f"{s / 86400:g} days"
    return f"{s:g} s"


def parse_number_text(text: str, field: str, where: str | None = None, *,
                      integer: bool = False, lo: float | None = None,
                      hi: float | None = None) -> Any:
    """A number typed as text (a command-line flag, ``--set``): as ``number``."""
    try:
        v: int | float = int(text) if integer else float(text)
    except (TypeError, ValueError):
        raise InputError(field, text, f"expected {'an integer' if integer else 'a number'}",
                         where) from None
    return number(v, field, where, integer=integer, lo=lo, hi=hi)


# --- paths that are written ----------------------------------------------------------------------

def check_out_dir(path: Path, field: str) -> None:
    """Refuse an output directory that cannot be created or written, before any work.

    Nothing is created: the nearest existing ancestor must be a writable directory (and
    ``path`` itself, if it exists), checked by making and removing a temporary file
    there, as root's access(2) would say yes even on /proc.
    """
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise InputError(field, str(path), "exists and is not a directory")
    probe = p
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise InputError(field, str(path), f"cannot be created: {probe} is not a directory")
    try:
        fd, name = tempfile.mkstemp(prefix=".homenode-probe-", dir=probe)
        os.close(fd)
        os.unlink(name)
    except OSError as e:
        raise InputError(field, str(path), f"cannot be created: {probe} is not writable "
                         f"({e.strerror or e})") from None
    if probe != p:
        # /proc and /sys accept a file in no directory that does not already exist; a
        # parent that is not a plain filesystem is refused by trying the first level.
        first = p
        while first.parent != probe:
            first = first.parent
        try:
            first.mkdir()
        except OSError as e:
            raise InputError(field, str(path), f"cannot be created: {e.strerror or e}") \
                from None
        first.rmdir()


def check_socket_path(path: Path, field: str) -> None:
    """Refuse a Unix socket path that cannot be bound (too long, parent not a directory)."""
    p = Path(path)
    if len(os.fsencode(str(p))) >= 108:
        raise InputError(field, str(path), "longer than a Unix socket path may be "
                         "(107 bytes)")
    if p.is_dir():
        raise InputError(field, str(path), "is a directory")
    probe = p.parent
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    if not probe.is_dir():
        raise InputError(field, str(path), f"cannot be created: {probe} is not a directory")


# --- a checked view of one TOML table (or JSON object) ------------------------------------------

class Table:
    """Typed reads from a table that name the field on error and reject unknown keys.

    ``hint``: the unknown-field error lists the fields this table knows.
    """

    def __init__(self, data: Any, prefix: str, where: str | None, *, hint: bool = False):
        if not isinstance(data, dict):
            name = prefix.rstrip(".") or "document"
            raise InputError(name, data, f"expected a table ([{name}])" if prefix else
                             "must be a table", where)
        self.data, self.prefix, self.where, self.hint = data, prefix, where, hint
        self.used: set[str] = set()

    def __contains__(self, key: str) -> bool:
        return key in self.data

    def name(self, key: str) -> str:
        return self.prefix + key

    def fail(self, key: str, value: object, problem: str) -> InputError:
        return InputError(self.prefix + key, value, problem, self.where)

    def raw(self, key: str, default: Any) -> Any:
        self.used.add(key)
        return self.data.get(key, default)

    def int(self, key: str, default: int, lo: int | None = None,
            hi: int | None = None) -> int:
        return number(self.raw(key, default), self.prefix + key, self.where, integer=True,
                      lo=lo, hi=hi)

    def float(self, key: str, default: float, lo: float | None = None,
              hi: float | None = None, allow_inf: bool = False) -> float:
        return number(self.raw(key, default), self.prefix + key, self.where, lo=lo, hi=hi,
                      allow_inf=allow_inf)

    def str(self, key: str, default: str) -> str:
        v = self.raw(key, default)
        if not isinstance(v, str):
            raise InputError(self.prefix + key, v, "expected a string", self.where)
        return v

    def choice(self, key: str, default: str, choices: tuple[str, ...]) -> str:
        v = self.raw(key, default)
        if v not in choices:
            raise InputError(self.prefix + key, v, f"expected one of {', '.join(choices)}",
                             self.where)
        return v

    def size(self, key: str, default: int, lo: int = 0, hi: int = MAX_SIZE) -> int:
        return parse_size(self.raw(key, default), self.prefix + key, self.where, lo=lo, hi=hi)

    def duration(self, key: str, default: float, lo: float = 0.0, hi: float = MAX_DURATION,
                 positive: bool = False) -> float:
        if key not in self.data:
            self.used.add(key)
            return default
        return parse_duration(self.raw(key, default), self.prefix + key, self.where, lo=lo,
                              hi=hi, positive=positive)

    def bool(self, key: str, default: bool) -> bool:
        v = self.raw(key, default)
        if not isinstance(v, bool):
            raise InputError(self.prefix + key, v, "expected true or false", self.where)
        return v

    def node(self, key: str, n: int) -> int | None:
        v = self.raw(key, None)
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < n:
            raise InputError(self.prefix + key, v, f"must be a node index 0..{n - 1}",
                             self.where)
        return v

    def nodes(self, key: str, n: int) -> frozenset[int] | None:
        v = self.raw(key, None)
        if v is None:
            return None
        if not isinstance(v, list) or not v or not all(
                isinstance(x, int) and not isinstance(x, bool) and 0 <= x < n for x in v):
            raise InputError(self.prefix + key, v, f"must be a list of node indices 0..{n - 1}",
                             self.where)
        return frozenset(v)

    def array(self, key: str) -> list:
        v = self.raw(key, [])
        if not isinstance(v, list):
            raise InputError(self.prefix + key, v, "expected a list", self.where)
        return v

    def sub(self, key: str, hint: bool | None = None) -> Table:
        return Table(self.raw(key, {}), f"{self.prefix}{key}.", self.where,
                     hint=self.hint if hint is None else hint)

    def list(self, key: str) -> list[Table]:
        v = self.raw(key, [])
        if not isinstance(v, list) or not all(isinstance(x, dict) for x in v):
            raise InputError(self.prefix + key, v, f"must be an array of tables ([[{key}]])",
                             self.where)
        return [Table(x, f"{self.prefix}{key}[{i}].", self.where, hint=self.hint)
                for i, x in enumerate(v)]

    def done(self) -> None:
        extra = sorted(set(self.data) - self.used)
        if extra:
            known = f"; expected one of {', '.join(sorted(self.used))}" \
                if self.hint and self.used else ""
            raise InputError(self.prefix + extra[0], self.data[extra[0]],
                             f"unknown field{known}", self.where)


# --- built-in or file: scenarios and sweep specs ------------------------------------------

def packaged_names(package: str) -> list[str]:
    """The names of the ``.toml`` files shipped in ``package`` (the built-ins)."""
    return sorted(p.name[:-5] for p in resources.files(package).iterdir()
                  if p.name.endswith(".toml"))


def read_named(name_or_path: str, package: str, field: str,
               what: str) -> tuple[str, str, Path | None]:
    """The text of built-in ``name_or_path`` of ``package``, or of that file: (text, where
    it came from, the folder its relative paths start from; None for a built-in)."""
    names = packaged_names(package)
    if name_or_path in names:
        ref = resources.files(package).joinpath(f"{name_or_path}.toml")
        return ref.read_text(), f"{name_or_path}.toml", None
    path = Path(name_or_path)
    if not path.is_file():
        raise InputError(field, name_or_path,
                         f"no such file or built-in {what} ({', '.join(names)})")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(field, name_or_path, f"cannot read: {e}") from None
    return text, str(path), path.parent
