"""Adversarial personalised ranking (APR, He et al. SIGIR 2018): the platform trains against
worst-case perturbations of the embeddings its batches read.

Each batch steps on L(T) + weight * L(T + D), D the fast-gradient perturbation of every row
the batch reads: the gradient of the clean batch loss with respect to the row, scaled to norm
epsilon, held constant. The model runs the perturbed step (`gradient_perturbation`
capability); this module supplies the perturbation. Under DP-SGD each example is perturbed
by its own gradient instead (see `simulator.defenses.dp.dp_sgd`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from simulator.defenses.apr.settings import APRConfig
from simulator.defenses.protocol import Defense, Retrain

if TYPE_CHECKING:
    import torch

# Floor on a gradient row's norm when it is normalised into a perturbation: rows whose
# gradient is (nearly) zero get a proportionally small perturbation, as tf.nn.l2_normalize
# (eps 1e-12 on the squared norm) does in the reference implementation.
NORM_FLOOR = 1e-6


@dataclass(frozen=True)
class FastGradientPerturbation:
    """D = epsilon * gradient / ||gradient|| per row (`recommenders.hooks.RowPerturbation`),
    with the perturbed loss weighted by `weight`."""

    epsilon: float
    weight: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.epsilon) and self.epsilon > 0.0):
            raise ValueError(f"epsilon must be a finite number > 0, got {self.epsilon}")
        if not (math.isfinite(self.weight) and self.weight >= 0.0):
            raise ValueError(f"weight must be a finite number >= 0, got {self.weight}")

    def __call__(self, gradient: torch.Tensor) -> torch.Tensor:
        """Each row's perturbation from its gradient."""
        import torch  # here, so that declaring the defense does not load torch

        return torch.nn.functional.normalize(gradient, dim=-1, eps=NORM_FLOOR) * self.epsilon


class APR(Defense):
    """Trains every retrain from `start_step` on against fast-gradient perturbations."""

    key = "apr"
    example = {"epsilon": 0.5, "weight": 1.0}
    settings = APRConfig
    requires: ClassVar[frozenset[str]] = frozenset({"gradient_perturbation"})

    def configure(self, retrain: Retrain) -> bool:
        """Set the perturbation on the model, or clear it before `start_step`."""
        config = self.config
        assert isinstance(config, APRConfig)
        acting = self.active(retrain.step)
        perturbation = FastGradientPerturbation(config.epsilon, config.weight) if acting else None
        retrain.recommender.set_perturbation(perturbation)
        return acting
