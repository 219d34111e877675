"""The measurement registry: which measurements a scenario gets, in column order.

Adding a metric takes one module with a `Measurement` subclass and one `register` line
here (or `REGISTRY.register(...)` from anywhere before the model is built). The order of
registration is the order of the columns in the metrics table (and of the grouped
measurements' columns in the groups table).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from simulator.attacks.inference_attacker import InferenceAttackerConfig
from simulator.attacks.registry import poisons
from simulator.foundations import plugins
from simulator.foundations.columns import PLACEHOLDER, Column
from simulator.foundations.errors import ScenarioError
from simulator.foundations.plugins import installed
from simulator.foundations.settings import Section
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
    """Named measurements in column order, each with the scenarios it applies to.

    The order is the registration order, except that a measurement runs after those it
    `reads` (a measurement registered before one it reads moves after it)."""

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
        entries = list(self._entries.values())
        at = len(entries) if before is None else [e.name for e in entries].index(before)
        entries.insert(at, entry)
        self._entries = {e.name: e for e in _after_what_they_read(entries)}

    def unregister(self, name: str) -> None:
        """Remove a measurement."""
        del self._entries[name]

    def names(self) -> list[str]:
        """Every registered measurement, in column order."""
        return list(self._entries)

    def entries(self) -> list[Entry]:
        """Every registered measurement's entry, in column order."""
        return list(self._entries.values())

    def names_for(self, scenario: Scenario) -> list[str]:
        """The measurements `scenario` gets, in column order."""
        return [e.name for e in self._entries.values() if e.applies(scenario)]

    def columns(self) -> list[Column]:
        """Every column the registered measurements declare, in column order."""
        return [column for e in self._entries.values() for column in e.factory.columns]

    def column(self, name: str) -> Column | None:
        """The declared column `name` is an instance of (None: no measurement declares it);
        of several (`hr_{k}` and `hr_{k}_change`), the most specific."""
        found = [c for c in self.columns() if c.matches(name)]
        return max(found, key=lambda c: len(PLACEHOLDER.sub("", c.name)), default=None)

    def build(self, model: ModelView, shared: Shared) -> dict[str, Measurement]:
        """The model's measurements, built, each given its settings from the scenario's
        `metrics.settings` (refused with the key path when they do not fit)."""
        scenario = model.scenario
        names = self.names_for(scenario)
        given = scenario.metrics.settings
        unknown = sorted(set(given) - {n for n in names if self._entries[n].factory.settings})
        if unknown:
            with_settings = [n for n, e in self._entries.items() if e.factory.settings]
            raise ScenarioError(
                f"metrics.settings.{unknown[0]}: no measurement of this scenario by that name "
                f"has settings (measurements with settings: {', '.join(with_settings) or 'none'})")
        built: dict[str, Measurement] = {}
        for name in names:
            factory = self._entries[name].factory
            missing = [r for r in factory.reads if r not in built]
            if missing:
                raise ScenarioError(f"the {name} measurement reads {', '.join(missing)}, which "
                                    "this scenario does not measure")
            measurement = factory(model, shared)
            if factory.settings is not None:
                measurement.config = _settings(name, factory.settings, given.get(name, {}))
            built[name] = measurement
        return built


def _after_what_they_read(entries: list[Entry]) -> list[Entry]:
    """`entries` in their order, except that each waits until the measurements it reads are
    placed (at each turn the earliest entry whose reads are all placed goes next); a
    measurement that reads itself round a circle is refused."""
    names = {e.name for e in entries}
    remaining, placed = list(entries), list[Entry]()
    while remaining:
        done = {e.name for e in placed}
        ready = next((e for e in remaining
                      if all(r in done or r not in names for r in e.factory.reads)), None)
        if ready is None:
            raise ValueError("measurements read each other round a circle: "
                             + " -> ".join(_circle(remaining)))
        placed.append(ready)
        remaining.remove(ready)
    return placed


def _circle(entries: list[Entry]) -> list[str]:
    """A circle of reads among `entries` (each of which waits on another of them)."""
    reads = {e.name: [r for r in e.factory.reads if r in {x.name for x in entries}]
             for e in entries}
    path = [entries[0].name]
    while path.count(path[-1]) < 2:
        path.append(reads[path[-1]][0])
    return path[path.index(path[-1]):]


def _settings(name: str, model: type[Section], values: dict[str, Any]) -> Section:
    """A measurement's settings from the scenario, refused with their key path."""
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        message = "unknown key" if first["type"] == "extra_forbidden" else first["msg"]
        raise ScenarioError(f"metrics.settings.{name}.{where}: {message}") from None


def _inference(scenario: Scenario) -> bool:
    return any(isinstance(a, InferenceAttackerConfig) for a in scenario.attackers)


def _poisoning(scenario: Scenario) -> bool:
    return poisons(scenario.attackers)


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
# Installed measurements (`simulator.foundations.plugins`), by their entry-point names.
for _name, _measurement in installed(plugins.MEASUREMENTS):
    REGISTRY.register(_name, _measurement, _measurement.applies)
