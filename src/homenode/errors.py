"""The one error type that reaches users.

Every bad input (config, scenario, trace, CLI argument, API request) becomes a
``InputError`` whose message is a single line naming the field and the value.
The CLI prints it and exits with status 2; nothing else is shown.
"""

from __future__ import annotations


class HomenodeError(Exception):
    """Base class for errors meant for the user (printed as one line)."""

    exit_code = 1


class InputError(HomenodeError):
    """Bad user input: names where (file), what (field) and the offending value."""

    exit_code = 2

    def __init__(self, field: str, value: object, problem: str, where: str | None = None):
        self.field = field
        self.value = value
        self.problem = problem
        self.where = where
        shown = repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        prefix = f"{where}: " if where else ""
        super().__init__(f"{prefix}{field} = {shown}: {problem}")
