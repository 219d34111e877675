"""MF and BPR as dense torch tables with a per-example forward pass (`hooks.DenseTraining`).

Every parameter is an `nn.Embedding` (`DenseTable`), so a trainer that needs per-example
gradients (DP-SGD) can treat the model as an ordinary torch module. With a row perturbation
(`hooks.RowPerturbation`) the output gains a second column: the example's output under the
shift of the rows it reads, computed from that example's own gradient in closed form and held
constant, so an example's objective depends on that example alone. With an adversary on the
user rows (`hooks.UserEmbeddingAdversary`) the output gains a last column: the example's
reversed read-out term on its user's row (`penalty`), the heads held fixed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import nn

from simulator.recommenders.hooks import DenseTraining, RowPerturbation
from simulator.world.base import Interactions

if TYPE_CHECKING:
    from simulator.recommenders.hooks import UserEmbeddingAdversary

Penalty = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

if TYPE_CHECKING:
    from simulator.recommenders.bpr import BPR
    from simulator.recommenders.mf import MF


class DenseTable(nn.Embedding):
    """A dense embedding table (trainers may register per-example rules for this class)."""


def _columns(user: torch.Tensor, p: torch.Tensor, clean: torch.Tensor,
             shifted: torch.Tensor | None, penalty: Penalty | None) -> torch.Tensor:
    """The output: the clean column alone, or (B, k) with the shifted and penalty columns."""
    columns = [clean]
    if shifted is not None:
        columns.append(shifted)
    if penalty is not None:
        columns.append(penalty(user, p))
    return clean if len(columns) == 1 else torch.stack(columns, 1)


def _table(weights: torch.Tensor) -> DenseTable:
    """A trainable dense embedding holding a copy of `weights` (rows, dim), on their device."""
    return DenseTable.from_pretrained(weights.detach().clone(), freeze=False)


class MFNet(nn.Module):
    """r_hat = base + g + b_u + b_i + p_u . q_i with every term an embedding; with a
    perturbation the output has a second column, the prediction under the example's own
    shift."""

    def __init__(self, model: MF, base: float, perturbation: RowPerturbation | None,
                 penalty: Penalty | None = None) -> None:
        super().__init__()
        n = model.n_users
        self.base = base
        self.perturbation = perturbation
        self.penalty = penalty
        self.user = _table(model.table[:n])
        self.item = _table(model.table[n:])
        self.user_bias = _table(model.bias[:n].unsqueeze(1))
        self.item_bias = _table(model.bias[n:].unsqueeze(1))
        self.offset = _table(torch.zeros(1, 1, device=model.table.device))

    def forward(
        self, user: torch.Tensor, item: torch.Tensor, rating: torch.Tensor
    ) -> torch.Tensor:
        p, q = self.user(user), self.item(item)
        biases = self.user_bias(user) + self.item_bias(item) + self.offset(torch.zeros_like(user))
        clean = (p * q).sum(1) + biases.squeeze(1) + self.base
        shifted = None
        if self.perturbation is not None:
            with torch.no_grad():  # d (r_hat - r)^2 / d p = 2 (r_hat - r) q, the same for q
                error = (clean - rating).unsqueeze(1)
                dp = self.perturbation(error * q)
                dq = self.perturbation(error * p)
            shifted = ((p + dp) * (q + dq)).sum(1) + biases.squeeze(1) + self.base
        return _columns(user, p, clean, shifted, self.penalty)

    def write_back(self, model: MF) -> None:
        """Copy the trained parameters into the model's tensors."""
        n = model.n_users
        with torch.no_grad():
            model.table[:n].copy_(self.user.weight)
            model.table[n:].copy_(self.item.weight)
            model.bias[:n].copy_(self.user_bias.weight.squeeze(1))
            model.bias[n:].copy_(self.item_bias.weight.squeeze(1))
        model.mu = self.base + float(self.offset.weight.detach()[0, 0])


class BPRNet(nn.Module):
    """x_uij = (p_u . q_i + b_i) - (p_u . q_j + b_j); the item tables are read once per batch.
    With a perturbation the output has a second column, x_uij under the example's own shift."""

    def __init__(self, model: BPR, perturbation: RowPerturbation | None,
                 penalty: Penalty | None = None) -> None:
        super().__init__()
        n = model.n_users
        self.perturbation = perturbation
        self.penalty = penalty
        self.user = _table(model.table[:n])
        self.item = _table(model.table[n:])
        self.item_bias = _table(model.bias[n:].unsqueeze(1))

    def forward(self, user: torch.Tensor, pair: torch.Tensor, _: torch.Tensor) -> torch.Tensor:
        p, q = self.user(user), self.item(pair)  # (B, d), (B, 2, d)
        bias = self.item_bias(pair).squeeze(2)
        clean = (p * (q[:, 0] - q[:, 1])).sum(1) + bias[:, 0] - bias[:, 1]
        shifted = None
        if self.perturbation is not None:
            with torch.no_grad():
                # -log sigmoid(x) falls along +d x: d/dp = -s (q_i - q_j), d/dq_i = -s p,
                # d/dq_j = s p, with s = sigmoid(-x) > 0 dropping out of each direction.
                dp = self.perturbation(q[:, 1] - q[:, 0])
                dq = self.perturbation(p)
            shifted_q = (q[:, 0] - dq) - (q[:, 1] + dq)
            shifted = ((p + dp) * shifted_q).sum(1) + bias[:, 0] - bias[:, 1]
        return _columns(user, p, clean, shifted, self.penalty)

    def write_back(self, model: BPR) -> None:
        """Copy the trained parameters into the model's tensors (user biases stay 0)."""
        n = model.n_users
        with torch.no_grad():
            model.table[:n].copy_(self.user.weight)
            model.table[n:].copy_(self.item.weight)
            model.bias[n:].copy_(self.item_bias.weight.squeeze(1))


def squared_error(prediction: torch.Tensor, rating: torch.Tensor) -> torch.Tensor:
    """Per-example squared error."""
    return (prediction - rating).square()


def bpr_loss(x: torch.Tensor, _: torch.Tensor) -> torch.Tensor:
    """Per-example -log sigmoid(x_uij)."""
    return nn.functional.softplus(-x)


def with_adversary(training: DenseTraining, adversary: UserEmbeddingAdversary | None,
                   user_table: nn.Embedding) -> DenseTraining:
    """`training` with an adversary on the user rows of `user_table` (its net must add the
    penalty column): head training on every account's current row after each step, and the
    heads' statistics after each epoch. Unchanged without an adversary."""
    if adversary is not None:
        training.penalised = True
        training.end_epoch = adversary.end_epoch
        training.after_step = lambda: adversary.fit_heads(user_table.weight.detach())
    return training


def mf_training(model: MF, data: Interactions, perturbation: RowPerturbation | None,
                adversary: UserEmbeddingAdversary | None = None) -> DenseTraining:
    """MF on `data` as dense tables: columns (user, item, rating)."""
    penalty = None if adversary is None else adversary.penalty
    net = MFNet(model, model.offset, perturbation, penalty)
    device = model.table.device
    columns = (
        torch.as_tensor(data.user, dtype=torch.int64, device=device),
        torch.as_tensor(data.item, dtype=torch.int64, device=device),
        torch.as_tensor(data.rating, dtype=torch.float32, device=device),
    )
    training = DenseTraining(net, columns, squared_error, lambda: net.write_back(model))
    return with_adversary(training, adversary, net.user)


def bpr_training(model: BPR, data: Interactions, perturbation: RowPerturbation | None,
                 adversary: UserEmbeddingAdversary | None = None) -> DenseTraining:
    """BPR on `data` as dense tables: columns (user, (positive, negative), unused target);
    negatives are drawn uniformly over all items every epoch, without rejecting the user's
    known positives, so an example depends on its own rating only."""
    net = BPRNet(model, perturbation, None if adversary is None else adversary.penalty)
    device = model.table.device
    user = torch.as_tensor(data.user, dtype=torch.int64, device=device)
    item = torch.as_tensor(data.item, dtype=torch.int64, device=device)
    pair = torch.stack([item, item], 1)
    n = len(data)

    def resample(generator: torch.Generator) -> None:
        pair[:, 1] = torch.randint(model.n_items, (n,), generator=generator).to(device)

    training = DenseTraining(net, (user, pair, torch.zeros(n, device=device)), bpr_loss,
                             lambda: net.write_back(model), resample)
    return with_adversary(training, adversary, net.user)
