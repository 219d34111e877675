"""The platform's configured defenses around each retrain, each switched on from its own start
step: the hooks of every registered defense (`registry.DEFENSES`) run in order.

One retrain goes: `prepare` the training table (detection), `configure` the model's training
hooks (APR's perturbation, the gradient-reversal adversary), train (a defense's `fit`, such
as DP-SGD, or the model's own), then `after_fit` (attribute unlearning edits the embeddings;
DP records the privacy cost). Every defense a retrain lists has acted on it; combinations
that cannot act together are refused by the scenario check (`registry`).
The platform knows every user's attributes (profile data given at sign-up, as in MovieLens);
users who ask for unlearning are given by a callable so the user side can change them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from simulator.defenses.protocol import Defense, DefenseContext, Retrain
from simulator.defenses.registry import BY_KEY, configured
from simulator.foundations.random_streams import retrain_seed
from simulator.foundations.settings import DefenseSection
from simulator.recommenders.base import Recommender, TrainingReport
from simulator.world.base import Interactions


@dataclass
class RetrainOutcome:
    """A retrain's report and what its defenses did (flat, for the step's metrics row)."""

    report: TrainingReport
    metrics: dict[str, float] = field(default_factory=dict)
    defenses: list[str] = field(default_factory=list)


class PlatformDefenses:
    """Runs the configured defenses' hooks around each retrain and keeps their state."""

    def __init__(
        self,
        *,
        config: Any,
        attributes: dict[str, np.ndarray],
        n_classes: dict[str, int],
        n_users: int,
        seed: int,
        requested_users: Callable[[], np.ndarray] | None = None,
        n_genuine: int | None = None,
        attacker_classifiers: dict[str, tuple[str, ...]] | None = None,
    ) -> None:
        self.config = config
        self.n_users = n_users
        self.n_genuine = n_users if n_genuine is None else n_genuine
        self.seed = seed
        context = DefenseContext(attributes, n_classes, n_users, self.n_genuine, seed,
                                 requested_users, attacker_classifiers or {})
        sections: dict[str, DefenseSection] = configured(config)
        self.defenses: list[Defense] = [BY_KEY[key](config=section, context=context)
                                        for key, section in sections.items()]
        self._retrains = 0
        self.latest: dict[str, float] = {name: math.nan for name in self.metric_names()}

    def get(self, key: str) -> Defense | None:
        """The configured defense of that key (e.g. "dp" for its ledger), or None."""
        return next((d for d in self.defenses if d.key == key), None)

    def metric_names(self) -> list[str]:
        """The per-step columns the configured defenses report (NaN until they act)."""
        names = [name for defense in self.defenses for name in defense.metric_names()]
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
        retrain = Retrain(step, recommender, table, retrain_seed(self.seed, self._retrains))
        self._retrains += 1
        used: list[str] = []
        metrics: dict[str, float] = {}
        for defense in self.defenses:
            prepared = defense.prepare(retrain)
            if prepared is not None:
                retrain.table, found = prepared
                metrics.update(found)
                used.append(defense.key)
        if self.n_genuine < self.n_users:
            fake = np.unique(retrain.table.user[retrain.table.user >= self.n_genuine])
            metrics["fake_users_trained"] = float(len(fake))
        for defense in self.defenses:
            if defense.configure(retrain):
                used.append(defense.key)
        report = None
        for defense in self.defenses:
            report = defense.fit(retrain, epochs, warm_start)
            if report is not None:
                used.append(defense.key)
                break
        if report is None:
            report = recommender.fit(retrain.table, epochs, warm_start=warm_start)
        retrain.report = report
        for defense in self.defenses:
            retrain.used = tuple(used)
            found, acted = defense.after_fit(retrain)
            metrics.update(found)
            if acted:
                used.append(defense.key)
        self.latest.update(metrics)
        return RetrainOutcome(report, metrics, used)
