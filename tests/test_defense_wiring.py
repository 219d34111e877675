"""Defenses as scenario switches: each acts from its start step inside a running simulation."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from simulator.defenses.dp.defense import PrivateTraining
from simulator.experiments.catalog import load_scenario
from simulator.foundations.errors import ScenarioError
from simulator.simulation.model import PrivacyModel

TINY = [
    "world.n_users=200", "world.n_items=150", "world.mean_ratings_per_user=30",
    "simulation.steps=4", "simulation.device=cpu", "platform.retrain_every=2",
    "platform.first_epochs=8", "platform.epochs=2", "attackers.0.folds=3",
    "attackers.0.classifiers=[logreg]",
]


def _run(*extra: str) -> PrivacyModel:
    model = PrivacyModel(load_scenario("quickstart", [*TINY, *extra]))
    model.run()
    return model


def _retrains(model: PrivacyModel) -> pd.DataFrame:
    events = pd.DataFrame(model.records.events)
    retrains = events[events["kind"] == "retrain"].copy()
    retrains["detail"] = retrains["detail"].map(json.loads)
    return retrains


def test_dp_starts_at_its_step_and_fills_the_ledger() -> None:
    model = _run("platform.model=mf", "platform.defenses.dp={noise_multiplier: 1.0, start_step: 2}")
    retrains = _retrains(model)
    assert [d["defenses"] for d in retrains["detail"]] == [[], ["dp"]]
    metrics = pd.DataFrame(model.records.metrics)
    assert metrics["dp_epsilon_retrain"].isna().tolist() == [True, True, False, False]
    assert metrics["dp_epsilon_user_max"].iloc[-1] == pytest.approx(
        metrics["dp_epsilon_retrain"].iloc[-1]
    )
    dp = model.platform.defenses.get("dp")
    assert isinstance(dp, PrivateTraining)
    users = dp.ledger.user_epsilons()
    assert users.max() > 0
    assert np.all(users[model.population.n_disclosed == 0] == 0)


def test_first_dp_retrain_never_continues_a_non_private_model() -> None:
    model = _run(
        "platform.model=mf", "simulation.steps=6", "platform.warm_start=true",
        "platform.defenses.dp={noise_multiplier: 1.0, start_step: 2}",
    )
    retrains = _retrains(model)
    defenses = [d["defenses"] for d in retrains["detail"]]
    warm = [d["warm_start"] for d in retrains["detail"]]
    assert defenses == [[], ["dp"], ["dp"]]
    assert warm == [False, False, True]


def test_adversarial_training_switches_on_mid_run() -> None:
    model = _run("platform.defenses.adversarial={attributes: [gender, age], start_step: 2}")
    retrains = _retrains(model)
    assert [d["defenses"] for d in retrains["detail"]] == [[], ["adversarial"]]
    metrics = pd.DataFrame(model.records.metrics)
    accuracy = metrics["adversary_readout_acc_gender"]
    assert accuracy.isna().tolist() == [True, True, False, False]
    assert 0.0 <= accuracy.iloc[-1] <= 1.0


def test_unlearning_only_for_users_who_ask() -> None:
    # One step, one retrain: the edit is the only difference from the plain run.
    before = _run("simulation.steps=1")
    model = _run(
        "simulation.steps=1", "population.types.fundamentalist.unlearning_share=1.0",
        "platform.defenses.unlearning={scope: requested, steps: 30, stop: steps}",
    )
    asks = model.population.asks_unlearning
    fundamentalist = model.population.type_names.index("fundamentalist")
    assert np.array_equal(asks, model.population.inclination == fundamentalist)
    metrics = pd.DataFrame(model.records.metrics)
    assert metrics["unlearning_users"].iloc[-1] == asks.sum()
    assert metrics["unlearning_distance_after"].iloc[-1] < metrics[
        "unlearning_distance_before"
    ].iloc[-1]
    # Rows of users who did not ask are the plain model's.
    plain = before.platform.recommender.user_embeddings()
    edited = model.platform.recommender.user_embeddings()
    np.testing.assert_array_equal(edited[~asks], plain[~asks])
    assert not np.allclose(edited[asks], plain[asks])


def _true_ratings(model: PrivacyModel) -> np.ndarray:
    """The world's rating of every (user, item) the platform holds."""
    truth, held, n_items = model.train, model.platform.data.table, model.world.n_items
    truth_key = truth.user * n_items + truth.item
    order = np.argsort(truth_key)
    where = np.searchsorted(truth_key[order], held.user * n_items + held.item)
    return truth.rating[order][where]


def test_local_perturbation_changes_what_the_platform_holds_from_its_step() -> None:
    model = PrivacyModel(load_scenario("quickstart", [
        *TINY, "platform.model=mf",
        "population.perturbation={mechanism: randomized_response, epsilon: 0.5, start_step: 2}",
    ]))
    model.step()
    model.step()
    np.testing.assert_array_equal(model.platform.data.table.rating, _true_ratings(model))
    model.step()
    changed = model.platform.data.table.rating != _true_ratings(model)
    assert 0.2 < changed.mean() < 0.7  # only the ratings sent from step 2 on


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("platform.defenses.unlearning={utility: model}", "voids defenses.dp's epsilon"),
        ("platform.defenses.dp.noise_multipler=1", "unknown key"),
    ],
)
def test_bad_defense_settings_are_named(override: str, message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        load_scenario("quickstart", ["platform.defenses.dp={noise_multiplier: 1.0}", override])
