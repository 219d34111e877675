"""What BPR and MF share: one parameter table, seeded init, and the sparse-SGD fit loop."""

from __future__ import annotations

import time
from abc import abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from simulator.recommenders import _sparse_sgd as sgd
from simulator.recommenders.base import ModelParams, Recommender, TrainingReport, divergence
from simulator.world.base import Interactions

if TYPE_CHECKING:
    from simulator.defenses.adversarial import AttributeAdversary

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
    def offset(self) -> float:
        """Constant added to every score (0 here; the global mean for rating models)."""
        return 0.0

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
        still re-initialises). With an adversary set, each batch is followed by one
        adversarial step on its distinct users (see `_adversarial_apply`).

        After every epoch the loss and the largest row norm are checked (`base.divergence`);
        an unhealthy epoch ends the fit, is named in the report's `diverged`, and the factors
        and biases go back to their values at the end of the last healthy epoch (or at the
        start of the fit). The adversary's heads are not rolled back.
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
        adversary = self.adversary
        healthy = (self.table.clone(), self.bias.clone())
        diverged: list[str] = []

        def end_epoch(epoch: int, loss: float) -> bool:
            if adversary is not None:
                adversary.end_epoch()
            norm = float(torch.linalg.vector_norm(self.table, dim=1).max())
            reason = divergence(epoch + 1, loss, norm)
            if reason is None:
                healthy[0].copy_(self.table)
                healthy[1].copy_(self.bias)
                return True
            diverged.append(reason)
            self.table.copy_(healthy[0])
            self.bias.copy_(healthy[1])
            return False

        with sgd.pipeline_threads(self.device) as pipelined:
            pairs = sgd.PairIndex(
                data, self.n_users, self.n_items, self.device, with_values=self.uses_values
            )
            batch = self.batch_size or sgd.auto_batch_size(pairs.n)
            plan, apply = self._batch_steps(pairs, adversary)
            log = sgd.train_epochs(
                pairs,
                sgd.n_batches_for(pairs.n, batch),
                epochs,
                self.generator,
                plan=plan,
                apply=apply,
                pipelined=pipelined,
                end_epoch=end_epoch,
            )
        self.epoch_seconds = log.seconds
        return TrainingReport(
            len(log.losses),
            log.losses,
            time.perf_counter() - start,
            warm_start,
            diverged[0] if diverged else None,
        )

    def _batch_steps(
        self, pairs: sgd.PairIndex, adversary: AttributeAdversary | None
    ) -> tuple[Callable[[sgd.Batch], Any], Callable[[Any], torch.Tensor]]:
        """The (plan, apply) pair of a fit: the model's own, or with an adversarial step."""
        if adversary is None:
            return (lambda b: self._plan(pairs, b)), self._apply

        def plan(b: sgd.Batch) -> Any:
            # Samples are grouped by user, so the distinct users are consecutive runs.
            return self._plan(pairs, b), torch.unique_consecutive(b.user)

        def apply(planned: Any) -> torch.Tensor:
            return self._adversarial_apply(*planned, adversary)

        return plan, apply

    def _adversarial_apply(
        self, plan: Any, users: torch.Tensor, adversary: AttributeAdversary
    ) -> torch.Tensor:
        """The model's SGD step, then the adversary's step on the batch's distinct users:
        the heads learn, and each user row takes -lr times its reversed read-out gradient
        (first-order equal to one joint SGD step on L_rec - weight * L_CE)."""
        loss = self._apply(plan)
        rows = self.table.index_select(0, users)
        reversed_grad = adversary.step(users, rows)
        self.table.index_copy_(0, users, rows.sub_(reversed_grad, alpha=self.lr))
        return loss

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

    def set_user_embeddings(self, embeddings: np.ndarray) -> None:
        """Overwrite p_u (shape (n_users, factors)); item factors and biases are kept."""
        self.table[: self.n_users] = self._checked_user_embeddings(embeddings, self.factors)

    def item_embeddings(self) -> np.ndarray:
        """q_i without the bias, shape (n_items, factors)."""
        return self._items.cpu().numpy().astype(np.float32, copy=True)

    def item_biases(self) -> np.ndarray:
        """b_i, shape (n_items,)."""
        return self.bias[self.n_users :].cpu().numpy().astype(np.float32, copy=True)
