"""Hold-out splits: each user's test ratings, by time (default) or at random."""

from __future__ import annotations

import numpy as np

from simulator.world.base import Interactions


def _held_out(users_sorted: np.ndarray, n_users: int, test_fraction: float) -> np.ndarray:
    """For a user-sorted table: True for the last ceil(test_fraction * n_u) rows of each user.

    Users with a single rating keep it for training.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    counts = np.bincount(users_sorted, minlength=n_users)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    position = np.arange(len(users_sorted)) - starts[users_sorted]
    n_test = np.where(counts >= 2, np.ceil(test_fraction * counts - 1e-9).astype(np.int64), 0)
    n_test = np.minimum(n_test, np.maximum(counts - 1, 0))
    return position >= (counts - n_test)[users_sorted]


def temporal_split(
    ratings: Interactions, n_users: int, test_fraction: float
) -> tuple[Interactions, Interactions]:
    """Split each user's ratings by time: the last ceil(test_fraction * n_u) are test.

    Ties in time are broken by item index so the split is deterministic. Both halves come
    back sorted by (user, time).
    """
    order = np.lexsort((ratings.item, ratings.timestamp, ratings.user))
    is_test = _held_out(ratings.user[order], n_users, test_fraction)
    sorted_ratings = ratings.subset(order)
    return sorted_ratings.subset(~is_test), sorted_ratings.subset(is_test)


def random_split(
    ratings: Interactions, n_users: int, test_fraction: float, seed: int
) -> tuple[Interactions, Interactions]:
    """Split each user's ratings at random: ceil(test_fraction * n_u) of them are test.

    The per-user random hold-out of the MetaMF privacy-budget protocol. Both halves come
    back sorted by (user, time).
    """
    key = np.random.default_rng(seed).random(len(ratings))
    shuffled = np.lexsort((key, ratings.user))
    is_test = np.zeros(len(ratings), dtype=bool)
    is_test[shuffled] = _held_out(ratings.user[shuffled], n_users, test_fraction)
    order = np.lexsort((ratings.item, ratings.timestamp, ratings.user))
    return ratings.subset(order[~is_test[order]]), ratings.subset(order[is_test[order]])
