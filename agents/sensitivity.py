"""How much a rating reveals about its author's own attribute, from public item statistics."""

from __future__ import annotations

import numpy as np

from simulator.world.base import Interactions

PRIOR = 1.0  # Laplace pseudo-count per class when estimating an item's audience


def rating_sensitivity(ratings: Interactions, labels: np.ndarray, n_items: int) -> np.ndarray:
    """One score per rating: |log P(a_u | item) - log P(a_u)| for the rater's own class a_u.

    P(a | item) is the share of class a among the item's raters (published audience
    statistics, smoothed with PRIOR pseudo-ratings per class), P(a) the class share among all
    raters. A rating of an item whose audience is strongly skewed toward, or away from, the
    user's own class tells an observer the most; a sensitivity-aware user withholds those
    first.
    """
    labels = np.asarray(labels, dtype=np.int64)
    n_classes = int(labels.max(initial=0)) + 1
    rater_class = labels[ratings.user]
    counts = np.zeros((n_items, n_classes))
    np.add.at(counts, (ratings.item, rater_class), 1.0)
    audience = (counts + PRIOR) / (counts.sum(1, keepdims=True) + PRIOR * n_classes)
    overall = (np.bincount(rater_class, minlength=n_classes) + PRIOR) / (
        len(ratings) + PRIOR * n_classes
    )
    return np.abs(np.log(audience[ratings.item, rater_class]) - np.log(overall[rater_class]))
