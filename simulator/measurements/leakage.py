"""Leakage: how well the inference attacker infers the attributes of users it did not know."""

from __future__ import annotations

import numpy as np

from agents.board import StepBoard
from simulator.attacks.inference import AttackOutcome, pick_best
from simulator.foundations.columns import SHARE, Column
from simulator.measurements.base import Columns, GroupedMeasurement, Measurement, ModelView, Shared
from simulator.metrics.classification import leakage_scores


class Leakage(GroupedMeasurement):
    """AUC, balanced accuracy and accuracy of the attacker's chosen classifier on the users
    it did not know, next to chance and the majority rate, overall and per group (none
    before its first attack). Fixed groups are cached until the attacker attacks afresh
    (its predictions only change then)."""

    columns = tuple(Column(f"leak_{{attribute}}_{name}", *SHARE)
                    for name in ("auc", "bacc", "acc", "majority", "auc_chance", "bacc_chance"))

    def __init__(self, model: ModelView, shared: Shared) -> None:
        super().__init__(model, shared)
        self.attributes = model.world.attributes
        self._cache: dict[tuple[int, str, str], Columns] = {}

    def groups_changed(self) -> None:
        """Group memberships changed: every group's leakage is recomputed."""
        self._cache = {}

    def group_columns(
        self, model: ModelView, board: StepBoard, mask: np.ndarray,
        key: tuple[str, str] | None,
    ) -> Columns:
        """Leakage of every attacked attribute among the users in `mask`."""
        attacker = model.attacker
        if not board.attacks or attacker is None:
            return {}
        cache_key = None if key is None else (attacker.attacks, *key)
        if cache_key in self._cache:
            return self._cache[cache_key]
        leak: Columns = {}
        for attribute, outcomes in board.attacks.items():
            leak.update(self._leakage(attribute, outcomes, attacker.known, mask))
        if cache_key is not None:
            self._cache = {k: v for k, v in self._cache.items() if k[0] == attacker.attacks}
            self._cache[cache_key] = leak
        return leak

    def _leakage(
        self, attribute: str, outcomes: list[AttackOutcome], known: np.ndarray,
        mask: np.ndarray,
    ) -> Columns:
        best = pick_best(outcomes)
        target = mask & ~known
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


class ClassifierLeakage(Measurement):
    """Every classifier's AUC and balanced accuracy on the users the attacker did not know,
    its own cross-validated AUC, and which classifier it chose; kept until it attacks
    afresh."""

    columns = (Column("leak_{attribute}_classifier"),
               *(Column(f"leak_{{attribute}}_{name}_{{classifier}}", *SHARE)
                 for name in ("auc", "bacc", "cv_auc")))

    def __init__(self, model: ModelView, shared: Shared) -> None:
        self.attributes = model.world.attributes
        self._cache: tuple[int, Columns] | None = None

    def measure(self, model: ModelView, board: StepBoard) -> Columns:
        """The per-classifier columns of every attacked attribute."""
        attacker = model.attacker
        attack_id = attacker.attacks if attacker is not None else -1
        if self._cache is not None and self._cache[0] == attack_id:
            return self._cache[1]
        values: Columns = {}
        for attribute, outcomes in board.attacks.items():
            assert attacker is not None
            values.update(self._per_classifier(attribute, outcomes, attacker.known))
        self._cache = (attack_id, values)
        return values

    def _per_classifier(
        self, attribute: str, outcomes: list[AttackOutcome], known: np.ndarray
    ) -> Columns:
        target = ~known
        values: Columns = {f"leak_{attribute}_classifier": pick_best(outcomes).classifier}
        for outcome in outcomes:
            scores = leakage_scores(self.attributes[attribute][target], outcome.proba[target])
            values[f"leak_{attribute}_auc_{outcome.classifier}"] = scores["auc"]
            values[f"leak_{attribute}_bacc_{outcome.classifier}"] = scores["bacc"]
            values[f"leak_{attribute}_cv_auc_{outcome.classifier}"] = outcome.cv_auc
        return values
