"""Click parameter types over homenode.inputs: every flag that is a size, a duration, a
count or a rate is checked by the same code as the files, with the same one-line errors
(``--duration = 'abc': expected a duration such as 2s, 100ms or 5m``), and bounded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from homenode.errors import InputError
from homenode.inputs import MAX_DURATION, MAX_SIZE, parse_duration, parse_number_text, parse_size


def _flag(param: click.Parameter | None) -> str:
    if param is not None and getattr(param, "opts", None):
        return max(param.opts, key=len)
    return param.name if param is not None and param.name else "value"


class Duration(click.ParamType):
    """Seconds, from "2s", "500ms", "5m" or a plain number of seconds."""

    name = "duration"

    def __init__(self, *, lo: float = 0.0, hi: float = MAX_DURATION, positive: bool = False):
        self.lo, self.hi, self.positive = lo, hi, positive

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None
                ) -> float:
        return parse_duration(value, _flag(param), lo=self.lo, hi=self.hi,
                              positive=self.positive)


class Size(click.ParamType):
    """Bytes, from "8GiB", "512MiB" or a plain byte count."""

    name = "size"

    def __init__(self, *, lo: int = 0, hi: int = MAX_SIZE):
        self.lo, self.hi = lo, hi

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None
                ) -> int:
        return parse_size(value, _flag(param), lo=self.lo, hi=self.hi)


class Count(click.ParamType):
    """A whole number within [lo, hi]."""

    name = "integer"

    def __init__(self, lo: int, hi: int | None = None):
        self.lo, self.hi = lo, hi

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None
                ) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        v = parse_number_text(value, _flag(param), integer=True)
        if v < self.lo:
            raise InputError(_flag(param), v, "must not be negative" if self.lo == 0 else
                             f"must be at least {self.lo}")
        if self.hi is not None and v > self.hi:
            raise InputError(_flag(param), v, f"must be at most {self.hi}")
        return v


class Number(click.ParamType):
    """A finite number within [lo, hi] (a rate, a ratio)."""

    name = "number"

    def __init__(self, lo: float, hi: float, positive: bool = False):
        self.lo, self.hi, self.positive = lo, hi, positive

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None
                ) -> float:
        v = parse_number_text(str(value), _flag(param))
        if self.positive and v <= 0:
            raise InputError(_flag(param), v, "must be positive")
        if not self.lo <= v <= self.hi:
            raise InputError(_flag(param), v, f"must be between {self.lo:g} and {self.hi:g}")
        return v


class InputFile(click.ParamType):
    """A file homenode reads (``--config``): a directory is refused here; a missing file
    is left to the reader, which knows whether a default applies."""

    name = "file"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None
                ) -> Path:
        p = Path(value)
        if p.is_dir():
            raise InputError(_flag(param), str(value), "is a directory, not a file")
        return p
