"""HiGHS solvers made the one way this process may make them.

Both the oracle policy (policy/optimal.py) and the simulator's whole-home bound
(sim/bound.py) solve MIPs in-process; they share HiGHS's process-wide thread pool, so
every solver is created here with the same thread count, and the banner HiGHS prints on
file descriptor 1 when the first solver is made is kept out of the tables on stdout.
"""

from __future__ import annotations

import os
import sys

import highspy

SOLVER_THREADS = 1             # compare and sweep run cases in parallel processes already

_banner_hidden = False


def new_highs(**options: object) -> highspy.Highs:
    """A silent, single-threaded, seeded solver with ``options`` set on top.  HiGHS prints
    a banner on stdout (fd 1, from C++) when a process creates its first solver, whatever
    ``output_flag`` says; the first creation runs with fd 1 closed."""
    global _banner_hidden
    if _banner_hidden:
        h = highspy.Highs()
    else:
        _banner_hidden = True
        sys.stdout.flush()
        saved = os.dup(1)
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(null, 1)
            h = highspy.Highs()
        finally:
            os.dup2(saved, 1)
            os.close(saved)
            os.close(null)
    for opt, v in {"output_flag": False, "threads": SOLVER_THREADS, "random_seed": 0,
                   **options}.items():
        h.setOptionValue(opt, v)
    return h
