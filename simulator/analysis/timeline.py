"""The timeline layer of every over-time figure of a run: retrains as light ticks, and as
labelled vertical marks the events that happened (breaches, opt-outs, deletions,
conversions, unlearning requests, the first fake profiles and item perturbations) and the
defenses the scenario starts after step 0; integer steps."""

from __future__ import annotations

from typing import Any

import pandas as pd
from matplotlib.ticker import MaxNLocator

# Events marked once, at their first step, with these names (the rest by their kind).
FIRST_ONLY = {"profile_injection": "fake profiles", "item_perturbation": "item perturbation"}
NOT_MARKED = {"retrain", "attack_observation", "attribute_inference", "training_diverged"}


def timeline_marks(events: pd.DataFrame | None, schedule: list[Any] | None = None
                   ) -> tuple[list[int], list[tuple[int, str]]]:
    """(retrain steps, [(step, label)] of the events worth marking), from the events table,
    and the starts of defenses switched on after step 0, from the scenario's `schedule`
    (`core.schedule.scheduled_items`)."""
    starts = {(int(item.step), f"{item.what} on"): None for item in schedule or ()
              if item.key.startswith("platform.defenses") and item.step > 0}
    if events is None or events.empty:
        return [], sorted(starts)
    retrains = sorted(int(s) for s in events.loc[events["kind"] == "retrain", "step"])
    marks: dict[tuple[int, str], None] = dict(starts)
    for kind, rows in events.groupby("kind", sort=False):
        kind = str(kind)
        if kind in NOT_MARKED:
            continue
        steps = rows["step"].astype(int)
        if kind in FIRST_ONLY:
            marks[(int(steps.min()), FIRST_ONLY[kind])] = None
        else:
            for step in sorted(set(steps)):
                marks[(step, kind.replace("_", " "))] = None
    return retrains, sorted(marks)


def mark_timeline(axis: Any, events: pd.DataFrame | None,
                  schedule: list[Any] | None = None) -> None:
    """Draw the timeline layer on an over-time axis and keep its steps whole numbers."""
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    retrains, marks = timeline_marks(events, schedule)
    for step in retrains:
        axis.axvline(step, color="grey", alpha=0.12, linewidth=1.0, zorder=0)
    for step, label in marks:
        axis.axvline(step, color="black", alpha=0.55, linestyle="--", linewidth=1.0, zorder=1)
        axis.annotate(label, xy=(step, 1.0), xycoords=("data", "axes fraction"),
                      xytext=(2, -2), textcoords="offset points", rotation=90, va="top",
                      fontsize="x-small", alpha=0.8)


def plot_timeline(events: pd.DataFrame | None, schedule: list[Any], steps: int,
                  path: Any) -> Any:
    """`timeline.png`: what the scenario scheduled (`core.schedule.scheduled_items`: events,
    defense starts and attacks, one lane each, a bar over the steps it covers; defenses stay
    on to the end) above what happened (retrains and every marked event, from the events
    table), over the run's steps."""
    from simulator.analysis.figures import save, subplots

    retrains, marks = timeline_marks(events)
    lanes = [(item.what, item.step, steps - 1 if item.key.startswith("platform.defenses")
              else item.last) for item in schedule]
    fig, axis = subplots(figsize=(10, 1.2 + 0.45 * (len(lanes) + 2)))
    rows = len(lanes) + 2
    for row, (label, first, last) in enumerate(lanes):
        y = rows - 1 - row
        axis.barh(y, last - first + 0.8, left=first - 0.4, height=0.5, color="tab:blue",
                  alpha=0.35)
        axis.annotate(label, xy=(first, y), xytext=(3, 0), textcoords="offset points",
                      va="center", fontsize="small")
    axis.scatter(retrains, [1] * len(retrains), marker="|", s=120, color="grey")
    for step, label in marks:
        axis.scatter([step], [0], color="black", s=18, zorder=3)
        axis.annotate(label, xy=(step, 0), xytext=(3, 4), textcoords="offset points",
                      fontsize="x-small", rotation=30)
    axis.set_yticks(range(rows), ["happened", "retrains", *["scheduled"] * len(lanes)])
    axis.set(xlabel="step", xlim=(-0.6, steps - 0.4), ylim=(-0.7, rows - 0.3),
             title="Timeline: what was scheduled, and what happened")
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    save(fig, path)
    return path


def run_schedule(config: dict[str, Any], source: str) -> tuple[list[Any] | None, int | None]:
    """A finished run's scheduled items and steps, from its resolved `config` (read from
    `source`); (None, None) when the config no longer validates here, e.g. its data folder
    moved."""
    from simulator.foundations.errors import PrivsimError
    from simulator.scenario.loading import build_scenario
    from simulator.scenario.schedule import scheduled_items

    try:
        scenario = build_scenario(config, source)
    except (PrivsimError, ValueError):
        return None, None
    return scheduled_items(scenario), scenario.simulation.steps
