"""The measurement registry: which measurements a scenario gets, and adding one."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest

from agents.board import StepBoard
from simulator.experiments.catalog import load_scenario
from simulator.measurements.base import Columns, Measurement, ModelView
from simulator.measurements.registry import REGISTRY, MeasurementRegistry
from simulator.simulation.model import PrivacyModel

TINY = [
    "world.n_users=120", "world.n_items=80", "world.mean_ratings_per_user=20",
    "world.min_ratings_per_user=5", "simulation.steps=2", "simulation.device=cpu",
    "platform.first_epochs=2", "platform.epochs=1", "attackers.0.folds=3",
    "attackers.0.classifiers=[logreg]", "output.plots=false",
]
CORE = ["status", "disclosure", "accuracy", "popularity", "budget", "defenses"]
INFERENCE = ["leakage", "classifier_leakage"]


def _names(*extra: str) -> list[str]:
    return REGISTRY.names_for(load_scenario("quickstart", [*TINY, *extra]))


def _in_order(*names: str) -> list[str]:
    return [n for n in REGISTRY.names() if n in names]


def test_the_quickstart_gets_accuracy_leakage_and_the_defenses() -> None:
    assert _names() == _in_order(*CORE, *INFERENCE)


def test_without_an_inference_attacker_there_is_no_leakage() -> None:
    assert _names("attackers=[]") == _in_order(*CORE)


def test_poisoners_bring_target_and_collateral_measurements() -> None:
    names = _names("attackers=[{kind: inference, classifiers: [logreg], folds: 3}, "
                   "{kind: shilling, start_step: 0}]")
    assert names == _in_order(*CORE, *INFERENCE, "poisoning", "collateral")


def test_deletions_membership_and_moving_budgets_bring_their_measurements() -> None:
    names = _names("events=[{step: 0, kind: deletion, share: 0.1}]", "metrics.membership=true",
                   "population.policy=privacy_calculus")
    assert names == _in_order(*CORE, *INFERENCE, "deletion_audit", "membership_audit",
                              "policy_ledger")


def test_a_model_builds_exactly_the_measurements_its_scenario_gets() -> None:
    scenario = load_scenario("quickstart", [*TINY, "metrics.membership=true"])
    model = PrivacyModel(scenario)
    assert list(model.measurer.measurements) == REGISTRY.names_for(scenario)


def test_registering_twice_or_before_an_unknown_name_is_refused() -> None:
    registry = MeasurementRegistry()
    registry.register("one", ActiveShare)
    with pytest.raises(ValueError, match="already registered"):
        registry.register("one", ActiveShare)
    with pytest.raises(ValueError, match="no measurement named 'zero'"):
        registry.register("two", ActiveShare, before="zero")
    registry.register("two", ActiveShare, before="one")
    assert registry.names() == ["two", "one"]


class ActiveShare(Measurement):
    """A measurement made up for the tests: the share of users still active."""

    def measure(self, model: ModelView, board: StepBoard) -> Columns:
        return {"active_share": float(model.population.active.mean())}


class GroupSize(Measurement):
    """A grouped measurement made up for the tests: each group's share of all users."""

    grouped = True

    def measure(self, model: ModelView, board: StepBoard) -> Columns:
        return {"size_share": 1.0}

    def group_columns(
        self, model: ModelView, board: StepBoard, mask: np.ndarray,
        key: tuple[str, str] | None,
    ) -> Columns:
        return {"size_share": float(mask.mean())}


@pytest.fixture
def custom() -> Iterator[None]:
    REGISTRY.register("active_share", ActiveShare)
    REGISTRY.register("group_size", GroupSize, lambda s: not s.attackers, before="budget")
    try:
        yield
    finally:
        REGISTRY.unregister("active_share")
        REGISTRY.unregister("group_size")


@pytest.mark.usefixtures("custom")
def test_a_registered_measurement_adds_its_column_before_the_timings() -> None:
    model = PrivacyModel(load_scenario("quickstart", TINY))
    model.run()
    metrics = pd.DataFrame(model.records.metrics)
    assert metrics["active_share"].tolist() == [1.0, 1.0]
    columns = list(metrics.columns)
    timings = [c for c in columns if c.startswith("seconds_")]
    assert columns[-len(timings) - 1:] == ["active_share", *timings]
    assert "size_share" not in metrics  # the scenario has attackers: not for it


@pytest.mark.usefixtures("custom")
def test_a_grouped_measurement_fills_the_groups_table_in_registry_order() -> None:
    model = PrivacyModel(load_scenario("quickstart", [*TINY, "attackers=[]"]))
    model.run(1)
    metrics = pd.DataFrame(model.records.metrics)
    columns = list(metrics.columns)
    assert columns.index("pop_ndcg_10") < columns.index("size_share") < columns.index(
        "beta_mean")
    groups = pd.DataFrame(model.records.groups)
    share = dict(zip(groups["group_kind"] + ":" + groups["group"], groups["size_share"],
                     strict=True))
    assert share["all:all"] == 1.0
    types = [v for k, v in share.items() if k.startswith("inclination:")]
    assert sum(types) == pytest.approx(1.0)
    assert list(groups.columns).index("size_share") > list(groups.columns).index("ndcg_10")
