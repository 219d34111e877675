"""LightGCN (He et al., SIGIR 2020): ego embeddings propagated over the user-item graph,
trained with the BPR loss."""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F

from simulator.recommenders import _sparse_sgd as sgd
from simulator.recommenders.base import (
    ModelParams,
    Recommender,
    TrainingReport,
    divergence,
    place_unseen_users,
)
from simulator.recommenders.graph_propagation import normalised_adjacency, propagate
from simulator.recommenders.hooks import RowPerturbation
from simulator.recommenders.user_scores import UserScorer
from simulator.world.base import Interactions

DEFAULT_LR = 0.05
DEFAULT_REG = 1e-3
DEFAULT_LAYERS = 3
INIT_STD = 0.1


class LightGCN(Recommender):
    """LightGCN on the platform's interactions, every row a positive (as BPR).

    Ego embeddings E_0 (users first, then items) are the only parameters. The final
    embeddings are the mean of E_0, A E_0, ..., A^K E_0, A the symmetric-normalised adjacency
    of the user-item graph of the fit's table; the score of (u, i) is e_u . e_i. Each batch
    propagates the whole graph, draws one uniform negative per positive (a draw that hits a
    known positive of its user is redrawn once), and takes one Adam step on the mean
    -log sigmoid(x_ui - x_uj) plus reg/2 times the squared norms of the batch's ego rows
    (the reference's regulariser).

    Defaults: lr 0.05, reg 1e-3, batch about n/16 (`_sparse_sgd.auto_batch_size`: every
    batch propagates the whole graph, so an epoch costs about its number of batches), 3
    layers (`options["layers"]`), E_0 drawn N(0, 0.1). A warm start continues from E_0 with
    fresh Adam moments. Measured on ML-100K (`benchmarks/bench_lightgcn.py`).

    What the platform serves, scores with and exposes (`user_embeddings`,
    `item_embeddings`) are the final embeddings of the last fit, users without an
    interaction in it taking the mean user's (`_serve`). Post-training edits
    (`set_user_embeddings`, `set_item_embeddings`) replace them until the next fit, which
    recomputes them from E_0 and the new graph.

    Defenses act on these final embeddings: an adversary (`set_adversary`) reads the batch's
    users' final rows, through the gradient-reversal layer, in the same backward pass; a row
    perturbation (`set_perturbation`, APR) shifts every row of E_0 along the gradient of the
    batch's clean loss and adds weight times the loss of the graph propagated from the
    shifted E_0. There is no per-example training (DP-SGD): every example's loss reads the
    whole graph through propagation, so per-example gradients do not separate.
    """

    name = "lightgcn"
    predicts_ratings = False

    def __init__(
        self, n_users: int, n_items: int, params: ModelParams, device: torch.device, seed: int
    ) -> None:
        super().__init__(n_users, n_items, params, torch.device(device), seed)
        if params.factors <= 0:
            raise ValueError(f"factors must be positive, got {params.factors}")
        layers = int(params.options.get("layers", DEFAULT_LAYERS))
        if layers < 0:
            raise ValueError(f"layers must be >= 0, got {layers}")
        self.factors = params.factors
        self.layers = layers
        self.lr = DEFAULT_LR if params.lr is None else float(params.lr)
        self.reg = DEFAULT_REG if params.reg is None else float(params.reg)
        self.batch_size = params.batch_size
        self.generator = torch.Generator(device=self.device)
        self.ego = torch.empty(0)
        self.served = torch.empty(0)  # final embeddings of the last fit, users then items
        self.epoch_seconds: list[float] = []
        self._initialise()

    # -- parameters --------------------------------------------------------------------------
    def _initialise(self) -> None:
        """Reseed the generator, draw E_0 ~ N(0, 0.1) and serve it until the first fit."""
        self.generator.manual_seed(self.seed)
        self.ego = torch.randn(
            self.n_users + self.n_items, self.factors, generator=self.generator,
            device=self.device,
        ).mul_(INIT_STD)
        self.served = self.ego.clone()

    def reset(self) -> None:
        """Fresh parameters from the seed, as a cold start draws them."""
        self._initialise()

    def set_perturbation(self, perturbation: RowPerturbation | None) -> None:
        """From the next fit on, each batch steps on L(E_0) + weight * L(E_0 + D), D the
        perturbation of the clean loss's gradient per row of E_0; None: plain training."""
        self.perturbation = perturbation

    def user_scorer(self) -> UserScorer:
        """e_u . e_i with a substitute table of final user embeddings."""
        return LightGCNScorer(self)

    # -- training ----------------------------------------------------------------------------
    def fit(self, data: Interactions, epochs: int, warm_start: bool = False) -> TrainingReport:
        """Train for `epochs` epochs on `data`'s graph; cold starts re-initialise from `seed`.

        An empty table trains nothing (a cold start still re-initialises). After every
        epoch the mean loss and the largest row norm of E_0 are checked (`base.divergence`);
        an unhealthy epoch ends the fit, is named in the report's `diverged`, and E_0 goes
        back to its value at the end of the last healthy epoch (or the start of the fit). The
        adversary's heads are not rolled back. The served embeddings are then recomputed.
        """
        start, nothing = self.start_fit(data, epochs, warm_start)
        if nothing is not None:
            return nothing
        adjacency = normalised_adjacency(data, self.n_users, self.n_items, self.device)
        pairs = sgd.PairIndex(data, self.n_users, self.n_items, self.device)
        user = torch.as_tensor(np.asarray(data.user), dtype=torch.int64, device=self.device)
        item = torch.as_tensor(np.asarray(data.item), dtype=torch.int64, device=self.device)
        ego = torch.nn.Parameter(self.ego.clone())
        optimiser = torch.optim.Adam([ego], lr=self.lr)
        healthy = self.ego.clone()
        losses: list[float] = []
        self.epoch_seconds = []
        diverged = None
        n = len(user)
        batch_size = self.batch_size or sgd.auto_batch_size(n)
        for epoch in range(epochs):
            t0 = time.perf_counter()
            order = torch.randperm(n, generator=self.generator, device=self.device)
            negatives = sgd.draw_negatives(pairs, user, self.n_items, self.generator)
            total = 0.0
            for lo in range(0, n, batch_size):
                batch = order[lo : lo + batch_size]
                total += self._step(adjacency, ego, optimiser, user.index_select(0, batch),
                                    item.index_select(0, batch),
                                    negatives.index_select(0, batch)) * len(batch)
            losses.append(total / n)
            self.epoch_seconds.append(time.perf_counter() - t0)
            if self.adversary is not None:
                self.adversary.end_epoch()
            norm = float(torch.linalg.vector_norm(ego.detach(), dim=1).max())
            diverged = divergence(epoch + 1, losses[-1], norm)
            if diverged is not None:
                break
            healthy.copy_(ego.detach())
        self.ego = healthy
        self._serve(adjacency, user)
        return TrainingReport(len(losses), losses, time.perf_counter() - start, warm_start,
                              diverged)

    def _bpr(self, final: torch.Tensor, user: torch.Tensor, positive: torch.Tensor,
             negative: torch.Tensor) -> torch.Tensor:
        """Mean -log sigmoid(e_u . e_i - e_u . e_j) of a batch."""
        p = final.index_select(0, user)
        q_i = final.index_select(0, positive + self.n_users)
        q_j = final.index_select(0, negative + self.n_users)
        return F.softplus(-(p * (q_i - q_j)).sum(1)).mean()

    def _step(self, adjacency: torch.Tensor, ego: torch.nn.Parameter,
              optimiser: torch.optim.Optimizer, user: torch.Tensor, positive: torch.Tensor,
              negative: torch.Tensor) -> float:
        """One Adam step on a batch; returns its mean BPR loss (clean)."""
        final = propagate(adjacency, ego, self.layers)
        loss = self._bpr(final, user, positive, negative)
        objective = loss
        perturbation = self.perturbation
        if perturbation is not None:
            (gradient,) = torch.autograd.grad(loss, ego, retain_graph=True)
            shifted = propagate(adjacency, ego + perturbation(gradient).detach(), self.layers)
            objective = objective + perturbation.weight * self._bpr(
                shifted, user, positive, negative)
        rows = torch.cat([user, positive + self.n_users, negative + self.n_users])
        objective = objective + self.reg / 2 * ego.index_select(0, rows).square().sum() \
            / len(user)
        adversary = self.adversary
        if adversary is not None:
            distinct = torch.unique(user)
            adversary.zero_grad()
            objective = objective + adversary.loss(distinct, final.index_select(0, distinct))
        optimiser.zero_grad(set_to_none=True)
        objective.backward()
        optimiser.step()
        if adversary is not None:
            adversary.step_heads()
        return float(loss.detach())

    @torch.no_grad()
    def _serve(self, adjacency: torch.Tensor, user: torch.Tensor) -> None:
        """Recompute the final embeddings from E_0; users without an interaction in this fit
        (`user`: the fitted rows' users) are served the mean final user embedding
        (`base.place_unseen_users`): LightGCN has no item biases, so such a user's own row
        (its random E_0) would rank items at random."""
        self.served = propagate(adjacency, self.ego, self.layers)
        place_unseen_users(self.served[: self.n_users], user, self.n_users)

    # -- inference ---------------------------------------------------------------------------
    @property
    def _users(self) -> torch.Tensor:
        return self.served[: self.n_users]

    @property
    def _items(self) -> torch.Tensor:
        return self.served[self.n_users :]

    @torch.no_grad()
    def score(self, users: torch.Tensor) -> torch.Tensor:
        """e_u . e_i for every item, shape (len(users), n_items)."""
        users = torch.as_tensor(users, dtype=torch.int64, device=self.device)
        return self._users.index_select(0, users) @ self._items.t()

    @torch.no_grad()
    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Scores of (user, item) pairs as float32."""
        u = torch.as_tensor(np.asarray(users), dtype=torch.int64, device=self.device)
        i = torch.as_tensor(np.asarray(items), dtype=torch.int64, device=self.device)
        dots = (self._users.index_select(0, u) * self._items.index_select(0, i)).sum(1)
        return dots.cpu().numpy().astype(np.float32)

    def user_embeddings(self) -> np.ndarray:
        """The final user embeddings e_u, shape (n_users, factors)."""
        return self._users.cpu().numpy().astype(np.float32, copy=True)

    def set_user_embeddings(self, embeddings: np.ndarray) -> None:
        """Serve `embeddings` as the final user embeddings until the next fit (E_0 is kept)."""
        self.served[: self.n_users] = self._checked_user_embeddings(embeddings, self.factors)

    def item_embeddings(self) -> np.ndarray:
        """The final item embeddings e_i, shape (n_items, factors)."""
        return self._items.cpu().numpy().astype(np.float32, copy=True)

    def set_item_embeddings(self, embeddings: np.ndarray) -> None:
        """Serve `embeddings` as the final item embeddings until the next fit (E_0 is kept)."""
        self.served[self.n_users :] = self._checked_item_embeddings(embeddings, self.factors)


class LightGCNScorer(UserScorer):
    """LightGCN: e_u . e_i with the served item embeddings held constant."""

    def __init__(self, model: LightGCN) -> None:
        super().__init__(model)
        self.items = model.served[model.n_users :].detach().clone()

    def pairs(self, emb: torch.Tensor, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """s_u(i) for parallel index tensors, differentiable in `emb` (n_users, d)."""
        return (emb.index_select(0, users) * self.items.index_select(0, items)).sum(-1)

    @torch.no_grad()
    def full(self, emb: torch.Tensor, users: torch.Tensor) -> torch.Tensor:
        """Scores of every item for `users`, (len(users), n_items), without gradient."""
        return emb.index_select(0, users) @ self.items.t()
