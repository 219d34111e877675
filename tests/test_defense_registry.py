"""The defense protocol and registry: declarations drive the scenario checks, hooks run in
order, and models declare what they can do."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from simulator.defenses import registry
from simulator.defenses.apr.defense import APR
from simulator.defenses.protocol import Defense, Retrain
from simulator.defenses.registry import DEFENSES, DefensesConfig
from simulator.defenses.stack import PlatformDefenses
from simulator.foundations.settings import DefenseSection
from simulator.recommenders.base import ModelParams, Recommender
from simulator.recommenders.registry import MODELS, make_recommender, recommender_class
from simulator.scenario.schema import PlatformConfig
from simulator.world.base import Interactions

# Each capability and the method a model must define (not inherit from `Recommender`) for it.
CAPABILITY_METHODS = {
    "gradient_perturbation": "set_perturbation",
    "dense_training": "dense_training",
    "user_adversary": "set_adversary",
    "user_scorer": "user_scorer",
    "item_features": "set_item_features",
    "settable_items": "set_item_embeddings",
    "item_parameters": "score_item_parameters",
}


def test_the_defenses_section_is_the_registry() -> None:
    assert list(DefensesConfig.model_fields) == [d.key for d in DEFENSES]
    for defense in DEFENSES:
        assert issubclass(defense.settings, DefenseSection)
        section = DefensesConfig.model_validate({defense.key: {}})
        assert isinstance(getattr(section, defense.key), defense.settings)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_models_have_the_methods_their_capabilities_name(name: str) -> None:
    cls = recommender_class(name)
    for capability, method in CAPABILITY_METHODS.items():
        own = getattr(cls, method, None) is not getattr(Recommender, method, None) \
            and hasattr(cls, method)
        if method == "set_adversary":  # the base implements it for every model
            own = hasattr(cls, method)
        assert own == (capability in MODELS[name].capabilities), (name, capability)


def test_a_defense_needing_a_capability_refuses_models_without_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for defense in ("adversarial", "unlearning", "dp", "apr"):  # every model runs these
        PlatformConfig.model_validate({"model": "metamf", "defenses": {defense: {}}})
    monkeypatch.setattr(APR, "requires", frozenset({"settable_items"}))
    with pytest.raises(ValueError,
                       match="defenses.apr trains bpr or mf or lightgcn models, not 'metamf'"):
        PlatformConfig.model_validate({"model": "metamf", "defenses": {"apr": {}}})


def test_the_check_follows_the_declaration(monkeypatch: pytest.MonkeyPatch) -> None:
    """What a defense declares is what the scenario check enforces."""
    monkeypatch.setattr(APR, "requires", frozenset({"user_scorer"}))
    PlatformConfig.model_validate({"model": "metamf", "defenses": {"apr": {}}})
    monkeypatch.setattr(APR, "with_item_features", False)
    with pytest.raises(ValueError, match="defenses.apr cannot yet run with item_features"):
        PlatformConfig.model_validate({"model": "bpr", "item_features": True,
                                       "defenses": {"apr": {}}})


def test_conflicts_come_from_the_defense() -> None:
    with pytest.raises(ValueError, match="voids defenses.dp's epsilon"):
        PlatformConfig.model_validate({"model": "mf", "defenses": {
            "dp": {}, "unlearning": {"utility": "model"}}})
    PlatformConfig.model_validate({"model": "mf", "defenses": {
        "dp": {"enabled": False}, "unlearning": {"utility": "model"}}})


class _Recording(Defense):
    """A defense that records its hooks and acts from step 1 on."""

    key = "recording"
    settings = DefenseSection
    calls: list[str]

    def metric_names(self) -> list[str]:
        return ["recording_rows"]

    def prepare(self, retrain: Retrain) -> tuple[Interactions, dict[str, float]] | None:
        self.calls.append("prepare")
        if not self.active(retrain.step):
            return None
        keep = retrain.table.user % 2 == 0  # train on half of the users
        return retrain.table.subset(keep), {"recording_rows": float(keep.sum())}

    def configure(self, retrain: Retrain) -> bool:
        self.calls.append("configure")
        return False

    def fit(self, retrain: Retrain, epochs: int, warm_start: bool) -> None:
        self.calls.append("fit")
        return None

    def after_fit(self, retrain: Retrain) -> tuple[dict[str, float], bool]:
        self.calls.append(f"after_fit:{retrain.report is not None}")
        return {}, False


def _table(n_users: int = 10, n_items: int = 12) -> Interactions:
    rng = np.random.default_rng(0)
    user = np.repeat(np.arange(n_users), 4)
    return Interactions(user, rng.integers(0, n_items, len(user)),
                        np.ones(len(user), np.float32), np.arange(len(user)))


def test_hooks_run_in_order_and_a_defense_that_acts_is_listed() -> None:
    stack = PlatformDefenses(config=DefensesConfig(apr={"epsilon": 0.1}), attributes={},
                             n_classes={}, n_users=10, seed=0)
    recording = _Recording(config=DefenseSection(start_step=1), context=stack.defenses[0].context)
    recording.calls = []
    stack.defenses.insert(0, recording)
    stack.latest["recording_rows"] = float("nan")
    model = make_recommender("bpr", 10, 12, ModelParams(factors=4), torch.device("cpu"), 0)

    before = stack.retrain(0, model, _table(), 1, warm_start=False)
    assert recording.calls == ["prepare", "configure", "fit", "after_fit:True"]
    assert before.defenses == ["apr"] and np.isnan(stack.latest["recording_rows"])

    after = stack.retrain(1, model, _table(), 1, warm_start=True)
    assert after.defenses == ["recording", "apr"]
    assert after.metrics["recording_rows"] == 20.0 == stack.latest["recording_rows"]
    assert model.perturbation is not None  # APR set it through the protocol


def test_the_clean_twin_keeps_what_its_defenses_declare() -> None:
    config = DefensesConfig(detection={}, apr={})
    twin = registry.clean_twin_config(config)
    assert twin.detection is None and twin.apr == config.apr
