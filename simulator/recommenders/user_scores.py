"""Recommender scores as differentiable functions of a user-embedding table.

The model itself is only read: item factors, biases and networks are taken as constants and
the user table E is substituted for the model's own.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.func import functional_call

from simulator.recommenders.base import Recommender

if TYPE_CHECKING:
    from simulator.recommenders.factor_model import FactorModel
    from simulator.recommenders.metamf import MetaMF, MetaMFNet

SCORE_CHUNK_FLOATS = 1 << 24  # cap on a users x items score block


class _ScoreAll(nn.Module):
    """Wraps MetaMFNet.score_all as a forward pass, so functional_call can swap `user_emb`."""

    def __init__(self, net: MetaMFNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, users: torch.Tensor) -> torch.Tensor:
        return self.net.score_all(users)


class UserScorer(ABC):
    """Scores s_u(i) given E; models with a user scorer return a subclass
    (`Recommender.user_scorer`). Scores are unclipped, as in training."""

    def __init__(self, model: Recommender) -> None:
        self.model = model
        self.device = model.device

    @abstractmethod
    def pairs(self, emb: torch.Tensor, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """s_u(i) for parallel index tensors, differentiable in `emb` (n_users, d)."""

    def rating_pairs(
        self, emb: torch.Tensor, users: torch.Tensor, items: torch.Tensor
    ) -> torch.Tensor:
        """Predicted ratings of (user, item) pairs for rating models; the same as `pairs`
        unless the lists rank by something else (`consumption.ConsumptionScorer`)."""
        return self.pairs(emb, users, items)

    @abstractmethod
    def full(self, emb: torch.Tensor, users: torch.Tensor) -> torch.Tensor:
        """Scores of every item for `users`, (len(users), n_items), without gradient."""

    def chunk_size(self) -> int:
        """Users per block so that a users x items block stays small."""
        return max(1, SCORE_CHUNK_FLOATS // max(self.model.n_items, 1))

    @torch.no_grad()
    def top_k(
        self, emb: torch.Tensor, k: int, seen: tuple[torch.Tensor, torch.Tensor] | None
    ) -> torch.Tensor:
        """Each user's k best items, best first, (n_users, k); `seen` (user, item) pairs are
        excluded. Computed in blocks of users."""
        n_users = self.model.n_users
        k = min(k, self.model.n_items)
        out = torch.empty(n_users, k, dtype=torch.int64, device=self.device)
        step = self.chunk_size()
        for lo in range(0, n_users, step):
            users = torch.arange(lo, min(lo + step, n_users), device=self.device)
            scores = self.full(emb, users)
            if seen is not None:
                inside = (seen[0] >= lo) & (seen[0] < lo + len(users))
                scores[seen[0][inside] - lo, seen[1][inside]] = -torch.inf
            out[lo : lo + len(users)] = torch.topk(scores, k, dim=1).indices
        return out


class FactorScorer(UserScorer):
    """FactorModel: p_u . q_i + b_u + b_i (+ mu for explicit-rating models; BPR's user biases
    are zero)."""

    def __init__(self, model: FactorModel) -> None:
        super().__init__(model)
        n_users = model.n_users
        self.items = model.table[n_users:].detach().clone()
        self.user_bias = model.bias[:n_users].detach().clone()
        self.item_bias = model.bias[n_users:].detach().clone()
        self.offset = model.offset

    def pairs(self, emb: torch.Tensor, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """s_u(i) for parallel index tensors, differentiable in `emb` (n_users, d)."""
        dots = (emb.index_select(0, users) * self.items.index_select(0, items)).sum(-1)
        bias = self.user_bias.index_select(0, users) + self.item_bias.index_select(0, items)
        return dots + bias + self.offset

    @torch.no_grad()
    def full(self, emb: torch.Tensor, users: torch.Tensor) -> torch.Tensor:
        """Scores of every item for `users`, (len(users), n_items), without gradient."""
        scores = emb.index_select(0, users) @ self.items.t()
        scores += self.user_bias.index_select(0, users).unsqueeze(1)
        return scores.add_(self.item_bias).add_(self.offset)


class MetaMFScorer(UserScorer):
    """MetaMF: the network's forward pass with E in place of `user_emb`."""

    def __init__(self, model: MetaMF) -> None:
        super().__init__(model)
        self.net = model.net
        self._score_all = _ScoreAll(model.net)

    def pairs(self, emb: torch.Tensor, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """s_u(i) for parallel index tensors, differentiable in `emb` (n_users, d)."""
        return functional_call(self.net, {"user_emb": emb}, (users, items))

    @torch.no_grad()
    def full(self, emb: torch.Tensor, users: torch.Tensor) -> torch.Tensor:
        """Scores of every item for `users`, (len(users), n_items), without gradient."""
        return functional_call(self._score_all, {"net.user_emb": emb}, (users,))

    def chunk_size(self) -> int:
        """Users per block so that a users x items x item_dim block stays small."""
        width = self.model.n_items * int(self.net.item_dim)
        return max(1, SCORE_CHUNK_FLOATS // max(width, 1))
