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

    def evaluate_popularity(self, seen_user: np.ndarray, seen_item: np.ndarray) -> RankingHits:
        """`evaluate` for the most-popular baseline, without a users x items score table.

        Every user's list is the one global order with its own seen items skipped, so a
        held-out item's rank is its place in the global order minus the number of the user's
        seen items ahead of it. Gives the same hits as `evaluate(popularity_scores(...))`.
        """
        # Written by hand: ranking libraries build the dense table this avoids.
        place = popularity_order(seen_item, self.n_items)
        seen = _sorted_unique(seen_user.astype(np.int64) * self.n_items + place[seen_item])
        test = _sorted_unique(self.test_user.astype(np.int64) * self.n_items
                              + place[self.test_item])
        user, test_place = np.divmod(test, self.n_items)
        at = np.searchsorted(seen, test)
        ahead = at - np.searchsorted(seen, user * self.n_items)
        is_seen = np.zeros(len(test), dtype=bool)
        inside = at < len(seen)
        is_seen[inside] = seen[at[inside]] == test[inside]
        rank = test_place - ahead
        in_top = ~is_seen & (rank < self.k)
        discounts = self.discounts.cpu().numpy().astype(np.float64)
        gain = np.zeros(len(test))
        gain[in_top] = discounts[rank[in_top]]
        dcg = np.bincount(user, weights=gain, minlength=self.n_users)
        found = np.bincount(user, weights=in_top, minlength=self.n_users)
        hit = np.full(self.n_users, np.nan)
        ndcg = np.full(self.n_users, np.nan)
        hit[self.users] = (found[self.users] > 0).astype(np.float64)
        ndcg[self.users] = dcg[self.users] / self.ideal[self.users]
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


def _sorted_unique(keys: np.ndarray) -> np.ndarray:
    keys = np.sort(keys)
    return keys[np.r_[True, keys[1:] != keys[:-1]]] if len(keys) else keys


def popularity_order(seen_item: np.ndarray, n_items: int) -> np.ndarray:
    """Each item's place in the most-popular list (0 = most disclosed ratings; ties go to the
    lower item index)."""
    counts = np.bincount(seen_item, minlength=n_items)
    order = np.lexsort((np.arange(n_items), -counts))
    place = np.empty(n_items, dtype=np.int64)
    place[order] = np.arange(n_items)
    return place


def popularity_scores(seen_item: np.ndarray, n_items: int, device: torch.device) -> ScoreFn:
    """The most-popular baseline as a score table: every user gets items ranked by
    disclosed-rating count (exact in float32 up to 2**24 items)."""
    scores = torch.as_tensor(-popularity_order(seen_item, n_items).astype(np.float32),
                             device=device)
    return lambda users: scores.expand(len(users), n_items).clone()
