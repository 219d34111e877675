"""The settings of attribute unlearning (`platform.defenses.unlearning` in a scenario)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from simulator.foundations.settings import (
    MAX_LR,
    MAX_WEIGHT,
    AttributeName,
    DefenseSection,
    distinct_entries,
)


class UnlearningConfig(DefenseSection):
    """Post-training attribute unlearning: edits user embeddings after each retrain."""

    attribute: AttributeName | list[AttributeName] = Field(
        "gender", description="the attribute to unlearn, or a list unlearned jointly (each "
        "attribute's distance in units of its value before the edit, summed; the probes must "
        "find none of them)")
    distance: Literal["kl", "mmd", "kl+mmd"] = Field(
        "kl+mmd", description="Gaussian KL between classes, unbiased multi-kernel MMD, or both "
        "(each in units of its value before the edit)",
    )
    covariance: Literal["diagonal", "shrunk"] = "shrunk"
    utility: Literal["model", "distance", "topk"] = "topk"
    weighting: Literal["mgda", "fixed"] = "mgda"
    weight: float = Field(
        1.0, ge=0.0, le=MAX_WEIGHT,
        description="utility weight when weighting is fixed (per-user utility)"
    )
    steps: int = Field(300, ge=1, le=100_000)
    lr: float = Field(3e-3, gt=0.0, le=MAX_LR)
    top_k: int = Field(20, ge=2, le=1000, description="list length kept by the topk utility")
    scope: Literal["all", "requested"] = Field(
        "all", description="every user, or only users who asked for unlearning"
    )
    stop: Literal["probe", "steps"] = Field(
        "probe", description="end the edit when held-out probes (fresh classifiers trained "
        "on half of the users) are at chance, keeping the check closest to chance; or run "
        "all `steps`, driving the distance to its minimum",
    )
    probe_every: int = Field(1, ge=1, le=100_000, description="stop: probe: steps between checks")
    probes: list[Literal["logreg", "mlp", "xgboost", "forest"]] | None = Field(
        None, min_length=1, description="stop: probe: the probes' classifier families; by "
        "default logreg and mlp plus the classifiers of every inference attacker in the "
        "scenario that infers this attribute, so the edit never stops while the scenario's "
        "own attacker's classifier finds it",
    )

    @property
    def attributes(self) -> list[str]:
        """The attributes unlearned (one, or several jointly)."""
        return [self.attribute] if isinstance(self.attribute, str) else list(self.attribute)

    @field_validator("attribute")
    @classmethod
    def _distinct(cls, value: str | list[str]) -> str | list[str]:
        return value if isinstance(value, str) else distinct_entries(value)
