"""State the users' policy and the platform's defenses report about themselves."""

from __future__ import annotations

from agents.board import StepBoard
from simulator.defenses.registry import DEFENSES
from simulator.foundations.columns import COUNT, SHARE, Column
from simulator.measurements.base import Columns, Measurement, ModelView


class PolicyLedger(Measurement):
    """The disclosure policy's own columns (perceived benefit, breach salience, who heard a
    breach, budget assortativity on the social graph...)."""

    columns = (Column("perceived_benefit_mean"), Column("breach_salience_mean", *COUNT),
               Column("breach_informed_share", *SHARE), Column("breach_heard_share", *SHARE),
               Column("beta_assortativity", -1.0, 1.0))

    def measure(self, model: ModelView, board: StepBoard) -> Columns:
        """The policy's columns."""
        population = model.population
        return dict(population.policy.metrics(population.beta))


class DefenseMetrics(Measurement):
    """The latest values the platform's defenses report (privacy spent, read-out accuracy,
    unlearning distances...; NaN until a defense acts, nothing without defenses)."""

    columns = (*(column for defense in DEFENSES for column in defense.columns),
               Column("fake_users_trained", *COUNT))

    def measure(self, model: ModelView, board: StepBoard) -> Columns:
        """The defenses' columns."""
        return dict(model.platform.defenses.latest)
