"""The settings of APR (`platform.defenses.apr` in a scenario)."""

from __future__ import annotations

from pydantic import Field

from simulator.foundations.settings import MAX_WEIGHT, DefenseSection


class APRConfig(DefenseSection):
    """Adversarial personalised ranking (He et al. 2018): train against worst-case
    embedding perturbations of per-row norm epsilon, weighted by `weight`."""

    epsilon: float = Field(
        0.5, gt=0.0, le=100.0, description="per-row L2 budget of the perturbation"
    )
    weight: float = Field(
        1.0, ge=0.0, le=MAX_WEIGHT, description="lambda, weight of the perturbed loss"
    )
