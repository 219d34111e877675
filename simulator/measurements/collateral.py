"""Collateral damage of poisoning: genuine users' accuracy with and without the attack."""

from __future__ import annotations

import math
from typing import cast

import numpy as np

from agents.board import StepBoard
from simulator.measurements.base import Columns, Measurement, ModelView, Shared
from simulator.metrics.accuracy import rating_errors


class Collateral(Measurement):
    """Genuine users' HR@k (and MAE, rating models) on the clean twin, and the change the
    attack caused: the attacked platform's accuracy is the one `Accuracy` measured this
    step (`board.columns`). Recomputed only when either platform retrained."""

    def __init__(self, model: ModelView, shared: Shared) -> None:
        self.ranking = shared.ranking
        self.k = model.scenario.metrics.k
        self._cache: tuple[tuple[int, int], Columns] | None = None

    def measure(self, model: ModelView, board: StepBoard) -> Columns:
        """`hr_k_clean`, `hr_k_change` (and `mae_clean`, `mae_change`)."""
        clean = model.clean_platform
        assert clean is not None
        key = (model.platform.version, clean.version)
        if self._cache is not None and self._cache[0] == key:
            return dict(self._cache[1])
        k = self.k
        row: Columns = {f"hr_{k}_clean": math.nan, f"hr_{k}_change": math.nan}
        if clean.trained and model.platform.trained:
            measured = board.columns
            hits = self.ranking.evaluate(clean.recommender.score, *clean.seen_items()).hit
            clean_hr = float(np.nanmean(hits))
            row[f"hr_{k}_clean"] = clean_hr
            row[f"hr_{k}_change"] = cast(float, measured[f"hr_{k}"]) - clean_hr
            if clean.recommender.predicts_ratings:
                errors = rating_errors(clean.recommender.predict, model.test, model.n_genuine)
                clean_mae = float(errors.abs_sum.sum() / max(errors.count.sum(), 1))
                row["mae_clean"] = clean_mae
                row["mae_change"] = cast(float, measured["mae"]) - clean_mae
        self._cache = (key, dict(row))
        return row
