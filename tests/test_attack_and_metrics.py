"""The inference attacker's classifiers and the accuracy / leakage / group metrics."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from simulator.attacks.inference import (
    CLASSIFIERS,
    infer_attribute,
    make_classifier,
    pick_best,
)
from simulator.metrics.classification import (
    balanced_accuracy,
    binary_auc,
    leakage_scores,
    macro_ovr_auc,
)
from simulator.metrics.errors_and_hits import RankingEvaluator, popularity_scores, rating_errors
from simulator.metrics.groups import build_groups, involvement_groups
from simulator.world.base import Interactions


def _known(n: int, fraction: float = 0.5, seed: int = 0) -> np.ndarray:
    known = np.zeros(n, dtype=bool)
    known[np.random.default_rng(seed).permutation(n)[: int(n * fraction)]] = True
    return known


@pytest.mark.parametrize("classifier", ["logreg", "xgboost"])
def test_attacker_finds_a_planted_signal(classifier: str) -> None:
    rng = np.random.default_rng(0)
    labels = (rng.random(800) < 0.3).astype(np.int64)
    x = rng.normal(size=(800, 8))
    x[:, 0] += 1.5 * labels
    known = _known(800)
    (outcome,) = infer_attribute(x, labels, known, 2, [classifier], folds=5, seed=0)
    scores = leakage_scores(labels[~known], outcome.proba[~known])
    assert scores["auc"] > 0.75
    assert scores["bacc"] > 0.65
    assert outcome.cv_auc > 0.75


@pytest.mark.parametrize("classifier", ["logreg", "xgboost"])
def test_attacker_is_at_chance_without_signal(classifier: str) -> None:
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 7, size=1500)
    x = rng.normal(size=(1500, 16))
    known = _known(1500)
    (outcome,) = infer_attribute(x, labels, known, 7, [classifier], folds=5, seed=0)
    scores = leakage_scores(labels[~known], outcome.proba[~known])
    assert abs(scores["auc"] - 0.5) < 0.05
    assert abs(scores["bacc"] - 1 / 7) < 0.05


def test_attacker_handles_classes_missing_from_known_users() -> None:
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 3, size=300)
    labels[:5] = 6  # class 6 only among users the attacker does not know
    known = np.ones(300, dtype=bool)
    known[:5] = False
    outcomes = infer_attribute(rng.normal(size=(300, 4)), labels, known, 7,
                               list(CLASSIFIERS), folds=3, seed=0)
    for outcome in outcomes:
        assert outcome.proba.shape == (300, 7)
        assert np.allclose(outcome.proba.sum(1), 1.0)
        assert np.all(outcome.proba[:, 6] == 0)
    assert [o.classifier for o in outcomes] == list(CLASSIFIERS)
    assert pick_best(outcomes).classifier in CLASSIFIERS


def test_every_classifier_reads_sparse_features() -> None:
    rng = np.random.default_rng(3)
    labels = (rng.random(400) < 0.4).astype(np.int64)
    # Multi-hot rows; users of class 1 pick items 0..9 more often.
    p = np.full((400, 60), 0.08)
    p[labels == 1, :10] = 0.4
    x = sp.csr_matrix((rng.random((400, 60)) < p).astype(np.float32))
    known = _known(400)
    outcomes = infer_attribute(x, labels, known, 2, list(CLASSIFIERS), folds=3, seed=0)
    for outcome in outcomes:
        assert outcome.proba.shape == (400, 2)
        auc = leakage_scores(labels[~known], outcome.proba[~known])["auc"]
        assert auc > 0.8, outcome.classifier


def test_unknown_classifier() -> None:
    with pytest.raises(ValueError, match="unknown classifier 'oracle'.*'mlp', 'forest'"):
        make_classifier("oracle", 0)


def test_leakage_scores_of_a_majority_guess() -> None:
    y = np.array([1] * 70 + [0] * 30)
    proba = np.tile([0.2, 0.8], (100, 1))
    scores = leakage_scores(y, proba)
    assert scores["acc"] == pytest.approx(0.7)
    assert scores["majority"] == pytest.approx(0.7)
    assert scores["bacc"] == pytest.approx(0.5)
    assert scores["auc"] == pytest.approx(0.5)
    assert scores["bacc_chance"] == pytest.approx(0.5)


def test_rank_auc_matches_sklearn() -> None:
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(4)
    y = rng.integers(0, 4, size=500)
    proba = rng.dirichlet(np.ones(4), size=500)
    tied = np.round(proba[:, 1], 1)  # many ties
    assert binary_auc(y == 1, tied) == pytest.approx(roc_auc_score(y == 1, tied))
    expected = roc_auc_score(y, proba, multi_class="ovr", average="macro")
    assert macro_ovr_auc(y, proba) == pytest.approx(expected)


def test_macro_auc_and_bacc_edge_cases() -> None:
    assert np.isnan(macro_ovr_auc(np.zeros(5, dtype=int), np.ones((5, 2)) / 2))
    y = np.array([0, 1, 2, 2])
    perfect = np.eye(3)[y]
    assert macro_ovr_auc(y, perfect) == 1.0
    assert balanced_accuracy(y, np.array([0, 1, 2, 0])) == pytest.approx((1 + 1 + 0.5) / 3)


def _table(users: list[int], items: list[int], ratings: list[float] | None = None) -> Interactions:
    n = len(users)
    return Interactions(np.array(users), np.array(items),
                        np.array(ratings or [4.0] * n, dtype=np.float32), np.arange(n))


def test_ranking_evaluator_counts_hits_and_excludes_seen_items() -> None:
    test = _table([0, 0, 1], [3, 4, 2])
    evaluator = RankingEvaluator(test, n_users=3, n_items=5, k=2, device=torch.device("cpu"))
    table = torch.tensor([[5.0, 4, 3, 2, 1], [0, 0, 1, 0, 0], [1, 1, 1, 1, 1]])
    score = lambda users: table[users]  # noqa: E731
    # user 0 has seen items 0 and 1, so its top-2 become 2 and 3: one hit, at rank 2.
    hits = evaluator.evaluate(score, np.array([0, 0]), np.array([0, 1]))
    assert hits.hit[0] == 1.0 and hits.hit[1] == 1.0
    assert np.isnan(hits.hit[2])
    ideal = 1 + 1 / np.log2(3)
    assert hits.ndcg[0] == pytest.approx((1 / np.log2(3)) / ideal)
    assert hits.ndcg[1] == pytest.approx(1.0)
    # without exclusion user 0's top-2 (items 0, 1) miss.
    assert evaluator.evaluate(score, np.zeros(0, int), np.zeros(0, int)).hit[0] == 0.0


def test_popularity_baseline_ranks_by_count() -> None:
    score = popularity_scores(np.array([2, 2, 2, 1, 1, 0]), 4, torch.device("cpu"))
    assert torch.argsort(score(torch.tensor([0]))[0], descending=True).tolist() == [2, 1, 0, 3]


def test_popularity_baseline_without_a_score_table_matches_full_ranking() -> None:
    rng = np.random.default_rng(3)
    n_users, n_items = 60, 40
    seen_user = rng.integers(0, n_users, 700)
    seen_item = np.minimum(rng.zipf(1.6, 700) - 1, n_items - 1)  # heavy ties in the tail
    test = _table(list(rng.integers(0, n_users - 5, 150)), list(rng.integers(0, n_items, 150)))
    for k in (1, 5, 10):
        evaluator = RankingEvaluator(test, n_users=n_users, n_items=n_items, k=k,
                                     device=torch.device("cpu"), chunk=16)
        dense = evaluator.evaluate(popularity_scores(seen_item, n_items, torch.device("cpu")),
                                   seen_user, seen_item)
        fast = evaluator.evaluate_popularity(seen_user, seen_item)
        assert np.array_equal(np.isnan(fast.hit), np.isnan(dense.hit))
        assert np.nansum(fast.hit) > 0
        np.testing.assert_allclose(fast.hit, dense.hit, equal_nan=True)
        np.testing.assert_allclose(fast.ndcg, dense.ndcg, rtol=1e-6, equal_nan=True)


def test_rating_errors_sum_per_user() -> None:
    test = _table([0, 0, 1], [0, 1, 0], [5.0, 3.0, 1.0])
    errors = rating_errors(lambda u, i: np.full(len(u), 3.0), test, n_users=3)
    assert errors.abs_sum.tolist() == [2.0, 2.0, 0.0]
    assert errors.count.tolist() == [2, 1, 0]
    assert errors.sq_sum.tolist() == [4.0, 4.0, 0.0]


def test_involvement_groups_are_low_median_high() -> None:
    counts = np.arange(100)[::-1] + 20
    label = involvement_groups(counts, 0.05)
    assert np.bincount(label[label >= 0]).tolist() == [5, 5, 5]
    assert counts[label == 0].max() < counts[label == 1].min()
    assert counts[label == 1].max() < counts[label == 2].min()
    assert abs(np.median(counts[label == 1]) - np.median(counts)) <= 3


def test_build_groups_cover_types_involvement_and_attributes() -> None:
    inclination = np.array([0, 1, 1, 0])
    groups = build_groups(["a", "b"], inclination, np.array([0, -1, 2, 1]),
                          {"gender": np.array([0, 1, 1, 1])}, {"gender": ("F", "M")})
    names = {(g.kind, g.name): int(g.mask.sum()) for g in groups}
    assert names == {("all", "all"): 4, ("inclination", "a"): 2, ("inclination", "b"): 2,
                     ("involvement", "Low"): 1, ("involvement", "Med"): 1,
                     ("involvement", "High"): 1, ("gender", "F"): 1, ("gender", "M"): 3}


def test_disclosure_groups_bucket_users_by_disclosed_share() -> None:
    from simulator.metrics.groups import disclosure_groups

    fraction = np.array([np.nan, 0.0, 0.25, 0.625, 1.0])  # of 0, 4, 4, 8, 10 experienced
    groups = disclosure_groups(np.array([0, 0, 1, 5, 10]), fraction)
    members = {g.name: np.flatnonzero(g.mask).tolist() for g in groups}
    assert members == {"none": [0, 1], "under_half": [2], "half_or_more": [3], "all": [4]}
