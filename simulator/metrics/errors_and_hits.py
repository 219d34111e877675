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
        self, test: Interactions, *, n_users: int, n_items: int, k: int,
        device: torch.device, chunk: int = 1024, depth: int = 20,
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
        self.test_key = np.unique(self.test_user.astype(np.int64) * n_items + self.test_item)
        self.test_pair_user, self.test_pair_item = np.divmod(self.test_key, n_items)
        self.test_pair_slot = np.searchsorted(self.users, self.test_pair_user)
        self.depth = depth
        self._cache: _TopLists | None = None

    def evaluate(
        self, score: ScoreFn, seen_user: np.ndarray, seen_item: np.ndarray,
        cache_key: object = None,
    ) -> RankingHits:
        """Rank all items for every user with test ratings, seen items excluded.

        With a `cache_key`, each user's best `depth` unseen items are kept; a later call
        with the same key promises the same scores and the same seen table with rows only
        appended, and is answered from those lists (users whose list ran short are ranked
        afresh). The hits are the same as a full ranking's.
        """
        if cache_key is None:
            depth = min(self.k, self.n_items)
            return self._hits(*self._top_lists(score, self.users, *_by_user(seen_user, seen_item),
                                               depth))
        cache = self._cache
        if cache is None or cache.key != cache_key or cache.n_seen > len(seen_user):
            depth = min(self.k + self.depth, self.n_items)
            items, valid = self._top_lists(score, self.users, *_by_user(seen_user, seen_item),
                                           depth)
            self._cache = _TopLists(cache_key, len(seen_user), items, valid,
                                    self._relevant(self.users, items))
            return self._hits(items, valid, self._cache.relevant)
        # Only the rows appended since the lists were made can remove items from them.
        fresh_user, fresh_item = seen_user[cache.n_seen:], seen_item[cache.n_seen:]
        cache.strike(np.searchsorted(self.users, fresh_user), fresh_item, self.users, fresh_user)
        cache.n_seen = len(seen_user)
        short = np.flatnonzero(cache.valid.sum(1) < self.k)
        if len(short):
            depth = cache.items.shape[1]
            items, valid = self._top_lists(score, self.users[short],
                                           *_by_user(seen_user, seen_item), depth)
            cache.items[short], cache.valid[short] = items, valid
            cache.relevant[short] = self._relevant(self.users[short], items)
        return self._hits(cache.items, cache.valid, cache.relevant)

    def _top_lists(
        self, score: ScoreFn, users: np.ndarray, seen_user: np.ndarray, seen_item: np.ndarray,
        depth: int,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Each user's `depth` best-scored items, best first, and which of them are unseen
        (a user with fewer unseen items has seen ones at the end, marked invalid). The seen
        table must be sorted by user.

        Items of equal score are in one fixed order, so that a list never depends on its
        depth, the device or the backend's top-k: a held-out item goes after the other items
        of its score (ties count against the model), then lower item ids first."""
        items = np.empty((len(users), depth), dtype=np.int64)
        valid = np.empty((len(users), depth), dtype=bool)
        for start in range(0, len(users), self.chunk):
            chunk = users[start : start + self.chunk]
            rows = self._rows(chunk, seen_user, seen_item)
            with torch.no_grad():
                scores = score(torch.as_tensor(chunk, device=self.device)).float()
                scores[rows] = -torch.inf
                top = torch.topk(scores, depth, dim=1)
                # Rows where the depth cut a run of equal scores: which of them made the list
                # is the backend's choice, so those rows are ordered in full.
                edge = top.values[:, -1:]
                cut = ((scores == edge).sum(1) > (top.values == edge).sum(1)) \
                    & (edge[:, 0] > -torch.inf)
                cut_rows = torch.nonzero(cut).flatten().cpu().numpy()
                full = scores[torch.as_tensor(cut_rows, device=self.device)].cpu().numpy() \
                    if len(cut_rows) else None
            values = top.values.cpu().numpy()
            listed = top.indices.cpu().numpy()
            if full is not None:
                every = np.broadcast_to(np.arange(self.n_items), full.shape)
                order = self._tie_order(chunk[cut_rows], every, full)[:, :depth]
                listed[cut_rows] = np.take_along_axis(every, order, 1)
                values[cut_rows] = np.take_along_axis(full, order, 1)
            order = self._tie_order(chunk, listed, values)
            items[start : start + len(chunk)] = np.take_along_axis(listed, order, 1)
            valid[start : start + len(chunk)] = np.take_along_axis(values, order, 1) > -np.inf
        return items, valid

    def _tie_order(self, users: np.ndarray, items: np.ndarray, values: np.ndarray
                   ) -> np.ndarray:
        """Per row, the order of `items` by score (best first), held-out items after the
        others of equal score, then by item id."""
        relevant = self._relevant(users, items)
        return np.lexsort((items, relevant, -values), axis=-1)

    def _relevant(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Whether each listed item is one of its user's held-out items."""
        keys = users[:, None].astype(np.int64) * self.n_items + items
        at = np.minimum(np.searchsorted(self.test_key, keys), max(len(self.test_key) - 1, 0))
        return self.test_key[at] == keys if len(self.test_key) else np.zeros_like(keys, bool)

    def _hits(
        self, items: np.ndarray, valid: np.ndarray, relevant: np.ndarray | None = None
    ) -> RankingHits:
        """HR@k and NDCG@k from each user's list: its first k valid items are its top k."""
        if relevant is None:
            relevant = self._relevant(self.users, items)
        place = np.cumsum(valid, axis=1) - 1
        shown = valid & (place < self.k)
        discounts = self.discounts.cpu().numpy().astype(np.float64)
        gain = np.where(shown & relevant, discounts[np.minimum(place, self.k - 1)], 0.0)
        hit = np.full(self.n_users, np.nan)
        ndcg = np.full(self.n_users, np.nan)
        hit[self.users] = (shown & relevant).any(1)
        ndcg[self.users] = gain.sum(1) / self.ideal[self.users]
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
        # Held-out pairs are distinct and `place` is a permutation: their keys need no sort.
        user, test_place = self.test_pair_user, place[self.test_pair_item]
        test = user * self.n_items + test_place
        at = np.searchsorted(seen, test)
        user_start = np.searchsorted(seen, self.users.astype(np.int64) * self.n_items)
        ahead = at - user_start[self.test_pair_slot]
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


@dataclass
class _TopLists:
    """Each evaluated user's best items under one model (`key`), made when the seen table
    had `n_seen` rows; `valid` turns off items seen since."""

    key: object
    n_seen: int
    items: np.ndarray
    valid: np.ndarray
    relevant: np.ndarray

    def strike(
        self, rows: np.ndarray, items: np.ndarray, users: np.ndarray, seen_users: np.ndarray
    ) -> None:
        """Mark newly seen (user, item) pairs as no longer rankable."""
        rows = np.minimum(rows, len(users) - 1)
        listed = users[rows] == seen_users  # pairs of users that are evaluated
        rows, items = rows[listed], items[listed]
        struck = np.zeros_like(self.valid)
        # ufunc.at: a user may have several new pairs in one call.
        np.logical_or.at(struck, rows, self.items[rows] == items[:, None])
        self.valid &= ~struck


def _by_user(user: np.ndarray, item: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(user, kind="stable")
    return user[order], item[order]


def _sorted_unique(keys: np.ndarray) -> np.ndarray:
    keys = np.sort(keys, kind="stable")  # radix/timsort: 2-3x numpy's default on int64
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
