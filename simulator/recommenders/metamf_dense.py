"""MetaMF (and NoMetaMF) as a per-example network for DP-SGD (`hooks.DenseTraining`).

Privacy unit: one example is one rating (user, item, rating), so a DP-SGD fit of this network
is *rating-level* DP, as for MF and BPR (`simulator.defenses.dp.dp_sgd`): each example generates its
own user's parameters from p_u and reads its own item's row, and its loss depends on that
rating alone.

Per-example gradients: every trainable parameter sits in a layer Opacus has a per-example
rule for. The user embeddings p_u and the item table (the L generator stored per item, as in
`metamf.MetaMFNet`) are `dense.DenseTable`s (one lookup per example), the memory M is a
bias-free `nn.Linear` holding M^T (c_u = p_u M = Linear(p_u)), and the generators are the
model's own `nn.Linear` layers. The generated RP weights, R(u) and L(u)'s rows are
activations computed per example, not parameters, so the per-example gradients of the
generators follow from the ordinary Linear rule. Every layer is called exactly once per
forward pass, which ghost clipping (Opacus's default here: per-example gradient norms
without per-example gradients) needs: with a row perturbation the clean and the shifted
passes run as one pass over a stacked (B, 2, ...) input, which the Linear rules sum over.
NoMetaMF's six RP-generator layers keep requires_grad False: Opacus neither hooks nor
noises them, and they do not move.

With a row perturbation (APR) the output's second column is the prediction under the
example's own shift of the two rows it reads (p_u and its item's row of the item table): the
gradient of the example's clean squared error with respect to each row, taken by autograd on
detached copies of the rows and weights (so Opacus's hooks see nothing of it), mapped through
the perturbation and held constant. With an adversary on the model a last column holds its
per-example penalty on p_u.

What differs from the non-private fit (`metamf.MetaMF.fit`): batches are Poisson-sampled
examples and every example generates its user's parameters (no sharing of a user's
generation within a batch); per-example clipping and noise replace the global clipping at 5;
the trainer's optimiser (dense Adam with its own learning rate, no weight decay, no cosine
schedule) replaces Adam with coupled L2 and the lazy Adam of the item table, so noise reaches
every row of it; and there is no validation hold-out, no best-epoch restore and no placement
of users without ratings at the mean embedding (`base.place_unseen_users`): choosing an
epoch on held-out ratings and knowing which users have ratings both depend on the data beyond
the noised gradients, so they would not be post-processing of the private parameters.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from simulator.recommenders.dense import DenseTable, squared_error, with_adversary
from simulator.recommenders.hooks import DenseTraining, RowPerturbation
from simulator.world.base import Interactions

if TYPE_CHECKING:
    from simulator.recommenders.metamf import MetaMF, MetaMFNet

# The generator layers, by their names in `MetaMFNet` (the first six are the RP generators).
GENERATORS = (
    "rp_hidden1", "rp_weight1", "rp_bias1", "rp_hidden2", "rp_weight2", "rp_bias2",
    "emb_hidden", "emb_right",
)
Apply = Callable[[nn.Linear, torch.Tensor], torch.Tensor]
Penalty = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _call(layer: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """The layer itself (hooked by a per-example trainer)."""
    return layer(x)


def _detached(layer: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """The layer's map with its parameters held constant, outside the module (no hooks)."""
    bias = None if layer.bias is None else layer.bias.detach()
    return F.linear(x, layer.weight.detach(), bias)


def _table(weights: torch.Tensor) -> DenseTable:
    """A trainable dense embedding holding a copy of `weights` (rows, dim), on their device."""
    return DenseTable.from_pretrained(weights.detach().clone(), freeze=False)


class MetaMFDenseNet(nn.Module):
    """MetaMF's prediction of each (user, item) example, each example generating its own
    user's parameters; columns as `hooks.DenseTraining` describes (clean, [shifted],
    [penalty])."""

    def __init__(
        self,
        net: MetaMFNet,
        perturbation: RowPerturbation | None = None,
        penalty: Penalty | None = None,
    ) -> None:
        super().__init__()
        self.rank, self.hidden, self.item_dim, self.mid = (
            net.rank, net.hidden, net.item_dim, net.mid)
        self.perturbation = perturbation
        self.penalty = penalty
        self.user = _table(net.user_emb)
        self.item = _table(net.item_rows)
        user_dim, memory_dim = net.memory.shape
        self.memory = nn.Linear(user_dim, memory_dim, bias=False, device=net.memory.device)
        with torch.no_grad():
            self.memory.weight.copy_(net.memory.t())
        # Copies keep each layer's requires_grad (NoMetaMF's RP generators stay frozen).
        self.rp_hidden1 = copy.deepcopy(net.rp_hidden1)
        self.rp_weight1 = copy.deepcopy(net.rp_weight1)
        self.rp_bias1 = copy.deepcopy(net.rp_bias1)
        self.rp_hidden2 = copy.deepcopy(net.rp_hidden2)
        self.rp_weight2 = copy.deepcopy(net.rp_weight2)
        self.rp_bias2 = copy.deepcopy(net.rp_bias2)
        self.emb_hidden = copy.deepcopy(net.emb_hidden)
        self.emb_right = copy.deepcopy(net.emb_right)

    def predict(self, p: torch.Tensor, row: torch.Tensor, apply: Apply = _call) -> torch.Tensor:
        """Predictions from each example's user embedding p (..., user_dim) and item-table
        row (..., rank*hidden + rank), any leading dimensions; `apply` runs the Linear
        layers."""
        c = apply(self.memory, p)
        h1 = F.relu(apply(self.rp_hidden1, c))
        h2 = F.relu(apply(self.rp_hidden2, c))
        h_e = F.relu(apply(self.emb_hidden, c))
        lead = h_e.shape[:-1]
        right = apply(self.emb_right, h_e).reshape(*lead, self.rank, self.item_dim)
        w1 = apply(self.rp_weight1, h1).reshape(*lead, self.item_dim, self.mid)
        b1 = apply(self.rp_bias1, h1)
        w2 = apply(self.rp_weight2, h2)
        b2 = apply(self.rp_bias2, h2).squeeze(-1)
        cut = self.rank * self.hidden
        w_l = row[..., :cut].reshape(*lead, self.rank, self.hidden)
        left = (w_l @ h_e.unsqueeze(-1)).squeeze(-1) + row[..., cut:]  # row i of L(u)
        e = (left.unsqueeze(-2) @ right).squeeze(-2)  # row i of E(u) = L(u) R(u)
        z = F.relu((e.unsqueeze(-2) @ w1).squeeze(-2) + b1)
        return (z * w2).sum(-1) + b2

    def shifts(
        self, p: torch.Tensor, row: torch.Tensor, rating: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Each example's shift of its p_u and of its item row: the perturbation of the
        gradient of its own clean squared error with respect to each, held constant."""
        assert self.perturbation is not None
        with torch.enable_grad():
            p0 = p.detach().requires_grad_()
            row0 = row.detach().requires_grad_()
            # Examples are independent, so the gradient of the sum is each example's own.
            loss = squared_error(self.predict(p0, row0, _detached), rating).sum()
            grad_p, grad_row = torch.autograd.grad(loss, (p0, row0))
        return self.perturbation(grad_p).detach(), self.perturbation(grad_row).detach()

    def forward(
        self, user: torch.Tensor, item: torch.Tensor, rating: torch.Tensor
    ) -> torch.Tensor:
        p, row = self.user(user), self.item(item)
        if self.perturbation is None:
            columns = [self.predict(p, row)]
        else:
            shift_p, shift_row = self.shifts(p, row, rating)
            both = self.predict(torch.stack([p, p + shift_p], 1),
                                torch.stack([row, row + shift_row], 1))
            columns = [both[:, 0], both[:, 1]]
        if self.penalty is not None:
            columns.append(self.penalty(user, p))
        return columns[0] if len(columns) == 1 else torch.stack(columns, 1)

    @torch.no_grad()
    def write_back(self, net: MetaMFNet) -> None:
        """Copy the parameters into the model's network (frozen layers are unchanged)."""
        net.user_emb.copy_(self.user.weight)
        net.item_rows.copy_(self.item.weight)
        net.memory.copy_(self.memory.weight.t())
        for name in GENERATORS:
            source, target = getattr(self, name), getattr(net, name)
            target.weight.copy_(source.weight)
            target.bias.copy_(source.bias)


def metamf_training(model: MetaMF, data: Interactions) -> DenseTraining:
    """MetaMF on `data` as a per-example network with the model's perturbation and
    adversary: columns (user, item, rating), per-example squared error, ghost clipping."""
    adversary = model.adversary
    net = MetaMFDenseNet(
        model.net, model.perturbation, None if adversary is None else adversary.penalty
    )
    device = model.device
    columns = (
        torch.as_tensor(data.user, dtype=torch.int64, device=device),
        torch.as_tensor(data.item, dtype=torch.int64, device=device),
        torch.as_tensor(data.rating, dtype=torch.float32, device=device),
    )
    training = DenseTraining(net, columns, squared_error, lambda: net.write_back(model.net))
    return with_adversary(training, adversary, net.user)
