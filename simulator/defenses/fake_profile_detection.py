"""Fake-profile detection: before every retrain from `start_step` on, the platform screens
its accounts and leaves the flagged ones' ratings out of training (`defenses.screening`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from simulator.core.settings import DefenseSection
from simulator.defenses.protocol import Defense, Retrain
from simulator.world.base import Interactions


class DetectionConfig(DefenseSection):
    """Fake-profile detection on the platform's data before every retrain; flagged users'
    ratings are left out of training."""

    method: Literal["threshold", "pca", "supervised"] = Field(
        "threshold", description="a robust z-score threshold on generic profile features, "
        "PCA VarSelect, or a classifier trained on profiles the platform generates itself",
    )
    assumed_attack_size: float | None = Field(
        0.03, gt=0.0, le=0.5,
        description="share of users to flag (pca, threshold); null: threshold on z",
    )
    z: float = Field(
        2.0, gt=0.0, le=100.0, description="threshold: combined z-score above which to flag"
    )

    @model_validator(mode="after")
    def _pca_needs_a_size(self) -> DetectionConfig:
        if self.method == "pca" and self.assumed_attack_size is None:
            raise ValueError("method pca flags a fixed share: set assumed_attack_size")
        return self


class FakeProfileDetection(Defense):
    """Screens the training table while active."""

    key = "detection"
    summary_columns = ("detection_precision", "detection_recall")
    settings = DetectionConfig
    on_clean_twin = False  # the attack-free twin has nothing to detect

    def metric_names(self) -> list[str]:
        """How many accounts were flagged, and the precision and recall of the flags."""
        return ["detection_flagged", "detection_precision", "detection_recall"]

    def prepare(self, retrain: Retrain) -> tuple[Interactions, dict[str, float]] | None:
        """The table without the flagged accounts' ratings."""
        if not self.active(retrain.step):
            return None
        from simulator.defenses.screening import screen

        config = self.config
        assert isinstance(config, DetectionConfig)
        screening = screen(retrain.table, retrain.recommender.n_items, self.context.n_genuine,
                           config, retrain.seed)
        return screening.table, screening.metrics
