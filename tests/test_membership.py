"""Membership inference for deletion audits: per-user scores, the AUC / TPR summary, and the
audit of trained BPR and MF models before and after retraining without the deleted users."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import rankdata

from simulator.attacks import membership
from simulator.attacks.membership import (
    MembershipResult,
    deletion_audit,
    membership_inference,
    membership_scores,
)
from simulator.recommenders.base import ModelParams
from simulator.recommenders.bpr import BPR
from simulator.recommenders.mf import MF
from simulator.world import generate_synthetic
from simulator.world.base import Interactions

CPU = torch.device("cpu")
N_USERS, N_ITEMS = 1000, 300


class FixedModel:
    """A recommender whose scores are a fixed (n_users, n_items) matrix."""

    def __init__(self, scores: np.ndarray, predicts_ratings: bool = False) -> None:
        self.table = torch.as_tensor(scores, dtype=torch.float32)
        self.n_users, self.n_items = self.table.shape
        self.predicts_ratings = predicts_ratings
        self.device = CPU
        self.score_calls: list[int] = []
        self.grad_enabled: list[bool] = []

    def score(self, users: torch.Tensor) -> torch.Tensor:
        self.score_calls.append(len(users))
        self.grad_enabled.append(torch.is_grad_enabled())
        return self.table[users]

    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        self.grad_enabled.append(torch.is_grad_enabled())
        return self.table[torch.as_tensor(users), torch.as_tensor(items)].numpy()


def _table(users: list[int], items: list[int], ratings: list[float] | None = None) -> Interactions:
    n = len(users)
    values = np.full(n, 4.0) if ratings is None else np.asarray(ratings)
    return Interactions(
        np.asarray(users, np.int64), np.asarray(items, np.int64), values.astype(np.float32),
        np.arange(n, dtype=np.int64),
    )


def _reference_percentiles(scores: np.ndarray, data: Interactions, users: np.ndarray) -> np.ndarray:
    """Mean percentile rank per user by scipy's average ranks, one user at a time."""
    n = scores.shape[1]
    out = np.full(len(users), np.nan)
    for k, u in enumerate(users):
        items = data.item[data.user == u]
        if len(items):
            ascending = rankdata(scores[u], method="average") - 1  # 0 = bottom
            out[k] = np.mean(ascending[items] / (n - 1))
    return out


# -- membership_scores ---------------------------------------------------------------------------
def test_percentile_rank_by_hand() -> None:
    scores = np.array([[5.0, 4.0, 3.0, 2.0, 1.0], [1.0, 1.0, 1.0, 1.0, 1.0]])
    model = FixedModel(scores)
    data = _table([0, 0, 0, 1], [0, 4, 2, 3])
    got = membership_scores(model, data, np.array([0, 1]))
    # User 0: top item 1, bottom item 0, middle item 0.5; user 1: five-way tie, mid rank.
    np.testing.assert_allclose(got, [(1.0 + 0.0 + 0.5) / 3, 0.5])
    assert all(not g for g in model.grad_enabled)


def test_ranking_scores_match_reference_across_chunks(monkeypatch) -> None:
    rng = np.random.default_rng(3)
    scores = rng.integers(0, 6, size=(37, 11)).astype(np.float64)  # many ties
    model = FixedModel(scores)
    rows = rng.integers(0, 37, 150), rng.integers(0, 11, 150)
    data = _table(list(rows[0]), list(rows[1]))
    users = rng.permutation(40)[:30]
    users = users[users < 37]
    expected = _reference_percentiles(scores, data, users)
    monkeypatch.setattr(membership, "USER_CHUNK", 4)
    got = membership_scores(model, data, users)
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    assert max(model.score_calls) <= 4 and len(model.score_calls) > 1


def test_rating_scores_are_minus_mse() -> None:
    predicted = np.array([[3.0, 4.0, 5.0], [1.0, 1.0, 1.0], [2.0, 2.0, 2.0]])
    model = FixedModel(predicted, predicts_ratings=True)
    data = _table([0, 0, 1, 1, 1], [0, 2, 0, 1, 2], [4.0, 5.0, 1.0, 3.0, 5.0])
    got = membership_scores(model, data, np.array([1, 0, 2]))
    np.testing.assert_allclose(got, [-(0.0 + 4.0 + 16.0) / 3, -(1.0 + 0.0) / 2, np.nan])
    assert model.score_calls == []
    assert all(not g for g in model.grad_enabled)


def test_scores_follow_requested_order_with_nan_for_unrated_users() -> None:
    model = FixedModel(np.tile(np.arange(4.0), (5, 1)))
    data = _table([1, 3, 3, 0], [3, 0, 3, 2])  # user 4 and user 2 have no ratings
    got = membership_scores(model, data, np.array([3, 4, 1, 3, 2]))
    assert got.shape == (5,) and got.dtype == np.float64
    np.testing.assert_allclose(got, [0.5, np.nan, 1.0, 0.5, np.nan])
    assert membership_scores(model, data, np.zeros(0, np.int64)).shape == (0,)
    empty = membership_scores(model, Interactions.empty(), np.array([0, 1]))
    assert np.isnan(empty).all()


def test_scores_ignore_ratings_of_other_users() -> None:
    model = FixedModel(np.tile(np.arange(4.0), (3, 1)))
    alone = membership_scores(model, _table([0], [3]), np.array([0]))
    mixed = membership_scores(model, _table([2, 0, 1], [0, 3, 0]), np.array([0]))
    np.testing.assert_array_equal(alone, mixed)


@pytest.mark.parametrize(
    ("users", "message"),
    [
        (np.array([[0, 1]]), "users must be a 1-D array"),
        (np.array([0.0, 1.0]), "users must be a 1-D array"),
        (np.array([-1]), "users must be non-negative"),
        (np.array([3]), r"users must lie in \[0, 3\)"),
    ],
)
def test_bad_users_raise(users: np.ndarray, message: str) -> None:
    model = FixedModel(np.zeros((3, 4)))
    with pytest.raises(ValueError, match=message):
        membership_scores(model, _table([0], [1]), users)


def test_bad_items_and_bad_model_output_raise() -> None:
    model = FixedModel(np.zeros((3, 4)))
    with pytest.raises(ValueError, match=r"ratings.item must lie in \[0, 4\)"):
        membership_scores(model, _table([0], [4]), np.array([0]))
    nan_model = FixedModel(np.array([[0.0, np.nan], [1.0, 2.0]]))
    with pytest.raises(ValueError, match="non-finite"):
        membership_scores(nan_model, _table([0], [1]), np.array([0]))
    narrow = FixedModel(np.zeros((3, 4)))
    narrow.n_items = 5
    with pytest.raises(ValueError, match="must return shape"):
        membership_scores(narrow, _table([0], [1]), np.array([0]))


# -- membership_inference ------------------------------------------------------------------------
def test_perfect_separation() -> None:
    result = membership_inference(np.linspace(2.0, 3.0, 50), np.linspace(0.0, 1.0, 200))
    assert result == MembershipResult(1.0, 1.0, 50, 200)


def test_identical_distributions_give_chance() -> None:
    rng = np.random.default_rng(0)
    result = membership_inference(rng.normal(size=4000), rng.normal(size=4000))
    assert abs(result.auc - 0.5) < 0.03
    assert result.tpr_at_1pct_fpr < 0.03


def test_reversed_separation_and_ties() -> None:
    assert membership_inference(np.zeros(10), np.ones(10)).auc == 0.0
    tied = membership_inference(np.ones(10), np.ones(10))
    assert tied.auc == 0.5 and tied.tpr_at_1pct_fpr == 0.0


def test_threshold_keeps_false_positive_rate_at_most_one_percent() -> None:
    nonmembers = np.arange(1000.0)  # 99th percentile, method "higher": 990
    members = np.array([989.0, 990.0, 990.5, 991.0])
    result = membership_inference(members, nonmembers)
    assert result.tpr_at_1pct_fpr == 0.5
    assert np.mean(nonmembers > 990.0) <= 0.01


def test_nan_scores_are_dropped() -> None:
    result = membership_inference(
        np.array([2.0, np.nan, 3.0]), np.array([np.nan, 0.0, 1.0, np.nan])
    )
    assert result == MembershipResult(1.0, 1.0, 2, 2)


def test_empty_side_gives_nan() -> None:
    for members, nonmembers in [(np.array([np.nan]), np.array([1.0])), (np.ones(3), [])]:
        result = membership_inference(np.asarray(members), np.asarray(nonmembers))
        assert np.isnan(result.auc) and np.isnan(result.tpr_at_1pct_fpr)
    assert membership_inference(np.ones(3), np.zeros(0)).n_members == 3


def test_bad_scores_raise() -> None:
    with pytest.raises(ValueError, match="member_scores must be finite or NaN"):
        membership_inference(np.array([np.inf, 1.0]), np.zeros(3))
    with pytest.raises(ValueError, match="nonmember_scores must be a 1-D array"):
        membership_inference(np.zeros(3), np.zeros((3, 1)))


# -- deletion audits of trained models ---------------------------------------------------------
@pytest.fixture(scope="module")
def split() -> tuple[Interactions, Interactions, Interactions]:
    """(ratings of deleted users A, of never-seen users B, of the remaining users C)."""
    ratings = generate_synthetic(
        n_users=N_USERS, n_items=N_ITEMS, seed=0, mean_ratings_per_user=20
    ).ratings
    perm = np.random.default_rng(0).permutation(N_USERS)
    a, b = perm[:400], perm[400:800]
    in_a, in_b = np.isin(ratings.user, a), np.isin(ratings.user, b)
    return ratings.subset(in_a), ratings.subset(in_b), ratings.subset(~(in_a | in_b))


def _bpr() -> BPR:
    return BPR(N_USERS, N_ITEMS, ModelParams(factors=32, reg=0.0), CPU, seed=0)


def _mf() -> MF:
    return MF(N_USERS, N_ITEMS, ModelParams(factors=32, reg=0.0, lr=0.05), CPU, seed=0)


@pytest.mark.parametrize("make", [_bpr, _mf])
def test_audit_detects_memorised_users_and_not_after_retraining(make, split) -> None:
    deleted, never_seen, rest = split
    model = make()
    model.fit(Interactions.concat([deleted, rest]), 50)
    before = deletion_audit(model, deleted, never_seen)
    assert before.n_members == 400 and before.n_nonmembers == 400
    assert before.auc > 0.9 and before.tpr_at_1pct_fpr > 0.5, before

    model.fit(rest, 50)  # cold start from the same seed, without the deleted users
    after = deletion_audit(model, deleted, never_seen)
    assert abs(after.auc - 0.5) < 0.1, after
    assert after.tpr_at_1pct_fpr < 0.1, after


def test_scores_are_deterministic_for_a_seed(split) -> None:
    deleted, _, rest = split
    data = Interactions.concat([deleted, rest])
    users = np.arange(N_USERS)
    runs = []
    for _ in range(2):
        model = _bpr()
        model.fit(data, 5)
        runs.append(membership_scores(model, deleted, users))
    np.testing.assert_array_equal(runs[0], runs[1])
    np.testing.assert_array_equal(runs[0], membership_scores(model, deleted, users))
    assert np.isnan(runs[0]).sum() == N_USERS - len(np.unique(deleted.user))


def test_audit_rejects_users_on_both_sides(split) -> None:
    deleted, never_seen, _ = split
    with pytest.raises(ValueError, match="deleted and never_seen must hold different users"):
        deletion_audit(_mf(), deleted, Interactions.concat([never_seen, deleted.subset([0])]))
