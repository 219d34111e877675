"""Where the step stands: its number, the platform's model and data, active users."""

from __future__ import annotations

from agents.board import StepBoard
from simulator.foundations.columns import COUNT, SHARE, Column
from simulator.measurements.base import Columns, Measurement, ModelView


class StepStatus(Measurement):
    """The step, whether the platform retrained and its model version, how many users are
    active and how many ratings the platform holds."""

    columns = (Column("step", *COUNT), Column("retrained", *SHARE), Column("model_version", *COUNT),
               Column("n_active", *COUNT), Column("n_platform_ratings", *COUNT))

    def measure(self, model: ModelView, board: StepBoard) -> Columns:
        """The status columns."""
        return {
            "step": board.step, "retrained": board.retrained,
            "model_version": model.platform.version,
            "n_active": int(model.population.active.sum()),
            "n_platform_ratings": len(model.platform.data),
        }
