"""Threat models of the inference attacker: feature builders and leakage on synthetic worlds."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from simulator.attacks.features import (
    build_features,
    embedding_features,
    rating_features,
    recommendation_features,
)
from simulator.attacks.inference import infer_attribute
from simulator.experiments.catalog import load_scenario
from simulator.foundations.errors import ScenarioError
from simulator.metrics.classification import leakage_scores
from simulator.recommenders.base import ModelParams, Recommender
from simulator.recommenders.registry import make_recommender
from simulator.simulation.model import PrivacyModel
from simulator.world.base import Interactions
from simulator.world.synthetic import generate_synthetic

N_USERS, N_ITEMS, SILENT = 1000, 300, 100  # the first SILENT users disclose nothing
STRONG = 3.0


@dataclasses.dataclass
class Platform:
    """A synthetic world, what its users disclosed and a recommender trained on that."""

    attributes: dict[str, np.ndarray]
    disclosed: Interactions
    recommender: Recommender


def _platform(signal: float) -> Platform:
    world = generate_synthetic(N_USERS, N_ITEMS, signal, mean_ratings_per_user=40, seed=1)
    rng = np.random.default_rng(0)
    keep = (rng.random(len(world.ratings)) < 0.6) & (world.ratings.user >= SILENT)
    disclosed = world.ratings.subset(keep)
    recommender = make_recommender(
        "bpr", N_USERS, N_ITEMS, ModelParams(factors=16), torch.device("cpu"), seed=0
    )
    recommender.fit(disclosed, 20)
    return Platform(world.attributes, disclosed, recommender)


@pytest.fixture(scope="module")
def platforms() -> dict[float, Platform]:
    return {signal: _platform(signal) for signal in (0.0, STRONG)}


def _known(n: int) -> np.ndarray:
    known = np.zeros(n, dtype=bool)
    known[np.random.default_rng(0).permutation(n)[: int(0.3 * n)]] = True
    return known


def _gender_auc(platform: Platform, threat: str, classifier: str) -> float:
    features = build_features(threat, platform.recommender, platform.disclosed, top_k=10)
    labels = platform.attributes["gender"]
    known = _known(N_USERS)
    (outcome,) = infer_attribute(features, labels, known, 2, [classifier], folds=3, seed=0)
    return leakage_scores(labels[~known], outcome.proba[~known])["auc"]


# --- feature builders --------------------------------------------------------------------


def test_rating_features_hold_disclosed_values_and_empty_rows() -> None:
    table = Interactions(np.array([0, 0, 2, 0]), np.array([1, 3, 0, 1]),
                         np.array([4.0, 2.0, 5.0, 1.0], dtype=np.float32), np.arange(4))
    x = rating_features(table, n_users=4, n_items=5)
    assert sp.issparse(x) and x.format == "csr" and x.shape == (4, 5)
    # user 0 re-rated item 1: the latest value counts, not the sum.
    assert x.toarray().tolist() == [[0, 1, 0, 2, 0], [0] * 5, [5, 0, 0, 0, 0], [0] * 5]
    assert x.nnz == 3


def test_rating_features_of_a_platform(platforms: dict[float, Platform]) -> None:
    platform = platforms[0.0]
    x = build_features("ratings", platform.recommender, platform.disclosed, top_k=10)
    assert x.shape == (N_USERS, N_ITEMS)
    assert x.nnz == len(platform.disclosed)
    per_user = np.diff(x.indptr)
    assert (per_user[:SILENT] == 0).all() and (per_user[SILENT:] > 0).all()
    assert set(np.unique(x.data)) <= {1.0, 2.0, 3.0, 4.0, 5.0}


def test_recommendations_are_the_top_k_undisclosed_items(
    platforms: dict[float, Platform],
) -> None:
    platform = platforms[STRONG]
    model, k = platform.recommender, 10
    # user 1 discloses all but three items, so it is shown only those three.
    rest = np.setdiff1d(np.arange(N_ITEMS), [5, 17, 42])
    extra = Interactions(np.ones(len(rest), np.int64), rest,
                         np.full(len(rest), 3.0, np.float32), np.zeros(len(rest), np.int64))
    disclosed = Interactions.concat([platform.disclosed, extra])
    x = recommendation_features(model, disclosed, k, chunk=128)
    assert sp.issparse(x) and x.shape == (N_USERS, N_ITEMS)
    assert set(np.unique(x.data)) == {1.0}
    per_user = np.diff(x.indptr)
    assert per_user[1] == 3 and x[1].indices.tolist() == [5, 17, 42]
    assert (np.delete(per_user, 1) == k).all()
    seen = sp.csr_matrix((np.ones(len(disclosed)), (disclosed.user, disclosed.item)),
                         shape=(N_USERS, N_ITEMS))
    assert seen.multiply(x).nnz == 0  # nothing already disclosed is recommended
    scores = model.score(torch.arange(N_USERS)).numpy()
    scores[seen.toarray() > 0] = -np.inf
    expected = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    for user in (0, 7, SILENT + 3, N_USERS - 1):
        assert set(x[user].indices) == set(expected[user])


def test_embedding_features_are_the_user_vectors(platforms: dict[float, Platform]) -> None:
    model = platforms[0.0].recommender
    x = embedding_features(model)
    assert isinstance(x, np.ndarray) and x.dtype == np.float32 and x.shape == (N_USERS, 16)
    np.testing.assert_array_equal(x, model.user_embeddings())


def test_unknown_threat_model(platforms: dict[float, Platform]) -> None:
    platform = platforms[0.0]
    with pytest.raises(ValueError, match="unknown threat model 'gossip'"):
        build_features("gossip", platform.recommender, platform.disclosed, top_k=10)


# --- leakage per threat model and classifier ----------------------------------------------


@pytest.mark.parametrize("threat", ["embedding", "recommendations", "ratings"])
def test_each_threat_leaks_with_signal_and_not_without(
    platforms: dict[float, Platform], threat: str
) -> None:
    assert abs(_gender_auc(platforms[0.0], threat, "logreg") - 0.5) < 0.07
    assert _gender_auc(platforms[STRONG], threat, "logreg") > 0.75


@pytest.mark.parametrize("classifier", ["mlp", "forest"])
def test_mlp_and_forest_find_the_signal_and_only_it(
    platforms: dict[float, Platform], classifier: str
) -> None:
    assert abs(_gender_auc(platforms[0.0], "embedding", classifier) - 0.5) < 0.07
    assert _gender_auc(platforms[STRONG], "embedding", classifier) > 0.8


def test_occupation_is_21_classes_and_outside_the_synthetic_taste(
    platforms: dict[float, Platform],
) -> None:
    platform = platforms[STRONG]
    labels = platform.attributes["occupation"]
    known = _known(N_USERS)
    features = embedding_features(platform.recommender)
    (outcome,) = infer_attribute(features, labels, known, 21, ["logreg"], folds=3, seed=0)
    assert outcome.proba.shape == (N_USERS, 21)
    np.testing.assert_allclose(outcome.proba.sum(1), 1.0, atol=1e-5)
    scores = leakage_scores(labels[~known], outcome.proba[~known])
    # Synthetic taste depends on gender and age only.
    assert abs(scores["auc"] - 0.5) < 0.07
    assert scores["bacc_chance"] < 1 / 15


@pytest.mark.parametrize("classifier", ["mlp", "forest"])
def test_sparse_attack_is_deterministic(platforms: dict[float, Platform], classifier: str) -> None:
    platform = platforms[STRONG]
    x = build_features("ratings", platform.recommender, platform.disclosed, top_k=10)[:120]
    labels = platform.attributes["gender"][:120]
    known = _known(120)
    runs = [infer_attribute(x, labels, known, 2, [classifier], folds=2, seed=3)[0]
            for _ in range(2)]
    np.testing.assert_array_equal(runs[0].proba, runs[1].proba)
    assert runs[0].cv_auc == runs[1].cv_auc


# --- scenario wiring -------------------------------------------------------------------------

SMALL = [
    "world.n_users=300", "world.n_items=200", "world.mean_ratings_per_user=30",
    "world.signal=3.0", "simulation.steps=1", "simulation.device=cpu",
    "platform.first_epochs=10", "attackers.0.folds=3", "attackers.0.classifiers=[logreg]",
    "attackers.0.attributes=[gender]",
]


@pytest.mark.parametrize("threat", ["recommendations", "ratings"])
def test_simulation_attacks_through_the_configured_threat(threat: str) -> None:
    scenario = load_scenario("quickstart", [*SMALL, f"attackers.0.threat={threat}",
                                            "attackers.0.top_k=5"])
    model = PrivacyModel(scenario)
    assert model.attacker is not None and model.attacker.threat == threat
    assert model.attacker.top_k == 5
    model.run()
    assert model.records.metrics[-1]["leak_gender_auc"] > 0.6
    (event,) = [e for e in model.records.events if e["kind"] == "attribute_inference"]
    assert f'"threat": "{threat}"' in event["detail"]


@pytest.mark.parametrize(("key", "value"), [("threat", "gossip"), ("classifiers", "[svm]"),
                                            ("top_k", "0")])
def test_bad_attacker_config_names_its_key(key: str, value: str) -> None:
    # The problem is named by the --set that wrote it, not by the scenario file.
    named = rf"^--set 'attackers\.0\.{key}=.*': attackers\.0\.{key}"
    with pytest.raises(ScenarioError, match=named):
        load_scenario("quickstart", [f"attackers.0.{key}={value}"])


def test_attribute_missing_from_the_world_names_the_attacker_key() -> None:
    scenario = load_scenario("quickstart", [*SMALL, "attackers.0.attributes=[gender, occupation]"])
    world = generate_synthetic(300, 200, 1.0, mean_ratings_per_user=30, seed=0)
    attributes = {k: v for k, v in world.attributes.items() if k != "occupation"}
    world = dataclasses.replace(world, attributes=attributes)
    with pytest.raises(ScenarioError, match=r"attackers\.0\.attributes: .* no occupation"):
        PrivacyModel(scenario, world=world)
