"""The settings of fake-profile detection (`platform.defenses.detection` in a scenario)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from simulator.foundations.settings import DefenseSection


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
