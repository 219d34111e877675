"""Accuracy on each user's held-out future ratings: errors and full-ranking hit rates."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from simulator.world.base import Interactions

ScoreFn = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class RatingErrors:
    """Per-user sums of absolute and squared errors, and test counts."""

    abs_sum: np.ndarray
    sq_sum: np.ndarray
    count: np.ndarray


@dataclass
class RankingHits:
    """Per-user HR@k and NDCG@k (NaN for users without test ratings)."""

    hit: np.ndarray
    ndcg: np.ndarray


def rating_errors(
    predict: Callable[[np.ndarray, np.ndarray], np.ndarray], test: Interactions, n_users: int
) -> RatingErrors:
    """Prediction errors on every test rating, summed per user (micro averages need sums)."""
    error = predict(test.user, test.item).astype(np.float64) - test.rating
    return RatingErrors(
        np.bincount(test.user, weights=np.abs(error), minlength=n_users),
        np.bincount(test.user, weights=error**2, minlength=n_users),
        np.bincount(test.user, minlength=n_users),
    )


class RankingEvaluator:
    """HR@k and NDCG@k with full ranking over the items a user has not disclosed.

    A hit means at least one of the user's held-out items is in its top k; NDCG uses
    binary relevance with the ideal ranking over min(k, |test|) items.
    """

    def __init__(
        self, test: Interactions, n_users: int, n_items: int, k: int,
        device: torch.device, chunk: int = 1024,
    ) -> None:
        self.n_users, self.n_items, self.k, self.device = n_users, n_items, k, device
        self.chunk = chunk
        order = np.lexsort((test.item, test.user))
        self.test_user, self.test_item = test.user[order], test.item[order]
        self.test_count = np.bincount(self.test_user, minlength=n_users)
        self.users = np.flatnonzero(self.test_count > 0)
        discounts = 1.0 / np.log2(np.arange(2, k + 2))
        self.discounts = torch.tensor(discounts, dtype=torch.float32, device=device)
        ideal = np.cumsum(discounts)
        self.ideal = ideal[np.minimum(self.test_count, k) - 1]

    def evaluate(self, score: ScoreFn, seen_user: np.ndarray, seen_item: np.ndarray) -> RankingHits:
        """Rank all items for every user with test ratings, seen items excluded."""
        hit = np.full(self.n_users, np.nan)
        ndcg = np.full(self.n_users, np.nan)
        seen_order = np.argsort(seen_user, kind="stable")
        seen_user, seen_item = seen_user[seen_order], seen_item[seen_order]
        for start in range(0, len(self.users), self.chunk):
            users = self.users[start : start + self.chunk]
            rows = self._rows(users, seen_user, seen_item)
            test_rows = self._rows(users, self.test_user, self.test_item)
            with torch.no_grad():
                scores = score(torch.as_tensor(users, device=self.device)).float()
                scores[rows] = -torch.inf
                top = torch.topk(scores, min(self.k, self.n_items), dim=1).indices
                relevant = torch.zeros_like(scores, dtype=torch.bool)
                relevant[test_rows] = True
                gains = torch.gather(relevant, 1, top).float()
            dcg = (gains * self.discounts[: gains.shape[1]]).sum(1).cpu().numpy()
            hit[users] = (gains.sum(1) > 0).cpu().numpy()
            ndcg[users] = dcg / self.ideal[users]
        return RankingHits(hit, ndcg)

    def _rows(
        self, users: np.ndarray, all_user: np.ndarray, all_item: np.ndarray
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(row, item) index pairs of a sorted (user, item) table restricted to `users`."""
        lo = np.searchsorted(all_user, users, side="left")
        hi = np.searchsorted(all_user, users, side="right")
        lengths = hi - lo
        row = np.repeat(np.arange(len(users)), lengths)
        index = np.repeat(lo - np.cumsum(lengths) + lengths, lengths) + np.arange(lengths.sum())
        return (
            torch.as_tensor(row, device=self.device),
            torch.as_tensor(all_item[index], device=self.device),
        )


def popularity_scores(seen_item: np.ndarray, n_items: int, device: torch.device) -> ScoreFn:
    """The most-popular baseline: every user gets items ranked by disclosed-rating count."""
    counts = torch.as_tensor(
        np.bincount(seen_item, minlength=n_items).astype(np.float32), device=device
    )
    # A tiny index-based tie-break keeps the ranking deterministic.
    counts = counts - torch.arange(n_items, device=device, dtype=torch.float32) * 1e-6
    return lambda users: counts.expand(len(users), n_items).clone()
