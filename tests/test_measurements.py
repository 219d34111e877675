"""The measurement registry: which measurements a scenario gets, and adding one."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
from pydantic import Field

from agents.board import StepBoard
from simulator.experiments.catalog import load_scenario
from simulator.foundations.columns import Column
from simulator.foundations.errors import ScenarioError
from simulator.foundations.settings import Section
from simulator.measurements.base import Columns, Measurement, ModelView
from simulator.measurements.registry import REGISTRY, MeasurementRegistry, always
from simulator.simulation.model import PrivacyModel
from tests.reference_metrics import REFERENCE

TINY = [
    "world.n_users=120", "world.n_items=80", "world.mean_ratings_per_user=20",
    "world.min_ratings_per_user=5", "simulation.steps=2", "simulation.device=cpu",
    "platform.first_epochs=2", "platform.epochs=1", "attackers.0.folds=3",
    "attackers.0.classifiers=[logreg]", "output.plots=false",
]
# Every scenario's measurements: those registered to apply always (a new one joins them).
CORE = [entry.name for entry in REGISTRY.entries() if entry.applies is always]
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


def test_the_always_on_measurements_include_the_basics() -> None:
    assert {"status", "disclosure", "accuracy", "popularity", "budget", "defenses"} <= set(CORE)


class ReadsAccuracy(Measurement):
    """A measurement made up for the tests: HR@k over the active share (reads accuracy)."""

    reads = ("accuracy",)
    columns = (Column("hr_per_active", 0.0, float("inf")),)

    def measure(self, model: ModelView, board: StepBoard) -> Columns:
        hits = board.columns[f"hr_{model.scenario.metrics.k}"]
        return {"hr_per_active": float(hits) / float(model.population.active.mean())}


class ThresholdSettings(Section):
    """Settings of a made-up measurement."""

    threshold: float = Field(0.5, ge=0.0, le=1.0)


class Thresholded(Measurement):
    """A measurement made up for the tests, with settings of its own."""

    settings = ThresholdSettings
    columns = (Column("above_threshold", 0.0, 1.0),)

    def measure(self, model: ModelView, board: StepBoard) -> Columns:
        assert isinstance(self.config, ThresholdSettings)
        return {"above_threshold": float(model.population.beta.mean() > self.config.threshold)}


def test_a_measurement_runs_after_what_it_reads_whatever_its_registration() -> None:
    registry = MeasurementRegistry()
    registry.register("per_active", ReadsAccuracy)
    registry.register("status", REGISTRY.entries()[0].factory)
    registry.register("accuracy", dict((e.name, e.factory) for e in REGISTRY.entries())[
        "accuracy"])
    assert registry.names() == ["status", "accuracy", "per_active"]
    model = PrivacyModel(load_scenario("quickstart", [*TINY, "attackers=[]"]))
    measurements = registry.build(model, model.measurer.shared)
    assert list(measurements) == ["status", "accuracy", "per_active"]


def test_a_measurement_whose_reads_the_scenario_lacks_is_refused() -> None:
    registry = MeasurementRegistry()
    registry.register("per_active", ReadsAccuracy)
    model = PrivacyModel(load_scenario("quickstart", [*TINY, "attackers=[]"]))
    with pytest.raises(ScenarioError, match="per_active measurement reads accuracy"):
        registry.build(model, model.measurer.shared)


def test_measurements_reading_each_other_round_a_circle_are_refused() -> None:
    class One(ReadsAccuracy):
        reads = ("two",)

    class Two(ReadsAccuracy):
        reads = ("one",)

    registry = MeasurementRegistry()
    registry.register("one", One)
    with pytest.raises(ValueError, match="round a circle: one -> two -> one"):
        registry.register("two", Two)


def test_a_measurements_settings_come_from_the_scenario_and_are_checked() -> None:
    registry = MeasurementRegistry()
    registry.register("thresholded", Thresholded)
    scenario = load_scenario("quickstart", [*TINY, "attackers=[]",
                                            "metrics.settings={thresholded: {threshold: 0.9}}"])
    model = PrivacyModel(load_scenario("quickstart", [*TINY, "attackers=[]"]))
    model.scenario = scenario
    built = registry.build(model, model.measurer.shared)
    assert isinstance(built["thresholded"].config, ThresholdSettings)
    assert built["thresholded"].config.threshold == 0.9
    for bad, message in (("{thresholded: {threshold: 2}}", "thresholded.threshold: Input"),
                         ("{thresholded: {limit: 1}}", "thresholded.limit: unknown key"),
                         ("{missing: {}}", "metrics.settings.missing: no measurement")):
        model.scenario = load_scenario("quickstart", [*TINY, "attackers=[]",
                                                      f"metrics.settings={bad}"])
        with pytest.raises(ScenarioError, match=message):
            registry.build(model, model.measurer.shared)


def test_every_recorded_column_is_declared_with_a_range_its_values_keep() -> None:
    """The recorded metrics of every shipped scenario: each column is declared by a
    measurement (timings aside), and every recorded value lies in its declared range."""
    reference = json.loads(REFERENCE.read_text(encoding="utf-8"))
    undeclared, outside = set(), []
    for scenario, columns in reference.items():
        for name, values in columns.items():
            column = REGISTRY.column(name)
            if column is None:
                undeclared.add(name)
                continue
            for value in values:
                if value is not None and not math.isnan(value) and not (
                        column.low <= value <= column.high):
                    outside.append(f"{scenario}: {name} = {value}")
    assert sorted(undeclared) == [] and outside == []
