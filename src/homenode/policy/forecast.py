"""A small per-client demand forecaster: level, trend and variability (Holt's linear
smoothing with a running spread of the one-period forecast error).

It answers the one question the cost-benefit rule asks of a client's history: *for
how long are the conditions that motivate a move expected to last?*  A steady client
keeps a move's gain for a long time; one that wanders (large variability) or drifts
(large trend) erases a small gain soon, and a move that cannot repay its copy in that
time is not made.
"""

from __future__ import annotations

import numpy as np

from homenode.policy.history import Aligned

LEVEL_ALPHA = 0.3    # weight of a new sample in the level (about 3 periods of memory)
TREND_BETA = 0.02    # weight of a new level change in the trend (about 50 periods, so
                     # a periodic swing of a minute or two averages out)
SPREAD_GAMMA = 0.1   # weight of a new squared error in the variability
LONG_GAMMA = 0.02    # weight of a new sample in the long-run mean and spread (~100 s)
SHIFT_SIGMAS = 3.0   # an error beyond this many spreads is a level shift
MIN_SPREAD = 0.05    # cores: spreads below this read as this (noise floor)
FRESH_SPREAD = 0.2   # a new client's one-period error, as a fraction of its demand


class Forecaster:
    """Per client: level (cores), trend (cores per period), variance of the one-period
    forecast error (cores^2), and the spread of demand around its long-run mean
    (cores^2): how far a client that swings (a periodic load) can stray at all, which
    bounds what its one-period errors add up to."""

    def __init__(self) -> None:
        self._rows = Aligned(5, np.nan)

    def peek(self, clients: tuple, demand: np.ndarray) -> tuple[np.ndarray, ...]:
        """(trend, variance, spread) as of the last update, without one; a client not
        seen yet reads as ``update`` would start it (no trend, FRESH_SPREAD, no spread)."""
        level, trend, var, _, spread = self._rows.align(clients)
        fresh = np.isnan(level)
        d = np.maximum(demand, 0.0)
        return (np.where(fresh, 0.0, trend), np.where(fresh, (FRESH_SPREAD * d) ** 2, var),
                np.where(fresh, 0.0, spread))

    def update(self, clients: tuple, demand: np.ndarray) -> tuple[np.ndarray, ...]:
        rows = self._rows.align(clients)
        level, trend, var, mean, spread = rows
        fresh = np.isnan(level)
        d = np.maximum(demand, 0.0)
        if not fresh.any():
            return self._steady(rows, d)
        predicted = np.where(fresh, d, level + np.nan_to_num(trend))
        err = d - predicted
        # An error beyond SHIFT_SIGMAS spreads is a level shift (a VM that went from idle
        # to busy), not wander: the level jumps to it and the spread learns only the
        # clipped error, so one step does not read as lasting variability -- while a
        # client that keeps jumping still grows its spread quickly.
        sd = np.sqrt(np.maximum(np.nan_to_num(var), MIN_SPREAD ** 2))
        shift = ~fresh & (np.abs(err) > SHIFT_SIGMAS * sd)
        clipped = np.clip(err, -SHIFT_SIGMAS * sd, SHIFT_SIGMAS * sd)
        new_level = np.where(fresh | shift, d, predicted + LEVEL_ALPHA * err)
        new_trend = np.where(fresh | shift, 0.0,
                             (1 - TREND_BETA) * np.nan_to_num(trend)
                             + TREND_BETA * (new_level - np.where(fresh, d, level)))
        # a new client's spread starts at a fifth of its demand, squared: unknown, so
        # not trusted to stay put until a few periods have shown it steady
        new_var = np.where(fresh, (FRESH_SPREAD * d) ** 2,
                           (1 - SPREAD_GAMMA) * var + SPREAD_GAMMA * clipped * clipped)
        new_mean = np.where(fresh, d, mean + LONG_GAMMA * (d - mean))
        new_spread = np.where(fresh, 0.0,
                              (1 - LONG_GAMMA) * spread + LONG_GAMMA * (d - mean) ** 2)
        rows[0], rows[1], rows[2], rows[3], rows[4] = (new_level, new_trend, new_var,
                                                       new_mean, new_spread)
        return rows[0], rows[1], rows[2], rows[4]

    @staticmethod
    def _steady(rows: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, ...]:
        """``update`` when every client has a history: the same arithmetic without the
        branches for new ones (most calls, and a large share of a rebalance's time on a
        host of thousands of clients)."""
        level, trend, var, mean, spread = rows
        predicted = level + trend
        err = d - predicted
        sd = np.sqrt(np.maximum(var, MIN_SPREAD ** 2))
        shift = np.abs(err) > SHIFT_SIGMAS * sd
        clipped = np.clip(err, -SHIFT_SIGMAS * sd, SHIFT_SIGMAS * sd)
        new_level = np.where(shift, d, predicted + LEVEL_ALPHA * err)
        new_trend = np.where(shift, 0.0,
                             (1 - TREND_BETA) * trend + TREND_BETA * (new_level - level))
        new_var = (1 - SPREAD_GAMMA) * var + SPREAD_GAMMA * clipped * clipped
        new_mean = mean + LONG_GAMMA * (d - mean)
        new_spread = (1 - LONG_GAMMA) * spread + LONG_GAMMA * (d - mean) ** 2
        rows[0], rows[1], rows[2], rows[3], rows[4] = (new_level, new_trend, new_var,
                                                       new_mean, new_spread)
        return rows[0], rows[1], rows[2], rows[4]
