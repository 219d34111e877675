"""The step board: what the phases of one step hand on to each other.

The model makes a fresh board at the start of every step and passes it to each phase
(the agents' phase methods, then the measurements); nothing keeps it after the step, so
it is never part of a checkpoint.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from simulator.world.base import Interactions

if TYPE_CHECKING:
    from agents.platform import PlatformAgent
    from agents.twin import CleanTwin
    from simulator.attacks.inference import AttackOutcome
    from simulator.metrics.errors_and_hits import RankingHits, RatingErrors
    from simulator.scenario.schema import EventConfig

# Logs one event: (step, kind, agent, value, seconds, detail).
EventLog = Callable[[int, str, str, float, float, dict], None]


@dataclass
class StepBoard:
    """One step's shared state.

    `platform` is the platform users and attackers act on, `twin` its clean twin (poisoning
    scenarios only). Phases fill in the rest as the step goes: the breaches announced, what
    users disclosed, whether the platform retrained, the inference attacker's results, the
    accuracy measured (which users then perceive), the metrics columns measured so far and
    the seconds each part took.
    """

    step: int
    log: EventLog
    platform: PlatformAgent
    twin: CleanTwin | None = None
    breaches: list[EventConfig] = field(default_factory=list)
    disclosed: Interactions = field(default_factory=Interactions.empty)
    retrained: bool = False
    attacks: dict[str, list[AttackOutcome]] = field(default_factory=dict)
    errors: RatingErrors | None = None
    hits: RankingHits | None = None
    popular: RankingHits | None = None
    disclosure_fraction: np.ndarray = field(default_factory=lambda: np.zeros(0))
    columns: dict[str, object] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def public(self) -> Interactions:
        """What attackers can read in public: every rating genuine users disclosed (the
        clean twin holds exactly those; without one, the platform does)."""
        holder = self.twin if self.twin is not None else self.platform
        return holder.data.table

    def event(self, kind: str, agent: str, value: float, seconds: float, detail: dict) -> None:
        """Log an event of this step."""
        self.log(self.step, kind, agent, value, seconds, detail)

    @contextmanager
    def timed(self, name: str) -> Iterator[None]:
        """Set the step's timing column `name` to the seconds the block takes."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = time.perf_counter() - started
