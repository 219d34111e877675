"""Lists ranked by a consumption task learned beside the ratings (`platform.ranking`)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from simulator.foundations.errors import ScenarioError
from simulator.recommenders.base import ModelParams
from simulator.recommenders.consumption import ConsumptionRanked, consumption_table
from simulator.recommenders.mf import MF
from simulator.scenario.loading import build_scenario
from simulator.world.base import Interactions
from tests.planted import TINY_METAMF
from tests.test_recommenders import N_ITEMS, N_USERS, _hit_rate, _planted

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def planted() -> tuple[Interactions, Interactions]:
    """(training part, one held-out rating per user) of the recommender tests' table."""
    data, held, train = _planted()
    return data.subset(train), data.subset(held)


def _popularity_hit_rate(train: Interactions, test: Interactions) -> float:
    counts = np.bincount(train.item, minlength=N_ITEMS).astype(float)
    return _hit_rate(np.tile(counts, (N_USERS, 1)), train, test)


def test_the_consumption_table_adds_rated_items_and_sampled_negatives() -> None:
    data = Interactions(np.array([0, 0, 1]), np.array([2, 5, 1]),
                        np.array([4.0, 2.0, 5.0], np.float32), np.array([7, 8, 9]))
    joint = consumption_table(data, 10, 3, np.random.default_rng(0), offset=3.0)
    assert len(joint) == 3 + 3 + 9
    np.testing.assert_array_equal(joint.item[:3], data.item)  # the ratings, unchanged
    np.testing.assert_array_equal(joint.item[3:6], data.item + 10)  # consumed, second half
    assert (joint.item[6:] >= 10).all() and (joint.item[6:] < 20).all()
    np.testing.assert_array_equal(joint.user[6:], [0, 0, 0, 0, 0, 0, 1, 1, 1])
    consumed, sampled = joint.rating[3:6], joint.rating[6:]
    assert np.allclose(consumed - sampled[0], 1.0) and np.ptp(sampled) == 0
    assert np.isclose(joint.rating[3:].mean(), 3.0)  # centred on the offset


def test_mf_ranked_by_consumption_beats_popularity_and_its_own_ratings(planted) -> None:
    train, test = planted
    ranked = ConsumptionRanked("mf", N_USERS, N_ITEMS, ModelParams(factors=8), CPU, 0,
                               negatives=4)
    ranked.fit(train, 30)
    plain = MF(N_USERS, N_ITEMS, ModelParams(factors=8), CPU, 0)
    plain.fit(train, 30)
    users = torch.arange(N_USERS)
    consumption = _hit_rate(ranked.score(users).numpy(), train, test)
    by_rating = _hit_rate(plain.score(users).numpy(), train, test)
    assert consumption > _popularity_hit_rate(train, test) + 0.05
    assert consumption > by_rating + 0.1
    # Predicted ratings stay predictions of ratings: well below the mean rating's error.
    mae = np.abs(ranked.predict(test.user, test.item) - test.rating).mean()
    mean_mae = np.abs(train.rating.mean() - test.rating).mean()
    assert mae < 0.8 * mean_mae


def test_metamf_head_scores_consumption_and_keeps_ratings_apart(planted) -> None:
    train, test = planted
    params = ModelParams(batch_size=128, options={**TINY_METAMF, "validation": 0.0})
    ranked = ConsumptionRanked("metamf", N_USERS, N_ITEMS, params, CPU, 0, negatives=4)
    ranked.fit(train, 10)
    users = torch.arange(N_USERS)
    scores = ranked.score(users)
    assert scores.shape == (N_USERS, N_ITEMS)
    assert ranked.item_embeddings().shape == (N_ITEMS, TINY_METAMF["memory_dim"])
    # The substitute-user scorer agrees with the model on both tasks.
    scorer = ranked.user_scorer()
    emb = torch.as_tensor(ranked.user_embeddings())
    torch.testing.assert_close(scorer.full(emb, users[:5]), scores[:5])
    pairs_u, pairs_i = torch.as_tensor(test.user[:20]), torch.as_tensor(test.item[:20])
    torch.testing.assert_close(scorer.pairs(emb, pairs_u, pairs_i), scores[pairs_u, pairs_i])
    rated = scorer.rating_pairs(emb, pairs_u, pairs_i).clamp(1, 5).detach().numpy()
    np.testing.assert_allclose(rated, ranked.predict(test.user[:20], test.item[:20]), rtol=1e-5)
    # Consumed items score above the sampled unconsumed ones after training.
    assert scores[train.user, train.item].mean() > scores.mean() + 0.03


def _platform(**platform: object) -> dict:
    return {"name": "t", "platform": platform}


@pytest.mark.parametrize(("platform", "method"), [
    ({"model": "mf"}, "consumption"),
    ({"model": "metamf"}, "consumption"),
    ({"model": "bpr"}, "score"),
    ({"model": "mf", "defenses": {"dp": {"noise_multiplier": 1.0}}}, "score"),
    ({"model": "mf", "ranking": {"method": "score"}}, "score"),
])
def test_the_default_ranking_is_resolved_and_written(platform, method) -> None:
    scenario = build_scenario(_platform(**platform), "t.yaml")
    assert scenario.platform.ranking.method == method
    assert (scenario.platform.ranking.negatives is None) == (method == "score")


def test_an_item_owner_keeps_the_rating_models_own_ranking() -> None:
    owner = {"kind": "item_perturbation", "target": "embedding"}
    scenario = build_scenario({"name": "t", "platform": {"model": "mf"}, "attackers": [owner]},
                              "t.yaml")
    assert scenario.platform.ranking.method == "score"


def test_a_model_change_that_changes_the_ranking_is_listed_as_a_change() -> None:
    from simulator.experiments.catalog import load_scenario

    scenario = load_scenario("quickstart", ["platform.model=mf"])
    assert scenario.platform.ranking.method == "consumption"
    assert scenario.changes == ("platform.model", "platform.ranking")
    same = load_scenario("quickstart", ["platform.model=mf", "platform.ranking.method=score"])
    assert same.changes == ("platform.model",)


@pytest.mark.parametrize(("settings", "words"), [
    ({"platform": {"model": "bpr", "ranking": {"method": "consumption"}}},
     "bpr ranks by its own objective"),
    ({"platform": {"model": "mf", "ranking": {"method": "consumption"},
                   "defenses": {"dp": {"noise_multiplier": 1.0}}}}, "defenses.dp"),
    ({"platform": {"model": "metamf", "ranking": {"method": "consumption"}},
      "attackers": [{"kind": "item_perturbation", "target": "embedding"}]},
     "set platform.ranking.method: score"),
])
def test_impossible_rankings_are_refused(settings, words) -> None:
    with pytest.raises(ScenarioError, match=words):
        build_scenario({"name": "t", **settings}, "t.yaml")
