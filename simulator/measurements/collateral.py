"""Collateral damage of poisoning: genuine users' accuracy with and without the attack."""

from __future__ import annotations

import math
from typing import cast

import numpy as np

from agents.board import StepBoard
from simulator.foundations.columns import CHANGE, COUNT, SHARE, Column
from simulator.measurements.base import Columns, Measurement, ModelView, Shared
from simulator.metrics.errors_and_hits import RankingEvaluator, rating_errors


class Collateral(Measurement):
    """Genuine users' HR@k (and MAE, rating models) on the clean twin, and the change the
    attack caused: the attacked platform's accuracy is the one `Accuracy` measured this
    step (`board.columns`). Both rank each step's unseen items, so the change compares like
    with like; the clean twin's lists are kept between its retrains (its own evaluator, so
    the attacked platform's cached lists stay too), and its MAE is recomputed only when it
    retrained."""

    columns = (Column("hr_{k}_clean", *SHARE), Column("hr_{k}_change", *CHANGE),
               Column("mae_clean", *COUNT), Column("mae_change"))
    reads = ("accuracy",)

    def __init__(self, model: ModelView, shared: Shared) -> None:
        self.k = model.scenario.metrics.k
        self.ranking = RankingEvaluator(model.test, n_users=model.world.n_users,
                                        n_items=model.world.n_items,
                                        k=self.k, device=model.device)
        self._errors: tuple[int, float] | None = None

    def measure(self, model: ModelView, board: StepBoard) -> Columns:
        """`hr_k_clean`, `hr_k_change` (and `mae_clean`, `mae_change`)."""
        clean = model.clean_platform
        assert clean is not None
        k = self.k
        row: Columns = {f"hr_{k}_clean": math.nan, f"hr_{k}_change": math.nan}
        if clean.trained and model.platform.trained:
            measured = board.columns
            hits = self.ranking.evaluate(clean.recommender.score, *clean.seen_items(),
                                         (clean.version, clean.data.rewrites)).hit
            clean_hr = float(np.nanmean(hits))
            row[f"hr_{k}_clean"] = clean_hr
            row[f"hr_{k}_change"] = cast(float, measured[f"hr_{k}"]) - clean_hr
            if clean.recommender.predicts_ratings:
                clean_mae = self._clean_mae(model, clean.version)
                row["mae_clean"] = clean_mae
                row["mae_change"] = cast(float, measured["mae"]) - clean_mae
        return row

    def _clean_mae(self, model: ModelView, version: int) -> float:
        """The clean twin's MAE on the held-out ratings (fixed between its retrains)."""
        if self._errors is None or self._errors[0] != version:
            clean = model.clean_platform
            assert clean is not None
            errors = rating_errors(clean.recommender.predict, model.test, model.n_genuine)
            self._errors = (version, float(errors.abs_sum.sum() / max(errors.count.sum(), 1)))
        return self._errors[1]
