"""The settings of DP-SGD (`platform.defenses.dp` in a scenario)."""

from __future__ import annotations

from pydantic import Field, model_validator

from simulator.foundations.settings import DefenseSection


class DPConfig(DefenseSection):
    """DP-SGD training (Opacus); rating-level adjacency."""

    noise_multiplier: float | None = Field(1.0, ge=0.0, le=1000.0)
    target_epsilon: float | None = Field(None, gt=0.0, le=1e4)
    max_grad_norm: float = Field(1.0, gt=0.0, le=1e4)
    delta: float | None = Field(None, gt=0.0, lt=1.0, description="default: 1 / ratings")

    @model_validator(mode="after")
    def _one_noise_setting(self) -> DPConfig:
        if self.target_epsilon is not None:
            self.__dict__["noise_multiplier"] = None
        elif self.noise_multiplier is None:
            raise ValueError("set noise_multiplier or target_epsilon")
        return self
