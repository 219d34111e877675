"""When each training rating is experienced: global time windows with equal rating counts."""

from __future__ import annotations

import numpy as np

from simulator.world.base import Interactions


def assign_steps(train: Interactions, steps: int) -> np.ndarray:
    """Step (0..steps-1) at which each rating of `train` is experienced.

    Ratings are ranked by timestamp (ties broken by user, then item) and cut into `steps`
    windows of equal size, so every step brings the same number of new ratings while
    each user's own ratings still arrive in time order.
    """
    if steps < 1:
        raise ValueError("steps must be >= 1")
    n = len(train)
    order = np.lexsort((train.item, train.user, train.timestamp))
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    return (rank * steps // max(n, 1)).astype(np.int64)
