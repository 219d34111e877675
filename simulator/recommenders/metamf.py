"""MetaMF (Lin et al., SIGIR 2020) and its NoMetaMF ablation (Muellner et al., ECIR 2021).

The model is the reference one (design/algorithms.md 1.1): a user embedding p_u, a collaborative
memory M with c_u = p_u M, per-user generators of the two rating-prediction (RP) layers and of
a rank-m item table E(u) = L(u) R(u), and the user's own 2-layer MLP on the item row.

What differs from the reference code is only *how* it is computed and trained:

- Efficient forward: a batch generates each distinct user's hidden vectors and RP parameters
  once, and only the rows of L(u) its items need. The L generator's weight (N*m x hidden) and
  bias (N*m) are stored as one table `item_rows` of shape (N, m*hidden + m), row i holding item
  i's m weight rows then its m biases, so a (user, item) pair costs
  l_ui = W_L[i] h_e(u) + b_L[i] (m x hidden times hidden) instead of the whole N x m factor.
- The table gets sparse gradients and a lazy Adam (`torch.optim.SparseAdam`): rows of items
  absent from a batch are not touched (the dense Adam of the reference would still move them
  by momentum and weight decay). Coupled L2 for those rows is a loss term reg/2 |rows|^2 on the
  rows in the batch, which adds reg * row to their gradient just as Adam's weight_decay does.
  All other parameters use dense Adam with weight_decay = reg. The global gradient norm
  (including those L2 terms) is clipped at 5.
- Batches are plain shuffles by default (as the reference). `options["batching"] = "user"`
  groups them by user (users in a random order, each user's ratings shuffled, then cut into
  batches): generating a user's parameters costs about 100x a pair's own work, so such batches
  are cheaper (about 1.5x per epoch on ML-100K shapes) but learned less per epoch in our tests.

Two training choices differ from the reference because they decide whether MetaMF is usable on
MovieLens-sized data (measured on ML-100K, random 80/20 split, benchmarks/bench_metamf.py's
shapes):

- User embeddings start at N(0, 0.01^2) instead of N(0, 1) (`user_init_std`). With unit-variance
  p_u the collaborative vectors are large from the start and the model memorises the training
  ratings within two epochs: test MAE bottoms out at 0.786-0.79 for every lr/batch we tried,
  including the reference's lr 1e-4 and batch 64. Small p_u let the generators learn shared
  structure first; MAE reaches 0.72, level with our tuned `mf`. The rating head's bias still
  starts at 0 as in the reference: starting it at the mean rating removes the large early
  errors whose gradients grow the user-specific parts, and MAE after 3 epochs is then 0.837
  instead of 0.734. A consequence: on very small tables (tens of batches) the default lr
  needs more epochs than the reference init before predictions reach the rating scale.
- The learning rate follows a cosine decay over the epochs of each training call
  (`lr_schedule`), so the last epochs settle instead of oscillating by +-0.005 MAE. Warm
  retrains restart the schedule.

Two more make it a platform model in a simulation, where it is retrained on whatever users
have disclosed so far with the epochs a scenario gives every model:

- Early stopping (`validation`, `patience`): each fit holds out 5% of its ratings, stops after
  3 epochs without a better error on them and keeps the best epoch. MetaMF memorises its
  training ratings within a few epochs; the 20-60 epochs the shipped scenarios give BPR and
  MF took its in-the-loop MAE on ML-100K from 0.79 to 0.94 without this.
- Users without a rating in a fit get the mean embedding of the users with one
  (`base.place_unseen_users`). In a run users join over time, and a quarter of ML-100K's users
  have disclosed nothing by the middle of its history; their near-zero initial embeddings
  are a point the generators never learned, and predicting their future ratings from it cost
  0.09 MAE against MF (whose global and item biases serve such users).

Two defenses train it differently. APR (`set_perturbation`): each batch steps on
MSE(rows) + weight * MSE(rows + delta), delta the perturbation of the clean loss's gradient
with respect to each p_u and item-table row the batch reads, held constant. DP-SGD
(`dense_training`): a per-example copy of the network (`metamf_dense`) for Opacus, trained
outside `fit`, so without the validation hold-out and the placement of unseen users.

A model whose lists rank by consumption (`consumption.ConsumptionRanked`) is built with
`options["consumption_items"]` = N trailing items beyond the rated ones: those are scored by a
dot-product head on the collaborative vector, c_u . g_j + b_j (`MetaMFNet.head`, a lazily
updated table like the item rows), and each batch of ratings is stepped with its share of the
fit's consumption rows, weighted by CONSUMPTION_WEIGHT; validation and early stopping read the
ratings only.

Dimensions come from `params.options` (user_dim 32, memory_dim 128, hidden 512, item_dim 32,
rank 8); `params.factors` is not used. Defaults for CPU: batch 1024, lr 1e-3, reg 1e-3 (the
reference trains with batch 64, lr 1e-4 for 100 epochs, far too slow here).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from simulator.recommenders.base import (
    ModelParams,
    Recommender,
    TrainingReport,
    divergence,
    place_unseen_users,
)
from simulator.recommenders.metamf_dense import metamf_training
from simulator.recommenders.metamf_items import MetaMFItemParameters
from simulator.recommenders.user_scores import MetaMFScorer, UserScorer
from simulator.world.base import Interactions

if TYPE_CHECKING:
    from simulator.recommenders.hooks import DenseTraining, RowPerturbation, UserEmbeddingAdversary

DEFAULT_LR = 1e-3
DEFAULT_REG = 1e-3
DEFAULT_BATCH = 1024
GRAD_CLIP = 5.0
RATING_MIN = 1.0
RATING_MAX = 5.0
DEFAULT_DIMS = {"user_dim": 32, "memory_dim": 128, "hidden": 512, "item_dim": 32, "rank": 8}
DEFAULT_USER_INIT_STD = 0.01
DEFAULT_VALIDATION = 0.05  # share of each fit's ratings held out to choose the epoch
DEFAULT_PATIENCE = 3  # epochs without a better validation error before a fit stops
MIN_VALIDATION_RATINGS = 100
LR_SCHEDULES = ("cosine", "constant")
SCORE_CHUNK_FLOATS = 1 << 24  # cap on the (users x items x item_dim) table built by score
HEAD_INIT_STD = 0.1  # initial consumption-head vectors (`ranking.consumption`)
# Weight of a consumption row against a rating row. At 1 the head barely personalises under
# Adam's small steps (ML-100K, temporal 80/20, 4 negatives: HR@10 0.544 against the
# popularity list's 0.538); at 10, 0.612 with MAE 0.773 against 0.769 without the head.
CONSUMPTION_WEIGHT = 10.0


class _Generated:
    """Per-user generated quantities for a set of users (leading dimension = users)."""

    def __init__(
        self,
        h_e: torch.Tensor,
        right: torch.Tensor,
        w1: torch.Tensor,
        b1: torch.Tensor,
        w2: torch.Tensor,
        b2: torch.Tensor,
    ) -> None:
        self.h_e = h_e  # (U, hidden): hidden vector of the item-embedding generator
        self.right = right  # (U, rank, item_dim): R(u)
        self.w1, self.b1 = w1, b1  # (U, item_dim, item_dim//4), (U, item_dim//4)
        self.w2, self.b2 = w2, b2  # (U, item_dim//4, 1), (U, 1)

    def take(self, index: torch.Tensor) -> _Generated:
        """The same quantities repeated per pair (`index` maps pairs to users)."""
        # index_select: its backward (index_add) is much faster on CPU than that of [index].
        parts = (self.h_e, self.right, self.w1, self.b1, self.w2, self.b2)
        return _Generated(*(t.index_select(0, index) for t in parts))


class MetaMFNet(nn.Module):
    """The MetaMF network: memory, RP-parameter generators and item-embedding generator."""

    def __init__(
        self,
        n_users: int,
        n_items: int,
        user_dim: int,
        memory_dim: int,
        hidden: int,
        item_dim: int,
        rank: int,
        consumption_items: int = 0,
    ) -> None:
        super().__init__()
        if min(n_users, n_items, user_dim, memory_dim, hidden, rank) <= 0 or item_dim < 4:
            raise ValueError("MetaMF dimensions must be positive and item_dim >= 4")
        if not 0 <= consumption_items < n_items:
            raise ValueError(f"consumption_items must be in [0, {n_items}), got "
                             f"{consumption_items}")
        self.n_items, self.hidden, self.item_dim, self.rank = n_items, hidden, item_dim, rank
        # Items from `split` on are scored by the consumption head (`ranking.consumption`).
        self.split = n_items - consumption_items
        mid = item_dim // 4  # RP layers: item_dim -> item_dim // 4 -> 1
        self.mid = mid
        self.user_emb = nn.Parameter(torch.empty(n_users, user_dim))
        self.memory = nn.Parameter(torch.empty(user_dim, memory_dim))
        # RP-layer generators (the six layers NoMetaMF freezes).
        self.rp_hidden1 = nn.Linear(memory_dim, hidden)
        self.rp_weight1 = nn.Linear(hidden, item_dim * mid)
        self.rp_bias1 = nn.Linear(hidden, mid)
        self.rp_hidden2 = nn.Linear(memory_dim, hidden)
        self.rp_weight2 = nn.Linear(hidden, mid)
        self.rp_bias2 = nn.Linear(hidden, 1)
        # Item-embedding generator: hidden layer, L head (as a per-item table), R head.
        self.emb_hidden = nn.Linear(memory_dim, hidden)
        self.item_rows = nn.Parameter(torch.empty(self.split, rank * hidden + rank))
        self.emb_right = nn.Linear(hidden, rank * item_dim)
        # Consumption head: item j's vector g_j, then its bias b_j; scores c_u . g_j + b_j on
        # the collaborative vector c_u = p_u M.
        self.head: nn.Parameter | None = nn.Parameter(
            torch.empty(consumption_items, memory_dim + 1)) if consumption_items else None

    def rp_layers(self) -> list[nn.Linear]:
        """The six Linear layers that generate the RP parameters."""
        return [
            self.rp_hidden1, self.rp_weight1, self.rp_bias1,
            self.rp_hidden2, self.rp_weight2, self.rp_bias2,
        ]

    def reset(self, generator: torch.Generator, user_init_std: float = 1.0) -> None:
        """Reference init (N(0, user_init_std^2) user embeddings, the reference's std being 1;
        Xavier-normal weights and M; zero biases)."""
        with torch.no_grad():
            self.user_emb.normal_(0.0, user_init_std, generator=generator)
            nn.init.xavier_normal_(self.memory, generator=generator)
            for layer in [*self.rp_layers(), self.emb_hidden, self.emb_right]:
                nn.init.xavier_normal_(layer.weight, generator=generator)
                layer.bias.zero_()
            if self.head is not None:
                self.head.normal_(0.0, HEAD_INIT_STD, generator=generator)
                self.head[:, -1].zero_()
            # The L head is Linear(hidden, N*rank): Xavier std uses its fan-in and fan-out.
            n_out = self.split * self.rank
            std = math.sqrt(2.0 / (self.hidden + n_out))
            weights = self.item_rows[:, : self.rank * self.hidden]
            weights.normal_(0.0, std, generator=generator)
            self.item_rows[:, self.rank * self.hidden :].zero_()

    # -- pieces ------------------------------------------------------------------------------
    def generate(self, users: torch.Tensor) -> _Generated:
        """c_u = p_u M, then the hidden vectors, RP parameters and R(u) of each user."""
        return self.generate_rows(self.user_emb.index_select(0, users))

    def generate_rows(self, p: torch.Tensor) -> _Generated:
        """The same from already-gathered user embeddings p (U, user_dim)."""
        c = p @ self.memory
        n = len(p)
        h1 = F.relu(self.rp_hidden1(c))
        h2 = F.relu(self.rp_hidden2(c))
        h_e = F.relu(self.emb_hidden(c))
        return _Generated(
            h_e=h_e,
            right=self.emb_right(h_e).view(n, self.rank, self.item_dim),
            w1=self.rp_weight1(h1).view(n, self.item_dim, self.mid),
            b1=self.rp_bias1(h1),
            w2=self.rp_weight2(h2).view(n, self.mid, 1),
            b2=self.rp_bias2(h2),
        )

    def _split_rows(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Table rows -> (weights (n, rank, hidden), biases (n, rank))."""
        cut = self.rank * self.hidden
        return rows[:, :cut].view(-1, self.rank, self.hidden), rows[:, cut:]

    def _rp(self, e: torch.Tensor, g: _Generated) -> torch.Tensor:
        """The RP module on item rows e (pairs, item_dim), with per-pair parameters g."""
        z = F.relu(torch.bmm(e.unsqueeze(1), g.w1).squeeze(1) + g.b1)
        return torch.bmm(z.unsqueeze(1), g.w2).view(-1) + g.b2.view(-1)

    # -- forward passes ----------------------------------------------------------------------
    def forward(
        self, users: torch.Tensor, items: torch.Tensor, sparse: bool = False
    ) -> torch.Tensor:
        """Predicted ratings of (user, item) pairs.

        Each distinct user is generated once and only the batch's items' rows of L(u) are
        formed: e_ui = (W_L[i] h_e(u) + b_L[i]) R(u). `sparse` gives the item table a sparse
        gradient (one row per pair, uncoalesced).
        """
        unique_users, user_of = torch.unique(users, return_inverse=True)
        p = self.user_emb.index_select(0, unique_users)
        if self.head is None:
            return self.forward_rows(p, user_of, F.embedding(items, self.item_rows, sparse=sparse))
        consumed = items >= self.split
        rated = torch.nonzero(~consumed).squeeze(1)
        headed = torch.nonzero(consumed).squeeze(1)
        out = torch.zeros(len(items), dtype=p.dtype, device=p.device)
        if len(rated):
            rows = F.embedding(items.index_select(0, rated), self.item_rows, sparse=sparse)
            out = out.index_put((rated,), self.forward_rows(p, user_of.index_select(0, rated),
                                                           rows))
        if len(headed):
            out = out.index_put((headed,), self.head_scores(
                p.index_select(0, user_of.index_select(0, headed)),
                items.index_select(0, headed) - self.split, sparse))
        return out

    def head_scores(self, p: torch.Tensor, heads: torch.Tensor, sparse: bool = False
                    ) -> torch.Tensor:
        """Consumption scores c_u . g_j + b_j of pairs (c_u = p_u M): `p` (B, user_dim) each
        pair's user embedding, `heads` (B,) each pair's row of the head (item index minus
        `split`)."""
        assert self.head is not None
        rows = F.embedding(heads, self.head, sparse=sparse)
        return ((p @ self.memory) * rows[:, :-1]).sum(1) + rows[:, -1]

    def forward_rows(
        self, p: torch.Tensor, user_of: torch.Tensor, rows: torch.Tensor
    ) -> torch.Tensor:
        """Predicted ratings from already-gathered rows: `p` (U, user_dim) the embeddings of
        the distinct users, `user_of` each pair's position in `p`, `rows` (B, rank*hidden +
        rank) each pair's row of the item table."""
        g = self.generate_rows(p).take(user_of)
        w_l, b_l = self._split_rows(rows)
        # Broadcast multiply-and-sum: its backward is ~2x faster on CPU than that of bmm.
        left = (w_l * g.h_e.unsqueeze(1)).sum(2) + b_l
        e = torch.bmm(left.unsqueeze(1), g.right).squeeze(1)
        return self._rp(e, g)

    def full_left(self, h_e: torch.Tensor) -> torch.Tensor:
        """L(u) for every rated item, (U, split, rank), from hidden vectors h_e (U, hidden)."""
        w_l, b_l = self._split_rows(self.item_rows)
        flat = h_e @ w_l.reshape(-1, self.hidden).t() + b_l.reshape(-1)
        return flat.view(len(h_e), self.split, self.rank)

    def forward_reference(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """The reference formulation: every pair generates its user's whole N x rank factor
        and N x item_dim table E(u) = L(u) R(u), then takes row i. About N times slower."""
        g = self.generate(users)
        table = torch.bmm(self.full_left(g.h_e), g.right)  # (B, N, item_dim)
        e = table[torch.arange(len(items), device=items.device), items]
        return self._rp(e, g)

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        """Unclipped predictions of every item for `users`, (U, N); the consumption head's
        items (from `split` on) score c_u . g_j + b_j."""
        g = self.generate(users)
        table = torch.bmm(self.full_left(g.h_e), g.right)  # (U, split, item_dim)
        z = F.relu(torch.bmm(table, g.w1) + g.b1.unsqueeze(1))
        rated = torch.bmm(z, g.w2).squeeze(2) + g.b2
        if self.head is None:
            return rated
        c = self.user_emb.index_select(0, users) @ self.memory
        return torch.cat([rated, c @ self.head[:, :-1].t() + self.head[:, -1]], dim=1)


class MetaMF(MetaMFItemParameters, Recommender):
    """MetaMF trained centrally on explicit ratings (MSE, Adam, grad-norm clipping at 5).

    Options (`params.options`): user_dim, memory_dim, hidden, item_dim, rank (defaults 32, 128,
    512, 32, 8), user_init_std (0.01), lr_schedule ("cosine" or "constant"), validation
    (0.05; 0 trains on every rating for every epoch) and patience (3), and batching
    ("random", the default, or "user"). `params.factors` is not used.
    lr, reg (coupled L2) and batch_size default to 1e-3, 1e-3 and 1024. Predictions are unclipped in
    training and clipped to [1, 5] by `score` and `predict`.

    `set_perturbation` trains on the APR objective; `dense_training` gives the per-example
    network that DP-SGD trains (`metamf_dense`).

    `user_embeddings()` is p_u. `item_embeddings()` is the user-independent part of L(u): item
    i's rows of the L generator's bias, (N, rank); E(u) itself is private to each user.
    """

    name = "metamf"
    predicts_ratings = True
    freeze_rp_generators = False

    def __init__(
        self,
        n_users: int,
        n_items: int,
        params: ModelParams,
        device: torch.device | str,
        seed: int,
    ) -> None:
        super().__init__(n_users, n_items, params, torch.device(device), seed)
        options = dict(params.options)
        dims = {key: int(options.pop(key, value)) for key, value in DEFAULT_DIMS.items()}
        self.batching = str(options.pop("batching", "random"))
        if self.batching not in ("user", "random"):
            raise ValueError(f"batching must be 'user' or 'random', got {self.batching!r}")
        self.user_init_std = float(options.pop("user_init_std", DEFAULT_USER_INIT_STD))
        if not self.user_init_std > 0:
            raise ValueError(f"user_init_std must be positive, got {self.user_init_std}")
        self.validation = float(options.pop("validation", DEFAULT_VALIDATION))
        if not 0.0 <= self.validation < 0.5:
            raise ValueError(f"validation must be in [0, 0.5), got {self.validation}")
        self.patience = int(options.pop("patience", DEFAULT_PATIENCE))
        if self.patience < 1:
            raise ValueError(f"patience must be at least 1, got {self.patience}")
        self.consumption_items = int(options.pop("consumption_items", 0))
        self.lr_schedule = str(options.pop("lr_schedule", "cosine"))
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        if options:
            raise ValueError(f"unknown MetaMF options: {sorted(options)}")
        self.dims = dims
        self.lr = DEFAULT_LR if params.lr is None else float(params.lr)
        self.reg = DEFAULT_REG if params.reg is None else float(params.reg)
        self.batch_size = DEFAULT_BATCH if params.batch_size is None else int(params.batch_size)
        if self.batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {self.batch_size}")
        self.generator = torch.Generator(device=self.device)
        self.net = MetaMFNet(n_users, n_items, **dims,
                             consumption_items=self.consumption_items).to(self.device)
        self.epoch_seconds: list[float] = []
        self.last_best_epoch: int | None = None  # the epoch the last fit kept (validation)
        self._initialise()

    # -- parameters --------------------------------------------------------------------------
    def reset(self) -> None:
        """Fresh parameters from the seed, as a cold start draws them."""
        self._initialise()

    def user_scorer(self) -> UserScorer:
        """The network with a substitute user table (`user_scores.MetaMFScorer`)."""
        return MetaMFScorer(self)

    def _initialise(self) -> None:
        """Reseed, draw fresh parameters (on CPU, so any device gets the same values) and
        fresh optimisers."""
        self.generator.manual_seed(self.seed)
        init_gen = torch.Generator().manual_seed(self.seed)
        cpu_net = self.net.to("cpu")
        cpu_net.reset(init_gen, self.user_init_std)
        self.net = cpu_net.to(self.device)
        for layer in self.net.rp_layers():
            layer.requires_grad_(not self.freeze_rp_generators)
        self._make_optimisers()

    def _make_optimisers(self) -> None:
        """Fresh Adam states: dense Adam for the networks, lazy Adam for the item table."""
        tables = ("item_rows", "head")
        dense = [
            p for n, p in self.net.named_parameters() if p.requires_grad and n not in tables
        ]
        self.dense_opt = torch.optim.Adam(dense, lr=self.lr, weight_decay=self.reg)
        self.table_opt = _LazyAdam(self.net.item_rows, lr=self.lr, weight_decay=self.reg)
        self.head_opt = None if self.net.head is None else \
            _LazyAdam(self.net.head, lr=self.lr, weight_decay=self.reg)

    # -- training ----------------------------------------------------------------------------
    def _epoch_order(self, users: torch.Tensor) -> torch.Tensor:
        """A fresh permutation of the rows: grouped by user (random user order, random order
        within a user) or plainly shuffled."""
        n = len(users)
        order = torch.randperm(n, generator=self.generator, device=self.device)
        if self.batching == "random":
            return order
        user_rank = torch.randperm(self.n_users, generator=self.generator, device=self.device)
        keys = user_rank[users[order]]
        return order[torch.sort(keys, stable=True).indices]

    def _set_lr(self, epoch: int, epochs: int) -> None:
        """The learning rate of `epoch` (0-based) out of `epochs` under the schedule."""
        lr = self.lr
        if self.lr_schedule == "cosine":
            lr *= 0.5 * (1.0 + math.cos(math.pi * epoch / epochs))
        for group in self.dense_opt.param_groups:
            group["lr"] = lr
        self.table_opt.lr = lr
        if self.head_opt is not None:
            self.head_opt.lr = lr

    def _step(
        self,
        users: torch.Tensor,
        items: torch.Tensor,
        rating: torch.Tensor,
        adversary: UserEmbeddingAdversary | None = None,
        consumed: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
    ) -> float:
        """One Adam step on a batch of ratings; returns the batch's mean squared error.

        `consumed` (users, head items, targets) are consumption rows stepped with the batch
        (`ranking.consumption`): their squared errors join the loss, summed over the
        batch's rating rows and weighted by CONSUMPTION_WEIGHT.

        With a row perturbation (`set_perturbation`) the step is on the APR objective
        (`_perturbed_loss`). With an adversary, its read-out loss on the batch's distinct
        users' p_u (mean over users, through the gradient-reversal layer) joins the same
        backward pass; the heads then take their own step.
        """
        perturbation = self.perturbation
        if perturbation is None:
            mse = F.mse_loss(self.net(users, items, sparse=True), rating)
            loss = mse
        else:
            mse, loss = self._perturbed_loss(users, items, rating, perturbation)
        if consumed is not None:
            # Summed over the batch's rating rows: a consumption row weighs CONSUMPTION_WEIGHT
            # rating rows.
            c_users, c_items, c_target = consumed
            head = self.net.head_scores(self.net.user_emb.index_select(0, c_users),
                                        c_items - self.net.split, sparse=True)
            loss = loss + CONSUMPTION_WEIGHT * (head - c_target).square().sum() / len(users)
        self.dense_opt.zero_grad(set_to_none=True)
        self.net.item_rows.grad = None
        if self.net.head is not None:
            self.net.head.grad = None
        if adversary is not None:
            distinct = torch.unique(users)
            adversary.zero_grad()
            loss = loss + adversary.loss(distinct, self.net.user_emb.index_select(0, distinct))
        loss.backward()
        _clip_gradients(self.net.parameters())
        self.dense_opt.step()
        self.table_opt.step()
        if self.head_opt is not None:
            self.head_opt.step()
        if adversary is not None:
            adversary.step_heads()
        return float(mse.detach())

    def _perturbed_loss(
        self,
        users: torch.Tensor,
        items: torch.Tensor,
        rating: torch.Tensor,
        perturbation: RowPerturbation,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(clean MSE, APR objective MSE(rows) + weight * MSE(rows + delta)) of a batch.

        The rows are the batch's distinct users' p_u and its distinct items' rows of the
        item table; delta = perturbation(gradient of the clean MSE with respect to each such
        row, summed over the pairs that read it), held constant. The item table is still read
        per pair through a sparse embedding, so its gradient stays row-sparse.
        """
        unique_users, user_of = torch.unique(users, return_inverse=True)
        p = self.net.user_emb.index_select(0, unique_users)
        rows = F.embedding(items, self.net.item_rows, sparse=True)
        mse = F.mse_loss(self.net.forward_rows(p, user_of, rows), rating)
        grad_p, grad_rows = torch.autograd.grad(mse, (p, rows), retain_graph=True)
        unique_items, item_of = torch.unique(items, return_inverse=True)
        grad_items = grad_rows.new_zeros(len(unique_items), grad_rows.shape[1])
        grad_items.index_add_(0, item_of, grad_rows)
        shift_p = perturbation(grad_p).detach()
        shift_rows = perturbation(grad_items).detach().index_select(0, item_of)
        shifted = self.net.forward_rows(p + shift_p, user_of, rows + shift_rows)
        return mse, mse + perturbation.weight * F.mse_loss(shifted, rating)

    def _snapshot(self) -> list[torch.Tensor]:
        """Copies of every parameter of the network."""
        return [p.detach().clone() for p in self.net.parameters()]

    def _row_norm(self) -> float:
        """The largest row norm of the user embeddings and of the item table."""
        return max(
            float(torch.linalg.vector_norm(t.detach(), dim=1).max())
            for t in (self.net.user_emb, self.net.item_rows, self.net.head) if t is not None
        )

    @torch.no_grad()
    def _restore(self, snapshot: list[torch.Tensor]) -> None:
        """Parameters from `snapshot`, and fresh optimiser moments (the old ones may be
        non-finite)."""
        for p, saved in zip(self.net.parameters(), snapshot, strict=True):
            p.copy_(saved)
        self._make_optimisers()

    def fit(self, data: Interactions, epochs: int, warm_start: bool = False) -> TrainingReport:
        """Train for at most `epochs` epochs; cold starts re-initialise parameters and
        optimisers.

        With `validation` > 0 (and enough ratings) a seeded share of `data` is held out: the
        fit stops after `patience` epochs without a lower held-out error and keeps the
        parameters of its best epoch (`last_best_epoch`). Users without a training rating
        then take the mean user embedding.

        After every epoch the mean loss and the largest row norm of p_u and of the item table
        are checked (`base.divergence`); an unhealthy epoch ends the fit and is named in the
        report's `diverged`. The parameters then go back to the end of the last healthy epoch
        (or the start of the fit) and the optimisers restart with zero moments; the
        adversary's heads are not rolled back.
        """
        start, nothing = self.start_fit(data, epochs, warm_start)
        if nothing is not None:
            return nothing
        users = torch.as_tensor(data.user, dtype=torch.int64).to(self.device)
        items = torch.as_tensor(data.item, dtype=torch.int64).to(self.device)
        rating = torch.as_tensor(data.rating, dtype=torch.float32).to(self.device)
        consumption = items >= self.net.split
        c_rows = torch.nonzero(consumption).squeeze(1)
        if len(c_rows):  # rating rows are trained and validated as before; see _step
            kept = torch.nonzero(~consumption).squeeze(1)
            c_users, c_items, c_target = users[c_rows], items[c_rows], rating[c_rows]
            users, items, rating = users[kept], items[kept], rating[kept]
        held = self._validation_rows(len(users))
        fit_rows = torch.nonzero(~held).squeeze(1)
        n, bs = len(fit_rows), self.batch_size
        losses: list[float] = []
        self.epoch_seconds = []
        self.net.train()
        adversary = self.adversary
        healthy = self._snapshot()
        best: tuple[float, int, list[torch.Tensor]] | None = None
        diverged = None
        for epoch in range(epochs):
            t0 = time.perf_counter()
            self._set_lr(epoch, epochs)
            order = fit_rows[self._epoch_order(users[fit_rows])]
            c_order = torch.randperm(len(c_rows), generator=self.generator,
                                     device=self.device) if len(c_rows) else None
            total = 0.0
            for lo in range(0, n, bs):
                idx = order[lo : lo + bs]
                consumed = None
                if c_order is not None:  # the consumption rows' share of this batch
                    c_idx = c_order[lo * len(c_rows) // n : (lo + len(idx)) * len(c_rows) // n]
                    consumed = (c_users[c_idx], c_items[c_idx], c_target[c_idx])
                total += self._step(users[idx], items[idx], rating[idx], adversary,
                                    consumed) * len(idx)
            losses.append(total / n)
            self.epoch_seconds.append(time.perf_counter() - t0)
            if adversary is not None:
                adversary.end_epoch()
            diverged = divergence(epoch + 1, losses[-1], self._row_norm())
            if diverged is not None:
                self._restore(healthy)
                break
            if held.any():
                error = self._validation_error(users[held], items[held], rating[held])
                if best is None or error < best[0]:
                    best = (error, epoch, self._snapshot())
                elif epoch - best[1] >= self.patience:
                    break
            if epoch + 1 < epochs:
                healthy = self._snapshot()
        if diverged is None and best is not None and best[1] + 1 < len(losses):
            self._restore(best[2])
        self.last_best_epoch = None if best is None else best[1] + 1
        place_unseen_users(self.net.user_emb, users[fit_rows], self.n_users)
        return TrainingReport(
            len(losses), losses, time.perf_counter() - start, warm_start, diverged
        )

    def set_perturbation(self, perturbation: RowPerturbation | None) -> None:
        """Train on the APR objective from the next fit on: every batch steps on
        MSE(rows) + weight * MSE(rows + delta) over the p_u and item-table rows it reads
        (`_perturbed_loss`; with DP-SGD each example is shifted by its own gradient,
        `metamf_dense`). None returns to plain training."""
        self.perturbation = perturbation

    def dense_training(self, data: Interactions) -> DenseTraining:
        """MetaMF on `data` as a per-example network for DP-SGD (`metamf_dense`), with this
        model's row perturbation and adversary; writing back also restarts the optimisers'
        moments. No validation hold-out, best-epoch restore or placement of unseen users
        applies to such training (see `metamf_dense`). A model with a consumption head has
        none (the scenario check refuses DP-SGD with `ranking.method: consumption`)."""
        if self.consumption_items:
            raise NotImplementedError("MetaMF with a consumption head has no dense training")
        training = metamf_training(self, data)
        write_back = training.write_back

        def finish() -> None:
            write_back()
            self._make_optimisers()

        return replace(training, write_back=finish)

    def _validation_rows(self, n: int) -> torch.Tensor:
        """A boolean mask of the ratings held out to choose the epoch (none when validation
        is off or the table is too small to spare them)."""
        held = torch.zeros(n, dtype=torch.bool, device=self.device)
        count = int(round(self.validation * n))
        if count >= MIN_VALIDATION_RATINGS:
            held[torch.randperm(n, generator=self.generator, device=self.device)[:count]] = True
        return held

    @torch.no_grad()
    def _validation_error(
        self, users: torch.Tensor, items: torch.Tensor, rating: torch.Tensor
    ) -> float:
        """Mean squared error of the clipped predictions on the held-out ratings."""
        self.net.eval()
        step = 8192
        total = 0.0
        for lo in range(0, len(users), step):
            out = self.net(users[lo : lo + step], items[lo : lo + step])
            total += float((out.clamp(RATING_MIN, RATING_MAX) - rating[lo : lo + step])
                           .square().sum())
        self.net.train()
        return total / len(users)

    # -- inference ---------------------------------------------------------------------------
    @torch.no_grad()
    def score(self, users: torch.Tensor) -> torch.Tensor:
        """Ranking scores of every item, shape (len(users), n_items): the predicted ratings
        before they are clipped to [1, 5] (`predict` clips), since clipped ratings tie at 5
        and would rank by accident.

        Builds each user's full E(u), in chunks of users to bound memory."""
        users = torch.as_tensor(users, dtype=torch.int64, device=self.device)
        chunk = max(1, SCORE_CHUNK_FLOATS // (self.n_items * self.dims["item_dim"]))
        parts = [self.net.score_all(users[lo : lo + chunk]) for lo in range(0, len(users), chunk)]
        if not parts:
            return torch.empty(0, self.n_items, device=self.device)
        return torch.cat(parts)

    @torch.no_grad()
    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Predicted ratings of (user, item) pairs, clipped to [1, 5], as float32."""
        u = torch.as_tensor(np.asarray(users), dtype=torch.int64, device=self.device)
        i = torch.as_tensor(np.asarray(items), dtype=torch.int64, device=self.device)
        step = 8192
        parts = [self.net(u[lo : lo + step], i[lo : lo + step]) for lo in range(0, len(u), step)]
        if not parts:
            return np.zeros(0, np.float32)
        out = torch.cat(parts).clamp_(RATING_MIN, RATING_MAX)
        return out.cpu().numpy().astype(np.float32)

    def user_embeddings(self) -> np.ndarray:
        """p_u, shape (n_users, user_dim)."""
        return self.net.user_emb.detach().cpu().numpy().astype(np.float32, copy=True)

    @torch.no_grad()
    def set_user_embeddings(self, embeddings: np.ndarray) -> None:
        """Overwrite p_u (shape (n_users, user_dim)); the networks are kept."""
        new = self._checked_user_embeddings(embeddings, self.dims["user_dim"])
        self.net.user_emb.copy_(new)

    def item_embeddings(self) -> np.ndarray:
        """Item i's rows of the L generator's bias (the user-independent part of L(u)),
        shape (n_items, rank)."""
        _, bias = self.net._split_rows(self.net.item_rows.detach())
        return bias.cpu().numpy().astype(np.float32, copy=True)


def _clip_gradients(parameters: Iterable[nn.Parameter]) -> None:
    """Scale all gradients so their global 2-norm is at most GRAD_CLIP (sparse gradients
    are coalesced first)."""
    grads = []
    for p in parameters:
        if p.grad is None:
            continue
        if p.grad.is_sparse:
            p.grad = p.grad.coalesce()
            grads.append(p.grad._values())
        else:
            grads.append(p.grad)
    total = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
    coef = torch.clamp(GRAD_CLIP / (total + 1e-6), max=1.0)
    for g in grads:
        g.mul_(coef)


class NoMetaMF(MetaMF):
    """MetaMF without meta learning: the six RP-generator layers stay at their random init."""

    name = "nometamf"
    freeze_rp_generators = True


class _LazyAdam:
    """Adam with coupled L2 for a table with row-sparse gradients: only the rows in the
    gradient are decayed and updated; bias correction uses the global step count (as
    torch.optim.SparseAdam, which is several times slower on CPU and has no weight decay)."""

    def __init__(
        self,
        table: torch.Tensor,
        lr: float,
        weight_decay: float,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        self.table, self.lr, self.weight_decay = table, lr, weight_decay
        self.beta1, self.beta2 = betas
        self.eps = eps
        self.steps = 0
        self.m = torch.zeros_like(table, requires_grad=False)
        self.v = torch.zeros_like(table, requires_grad=False)

    @torch.no_grad()
    def step(self) -> None:
        """One update from the table's (coalesced) sparse gradient."""
        grad = self.table.grad
        if grad is None:
            return
        grad = grad.coalesce()
        self.steps += 1
        rows, g = grad.indices()[0], grad.values()
        if self.weight_decay:
            g = g.add(self.table.index_select(0, rows), alpha=self.weight_decay)
        m = self.m.index_select(0, rows).lerp_(g, 1.0 - self.beta1)
        v = self.v.index_select(0, rows).mul_(self.beta2).addcmul_(g, g, value=1.0 - self.beta2)
        self.m.index_copy_(0, rows, m)
        self.v.index_copy_(0, rows, v)
        bias1 = 1.0 - self.beta1**self.steps
        bias2 = 1.0 - self.beta2**self.steps
        denom = v.div_(bias2).sqrt_().add_(self.eps)
        self.table.index_add_(0, rows, m.div_(denom), alpha=-self.lr / bias1)
