"""Tests of the calibrated (LiRA-style) membership-inference attack at user level."""

from __future__ import annotations

import numpy as np
import pytest

from simulator.attacks.calibrated_membership import calibrated_attack, likelihood_ratios
from simulator.attacks.membership import deletion_audit
from simulator.recommenders.base import ModelParams
from simulator.recommenders.registry import make_recommender
from simulator.world.base import Interactions
from tests.planted import planted_ratings

N_USERS, N_ITEMS = 240, 120


@pytest.fixture(scope="module")
def tables() -> tuple[Interactions, Interactions, Interactions]:
    """(population, members, non-members): 160, 40 and 40 users of one planted table."""
    data = planted_ratings(N_USERS, N_ITEMS, 6000, seed=0)
    return (data.subset(data.user >= 80), data.subset(data.user < 40),
            data.subset((data.user >= 40) & (data.user < 80)))


def _train(table: Interactions, seed: int):
    """The platform's recipe: MF, 8 factors, its default regularisation, 20 epochs."""
    model = make_recommender("mf", N_USERS, N_ITEMS, ModelParams(factors=8), "cpu", seed)
    model.fit(table, 20)
    return model


def test_it_finds_members_the_threshold_attack_misses(tables) -> None:
    population, members, nonmembers = tables
    target = _train(Interactions.concat([population, members]), 123)
    threshold = deletion_audit(target, members, nonmembers)
    calibrated = calibrated_attack(target, _train, population, members, nonmembers,
                                   n_references=8, seed=0)
    assert calibrated.auc > threshold.auc + 0.1, (calibrated.auc, threshold.auc)
    assert calibrated.tpr_at_1pct_fpr > threshold.tpr_at_1pct_fpr + 0.3
    assert 0.0 <= calibrated.tpr_at_01pct_fpr <= calibrated.tpr_at_1pct_fpr
    assert calibrated.fpr[0] == 0.0 and calibrated.tpr[-1] == 1.0
    again = calibrated_attack(target, _train, population, members, nonmembers,
                              n_references=8, seed=0)
    np.testing.assert_array_equal(again.scores, calibrated.scores)  # reproducible
    np.testing.assert_array_equal(again.tpr, calibrated.tpr)


def test_it_finds_nothing_in_a_model_that_never_saw_the_candidates(tables) -> None:
    population, members, nonmembers = tables
    never = _train(population, 123)
    result = calibrated_attack(never, _train, population, members, nonmembers,
                               n_references=8, seed=0)
    assert abs(result.auc - 0.5) < 0.15, result.auc


def test_likelihood_ratios_follow_the_in_and_out_scores() -> None:
    inside = np.array([[True, False], [False, True], [True, False], [False, True]])
    scores = np.array([[1.0, 0.0], [0.0, 1.0], [1.2, 0.2], [0.2, 1.2]])
    ratios = likelihood_ratios(np.array([1.1, 0.1]), inside, scores)
    assert ratios[0] > 0 > ratios[1]  # near its IN mean, then near its OUT mean


def test_bad_candidates_are_refused(tables) -> None:
    population, members, nonmembers = tables
    with pytest.raises(ValueError, match="different users"):
        calibrated_attack(_train(population, 0), _train, population, members, members)
    with pytest.raises(ValueError, match="population must not hold"):
        calibrated_attack(_train(population, 0), _train,
                          Interactions.concat([population, members]), members, nonmembers)
    with pytest.raises(ValueError, match="n_references must be at least 2"):
        calibrated_attack(_train(population, 0), _train, population, members, nonmembers,
                          n_references=1)
