"""How much users disclose: the share of their experienced ratings, and their budgets."""

from __future__ import annotations

import numpy as np

from agents.board import StepBoard
from simulator.foundations.columns import SHARE, Column
from simulator.measurements.base import Columns, GroupedMeasurement, Measurement, ModelView


class Disclosure(GroupedMeasurement):
    """Mean disclosed share and mean budget beta, overall and per group."""

    columns = (Column("disclosure_mean", *SHARE), Column("group_beta_mean", *SHARE))

    def group_columns(
        self, model: ModelView, board: StepBoard, mask: np.ndarray,
        key: tuple[str, str] | None,
    ) -> Columns:
        """`disclosure_mean` (NaN before anyone in the group experienced anything) and
        `group_beta_mean`."""
        fractions = board.disclosure_fraction[mask]
        beta = model.population.beta
        return {
            "disclosure_mean": (float(np.nanmean(fractions)) if np.any(~np.isnan(fractions))
                                else float("nan")),
            "group_beta_mean": float(beta[mask].mean()) if mask.any() else float("nan"),
        }


class BudgetMean(Measurement):
    """Everyone's mean disclosure budget beta."""

    columns = (Column("beta_mean", *SHARE),)

    def measure(self, model: ModelView, board: StepBoard) -> Columns:
        """`beta_mean`."""
        return {"beta_mean": float(model.population.beta.mean())}
