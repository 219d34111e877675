"""The measurement registry: which measurements a scenario gets, in column order.

Adding a metric takes one module with a `Measurement` subclass and one `register` line
here (or `REGISTRY.register(...)` from anywhere before the model is built). The order of
registration is the order of the columns in the metrics table (and of the grouped
measurements' columns in the groups table).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from simulator.measurements.accuracy import Accuracy, PopularityBaseline
from simulator.measurements.audits import DeletionAudit, MembershipAudit
from simulator.measurements.base import Measurement, ModelView, Shared
from simulator.measurements.collateral import Collateral
from simulator.measurements.disclosure import BudgetMean, Disclosure
from simulator.measurements.leakage import ClassifierLeakage, Leakage
from simulator.measurements.poisoning import PoisoningTargets
from simulator.measurements.reported import DefenseMetrics, PolicyLedger
from simulator.measurements.status import StepStatus
from simulator.scenario.schema import Scenario

Applies = Callable[[Scenario], bool]
POISONERS = ("shilling", "item_perturbation")
LEDGER_POLICIES = ("privacy_calculus", "social")  # the policies whose budgets move


@dataclass(frozen=True)
class Entry:
    """A registered measurement: its name, its class and when a scenario gets it."""

    name: str
    factory: type[Measurement]
    applies: Applies


def always(scenario: Scenario) -> bool:
    """Every scenario gets the measurement."""
    return True


class MeasurementRegistry:
    """Named measurements in column order, each with the scenarios it applies to."""

    def __init__(self) -> None:
        self._entries: dict[str, Entry] = {}

    def register(
        self, name: str, factory: type[Measurement], applies: Applies = always,
        *, before: str | None = None,
    ) -> None:
        """Add a measurement at the end (or just before the one named `before`)."""
        if name in self._entries:
            raise ValueError(f"a measurement named {name!r} is already registered")
        if before is not None and before not in self._entries:
            raise ValueError(f"no measurement named {before!r} to register {name!r} before")
        entry = Entry(name, factory, applies)
        if before is None:
            self._entries[name] = entry
            return
        entries = list(self._entries.values())
        entries.insert([e.name for e in entries].index(before), entry)
        self._entries = {e.name: e for e in entries}

    def unregister(self, name: str) -> None:
        """Remove a measurement."""
        del self._entries[name]

    def names(self) -> list[str]:
        """Every registered measurement, in column order."""
        return list(self._entries)

    def names_for(self, scenario: Scenario) -> list[str]:
        """The measurements `scenario` gets, in column order."""
        return [e.name for e in self._entries.values() if e.applies(scenario)]

    def build(self, model: ModelView, shared: Shared) -> dict[str, Measurement]:
        """The model's measurements, built."""
        return {e.name: e.factory(model, shared) for e in self._entries.values()
                if e.applies(model.scenario)}


def _inference(scenario: Scenario) -> bool:
    return any(a.kind == "inference" for a in scenario.attackers)


def _poisoning(scenario: Scenario) -> bool:
    return any(a.kind in POISONERS for a in scenario.attackers)


def _deletions(scenario: Scenario) -> bool:
    return any(e.kind == "deletion" for e in scenario.events)


def _membership(scenario: Scenario) -> bool:
    return scenario.metrics.membership


def _ledger(scenario: Scenario) -> bool:
    return scenario.population.policy in LEDGER_POLICIES


REGISTRY = MeasurementRegistry()
REGISTRY.register("status", StepStatus)
REGISTRY.register("disclosure", Disclosure)
REGISTRY.register("accuracy", Accuracy)
REGISTRY.register("leakage", Leakage, _inference)
REGISTRY.register("popularity", PopularityBaseline)
REGISTRY.register("budget", BudgetMean)
REGISTRY.register("classifier_leakage", ClassifierLeakage, _inference)
REGISTRY.register("poisoning", PoisoningTargets, _poisoning)
REGISTRY.register("collateral", Collateral, _poisoning)
REGISTRY.register("deletion_audit", DeletionAudit, _deletions)
REGISTRY.register("membership_audit", MembershipAudit, _membership)
REGISTRY.register("policy_ledger", PolicyLedger, _ledger)
REGISTRY.register("defenses", DefenseMetrics)
