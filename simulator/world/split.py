"""Hold-out by time: each user's latest ratings are the test set."""

from __future__ import annotations

import math

import numpy as np

from simulator.world.base import Interactions


def temporal_split(
    ratings: Interactions, n_users: int, test_fraction: float
) -> tuple[Interactions, Interactions]:
    """Split each user's ratings by time: the last ceil(test_fraction * n_u) are test.

    Users with a single rating keep it for training. Ties in time are broken by item
    index so the split is deterministic. Both halves come back sorted by (user, time).
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    order = np.lexsort((ratings.item, ratings.timestamp, ratings.user))
    users = ratings.user[order]
    counts = np.bincount(users, minlength=n_users)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    position = np.arange(len(users)) - starts[users]
    n_test = np.where(
        counts >= 2, np.ceil(test_fraction * counts - 1e-9).astype(np.int64), 0
    )
    n_test = np.minimum(n_test, np.maximum(counts - 1, 0))
    is_test = position >= (counts - n_test)[users]
    sorted_ratings = ratings.subset(order)
    return sorted_ratings.subset(~is_test), sorted_ratings.subset(is_test)


def ceil_count(fraction: float, n: int) -> int:
    """ceil(fraction * n) without float noise turning 0.3 * 10 into 4."""
    return int(math.ceil(round(fraction * n, 9)))
