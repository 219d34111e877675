"""Differentially private training: every retrain from `start_step` on runs DP-SGD
(`defenses.dp`, Opacus) in place of the model's own fit, and a ledger composes each user's
epsilon over the retrains that used their ratings (`defenses.ledger`).

With adversarial training on too, each example's loss carries its user's reversed read-out
term and the heads train on the released iterates only (`defenses.dp` says why this costs no
epsilon).

DP-SGD never continues from parameters trained without it: a warm start from a non-private
model would carry its unprotected use of the ratings into every later release, so the first
DP retrain after non-private training starts from scratch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from simulator.defenses.dp.settings import DPConfig
from simulator.defenses.protocol import Defense, DefenseContext, Retrain
from simulator.foundations.columns import COUNT, Column
from simulator.foundations.settings import DefenseSection

if TYPE_CHECKING:
    from simulator.recommenders.base import TrainingReport


class PrivateTraining(Defense):
    """Replaces the fit by DP-SGD while active and keeps the users' privacy ledger."""

    key = "dp"
    summary_columns = ("dp_epsilon_user_max",)
    columns = (Column("dp_epsilon_retrain", *COUNT), Column("dp_noise_multiplier", *COUNT),
               Column("dp_epsilon_user_max", *COUNT), Column("dp_epsilon_user_mean", *COUNT))
    example = {"noise_multiplier": 2.0}
    settings = DPConfig
    requires: ClassVar[frozenset[str]] = frozenset({"dense_training"})
    with_item_features = False  # DP-SGD reads the item factors without the side information
    with_consumption = False  # its per-rating accounting counts a rating once, not twice

    def __init__(self, *, config: DefenseSection, context: DefenseContext) -> None:
        super().__init__(config=config, context=context)
        from simulator.defenses.dp.accounting import PrivacyLedger

        self.ledger = PrivacyLedger(context.n_users)
        self.last_fit_private = False

    @classmethod
    def conflicts(cls, config: DefenseSection, others: dict[str, DefenseSection]) -> str | None:
        """An edit trained on the ratings outside DP-SGD would void its epsilon."""
        if not config.enabled:
            return None
        unlearning = others.get("unlearning")
        if unlearning is not None and unlearning.enabled \
                and getattr(unlearning, "utility", None) == "model":
            return ("defenses.unlearning.utility: 'model' trains the edit on the ratings "
                    "outside DP-SGD, which voids defenses.dp's epsilon; use topk or distance")
        return None

    def metric_names(self) -> list[str]:
        """This retrain's epsilon and noise, and the users' cumulative epsilons."""
        return ["dp_epsilon_retrain", "dp_noise_multiplier", "dp_epsilon_user_max",
                "dp_epsilon_user_mean"]

    def fit(self, retrain: Retrain, epochs: int, warm_start: bool) -> TrainingReport | None:
        """DP-SGD while active (None otherwise, noting that the model trains in the clear)."""
        if not self.active(retrain.step):
            self.last_fit_private = False
            return None
        from simulator.defenses.dp.dp_sgd import dp_fit

        config = self.config
        assert isinstance(config, DPConfig)
        warm = warm_start and self.last_fit_private
        report = dp_fit(retrain.recommender, retrain.table, epochs, warm, config, retrain.seed)
        self.last_fit_private = True
        return report

    def after_fit(self, retrain: Retrain) -> tuple[dict[str, float], bool]:
        """Record a private fit in the ledger and report its cost."""
        from simulator.defenses.dp.dp_sgd import DPTrainingReport

        report = retrain.report
        if not isinstance(report, DPTrainingReport) or not report.epochs:
            return {}, False
        index = self.ledger.record_fit(report, retrain.table)
        users = self.ledger.user_epsilons()[: self.context.n_genuine]  # real users only
        metrics: dict[str, Any] = {
            "dp_epsilon_retrain": self.ledger.retrain_epsilon(index),
            "dp_noise_multiplier": float(report.noise_multiplier),
            "dp_epsilon_user_max": float(users.max()),
            "dp_epsilon_user_mean": float(users.mean()),
        }
        return metrics, False
