"""Real workload traces: readers for Bitbrains GWA-T-12 and PlanetLab (CoMon) files, and
the ``[[traces]]`` scenario table that turns trace files into simulated clients.

A reader returns a ``Trace``: CPU demand in cores on a regular grid of ``step`` seconds
and, where the format has it, memory in use per step.  Every problem with a file is one
``InputError`` naming the file and line ("102.csv:17: CPU usage [%] = 'x': not a
number"), and nothing is half-read.

Bitbrains (GWA-T-12) pitfalls handled here, as the data's README documents them:

* fields are separated by ``;`` + TAB;
* the header says ``Timestamp [ms]`` but the values are Unix *seconds* -- the unit is
  decided by magnitude (``MS_THRESHOLD``), so a file really written in ms reads right too;
* sampling is ~300 s with jitter (299/300/301 s) and a few gaps: rows are resampled onto
  a regular grid of the file's median step, each grid point holding the last sample at
  or before it (a gap repeats the last value the monitor saw);
* ``CPU usage [%]`` is of the VM's provisioned capacity (``CPU cores``), so demand in
  cores is percent / 100 x cores; ``Memory usage [KB]`` is active memory (KiB).

PlanetLab files are one integer CPU percentage per line, one line per 5 minutes, with no
memory column: the footprint is a configurable default (``DEFAULT_PLANETLAB_MEMORY``) and
the percentage is of ``vcpus`` cores (default 1).
"""

from __future__ import annotations

import dataclasses
import glob
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from homenode.errors import InputError
from homenode.inputs import MAX_VCPUS
from homenode.model import Client
from homenode.sim.demand import Curve
from homenode.units import GIB

if TYPE_CHECKING:
    from homenode.inputs import Table

ENV_TRACES_DIR = "HOMENODE_TRACES_DIR"
FORMATS = ("bitbrains", "planetlab")
# Where the public data comes from, for a user whose checkout has no traces directory.
SOURCES = {
    "bitbrains": "the Bitbrains GWA-T-12 traces (Grid Workloads Archive, TU Delft: "
                 "http://gwa.ewi.tudelft.nl/datasets/gwa-t-12-bitbrains, its rnd/ folder)",
    "planetlab": "the PlanetLab (CoMon) traces of the CloudSim project "
                 "(https://github.com/Cloudslab/cloudsim, "
                 "modules/cloudsim-examples/src/main/resources/workload/planetlab/)",
}

BITBRAINS_SEP = ";\t"
BITBRAINS_COLUMNS = (
    "Timestamp [ms]", "CPU cores", "CPU capacity provisioned [MHZ]", "CPU usage [MHZ]",
    "CPU usage [%]", "Memory capacity provisioned [KB]", "Memory usage [KB]",
    "Disk read throughput [KB/s]", "Disk write throughput [KB/s]",
    "Network received throughput [KB/s]", "Network transmitted throughput [KB/s]")
_TS, _CORES, _CPU_PCT, _MEM_KB = 0, 1, 4, 6
# A Unix time in seconds is ~1.4e9 today; in milliseconds ~1.4e12.  Anything above this
# is read as milliseconds.
MS_THRESHOLD = 1e11
PLANETLAB_STEP = 300.0              # s between PlanetLab samples (CoMon, 5 minutes)
DEFAULT_PLANETLAB_MEMORY = 2 * GIB  # footprint of a PlanetLab VM: the trace has none
MEMORY_STATS = ("max", "p95", "mean")
# A resampled Bitbrains trace never has more steps than this: a file whose timestamps
# jump by years would otherwise make a grid of millions of points.
MAX_GRID_STEPS = 1_000_000


@dataclass(frozen=True)
class TraceClient:
    """One client made from a trace file (sim/scenario.py turns it into a ClientSpec)."""

    client: Client
    curve: Curve
    start: float
    mem_intensity: float


@dataclass(frozen=True)
class Trace:
    """One VM's trace on a regular grid: ``cpu[k]`` cores wanted during step k."""

    path: str
    fmt: str
    step: float                         # seconds of real time per value
    cores: int                          # the VM's provisioned cores (vCPUs)
    cpu: np.ndarray                     # cores, per step
    mem_bytes: np.ndarray | None = None  # memory in use, per step (None: not in format)

    def __len__(self) -> int:
        return int(self.cpu.size)


# --- where traces live -------------------------------------------------------------------

def default_traces_dir() -> Path:
    """``<repo>/../shared/traces``: the shared copy next to a source checkout."""
    repo = Path(__file__).resolve().parents[3]
    return repo.parent / "shared" / "traces"


def traces_dir(override: str | None = None, base: Path | None = None) -> Path:
    """The traces directory: a scenario's ``traces_dir`` (relative to ``base``), else
    $HOMENODE_TRACES_DIR, else ``default_traces_dir()``."""
    if override:
        p = Path(override).expanduser()
        return p if p.is_absolute() or base is None else base / p
    env = os.environ.get(ENV_TRACES_DIR)
    if env:
        return Path(env).expanduser()
    return default_traces_dir()


# --- readers ---------------------------------------------------------------------------

def _read_lines(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError("trace", str(path), "no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError("trace", str(path), f"cannot read: {e}") from None
    return text.splitlines()


def _number(token: str, column: str, where: str) -> float:
    try:
        v = float(token)
    except ValueError:
        raise InputError(column, token, "not a number", where) from None
    if not math.isfinite(v):
        raise InputError(column, token, "not a finite number", where)
    return v


def read_bitbrains(path: str | os.PathLike) -> Trace:
    """A GWA-T-12 Bitbrains VM file, resampled onto its median sampling step."""
    p = Path(path)
    lines = _read_lines(p)
    if not lines or not lines[0].startswith("Timestamp"):
        raise InputError("header", lines[0][:40] if lines else "",
                         f"expected the GWA-T-12 header ({BITBRAINS_SEP!r}-separated, "
                         "starting with 'Timestamp')", f"{p}:1")
    rows: list[tuple[float, float, float, float]] = []
    for k, line in enumerate(lines[1:], start=2):
        where = f"{p}:{k}"
        if not line.strip():
            if k == len(lines):
                break           # a trailing blank line is harmless
            raise InputError("line", line, "blank line inside the trace", where)
        fields = line.split(BITBRAINS_SEP)
        if len(fields) != len(BITBRAINS_COLUMNS):
            raise InputError("line", line, f"expected {len(BITBRAINS_COLUMNS)} fields separated "
                             f"by {BITBRAINS_SEP!r}, got {len(fields)} (truncated?)", where)
        ts, cores, pct, mem = (_number(fields[i], BITBRAINS_COLUMNS[i], where)
                               for i in (_TS, _CORES, _CPU_PCT, _MEM_KB))
        if ts >= MS_THRESHOLD:
            ts /= 1000.0
        if rows and ts <= rows[-1][0]:
            raise InputError(BITBRAINS_COLUMNS[_TS], fields[_TS], "timestamps must increase",
                             where)
        if cores < 1 or cores != int(cores):
            raise InputError(BITBRAINS_COLUMNS[_CORES], fields[_CORES],
                             "must be a whole number of cores >= 1", where)
        if cores > MAX_VCPUS:
            raise InputError(BITBRAINS_COLUMNS[_CORES], fields[_CORES],
                             f"more than {MAX_VCPUS} cores (no VM has that many)", where)
        for i, v in ((_CPU_PCT, pct), (_MEM_KB, mem)):
            if v < 0:
                raise InputError(BITBRAINS_COLUMNS[i], fields[i], "must not be negative", where)
        rows.append((ts, cores, pct, mem))
    if len(rows) < 2:
        raise InputError("trace", str(p), "needs at least two samples")
    a = np.array(rows, float)
    t = a[:, 0]
    step = float(np.median(np.diff(t)))
    n = int((t[-1] - t[0]) // step) + 1
    if n > MAX_GRID_STEPS:
        raise InputError("trace", str(p), f"spans {n} steps of {step:g} s; more than "
                         f"{MAX_GRID_STEPS} (bad timestamps?)")
    grid = t[0] + step * np.arange(n)
    # Each grid point takes the last sample at or before it: jitter of a second or two
    # maps every sample to its own step, and a gap repeats the last value seen.
    src = np.searchsorted(t, grid + 0.5 * step, side="right") - 1
    cores, pct, mem_kib = a[src, 1], a[src, 2], a[src, 3]
    return Trace(str(p), "bitbrains", step, int(a[:, 1].max()), pct / 100.0 * cores,
                 mem_kib * 1024.0)


def read_planetlab(path: str | os.PathLike, cores: int = 1) -> Trace:
    """A PlanetLab (CoMon) file: one CPU percentage per line, 5 minutes apart."""
    p = Path(path)
    lines = _read_lines(p)
    values: list[float] = []
    for k, line in enumerate(lines, start=1):
        s = line.strip()
        if not s:
            if k == len(lines):
                break
            raise InputError("line", line, "blank line inside the trace", f"{p}:{k}")
        v = _number(s, "cpu %", f"{p}:{k}")
        if v < 0:
            raise InputError("cpu %", s, "must not be negative", f"{p}:{k}")
        values.append(v)
    if not values:
        raise InputError("trace", str(p), "is empty")
    cpu = np.array(values) / 100.0 * cores
    return Trace(str(p), "planetlab", PLANETLAB_STEP, cores, cpu, None)


# A sweep worker parses hundreds of one-day scenarios cut from the same month-long files,
# and reading the files is most of such a parse: ``remember_reads()`` makes this process
# keep what it read, keyed by the file's real path, size and modification time.
_READS: dict[tuple[str, int, int, str, int], Trace] | None = None
READS_KEPT = 4096       # traces kept at most (a month of 5-minute samples is ~140 KB)


def remember_reads(on: bool = True) -> None:
    global _READS
    _READS = {} if on else None


def read_trace(path: str | os.PathLike, fmt: str, cores: int = 1) -> Trace:
    if _READS is None:
        return _read_trace(path, fmt, cores)
    try:
        real = Path(path).resolve()
        st = real.stat()
    except OSError:
        return _read_trace(path, fmt, cores)      # the reader names the problem
    key = (str(real), st.st_size, st.st_mtime_ns, fmt, cores)
    if key not in _READS:
        if len(_READS) >= READS_KEPT:
            _READS.clear()
        _READS[key] = _read_trace(path, fmt, cores)
    return _READS[key]


def _read_trace(path: str | os.PathLike, fmt: str, cores: int) -> Trace:
    if fmt == "bitbrains":
        return read_bitbrains(path)
    if fmt == "planetlab":
        return read_planetlab(path, cores)
    raise InputError("format", fmt, f"must be one of {', '.join(FORMATS)}")


def window(tr: Trace, offset: int, steps: int | None) -> Trace:
    """Steps ``offset .. offset + steps`` of a trace (to its end if ``steps`` is None)."""
    if offset >= len(tr):
        raise InputError("offset", offset, f"is past the end of {tr.path} ({len(tr)} steps)")
    end = len(tr) if steps is None else min(len(tr), offset + steps)
    mem = None if tr.mem_bytes is None else tr.mem_bytes[offset:end]
    return Trace(tr.path, tr.fmt, tr.step, tr.cores, tr.cpu[offset:end], mem)


def footprint(tr: Trace, stat: str) -> int:
    """Bytes of memory a client driven by ``tr`` touches: a statistic of its usage."""
    if tr.mem_bytes is None or tr.mem_bytes.size == 0:
        raise InputError("memory_stat", stat, f"{tr.path} has no memory column")
    if stat == "max":
        return int(tr.mem_bytes.max())
    if stat == "p95":
        return int(np.percentile(tr.mem_bytes, 95))
    if stat == "mean":
        return int(tr.mem_bytes.mean())
    raise InputError("memory_stat", stat, f"must be one of {', '.join(MEMORY_STATS)}")


# --- the [[traces]] scenario table -------------------------------------------------------

def trace_clients(t: Table, duration: float, taken: set[str]) -> list[TraceClient]:
    """Clients from the scenario's ``[[traces]]`` tables (see docs/baselines.md).

    ``t`` is the scenario's top-level table: ``traces_dir`` is read from it, so that a
    scenario may pin its own directory.  ``taken`` holds the ids of the scenario's other
    clients: names must stay unique.
    """
    if "traces" not in t.data:
        t.str("traces_dir", "")     # allowed, and harmless, without [[traces]]
        return []
    where_dir = Path(t.where).parent if Path(t.where).is_file() else None
    root = traces_dir(t.str("traces_dir", "") or None, where_dir)
    out: list[TraceClient] = []
    for tt in t.list("traces"):
        for c in _clients_of(tt, root, duration):
            if c.client.id in taken:
                raise InputError(f"{tt.prefix}name", c.client.id, "duplicate client name",
                                 tt.where)
            taken.add(c.client.id)
            out.append(c)
    return out


def _clients_of(tt: Table, root: Path, duration: float) -> list[TraceClient]:
    fmt = tt.str("format", "")
    if fmt not in FORMATS:
        raise InputError(f"{tt.prefix}format", fmt, f"must be one of {', '.join(FORMATS)}",
                         tt.where)
    files = _files(tt, root, fmt)
    step = tt.duration("step", 5.0, positive=True)
    offset = tt.int("offset", 0, lo=0, hi=MAX_GRID_STEPS)
    steps = math.ceil(duration / step)
    pattern = tt.str("name", "{stem}")
    # Bitbrains files carry the VM's cores and memory use; PlanetLab files carry neither.
    only = {"bitbrains": ("memory_stat",), "planetlab": ("vcpus",)}
    for other, keys in only.items():
        for key in keys:
            if other != fmt and key in tt.data:
                raise InputError(f"{tt.prefix}{key}", tt.data[key], f"applies to {other} "
                                 f"traces only", tt.where)
    vcpus = tt.int("vcpus", 1, lo=1, hi=MAX_VCPUS)
    mem_given = "memory" in tt.data
    memory = tt.size("memory", DEFAULT_PLANETLAB_MEMORY)
    stat = tt.str("memory_stat", "max")
    if stat not in MEMORY_STATS:
        raise InputError(f"{tt.prefix}memory_stat", stat,
                         f"must be one of {', '.join(MEMORY_STATS)}", tt.where)
    mem_min = tt.size("memory_min", 0)
    intensity = tt.float("mem_intensity", 0.5, lo=0.0, hi=1.0)
    start = tt.duration("start", 0.0)
    every = tt.duration("start_every", 0.0)
    tt.done()
    out = []
    for i, f in enumerate(files):
        tr = window(read_trace(f, fmt, vcpus), offset, steps)
        mem = memory if mem_given or tr.mem_bytes is None else footprint(tr, stat)
        mem = max(mem, mem_min)
        try:
            name = pattern.format(i=i, stem=f.stem)
        except (KeyError, IndexError, ValueError):
            raise InputError(f"{tt.prefix}name", pattern,
                             "bad pattern: only {i} and {stem} are allowed", tt.where) from None
        client = Client(name, name, tr.cores, mem)
        curve = Curve("trace", float(tr.cpu[0]), values=tuple(float(v) for v in tr.cpu),
                      step=step, real_step=tr.step)
        out.append(TraceClient(client, curve, start + i * every, intensity))
    return out


def _get_data(fmt: str, pattern: str) -> str:
    return (f"{pattern} are {SOURCES[fmt]}; put them in a directory and name it with "
            f"${ENV_TRACES_DIR} or the scenario's traces_dir (docs/baselines.md)")


def _files(tt: Table, root: Path, fmt: str) -> list[Path]:
    raw = tt.raw("files", None)
    pats = [raw] if isinstance(raw, str) else raw
    if not isinstance(pats, list) or not pats or not all(isinstance(x, str) for x in pats):
        raise InputError(f"{tt.prefix}files", raw, "must be a file name, a glob or a list of "
                         "them, relative to the traces directory", tt.where)
    if not root.is_dir():
        raise InputError("traces_dir", str(root), f"no such directory: "
                         f"{_get_data(fmt, ', '.join(pats))}", tt.where)
    found: list[Path] = []
    for pat in pats:
        hits = sorted(glob.glob(str(root / pat)))
        if not hits:
            raise InputError(f"{tt.prefix}files", pat, f"matches no file in {root}: "
                             f"{_get_data(fmt, pat)}", tt.where)
        files = [Path(h) for h in hits if Path(h).is_file()]
        if not files:
            raise InputError(f"{tt.prefix}files", pat, f"matches only directories in {root}, "
                             "no trace file", tt.where)
        found.extend(files)
    count = tt.int("count", len(found), lo=1)
    if count > len(found):
        raise InputError(f"{tt.prefix}count", count, f"only {len(found)} files match", tt.where)
    return found[:count]


def compression(sc) -> float:
    """How many times faster than real time the scenario's traces play (1 without
    traces); every trace of one scenario must play at the same rate."""
    rates = {round(c.curve.real_step / c.curve.step, 9) for c in sc.clients
             if c.curve.kind == "trace" and c.curve.real_step > 0}
    if len(rates) > 1:
        raise InputError("traces.step", sorted(rates), "traces play at different rates; "
                         "real time needs one", sc.source)
    return rates.pop() if rates else 1.0


def real_time(sc):
    """The scenario with its traces at their own time step: every time in it (duration,
    starts, stops, events, trace steps) stretched by its compression, so a 300 s sample
    lasts 300 simulated seconds against the policies' real periods and the host's real
    migration bandwidth.  Non-trace curves keep their own shapes."""
    k = compression(sc)
    if k == 1.0:
        return sc

    def stretch(c):
        curve = c.curve
        if curve.kind == "trace":
            curve = dataclasses.replace(curve, step=curve.real_step)
        return dataclasses.replace(c, curve=curve, start=c.start * k, stop=c.stop * k)

    return dataclasses.replace(
        sc, duration=sc.duration * k, clients=tuple(stretch(c) for c in sc.clients),
        events=tuple(dataclasses.replace(e, at=e.at * k) for e in sc.events),
        description=f"{sc.description} [real time: x{k:g}]")
