"""What the poisoning attackers achieved: their targets' standing with and without them."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from agents.board import StepBoard
from simulator.foundations.columns import COUNT, SHARE, Column
from simulator.measurements.base import Columns, Measurement, ModelView, Shared
from simulator.metrics.target_standing import TARGET_KS, TargetView, target_metrics, target_view
from simulator.recommenders.mf import RATING_MAX, RATING_MIN

if TYPE_CHECKING:
    from agents.platform import PlatformAgent


def _prefixed(*columns: Column) -> tuple[Column, ...]:
    """Each column, and its `attacker{i}_` form (written when there are several poisoners)."""
    return (*columns, *(Column("attacker{i}_" + c.name, c.low, c.high) for c in columns))


class PoisoningTargets(Measurement):
    """Fake profiles injected; each shilling attacker's targets' HR@k and NDCG@k among genuine
    users on the attacked platform and on its clean twin, the prediction shift and what the
    attacker itself observed; each item owner's items' HR@k and shift in its segment and among the
    other users, and its latest perturbation gain. Columns are prefixed `attackerN_` when
    there are several poisoners. Recomputed only when either platform retrained."""

    columns = (Column("fake_profiles", *COUNT), *_prefixed(
        Column("target_hr_{k}", *SHARE), Column("target_hr_{k}_clean", *SHARE),
        Column("target_ndcg_{k}", *SHARE), Column("target_ndcg_{k}_clean", *SHARE),
        Column("prediction_shift"), Column("observed_success", *SHARE),
        Column("owned_hr_{k}_segment", *SHARE), Column("owned_hr_{k}_others", *SHARE),
        Column("owned_hr_{k}_segment_clean", *SHARE), Column("owned_hr_{k}_others_clean", *SHARE),
        Column("owned_shift_segment"), Column("owned_shift_others"),
        Column("perturbation_gain")))

    def __init__(self, model: ModelView, shared: Shared) -> None:
        self._cache: tuple[tuple[int, int], Columns] | None = None

    def measure(self, model: ModelView, board: StepBoard) -> Columns:
        """The poisoning columns."""
        attacked, clean = model.platform, model.clean_platform
        assert clean is not None
        key = (attacked.version, clean.version)
        if self._cache is not None and self._cache[0] == key:
            return dict(self._cache[1])
        row: Columns = {"fake_profiles": float(sum(a.injected for a in model.shillers))}
        several = len(model.shillers) + len(model.item_owners) > 1
        genuine = np.arange(model.n_genuine)
        trained = attacked.trained and clean.trained
        for index, attacker in enumerate(model.shillers):
            prefix = f"attacker{index}_" if several else ""
            values: Columns = dict.fromkeys(target_columns(), math.nan)
            if attacker.targets is not None and trained:
                values = dict(target_metrics(
                    _view(model, attacked, genuine, attacker.targets),
                    _view(model, clean, genuine, attacker.targets),
                ))
            values["observed_success"] = attacker.observed_success
            row.update({prefix + k: v for k, v in values.items()})
        for index, owner in enumerate(model.item_owners):
            prefix = f"attacker{len(model.shillers) + index}_" if several else ""
            values = dict.fromkeys(owned_columns(), math.nan)
            if owner.owned is not None and trained:
                values.update(_owned(model, owner.segment, owner.owned))
            values["perturbation_gain"] = owner.last_gain
            row.update({prefix + k: v for k, v in values.items()})
        self._cache = (key, dict(row))
        return row


def _owned(model: ModelView, segment: np.ndarray, owned: np.ndarray) -> Columns:
    """An item owner's items in its segment and among the other users."""
    assert model.clean_platform is not None
    values: Columns = {}
    for name, users in (("segment", np.flatnonzero(segment)),
                        ("others", np.flatnonzero(~segment))):
        if len(users) == 0:
            continue
        now = target_metrics(_view(model, model.platform, users, owned),
                             _view(model, model.clean_platform, users, owned))
        for k in TARGET_KS:
            values[f"owned_hr_{k}_{name}"] = now[f"target_hr_{k}"]
            values[f"owned_hr_{k}_{name}_clean"] = now[f"target_hr_{k}_clean"]
        values[f"owned_shift_{name}"] = now["prediction_shift"]
    return values


def _view(
    model: ModelView, platform: PlatformAgent, users: np.ndarray, items: np.ndarray
) -> TargetView:
    seen_user, seen_item = platform.seen_items()
    recommender = platform.recommender
    # A rating model's shift is in predicted ratings, as users would see them.
    clip = (RATING_MIN, RATING_MAX) if recommender.predicts_ratings else None
    return target_view(recommender.score, users, items, seen_user, seen_item,
                       model.world.n_items, model.device, clip=clip)


def target_columns() -> list[str]:
    """A shilling attacker's target columns (before any prefix)."""
    return [*(f"target_{what}_{k}{suffix}" for what in ("hr", "ndcg") for suffix in ("", "_clean")
              for k in TARGET_KS), "prediction_shift"]


def owned_columns() -> list[str]:
    """An item owner's columns (before any prefix)."""
    return [f"owned_hr_{k}_{name}{suffix}" for name in ("segment", "others")
            for k in TARGET_KS for suffix in ("", "_clean")] + [
        "owned_shift_segment", "owned_shift_others"]
