"""The settings of adversarial training (`platform.defenses.adversarial` in a scenario)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from simulator.foundations.settings import (
    MAX_LR,
    MAX_WEIGHT,
    MAX_WIDTH,
    AttributeName,
    DefenseSection,
)


def _default_attributes() -> list[AttributeName]:
    return ["gender"]


class AdversarialConfig(DefenseSection):
    """Privacy-adversarial training: gradient-reversal read-outs on the user embeddings."""

    attributes: list[AttributeName] = Field(
        default_factory=_default_attributes, min_length=1
    )
    weight: float = Field(
        1.0, ge=0.0, le=MAX_WEIGHT, description="lambda, the reversed gradient's weight"
    )
    readout: Literal["linear", "mlp"] = "linear"
    hidden: int = Field(32, ge=1, le=MAX_WIDTH, description="hidden width of the mlp read-out")
    lr: float = Field(0.1, gt=0.0, le=MAX_LR, description="read-out learning rate (Adam)")
    head_steps: int = Field(
        5, ge=1, le=1000,
        description="read-out updates per training batch (it must keep up with p_u)"
    )
