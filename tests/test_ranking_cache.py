"""Rankings kept between retrains give the hits a full ranking gives."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from simulator.metrics.errors_and_hits import RankingEvaluator
from simulator.world.base import Interactions


def _table(user: np.ndarray, item: np.ndarray) -> Interactions:
    return Interactions(user.astype(np.int64), item.astype(np.int64),
                        np.ones(len(user)), np.zeros(len(user), dtype=np.int64))


def test_cached_lists_follow_new_disclosures_and_rebuild_short_ones() -> None:
    rng = np.random.default_rng(0)
    n_users, n_items, k = 60, 40, 5
    table = torch.as_tensor(rng.normal(size=(n_users, n_items)), dtype=torch.float32)
    score = lambda users: table[users]  # noqa: E731
    # Every user holds out 3 items; the others are disclosed over 6 steps, best-scored first
    # for half the users (so their cached lists run short and must be rebuilt).
    test_user, test_item, later_user, later_item = [], [], [], []
    for user in range(n_users):
        items = rng.permutation(n_items)
        test_user += [user] * 3
        test_item += list(items[:3])
        rest = items[3:]
        if user % 2:
            rest = rest[np.argsort(-table[user, rest].numpy())]
        later_user += [user] * len(rest)
        later_item += list(rest)
    test = _table(np.array(test_user), np.array(test_item))
    cached = RankingEvaluator(test, n_users=n_users, n_items=n_items, k=k,
                              device=torch.device("cpu"), depth=4)
    fresh = RankingEvaluator(test, n_users=n_users, n_items=n_items, k=k,
                             device=torch.device("cpu"))
    reranked: list[int] = []
    rank = cached._top_lists

    def counting(score, users, *rest):  # type: ignore[no-untyped-def]
        reranked.append(len(users))
        return rank(score, users, *rest)

    cached._top_lists = counting  # type: ignore[method-assign]
    later_user, later_item = np.array(later_user), np.array(later_item)
    step_of = rng.integers(0, 6, len(later_user))
    step_of[np.array(later_user) % 2 == 1] = np.concatenate([
        np.sort(rng.integers(0, 6, (later_user == u).sum())) for u in range(1, n_users, 2)])
    seen_user, seen_item = np.empty(0, np.int64), np.empty(0, np.int64)
    for step in range(6):
        new = step_of == step
        seen_user = np.concatenate([seen_user, later_user[new]])
        seen_item = np.concatenate([seen_item, later_item[new]])
        got = cached.evaluate(score, seen_user, seen_item, cache_key=("model", 0))
        want = fresh.evaluate(score, seen_user, seen_item)
        np.testing.assert_array_equal(got.hit, want.hit)
        np.testing.assert_allclose(got.ndcg, want.ndcg)
    assert reranked[0] == n_users  # the first call ranks everyone
    assert 0 < sum(reranked[1:]) < 5 * n_users  # later calls re-rank only short lists


def test_a_new_key_or_removed_rows_rank_afresh() -> None:
    rng = np.random.default_rng(1)
    table = torch.as_tensor(rng.normal(size=(10, 20)), dtype=torch.float32)
    test = _table(np.arange(10), rng.integers(0, 20, 10))
    evaluator = RankingEvaluator(test, n_users=10, n_items=20, k=3, device=torch.device("cpu"))
    seen_user, seen_item = np.repeat(np.arange(10), 2), rng.integers(0, 20, 20)
    keep = seen_item != np.repeat(test.item, 2)
    seen_user, seen_item = seen_user[keep], seen_item[keep]
    evaluator.evaluate(lambda u: table[u], seen_user, seen_item, cache_key=1)
    other = -table
    got = evaluator.evaluate(lambda u: other[u], seen_user, seen_item, cache_key=2)
    want = evaluator.evaluate(lambda u: other[u], seen_user, seen_item)
    np.testing.assert_array_equal(got.hit, want.hit)
    # Fewer seen rows than the lists were made with: rank afresh, not from stale lists.
    got = evaluator.evaluate(lambda u: other[u], seen_user[:5], seen_item[:5], cache_key=2)
    want = evaluator.evaluate(lambda u: other[u], seen_user[:5], seen_item[:5])
    np.testing.assert_array_equal(got.ndcg, want.ndcg)


def test_tied_scores_rank_the_same_at_any_depth_and_count_against_the_model() -> None:
    # Scores clipped at a ceiling, as a rating model's are: many items tie at the top.
    rng = np.random.default_rng(2)
    n_users, n_items, k = 40, 60, 5
    raw = rng.normal(4.0, 1.5, size=(n_users, n_items))
    table = torch.as_tensor(np.clip(raw, 1.0, 5.0), dtype=torch.float32)
    assert ((table == 5.0).sum(1) > k).all()
    test_user = np.repeat(np.arange(n_users), 2)
    test_item = np.concatenate([rng.choice(n_items, 2, replace=False) for _ in range(n_users)])
    test = _table(test_user, test_item)
    seen_user, seen_item = np.empty(0, np.int64), np.empty(0, np.int64)
    score = lambda users: table[users]  # noqa: E731
    full = RankingEvaluator(test, n_users=n_users, n_items=n_items, k=k, device=torch.device("cpu"))
    deep = RankingEvaluator(test, n_users=n_users, n_items=n_items, k=k,
                            device=torch.device("cpu"), depth=30)
    want = full.evaluate(score, seen_user, seen_item)
    got = deep.evaluate(score, seen_user, seen_item, cache_key="tied")
    np.testing.assert_array_equal(got.hit, want.hit)
    np.testing.assert_array_equal(got.ndcg, want.ndcg)
    # The stated order, by brute force: score (best first), held-out items after the others
    # of their score, then item id.
    values = table.numpy()
    for user in range(n_users):
        mine = set(test_item[test_user == user].tolist())
        order = sorted(range(n_items), key=lambda i: (-values[user, i], i in mine, i))
        top = order[:k]
        assert want.hit[user] == float(any(i in mine for i in top))
        gain = sum(1 / np.log2(place + 2) for place, i in enumerate(top) if i in mine)
        assert want.ndcg[user] == pytest.approx(gain / sum(1 / np.log2(p + 2) for p in range(2)))
    assert np.nanmean(want.hit) < 1.0  # ties at the ceiling do hide held-out items
