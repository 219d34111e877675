"""The platform's defenses from a scenario, each switched on from its own start step.

One retrain goes: screen the data for fake profiles (detection), choose the training (DP-SGD
or the model's own fit, with or without the gradient-reversal adversary or APR; DP-SGD
trains on the per-example APR objective when APR is on), train, then edit the user
embeddings by attribute unlearning. Every defense a retrain lists has acted on it;
combinations that cannot (DP-SGD with gradient reversal) are refused by the configuration.
DP-SGD never continues from parameters trained without it: a warm start from a non-private
model would carry its unprotected use of the ratings into every later release, so the first
DP retrain after non-private training starts from scratch.
The platform knows every user's attributes (profile data given at sign-up, as in MovieLens);
users who ask for unlearning are given by a callable so the user side can change them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from simulator.core.config import DefensesConfig, DefenseSection
from simulator.defenses.adversarial import AttributeAdversary
from simulator.defenses.dp import dp_fit
from simulator.defenses.ledger import PrivacyLedger
from simulator.defenses.screening import screen
from simulator.defenses.unlearning import unlearn_attribute
from simulator.recommenders.base import Recommender, TrainingReport
from simulator.recommenders.factor_model import FactorModel
from simulator.world.base import Interactions


def is_active(section: DefenseSection | None, step: int) -> bool:
    """Whether a defense section is configured, enabled and past its start step."""
    return section is not None and section.enabled and step >= section.start_step


@dataclass
class RetrainOutcome:
    """A retrain's report and what its defenses did (flat, for the step's metrics row)."""

    report: TrainingReport
    metrics: dict[str, float] = field(default_factory=dict)
    defenses: list[str] = field(default_factory=list)


class PlatformDefenses:
    """Applies the configured defenses around each retrain and keeps their state."""

    def __init__(
        self,
        config: DefensesConfig,
        attributes: dict[str, np.ndarray],
        n_classes: dict[str, int],
        n_users: int,
        seed: int,
        requested_users: Callable[[], np.ndarray] | None = None,
        n_genuine: int | None = None,
    ) -> None:
        self.config = config
        self.attributes = attributes
        self.n_classes = n_classes
        self.seed = seed
        self.requested_users = requested_users
        self.n_users = n_users
        self.n_genuine = n_users if n_genuine is None else n_genuine
        self.ledger = PrivacyLedger(n_users) if config.dp is not None else None
        self._adversary: AttributeAdversary | None = None
        self._last_fit_private = False
        self._retrains = 0
        self.latest: dict[str, float] = {name: math.nan for name in self.metric_names()}

    def metric_names(self) -> list[str]:
        """The per-step columns the configured defenses report (NaN until they act)."""
        names: list[str] = []
        if self.config.adversarial is not None:
            names += [f"adversary_readout_acc_{a}" for a in self.config.adversarial.attributes]
        if self.config.unlearning is not None:
            names += ["unlearning_distance_before", "unlearning_distance_after",
                      "unlearning_alpha", "unlearning_users", "unlearning_steps",
                      "unlearning_probe_auc_before", "unlearning_probe_auc_after"]
        if self.config.dp is not None:
            names += ["dp_epsilon_retrain", "dp_noise_multiplier", "dp_epsilon_user_max",
                      "dp_epsilon_user_mean"]
        if self.config.detection is not None:
            names += ["detection_flagged", "detection_precision", "detection_recall"]
        if self.n_genuine < self.n_users:
            names += ["fake_users_trained"]
        return names

    def retrain(
        self,
        step: int,
        recommender: Recommender,
        table: Interactions,
        epochs: int,
        warm_start: bool,
    ) -> RetrainOutcome:
        """Train `recommender` on `table` under the defenses active at `step`."""
        cfg = self.config
        used: list[str] = []
        metrics: dict[str, float] = {}
        if is_active(cfg.detection, step):
            assert cfg.detection is not None
            screening = screen(table, recommender.n_items, self.n_genuine, cfg.detection,
                               self.seed + 1000 * self._retrains)
            table = screening.table
            metrics.update(screening.metrics)
            used.append("detection")
        if self.n_genuine < self.n_users:
            fake = np.unique(table.user[table.user >= self.n_genuine])
            metrics["fake_users_trained"] = float(len(fake))
        recommender.set_adversary(self._adversary_for(step))
        if cfg.apr is not None:
            assert isinstance(recommender, FactorModel)
            if is_active(cfg.apr, step):
                recommender.set_apr(cfg.apr.epsilon, cfg.apr.weight)
                used.append("apr")
            else:
                recommender.clear_apr()
        if self._adversary is not None and is_active(cfg.adversarial, step):
            used.append("adversarial")
        seed = self.seed + 1000 * self._retrains
        self._retrains += 1
        if is_active(cfg.dp, step):
            assert cfg.dp is not None and self.ledger is not None
            warm = warm_start and self._last_fit_private
            report = dp_fit(recommender, table, epochs, warm, cfg.dp, seed)
            self._last_fit_private = True
            if report.epochs:
                index = self.ledger.record_fit(report, table)
                users = self.ledger.user_epsilons()[: self.n_genuine]  # real users only
                metrics.update({
                    "dp_epsilon_retrain": self.ledger.retrain_epsilon(index),
                    "dp_noise_multiplier": float(report.noise_multiplier),
                    "dp_epsilon_user_max": float(users.max()),
                    "dp_epsilon_user_mean": float(users.mean()),
                })
            used.append("dp")
        else:
            report = recommender.fit(table, epochs, warm_start=warm_start)
            self._last_fit_private = False
        if "adversarial" in used and self._adversary is not None and self._adversary.history:
            for name, stats in self._adversary.history[-1].items():
                metrics[f"adversary_readout_acc_{name}"] = stats["accuracy"]
        if is_active(cfg.unlearning, step) and report.diverged is None:
            # After DP-SGD the edit must not read the ratings (it would void the epsilon):
            # top-k lists then range over all items, and every user's row moves.
            edit_data = None if "dp" in used else table
            edited = self._unlearn(recommender, edit_data, seed)
            metrics.update(edited)
            if edited.get("unlearning_steps", 0.0) > 0:  # listed only when the rows moved
                used.append("unlearning")
        self.latest.update(metrics)
        return RetrainOutcome(report, metrics, used)

    def _adversary_for(self, step: int) -> AttributeAdversary | None:
        """The adversary to train against at `step` (built once, kept across retrains)."""
        cfg = self.config.adversarial
        if not is_active(cfg, step):
            return None
        assert cfg is not None
        if self._adversary is None:
            self._adversary = AttributeAdversary(
                {a: self.attributes[a] for a in cfg.attributes},
                {a: self.n_classes[a] for a in cfg.attributes},
                weight=cfg.weight, readout=cfg.readout, hidden=cfg.hidden, lr=cfg.lr,
                head_steps=cfg.head_steps, seed=self.seed,
            )
        return self._adversary

    def _unlearn(self, recommender: Recommender, table: Interactions | None, seed: int) -> dict:
        cfg = self.config.unlearning
        assert cfg is not None
        mask = None
        if cfg.scope == "requested":
            mask = (
                self.requested_users() if self.requested_users is not None
                else np.zeros(recommender.n_users, dtype=bool)
            )
            if not mask.any():
                return {"unlearning_users": 0.0, "unlearning_steps": 0.0}
        report = unlearn_attribute(
            recommender, self.attributes[cfg.attribute], cfg, data=table, users=mask, seed=seed
        )
        return {
            "unlearning_distance_before": report.distance_before,
            "unlearning_distance_after": report.distance_after,
            "unlearning_alpha": report.mean_alpha,
            "unlearning_users": float(report.edited_users),
            "unlearning_steps": float(report.steps),
            "unlearning_probe_auc_before": report.probe_auc_before,
            "unlearning_probe_auc_after": report.probe_auc_after,
        }
