"""Strategies and bookkeeping for the parser fuzz tests.

Inputs are made three ways: arbitrary text (the parser must refuse it cleanly), inputs
built from the format's own grammar with arbitrary values in every slot (to reach the
deep paths), and real samples with random edits (a token replaced, a line cut, bytes
inserted).  ``counted`` adds every example run to the session's count per parser,
printed at the end (tests/reliability/conftest.py).

The number of examples per test is FUZZ_EXAMPLES (env ``HOMENODE_FUZZ_EXAMPLES``,
default 300, CI); heavier parsers run a fraction of it.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import resource
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

FUZZ_EXAMPLES = int(os.environ.get("HOMENODE_FUZZ_EXAMPLES", "300"))
# parser name -> examples run in this session (printed by conftest.py at the end)
FUZZ_COUNTS: Counter[str] = Counter()


def fuzz_settings(share: float = 1.0) -> settings:
    return settings(max_examples=max(10, int(FUZZ_EXAMPLES * share)), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow,
                                           HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])


def counted(name: str) -> Callable:
    """Count each example the decorated (hypothesis) test body runs under ``name``."""
    def wrap(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def inner(*args: Any, **kwargs: Any) -> Any:
            FUZZ_COUNTS[name] += 1
            return fn(*args, **kwargs)
        return inner
    return wrap


# --- building blocks -------------------------------------------------------------------------

# Numbers as the kernel prints them, and the ones it never would.
int_text = st.one_of(
    st.integers(-3, 300).map(str),
    st.integers(-(2**70), 2**70).map(str),
    st.sampled_from(["", "-", "+1", "0x10", "1e3", "1.5", "nan", "inf", "٣", "00", " 7"]),
)
junk = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)
token = st.one_of(int_text, junk, st.sampled_from(["kB", "N0=", "=", "(", ")", "\0"]))


def lines_of(line: st.SearchStrategy[str], max_lines: int = 12) -> st.SearchStrategy[str]:
    return st.lists(line, max_size=max_lines).map("\n".join)


@st.composite
def mutated(draw: st.DrawFn, sample: str) -> str:
    """``sample`` with a few random edits: a token replaced, a line dropped or cut, text
    inserted, or the whole thing truncated."""
    text = sample
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["replace", "drop", "cut", "insert", "truncate"]))
        lines = text.split("\n")
        i = draw(st.integers(0, max(0, len(lines) - 1)))
        if kind == "replace" and lines[i].split():
            words = lines[i].split()
            j = draw(st.integers(0, len(words) - 1))
            words[j] = draw(token)
            lines[i] = " ".join(words)
        elif kind == "drop" and lines:
            del lines[i]
        elif kind == "cut" and lines[i]:
            lines[i] = lines[i][: draw(st.integers(0, len(lines[i])))]
        elif kind == "insert":
            pos = draw(st.integers(0, len(lines[i])))
            lines[i] = lines[i][:pos] + draw(junk) + lines[i][pos:]
        elif kind == "truncate":
            text = text[: draw(st.integers(0, len(text)))]
            continue
        text = "\n".join(lines)
    return text


def text_or_mutated(samples: list[str], grammar: st.SearchStrategy[str] | None = None
                    ) -> st.SearchStrategy[str]:
    options = [junk, st.sampled_from(samples).flatmap(mutated)]
    if grammar is not None:
        options.append(grammar)
    return st.one_of(*options)


# --- TOML documents -----------------------------------------------------------------------------

scalar = st.one_of(
    st.booleans(), st.integers(-(2**63), 2**63 - 1), st.integers(-5, 100),
    st.floats(allow_nan=True, allow_infinity=True), st.floats(-10, 1e4),
    st.sampled_from([math.inf, -math.inf, math.nan, 0.0, -0.0, 1e308, 2**53 + 1]),
    st.sampled_from(["", "2s", "0s", "-1s", "1e400s", "500ms", "10m", "12 parsecs",
                     "300MiB", "1TiB", "-5MiB", "esxi", "paced", "bulk", "auto", "off",
                     "/tmp/x", "[", "(a", "\\", "machine.slice", "../x", "0-3", "nan",
                     "1e400", "1e400s", "1e400MiB", "inf", "0.0001ms"]),
    junk,
)
value = st.recursive(scalar, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(["a", "b", "kind", "cpu"]),
                                                  inner, max_size=3)), max_leaves=8)


def toml_key(k: str) -> str:
    return k if k and all(c.isalnum() or c in "_-" for c in k) else toml_string(k)


def toml_string(s: str) -> str:
    out = []
    for ch in s:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return toml_string(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{toml_key(k)} = {toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(type(v))


def toml_doc(doc: dict[str, Any]) -> str:
    """A TOML document: top-level scalars, tables, and arrays of tables."""
    head, body = [], []
    for k, v in doc.items():
        if isinstance(v, dict):
            body.append(f"[{toml_key(k)}]")
            body += [f"{toml_key(kk)} = {toml_value(vv)}" for kk, vv in v.items()]
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            for item in v:
                body.append(f"[[{toml_key(k)}]]")
                body += [f"{toml_key(kk)} = {toml_value(vv)}" for kk, vv in item.items()]
        else:
            head.append(f"{toml_key(k)} = {toml_value(v)}")
    return "\n".join(head + body) + "\n"


@st.composite
def doc_mutation(draw: st.DrawFn, doc: Any, depth: int = 0) -> Any:
    """``doc`` (parsed TOML) with random leaves replaced, keys dropped or added."""
    if isinstance(doc, dict):
        out = {}
        for k, v in doc.items():
            action = draw(st.sampled_from(["keep", "keep", "keep", "mutate", "drop", "value"]))
            if action == "drop":
                continue
            if action == "value":
                out[k] = draw(value)
            else:
                out[k] = draw(doc_mutation(v, depth + 1)) if action == "mutate" else v
        if draw(st.booleans()) and depth < 3:
            out[draw(st.sampled_from(["extra", "warp", "kind", "name"]))] = draw(value)
        return out
    if isinstance(doc, list):
        items = [draw(doc_mutation(x, depth + 1)) for x in doc]
        if items and draw(st.booleans()):
            del items[draw(st.integers(0, len(items) - 1))]
        return items
    return draw(value) if draw(st.booleans()) else doc


def _leaf_paths(doc: Any, prefix: tuple = ()) -> list[tuple]:
    if isinstance(doc, dict):
        out = [(*prefix, k) for k in doc] if prefix else []
        for k, v in doc.items():
            out += _leaf_paths(v, (*prefix, k))
        return out
    if isinstance(doc, list):
        out = []
        for i, v in enumerate(doc):
            out += _leaf_paths(v, (*prefix, i))
        return out
    return []


@st.composite
def one_field_changed(draw: st.DrawFn, doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` with exactly one field (at any depth, or a new one) set to an arbitrary
    value: every field meets every kind of bad value, one at a time."""
    import copy
    out = copy.deepcopy(doc)
    paths = _leaf_paths(out)
    path = draw(st.sampled_from(paths))
    parent: Any = out
    for k in path[:-1]:
        parent = parent[k]
    key = path[-1]
    if isinstance(parent, dict) and draw(st.integers(0, 9)) == 0:
        key = draw(st.sampled_from(["extra", "warp", "x"]))       # an unknown field
    parent[key] = draw(value)
    return out


# --- resource caps ------------------------------------------------------------------------------

# Extra address space a parser may use while fuzzed: a scenario asking for a billion
# cores must fail with MemoryError here, not take the machine's memory.
MEMORY_HEADROOM = 1536 << 20


@contextlib.contextmanager
def memory_cap(headroom: int = MEMORY_HEADROOM) -> Iterator[None]:
    """Limit this process's address space to its current size plus ``headroom``."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/status") as f:
        vm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
    cap = vm + headroom
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


# Special values every field meets in the one-field-at-a-time sweeps.
SPECIALS: list[Any] = [
    True, 0, -1, 1, 2**63 - 1, -(2**63), 2**64, 0.5, -0.5, 1e308, math.inf, -math.inf,
    math.nan, "", " ", "x", "nan", "inf", "-1s", "1e400", "1e400s", "1e400MiB", "0s",
    "12 parsecs", "\u00e9\u0000", "[", [], [1, "a"], [[]], {}, {"kind": "nope"},
]


def sweep(doc: dict[str, Any]) -> Iterator[tuple[tuple, Any, dict[str, Any]]]:
    """Every field of ``doc`` (at any depth, plus an unknown one per table) set to every
    special value, one at a time: (path, value, the changed document)."""
    import copy
    paths = _leaf_paths(doc)
    tables = [p for p in paths if isinstance(_get(doc, p), dict)]
    for path in [*paths, *((*p, "unknown_field") for p in tables)]:
        for v in SPECIALS:
            out = copy.deepcopy(doc)
            parent = _get(out, path[:-1])
            parent[path[-1]] = v
            yield path, v, out


def _get(doc: Any, path: tuple) -> Any:
    for k in path:
        doc = doc[k]
    return doc
