"""Small rating tables with planted structure, shared by the MetaMF tests."""

from __future__ import annotations

import numpy as np

from simulator.world.base import Interactions

# MetaMF dimensions small enough for tests that train in a second.
TINY_METAMF = {"user_dim": 8, "memory_dim": 16, "hidden": 32, "item_dim": 8, "rank": 4}


def planted_ratings(n_users: int, n_items: int, draws: int, seed: int = 0,
                    rated_users: int | None = None) -> Interactions:
    """Ratings from a rank-3 model with user and item biases, rounded to 1..5: `draws`
    (user, item) pairs drawn among the first `rated_users` users (default all), duplicates
    dropped."""
    rng = np.random.default_rng(seed)
    keys = np.unique(rng.integers(0, (rated_users or n_users) * n_items, size=draws))
    user, item = keys // n_items, keys % n_items
    p, q = rng.normal(size=(n_users, 3)), rng.normal(size=(n_items, 3))
    bu, bi = rng.normal(0, 0.5, n_users), rng.normal(0, 0.6, n_items)
    raw = 3.5 + bu[user] + bi[item] + 0.5 * (p[user] * q[item]).sum(1)
    rating = np.clip(np.rint(raw + rng.normal(0, 0.3, len(user))), 1, 5).astype(np.float32)
    return Interactions(user, item, rating, np.zeros(len(user), np.int64))
