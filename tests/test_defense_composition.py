"""Every defense a retrain lists has acted: removing any one of them changes the model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from simulator.experiments.catalog import load_scenario
from simulator.foundations.errors import ScenarioError
from simulator.simulation.model import PrivacyModel

TINY = [
    "world.n_users=160", "world.n_items=120", "world.mean_ratings_per_user=30",
    "world.signal=2.0", "simulation.steps=1", "simulation.device=cpu",
    "platform.model=mf", "platform.first_epochs=4", "attackers=[]",
]
SETTINGS = {
    "apr": "{epsilon: 0.5, weight: 1.0}",
    "dp": "{noise_multiplier: 1.0}",
    "adversarial": "{attributes: [gender], weight: 1.0}",
    "unlearning": "{attribute: gender, stop: steps, steps: 20}",
    "detection": "{method: threshold, assumed_attack_size: 0.05}",
}
COMBINATIONS = [
    ("apr",), ("dp",), ("adversarial",), ("unlearning",), ("detection",),
    ("dp", "apr"), ("adversarial", "apr"), ("adversarial", "unlearning"),
    ("dp", "unlearning"), ("detection", "dp", "apr"), ("dp", "adversarial"),
    ("detection", "adversarial"), ("detection", "unlearning"),
]


def _train(defenses: tuple[str, ...]) -> tuple[list[str], np.ndarray]:
    """The defenses the retrain listed, and the trained parameters (users, then items)."""
    sets = [f"platform.defenses.{name}={SETTINGS[name]}" for name in defenses]
    model = PrivacyModel(load_scenario("quickstart", [*TINY, *sets]))
    model.run()
    retrain = next(e for e in model.records.events if e["kind"] == "retrain")
    recommender = model.platform.recommender
    params = np.concatenate([recommender.user_embeddings().ravel(),
                             recommender.item_embeddings().ravel()])
    return json.loads(retrain["detail"])["defenses"], params


@pytest.mark.parametrize("combination", COMBINATIONS, ids="+".join)
def test_each_listed_defense_changed_the_update(combination: tuple[str, ...]) -> None:
    listed, params = _train(combination)
    assert sorted(listed) == sorted(combination)
    for name in combination:
        _, without = _train(tuple(d for d in combination if d != name))
        assert not np.allclose(params, without), f"{name} did not change the model"


def test_dp_with_apr_trains_on_the_apr_objective() -> None:
    """DP-SGD with APR is not DP-SGD alone, and APR's weight matters inside DP-SGD."""
    _, both = _train(("dp", "apr"))
    _, dp_only = _train(("dp",))
    assert not np.allclose(both, dp_only)
    sets = [f"platform.defenses.dp={SETTINGS['dp']}",
            "platform.defenses.apr={epsilon: 0.5, weight: 0.0}"]
    model = PrivacyModel(load_scenario("quickstart", [*TINY, *sets]))
    model.run()
    zero_weight = np.concatenate([model.platform.recommender.user_embeddings().ravel(),
                                  model.platform.recommender.item_embeddings().ravel()])
    np.testing.assert_allclose(zero_weight, dp_only, atol=1e-6)


@pytest.mark.parametrize("sets, message", [
    (["platform.defenses.dp={noise_multiplier: 1.0}",
      "platform.defenses.unlearning={utility: model}"], "voids defenses.dp's epsilon"),
])
def test_combinations_that_would_not_act_are_refused(sets: list[str], message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        load_scenario("quickstart", [*TINY, *sets])


def test_adversarial_training_inside_dp_sgd_costs_no_epsilon() -> None:
    """The read-out term is part of each example's clipped and noised gradient, and the heads
    train on the released rows: the ledger's epsilon is DP-SGD's alone, and the read-outs
    report their accuracy."""
    runs = {}
    for sets in ([f"platform.defenses.dp={SETTINGS['dp']}"],
                 [f"platform.defenses.dp={SETTINGS['dp']}",
                  f"platform.defenses.adversarial={SETTINGS['adversarial']}"]):
        model = PrivacyModel(load_scenario("quickstart", [*TINY, *sets]))
        model.run()
        runs[len(sets)] = model.records.metrics[-1]
    assert runs[2]["dp_epsilon_user_max"] == runs[1]["dp_epsilon_user_max"] > 0
    assert 0.0 <= runs[2]["adversary_readout_acc_gender"] <= 1.0
