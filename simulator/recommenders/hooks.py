"""What training can be asked to do beyond fitting the ratings, as the models see it.

The models expose these hooks and know nothing of who sets them (the platform's defenses):

- an adversary on the user embeddings (`set_adversary`): read-out heads that the embeddings
  are trained against (gradient reversal);
- a perturbation of the rows a batch reads (`set_perturbation`, models with the
  `gradient_perturbation` capability): the objective gains weight * L(rows + delta), delta
  computed from the gradient of the clean loss and held constant;
- dense per-example training (`dense_training`, models with the `dense_training`
  capability): the model as torch tables and a per-example loss, for trainers that need
  per-example gradients (DP-SGD). An adversary set on the model then acts per example: each
  example's loss gains its user's reversed read-out term (`UserEmbeddingAdversary.penalty`),
  and the heads train on every account's current row after each step (`fit_heads`).
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

    def penalty(self, users: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """Per-example reversed read-out term of each example's user (`users`, with their
        rows `rows`), shape (B,): minus the weight times the heads' cross-entropy, 0 for an
        unlabelled user; the heads are held fixed (per-example trainers)."""

    def fit_heads(self, rows: torch.Tensor) -> None:
        """Train the heads on every account's current row (`rows`: the whole user table,
        detached), never on a batch's composition (per-example trainers)."""


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

    `net(*columns)` gives each example's output: the clean output, then with a perturbation
    the shifted one, then with an adversary the example's penalty (`penalised`; one column
    when there is neither, else a (B, k) matrix in that order); `loss(output, target)` each
    example's loss on one output column, the target being the last column;
    `resample(generator)` redraws what is drawn anew every epoch (BPR's negatives);
    `write_back()` copies the trained tables into the model; `after_step()` runs after every
    optimiser step and `end_epoch()` after every epoch (an adversary's head training and
    statistics). A per-example trainer (DP-SGD) clips the net's per-example gradients by
    Opacus's ghost clipping, which every net here supports.
    """

    net: nn.Module
    columns: tuple[torch.Tensor, ...]
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    write_back: Callable[[], None]
    resample: Callable[[torch.Generator], None] | None = None
    penalised: bool = False
    after_step: Callable[[], None] | None = None
    end_epoch: Callable[[], None] | None = None
