"""The tail every guest entry point shares: run the scenario, record whatever broke, and
write the result atomically, so the host always finds a whole result.json to show."""

from __future__ import annotations

import json
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any


def run_and_write(run: Callable[[], dict[str, Any]], result: dict[str, Any],
                  result_path: str, started: float | None = None) -> int:
    """``result`` updated with ``run()`` -- or with its error and traceback (exit status
    1) -- then written to ``result_path`` by a rename.  ``started`` (time.monotonic()):
    also record the guest's run time as ``guest_run_s``."""
    rc = 0
    try:
        result.update(run())
    except Exception as e:      # the host must get a result to show, whatever broke
        result["error"] = f"{type(e).__name__}: {e}"
        result["traceback"] = traceback.format_exc()
        traceback.print_exc()
        rc = 1
    if started is not None:
        result["guest_run_s"] = round(time.monotonic() - started, 3)
    tmp = Path(result_path + ".tmp")
    tmp.write_text(json.dumps(result, indent=1, default=str))
    tmp.replace(result_path)
    return rc
