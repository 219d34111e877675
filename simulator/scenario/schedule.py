"""A scenario's schedule: what happens at which step, and whether all of it can happen.

Everything scheduled must fall inside the run. A shortened run (`simulation.steps` cut down
for a quick look) would otherwise silently drop its breach, defense or attack and become a
different experiment; it is refused instead, naming each item, and `simulation.stop_after`
(`privsim run --first K`) runs only the first K steps of the unchanged schedule.
Defenses, item owners and deletion or unlearning requests act at retrains, and fake profiles
reach the model only at one, so each needs a retrain at or after its (first) step.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from simulator.attacks.registry import attacker_class
from simulator.foundations.settings import Scheduled

if TYPE_CHECKING:
    from simulator.scenario.schema import Scenario


def retrain_steps(scenario: Scenario) -> list[int]:
    """The steps at which the platform retrains."""
    return list(range(0, scenario.simulation.steps, scenario.platform.retrain_every))


def scheduled_items(scenario: Scenario) -> list[Scheduled]:
    """Every event, defense start and attack of the scenario, in step order."""
    items: list[Scheduled] = []
    for index, event in enumerate(scenario.events):
        detail = f"{event.kind}"
        if event.kind == "breach":
            detail += f" (severity {event.severity:g}, reach {event.reach:g})"
        else:
            who = ", ".join(event.types) if event.types else "all users"
            detail += f" ({event.share:g} of {who}{f' -> {event.to}' if event.to else ''})"
        acts_at_retrain = event.kind in ("deletion", "unlearning_request")
        items.append(Scheduled(event.step, event.step, detail, f"events.{index}",
                               acts_at_retrain))
    defenses = scenario.platform.defenses
    for name in type(defenses).model_fields:
        section = getattr(defenses, name)
        if section is not None and section.enabled:
            items.append(Scheduled(section.start_step, section.start_step, f"{name} defense",
                                   f"platform.defenses.{name}.start_step", True))
    for index, attacker in enumerate(scenario.attackers):
        items.extend(attacker_class(attacker).scheduled(attacker, index))
    return sorted(items, key=lambda item: (item.step, item.key))


def schedule_problems(scenario: Scenario) -> list[str]:
    """What the schedule asks for that cannot happen within `simulation.steps` (empty: fine)."""
    steps = scenario.simulation.steps
    retrains = retrain_steps(scenario)
    problems = []
    for item in scheduled_items(scenario):
        if item.last >= steps:
            problems.append(f"{item.key} ({item.what} at {item.span})")
        elif item.needs_retrain and retrains[-1] < item.step:
            key = item.key.split(" ")[0]
            problems.append(f"{key} ({item.what} at step {item.step}, after the last retrain "
                            f"at step {retrains[-1]}: {item.why})")
    return problems


def describe_schedule(scenario: Scenario) -> list[str]:
    """The schedule as lines for people: retrains, events, defense starts and attacks."""
    sim = scenario.simulation
    retrains = retrain_steps(scenario)
    shown = ", ".join(map(str, retrains)) if len(retrains) <= 8 else (
        f"{', '.join(map(str, retrains[:4]))}, ..., {retrains[-1]}")
    lines = [f"steps 0-{sim.steps - 1}"
             + (f", running only the first {sim.stop_after} (--first)" if sim.stop_after
                and sim.stop_after < sim.steps else ""),
             f"retrains ({scenario.platform.model}, lists by {scenario.platform.ranking.method}"
             f", every {scenario.platform.retrain_every}): "
             f"{shown}"]
    for item in scheduled_items(scenario):
        when = item.span
        if item.key.startswith("platform.defenses"):
            acting = [r for r in retrains if r >= item.step]
            when = f"from step {item.step} (retrains {', '.join(map(str, acting[:6]))}" + (
                ", ...)" if len(acting) > 6 else ")")
        lines.append(f"{when}: {item.what} [{item.key.split(' ')[0]}]")
    for index, attacker in enumerate(scenario.attackers):
        lines.extend(attacker_class(attacker).describe(attacker, index))
    return lines
