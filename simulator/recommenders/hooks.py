"""What training can be asked to do beyond fitting the ratings, as the models see it.

The models expose these hooks and know nothing of who sets them (the platform's defenses):

- an adversary on the user embeddings (`set_adversary`): read-out heads that the embeddings
  are trained against (gradient reversal);
- a perturbation of the rows a batch reads (`set_perturbation`, models with the
  `gradient_perturbation` capability): the objective gains weight * L(rows + delta), delta
  computed from the gradient of the clean loss and held constant;
- dense per-example training (`dense_training`, models with the `dense_training`
  capability): the model as torch tables and a per-example loss, for trainers that need
  per-example gradients (DP-SGD).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import nn


class UserEmbeddingAdversary(Protocol):
    """Read-out heads trained on the user embeddings while the model trains against them."""

    def bind(self, n_users: int, dim: int, device: torch.device | str) -> None:
        """Fit the heads to the model's embedding width and device."""

    def step(self, users: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
        """Train the heads on these users' rows; return the reversed gradient for the rows."""

    def loss(self, users: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
        """The read-out loss on these users' rows, reversed in backward (models with autograd)."""

    def zero_grad(self) -> None:
        """Clear the heads' gradients."""

    def step_heads(self) -> None:
        """Update the heads from their gradients."""

    def end_epoch(self) -> None:
        """Record the epoch's read-out statistics."""


class RowPerturbation(Protocol):
    """A worst-case shift of the rows a batch reads: maps the gradient of the clean loss with
    respect to each row (one row per line) to the shift of that row; the objective becomes
    L(rows) + weight * L(rows + shift)."""

    @property
    def weight(self) -> float:
        """The weight of the perturbed term."""
        ...

    def __call__(self, gradient: torch.Tensor) -> torch.Tensor:
        """The shift of each row, from the gradient of each row."""
        ...


@dataclass
class DenseTraining:
    """A model as dense torch tables, for trainers that need per-example gradients.

    `net(*columns)` gives each example's output (with a perturbation, two columns: clean and
    shifted); `loss(output, target)` each example's loss, the target being the last column;
    `resample(generator)` redraws what is drawn anew every epoch (BPR's negatives);
    `write_back()` copies the trained tables into the model.
    """

    net: nn.Module
    columns: tuple[torch.Tensor, ...]
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    write_back: Callable[[], None]
    resample: Callable[[torch.Generator], None] | None = None
