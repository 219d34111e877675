"""Fake accounts declare attributes at sign-up, and privacy defenses train on declarations."""

from __future__ import annotations

import json

import numpy as np
import pytest

from simulator.attacks.declared import declare, public_shares
from simulator.experiments.catalog import load_scenario
from simulator.simulation.model import PrivacyModel
from simulator.world.base import Interactions

TINY = [
    "world.n_users=160", "world.n_items=120", "world.mean_ratings_per_user=30",
    "world.signal=2.0", "simulation.steps=3", "simulation.device=cpu",
    "platform.model=mf", "platform.first_epochs=4", "platform.epochs=2",
    "output.plots=false",
]


def _ratings(user: list[int], item: list[int]) -> Interactions:
    n = len(user)
    return Interactions(np.array(user, np.int64), np.array(item, np.int64),
                        np.full(n, 4.0, np.float32), np.zeros(n, np.int64))


def test_marginal_declarations_follow_the_public_shares() -> None:
    labels = np.array([0] * 70 + [1] * 30 + [-1] * 50)
    np.testing.assert_allclose(public_shares(labels, 2), [0.7, 0.3])
    users = np.arange(200, 4200)
    codes = declare("marginal", _ratings([], []), users, _ratings([], []), labels, 2, 10,
                    np.random.default_rng(0))
    assert abs(codes.mean() - 0.3) < 0.03


def test_flipped_declarations_contradict_the_profile() -> None:
    # Public class-0 users rate items 0-4, class-1 users items 5-9.
    user = [u for u in range(20) for _ in range(5)]
    item = [i % 5 + (5 if u >= 10 else 0) for u in range(20) for i in range(5)]
    labels = np.array([0] * 10 + [1] * 10)
    public = _ratings(user, item)
    fakes = _ratings([30, 30, 30, 31, 31, 31], [0, 1, 2, 6, 7, 8])
    codes = declare("flipped", fakes, np.array([30, 31]), public, labels, 2, 10,
                    np.random.default_rng(0))
    assert codes.tolist() == [1, 0]  # looks like class 0 -> declares 1, and the reverse
    with pytest.raises(ValueError, match="strategy must be one of"):
        declare("honest", fakes, np.array([30, 31]), public, labels, 2, 10,
                np.random.default_rng(0))


def _run(declared: str, defense: str) -> PrivacyModel:
    model = PrivacyModel(load_scenario("quickstart", [
        *TINY, defense,
        f"attackers=[{{kind: inference}}, {{kind: shilling, attack_size: 0.1, "
        f"declared_attributes: {declared}}}]",
    ]))
    model.run()
    return model


@pytest.mark.parametrize("defense", [
    "platform.defenses.adversarial={attributes: [gender, age]}",
    "platform.defenses.unlearning={attribute: gender, stop: steps, steps: 10}",
])
def test_privacy_defenses_train_beside_fake_accounts(defense: str) -> None:
    model = _run("flipped", defense)
    key = "adversarial" if "adversarial" in defense else "unlearning"
    retrains = [json.loads(e["detail"]) for e in model.records.events if e["kind"] == "retrain"]
    assert retrains and all(key in r["defenses"] for r in retrains)
    assert all(r["fake_users_trained"] > 0 for r in retrains)
    genuine = model.n_genuine
    for name, codes in model.account_attributes.items():
        np.testing.assert_array_equal(codes[:genuine], model.world.attributes[name])
        fake = codes[genuine:genuine + model.shillers[0].injected]
        assert len(fake) and (fake >= 0).all()  # every injected account declared
    # The platform's defenses read the same declarations.
    defenses = model.platform.defenses.defenses[0]
    assert defenses.context.attributes is model.account_attributes
    # Leakage is measured on genuine users only: the attacker's labels cover them alone.
    assert model.attacker is not None
    assert all(len(v) == genuine for v in model.attacker.attributes.values())


def test_what_fake_accounts_declare_reaches_the_defense() -> None:
    defense = "platform.defenses.adversarial={attributes: [gender]}"
    marginal, flipped = _run("marginal", defense), _run("flipped", defense)
    genuine = marginal.n_genuine
    assert not np.array_equal(marginal.account_attributes["gender"][genuine:],
                              flipped.account_attributes["gender"][genuine:])
    assert not np.allclose(marginal.platform.recommender.user_embeddings()[:genuine],
                           flipped.platform.recommender.user_embeddings()[:genuine])
