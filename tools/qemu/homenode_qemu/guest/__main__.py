"""Guest entry point: run one scenario, always leave a result.json behind."""

from __future__ import annotations

import json
import sys
import time
import traceback
from pathlib import Path

from homenode_qemu.guest import SCENARIOS, load


def main(argv: list[str]) -> int:
    name, params_path, result_path = argv
    t0 = time.monotonic()
    params = json.loads(Path(params_path).read_text())
    uptime = float(Path("/proc/uptime").read_text().split()[0])
    result: dict = {"scenario": name, "python_start_uptime_s": uptime}
    rc = 0
    try:
        if name not in SCENARIOS:
            raise KeyError(f"unknown scenario {name!r}; known: {sorted(SCENARIOS)}")
        result.update(load(name)(params))
    except Exception as e:      # the host must get a result to show, whatever broke
        result["error"] = f"{type(e).__name__}: {e}"
        result["traceback"] = traceback.format_exc()
        traceback.print_exc()
        rc = 1
    result["guest_run_s"] = round(time.monotonic() - t0, 3)
    tmp = Path(result_path + ".tmp")
    tmp.write_text(json.dumps(result, indent=1, default=str))
    tmp.replace(result_path)
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
