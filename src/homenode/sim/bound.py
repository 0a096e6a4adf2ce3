"""The simulator's true upper bound on progress: a per-tick relaxation no policy can beat.

Each tick, a client makes progress ``received x eff`` (sim/host.py), where ``received``
is CPU given by proportional share on its home node and ``eff <= 1`` is the slowdown
from remote memory, communication and the overheads a policy is charged.  Relax every
constraint a policy has to live with:

* homes are fractional: a client's CPU may come from any mix of the nodes it is allowed
  on (its ``allowed_nodes``; a pinned client only from its pinned node);
* migration is free and instant, so every page is local (``eff = 1``), and no policy or
  kernel overhead is charged;
* what is left is a transportation problem: give client i at most ``want_i`` (its demand
  within vCPUs, limits and pool limits -- the same ``want`` the host computes) from
  nodes of at most ``cores_n`` each.

Its optimum is a max flow, computed here through max-flow/min-cut: the flow equals the
cheapest cut, and a cut is a set T of nodes kept on the sink side plus every client that
may use a node outside T::

    bound = min over T of  sum_{n in T} cores_n + sum_{i: allowed_i not within T} want_i

With no placement constraints that is ``min(sum want, sum cores)``.  Any real run gives
each client at most ``want_i`` and each node at most ``cores_n`` (less the CPU spent
migrating), from a home the client is allowed on, so its progress can never exceed this
bound in any tick.  Pure functions, no I/O: a policy may call them.
"""

from __future__ import annotations

import numpy as np

MAX_CUT_NODES = 12      # enumerate cuts up to 2^12 node sets; above, drop constraints


def cut_masks(allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Precomputed cuts for ``allowed`` ((C, N) bool): (node sets (2^N, N) bool, and
    whether each client escapes each set (2^N, C) bool), or None when no client is
    constrained or there are too many nodes (then the bound drops the constraints,
    which only loosens it)."""
    c, n = allowed.shape
    if c == 0 or allowed.all() or n > MAX_CUT_NODES:
        return None
    sets = ((np.arange(2 ** n)[:, None] >> np.arange(n)[None, :]) & 1).astype(bool)
    # a client escapes T when it may use some node outside T
    escapes = (allowed[None, :, :] & ~sets[:, None, :]).any(axis=2)
    return sets, escapes


def tick_bound(want: np.ndarray, cores: np.ndarray,
               cuts: tuple[np.ndarray, np.ndarray] | None = None) -> float:
    """Most CPU the clients can receive at once (cores): the max flow described above.
    ``want`` per client (cores, already capped), ``cores`` per node, ``cuts`` from
    ``cut_masks`` (None: no placement constraints)."""
    w = np.maximum(want, 0.0)
    total = float(w.sum())
    if cuts is None:
        return min(total, float(np.maximum(cores, 0.0).sum()))
    sets, escapes = cuts
    cost = sets @ np.maximum(cores, 0.0) + escapes @ w
    return float(min(cost.min(), total))
