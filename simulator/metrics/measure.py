"""One step's measurement: accuracy, leakage and disclosure, overall and per group."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from simulator.attacks.inference import AttackOutcome, pick_best
from simulator.metrics.accuracy import (
    RankingEvaluator,
    RankingHits,
    RatingErrors,
    rating_errors,
)
from simulator.metrics.groups import Group, disclosure_groups
from simulator.metrics.leakage import leakage_scores
from simulator.recommenders.base import Recommender
from simulator.world.base import Interactions


@dataclass
class StepInputs:
    """What the measurement of one step looks at."""

    recommender: Recommender | None
    seen_user: np.ndarray
    seen_item: np.ndarray
    attacks: dict[str, list[AttackOutcome]]
    attacker_known: np.ndarray | None
    disclosure_fraction: np.ndarray
    beta: np.ndarray
    n_disclosed: np.ndarray
    attack_id: int = -1  # which fresh attack produced `attacks`; leakage is cached by it
    # Same key: the same model, and the seen table with rows only appended (the rankings
    # are then updated instead of recomputed); None: rank afresh.
    ranking_key: object = None


class Measurer:
    """Computes the per-step metrics row and the per-group rows."""

    def __init__(
        self, test: Interactions, n_users: int, n_items: int, k: int,
        groups: list[Group], attributes: dict[str, np.ndarray], device: torch.device,
    ) -> None:
        self.test = test
        self.n_users, self.n_items, self.k = n_users, n_items, k
        self.groups = groups
        self.attributes = attributes
        self.device = device
        self.ranking = RankingEvaluator(test, n_users, n_items, k, device)
        self._leak_cache: dict[tuple[int, str, str], dict[str, float]] = {}
        self._classifier_cache: tuple[int, dict[str, object]] | None = None
        self.user_quality: np.ndarray | None = None
        self.user_baseline: np.ndarray | None = None

    def forget_cached_leakage(self) -> None:
        """Group memberships changed: leakage must be recomputed for every group."""
        self._leak_cache = {}

    def measure(self, inputs: StepInputs) -> tuple[dict[str, float], list[dict[str, object]]]:
        """The metrics row (overall) and one row per group."""
        errors, hits = self._accuracy(inputs)
        popular = self.ranking.evaluate_popularity(inputs.seen_user, inputs.seen_item)
        # What each user perceives of its recommendations (the disclosure policies use it).
        self.user_quality = hits.ndcg if hits is not None else None
        self.user_baseline = popular.ndcg
        everyone = np.ones(self.n_users, dtype=bool)
        row = self._slice(everyone, inputs, errors, hits, ("all", "everyone"))
        row[f"pop_hr_{self.k}"] = float(np.nanmean(popular.hit))
        row[f"pop_ndcg_{self.k}"] = float(np.nanmean(popular.ndcg))
        row["beta_mean"] = float(inputs.beta.mean())
        row.update(self._all_classifiers(inputs))
        group_rows = []
        dynamic = disclosure_groups(inputs.n_disclosed, inputs.disclosure_fraction)
        for group in [*self.groups, *dynamic]:
            static = group.kind != "disclosure"
            values = self._slice(group.mask, inputs, errors, hits,
                                 (group.kind, group.name) if static else None)
            group_rows.append(
                {"group_kind": group.kind, "group": group.name,
                 "n_users": int(group.mask.sum()), **values}
            )
        return row, group_rows

    def _accuracy(self, inputs: StepInputs) -> tuple[RatingErrors | None, RankingHits | None]:
        model = inputs.recommender
        if model is None:
            return None, None
        errors = None
        if model.predicts_ratings:
            errors = rating_errors(model.predict, self.test, self.n_users)
        hits = self.ranking.evaluate(model.score, inputs.seen_user, inputs.seen_item,
                                     inputs.ranking_key)
        return errors, hits

    def _slice(
        self, mask: np.ndarray, inputs: StepInputs,
        errors: RatingErrors | None, hits: RankingHits | None, key: tuple[str, str] | None,
    ) -> dict[str, float]:
        """Metrics restricted to the users in `mask`; `key` names a fixed group whose
        leakage can be cached until the next fresh attack (None: membership changes each
        step)."""
        values: dict[str, float] = {}
        fractions = inputs.disclosure_fraction[mask]
        values["disclosure_mean"] = (
            float(np.nanmean(fractions)) if np.any(~np.isnan(fractions)) else float("nan")
        )
        values["group_beta_mean"] = float(inputs.beta[mask].mean()) if mask.any() else float("nan")
        if errors is not None:
            count = errors.count[mask].sum()
            values["mae"] = float(errors.abs_sum[mask].sum() / count) if count else float("nan")
            values["rmse"] = (
                float(np.sqrt(errors.sq_sum[mask].sum() / count)) if count else float("nan")
            )
        if hits is not None:
            values[f"hr_{self.k}"] = _nanmean(hits.hit[mask])
            values[f"ndcg_{self.k}"] = _nanmean(hits.ndcg[mask])
        if inputs.attacks:
            values.update(self._group_leakage(mask, inputs, key))
        return values

    def _group_leakage(
        self, mask: np.ndarray, inputs: StepInputs, key: tuple[str, str] | None
    ) -> dict[str, float]:
        """Leakage for every attacked attribute; fixed groups are cached until the attacker
        attacks afresh (its predictions only change then)."""
        cache_key = None if key is None else (inputs.attack_id, *key)
        if cache_key in self._leak_cache:
            return self._leak_cache[cache_key]
        leak: dict[str, float] = {}
        for attribute, outcomes in inputs.attacks.items():
            leak.update(self._leakage(attribute, outcomes, inputs.attacker_known, mask))
        if cache_key is not None:
            self._leak_cache = {k: v for k, v in self._leak_cache.items()
                                if k[0] == inputs.attack_id}
            self._leak_cache[cache_key] = leak
        return leak

    def _leakage(
        self, attribute: str, outcomes: list[AttackOutcome], known: np.ndarray | None,
        mask: np.ndarray,
    ) -> dict[str, float]:
        """Leakage of the attacker's chosen classifier on the users it did not know."""
        best = pick_best(outcomes)
        target = mask & ~known if known is not None else mask
        scores = leakage_scores(self.attributes[attribute][target], best.proba[target])
        prefix = f"leak_{attribute}"
        return {
            f"{prefix}_auc": scores["auc"],
            f"{prefix}_bacc": scores["bacc"],
            f"{prefix}_acc": scores["acc"],
            f"{prefix}_majority": scores["majority"],
            f"{prefix}_auc_chance": 0.5,
            f"{prefix}_bacc_chance": scores["bacc_chance"],
        }

    def _all_classifiers(self, inputs: StepInputs) -> dict[str, object]:
        """Every classifier's scores, kept until the attacker attacks afresh."""
        if self._classifier_cache is not None and self._classifier_cache[0] == inputs.attack_id:
            return self._classifier_cache[1]
        values: dict[str, object] = {}
        for attribute, outcomes in inputs.attacks.items():
            values.update(self._per_classifier(attribute, outcomes, inputs.attacker_known))
        self._classifier_cache = (inputs.attack_id, values)
        return values

    def _per_classifier(
        self, attribute: str, outcomes: list[AttackOutcome], known: np.ndarray | None
    ) -> dict[str, object]:
        """Every classifier's scores on the unknown users, and the attacker's own CV AUC."""
        target = ~known if known is not None else np.ones(self.n_users, dtype=bool)
        values: dict[str, object] = {f"leak_{attribute}_classifier": pick_best(outcomes).classifier}
        for outcome in outcomes:
            scores = leakage_scores(self.attributes[attribute][target], outcome.proba[target])
            values[f"leak_{attribute}_auc_{outcome.classifier}"] = scores["auc"]
            values[f"leak_{attribute}_bacc_{outcome.classifier}"] = scores["bacc"]
            values[f"leak_{attribute}_cv_auc_{outcome.classifier}"] = outcome.cv_auc
        return values


def _nanmean(values: np.ndarray) -> float:
    return float(np.nanmean(values)) if np.any(~np.isnan(values)) else float("nan")
