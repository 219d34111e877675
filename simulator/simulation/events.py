"""Scheduled events: opt-outs, deletion and unlearning requests, type conversions, breaches."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from agents.board import StepBoard
from simulator.scenario.schema import EventConfig, Scenario

if TYPE_CHECKING:
    from simulator.simulation.model import PrivacyModel


def apply_scheduled_events(model: PrivacyModel, step: int) -> None:
    """Opt-outs, deletion and unlearning requests and type conversions scheduled for `step`,
    each drawn from per-user streams and logged as an event of the users."""
    population = model.population
    types = model.scenario.population.types
    names = list(types)
    for index, event in enumerate(model.scenario.events):
        if event.step != step or event.kind == "breach":
            continue
        eligible = ~population.deleted
        if event.types is not None:
            eligible &= np.isin(population.inclination, [names.index(t) for t in event.types])
        users = population.draw(f"event-{index}", event.share, eligible)
        if event.kind == "opt_out":
            population.opt_out(users)
        elif event.kind == "unlearning_request":
            population.asks_unlearning |= users
        elif event.kind == "deletion":
            population.delete(users)
            for platform in (model.platform, model.clean_platform):
                if platform is not None:
                    platform.request_deletion(np.flatnonzero(users))
        else:
            assert event.to is not None
            target = types[event.to]
            population.convert(users, names.index(event.to), target.beta)
            population.policy.retype(users, target.beta, target.concern)
            model.measurer.regroup_inclination(population.inclination, names)
        model.records.event(step, event.kind, "users", float(users.sum()), 0.0,
                            {"share": event.share, "types": event.types, "to": event.to})


def announce_breaches(scenario: Scenario, board: StepBoard) -> list[EventConfig]:
    """The breaches announced at the board's step, each logged as an event of the world."""
    breaches = [e for e in scenario.events if e.step == board.step and e.kind == "breach"]
    for breach in breaches:
        board.event("breach", "world", breach.severity, 0.0,
                    {"severity": breach.severity, "reach": breach.reach})
    return breaches
