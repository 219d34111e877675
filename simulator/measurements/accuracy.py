"""Accuracy on each user's held-out future ratings, and the popularity baseline's."""

from __future__ import annotations

import numpy as np

from agents.board import StepBoard
from simulator.foundations.columns import COUNT, SHARE, Column
from simulator.measurements.base import Columns, GroupedMeasurement, Measurement, ModelView, Shared
from simulator.metrics.errors_and_hits import rating_errors


class Accuracy(GroupedMeasurement):
    """MAE and RMSE (rating models) and HR@k and NDCG@k (full ranking over the items a user
    has not disclosed) of the platform's model, overall and per group; none before it first
    trains. Leaves the errors and hits on the board (users perceive their NDCG)."""

    columns = (Column("mae", *COUNT), Column("rmse", *COUNT), Column("hr_{k}", *SHARE),
               Column("ndcg_{k}", *SHARE))

    def __init__(self, model: ModelView, shared: Shared) -> None:
        super().__init__(model, shared)
        self.ranking = shared.ranking
        self.k = model.scenario.metrics.k

    def measure(self, model: ModelView, board: StepBoard) -> Columns:
        """Evaluate the platform's current model; the overall slice."""
        platform = model.platform
        if platform.trained:
            recommender = platform.recommender
            if recommender.predicts_ratings:
                board.errors = rating_errors(recommender.predict, model.test,
                                             model.world.n_users)
            board.hits = self.ranking.evaluate(recommender.score, *platform.seen_items(),
                                               (platform.version, platform.data.rewrites))
        return super().measure(model, board)

    def group_columns(
        self, model: ModelView, board: StepBoard, mask: np.ndarray,
        key: tuple[str, str] | None,
    ) -> Columns:
        """Micro-averaged errors and mean hits of the users in `mask`."""
        values: Columns = {}
        errors, hits = board.errors, board.hits
        if errors is not None:
            count = errors.count[mask].sum()
            values["mae"] = float(errors.abs_sum[mask].sum() / count) if count else float("nan")
            values["rmse"] = (
                float(np.sqrt(errors.sq_sum[mask].sum() / count)) if count else float("nan")
            )
        if hits is not None:
            values[f"hr_{self.k}"] = nanmean(hits.hit[mask])
            values[f"ndcg_{self.k}"] = nanmean(hits.ndcg[mask])
        return values


class PopularityBaseline(Measurement):
    """HR@k and NDCG@k of recommending the most disclosed items (what users compare the
    platform's quality with)."""

    columns = (Column("pop_hr_{k}", *SHARE), Column("pop_ndcg_{k}", *SHARE))

    def __init__(self, model: ModelView, shared: Shared) -> None:
        self.ranking = shared.ranking
        self.k = model.scenario.metrics.k

    def measure(self, model: ModelView, board: StepBoard) -> Columns:
        """`pop_hr_k` and `pop_ndcg_k`; leaves the per-user hits on the board."""
        popular = self.ranking.evaluate_popularity(*model.platform.seen_items())
        board.popular = popular
        return {f"pop_hr_{self.k}": float(np.nanmean(popular.hit)),
                f"pop_ndcg_{self.k}": float(np.nanmean(popular.ndcg))}


def nanmean(values: np.ndarray) -> float:
    """The mean over non-NaN values (NaN, without a warning, when there are none)."""
    return float(np.nanmean(values)) if np.any(~np.isnan(values)) else float("nan")
