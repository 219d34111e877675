"""Post-training attribute unlearning: after each retrain from `start_step` on, the user
embeddings are edited so that a private attribute can no longer be read from them
(`defenses.unlearning`), for every user or only those who asked. The classes are those the
accounts declared: beside poisoning attackers, fake accounts' declarations count as a
genuine user's would.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from simulator.defenses.protocol import Defense, Retrain
from simulator.defenses.unlearning.settings import UnlearningConfig
from simulator.foundations.columns import COUNT, SHARE, Column

METRICS = ["unlearning_distance_before", "unlearning_distance_after", "unlearning_alpha",
           "unlearning_users", "unlearning_steps", "unlearning_probe_auc_before",
           "unlearning_probe_auc_after"]


class AttributeUnlearning(Defense):
    """Edits the user embeddings after every healthy retrain while active."""

    key = "unlearning"
    summary_columns = ("unlearning_probe_auc_after",)
    columns = (Column("unlearning_distance_before"), Column("unlearning_distance_after"),
               Column("unlearning_alpha", *SHARE), Column("unlearning_users", *COUNT),
               Column("unlearning_steps", *COUNT), Column("unlearning_probe_auc_before", *SHARE),
               Column("unlearning_probe_auc_after", *SHARE))
    example = {"attribute": "gender", "stop": "steps", "steps": 5}
    settings = UnlearningConfig
    requires: ClassVar[frozenset[str]] = frozenset({"user_scorer"})
    with_item_features = False  # the edit reads the item factors without the side information

    def metric_names(self) -> list[str]:
        """The class distance and probe AUC before and after the edit, and its size."""
        return list(METRICS)

    def skip_reason(self, metrics: dict[str, float]) -> str:
        """No user to edit, held-out probes already at chance before the edit, or no edit
        step that brought them closer to chance."""
        if metrics.get("unlearning_users", 1.0) == 0.0:
            return "no user to edit (none asked, or none has ratings)"
        before = metrics.get("unlearning_probe_auc_before", float("nan"))
        if before <= 0.5:
            return f"held-out probes at chance before the edit (AUC {before:.2f})"
        if before == before:  # not NaN
            return f"no edit step brought the held-out probes closer to chance (AUC {before:.2f})"
        return "the edit moved no row"

    def probe_families(self) -> tuple[str, ...]:
        """The stop rule's probes: as configured, or logreg and mlp plus the classifiers of
        the scenario's inference attackers on this attribute (scikit-learn's MLP is probed
        by the torch MLP, the same family)."""
        config = self.config
        assert isinstance(config, UnlearningConfig)
        if config.probes is not None:
            return tuple(dict.fromkeys(config.probes))
        attackers = [name for attribute in config.attributes
                     for name in self.context.attacker_classifiers.get(attribute, ())]
        return tuple(dict.fromkeys(("logreg", "mlp", *attackers)))

    def after_fit(self, retrain: Retrain) -> tuple[dict[str, float], bool]:
        """Edit the embeddings; listed as acting only when rows moved. After DP-SGD the edit
        must not read the ratings (it would void the epsilon): top-k lists then range over
        all items, and every user's row moves."""
        report = retrain.report
        if not self.active(retrain.step) or report is None or report.diverged is not None:
            return {}, False
        from simulator.defenses.unlearning.edit import unlearn_attribute

        config = self.config
        assert isinstance(config, UnlearningConfig)
        recommender = retrain.recommender
        mask = None
        if config.scope == "requested":
            requested = self.context.requested_users
            mask = requested() if requested is not None else None
            if mask is None or not mask.any():
                return {"unlearning_users": 0.0, "unlearning_steps": 0.0}, False
        data = None if "dp" in retrain.used else retrain.table
        codes = np.stack([self.context.attributes[a] for a in config.attributes])
        edit = unlearn_attribute(recommender, codes, config,
                                 data=data, users=mask, seed=retrain.seed,
                                 probes=self.probe_families())
        metrics: dict[str, Any] = {
            "unlearning_distance_before": edit.distance_before,
            "unlearning_distance_after": edit.distance_after,
            "unlearning_alpha": edit.mean_alpha,
            "unlearning_users": float(edit.edited_users),
            "unlearning_steps": float(edit.steps),
            "unlearning_probe_auc_before": edit.probe_auc_before,
            "unlearning_probe_auc_after": edit.probe_auc_after,
        }
        return metrics, edit.steps > 0
