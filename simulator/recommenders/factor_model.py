"""What BPR and MF share: one parameter table, seeded init, and the sparse-SGD fit loop."""

from __future__ import annotations

import time
from abc import abstractmethod
from typing import Any

import numpy as np
import torch

from simulator.recommenders import _sparse_sgd as sgd
from simulator.recommenders.base import ModelParams, Recommender, TrainingReport
from simulator.world.base import Interactions

INIT_STD = 0.1


class FactorModel(Recommender):
    """A latent-factor model trained by hand-written minibatch SGD (`_sparse_sgd`).

    User and item factors live in one table, users first; `bias` has one entry per row.
    Subclasses set `default_lr`, `default_reg`, `uses_values` (whether batches carry the
    rating) and implement `_plan` (batch layout, no parameters read) and `_apply` (one SGD
    step, returning the batch's summed loss).
    """

    default_lr: float = 0.01
    default_reg: float = 0.01
    uses_values: bool = False

    def __init__(
        self,
        n_users: int,
        n_items: int,
        params: ModelParams,
        device: torch.device | str,
        seed: int,
    ) -> None:
        super().__init__(n_users, n_items, params, torch.device(device), seed)
        if params.factors <= 0:
            raise ValueError(f"factors must be positive, got {params.factors}")
        self.factors = params.factors
        self.lr = self.default_lr if params.lr is None else float(params.lr)
        self.reg = self.default_reg if params.reg is None else float(params.reg)
        self.batch_size = params.batch_size
        self.generator = torch.Generator(device=self.device)
        self.table = torch.empty(0)
        self.bias = torch.empty(0)
        # Wall time of each epoch of the last fit, without the per-fit indexing (benchmarks).
        self.epoch_seconds: list[float] = []
        self._initialise()

    # -- parameters --------------------------------------------------------------------------
    def _initialise(self) -> None:
        """Reseed the generator and draw fresh parameters (factors N(0, 0.1), biases 0)."""
        self.generator.manual_seed(self.seed)
        n_rows = self.n_users + self.n_items
        self.table = torch.randn(
            n_rows, self.factors, generator=self.generator, device=self.device
        ).mul_(INIT_STD)
        self.bias = torch.zeros(n_rows, device=self.device)

    @property
    def _users(self) -> torch.Tensor:
        return self.table[: self.n_users]

    @property
    def _items(self) -> torch.Tensor:
        return self.table[self.n_users :]

    # -- training ----------------------------------------------------------------------------
    def fit(self, data: Interactions, epochs: int, warm_start: bool = False) -> TrainingReport:
        """Train for `epochs` epochs; cold starts re-initialise from `seed`.

        An empty table trains nothing: the report has epochs=0 and no losses (a cold start
        still re-initialises).
        """
        if epochs < 0:
            raise ValueError(f"epochs must be >= 0, got {epochs}")
        start = time.perf_counter()
        if not warm_start:
            self._initialise()
        self.check_indices(data)
        if len(data) == 0 or epochs == 0:
            return TrainingReport(0, [], time.perf_counter() - start, warm_start)
        self._before_fit(data)
        with sgd.pipeline_threads(self.device) as pipelined:
            pairs = sgd.PairIndex(
                data, self.n_users, self.n_items, self.device, with_values=self.uses_values
            )
            batch = self.batch_size or sgd.auto_batch_size(pairs.n)
            log = sgd.train_epochs(
                pairs,
                sgd.n_batches_for(pairs.n, batch),
                epochs,
                self.generator,
                plan=lambda b: self._plan(pairs, b),
                apply=self._apply,
                pipelined=pipelined,
            )
        self.epoch_seconds = log.seconds
        return TrainingReport(epochs, log.losses, time.perf_counter() - start, warm_start)

    def _before_fit(self, data: Interactions) -> None:
        """Hook run once per non-empty fit, before any batch (e.g. to fix a global mean)."""

    @abstractmethod
    def _plan(self, pairs: sgd.PairIndex, batch: sgd.Batch) -> Any:
        """Everything about a batch that does not depend on the parameters."""

    @abstractmethod
    def _apply(self, plan: Any) -> torch.Tensor:
        """One SGD step on a planned batch; returns the batch's summed loss."""

    # -- representations ---------------------------------------------------------------------
    def user_embeddings(self) -> np.ndarray:
        """p_u without the bias, shape (n_users, factors)."""
        return self._users.cpu().numpy().astype(np.float32, copy=True)

    def item_embeddings(self) -> np.ndarray:
        """q_i without the bias, shape (n_items, factors)."""
        return self._items.cpu().numpy().astype(np.float32, copy=True)

    def item_biases(self) -> np.ndarray:
        """b_i, shape (n_items,)."""
        return self.bias[self.n_users :].cpu().numpy().astype(np.float32, copy=True)
