"""What BPR and MF share: one parameter table, seeded init, and the sparse-SGD fit loop,
with the training hooks (`hooks`): a row perturbation and an adversary on the user rows; and
optional item side information (`item_features`)."""

from __future__ import annotations

import time
from abc import abstractmethod
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from simulator.recommenders import _sparse_sgd as sgd
from simulator.recommenders.base import ModelParams, Recommender, TrainingReport, divergence
from simulator.recommenders.gathered_step import GatheredStep
from simulator.recommenders.hooks import RowPerturbation, UserEmbeddingAdversary
from simulator.recommenders.item_features import ItemFeatures
from simulator.recommenders.user_scores import FactorScorer, UserScorer
from simulator.world.base import Interactions

INIT_STD = 0.1


class FactorModel(ItemFeatures, GatheredStep, Recommender):
    """A latent-factor model trained by hand-written minibatch SGD (`_sparse_sgd`).

    User and item factors live in one table, users first; `bias` has one entry per row.
    Subclasses set `default_lr`, `default_reg`, `uses_values` (whether batches carry the
    rating) and implement `_plan` (batch layout, no parameters read) and `_apply` (one SGD
    step, returning the batch's summed loss).

    Item features (`set_item_features`, shape (n_items, f)) make the item vector that scores
    use v_i = q_i + f_i W, W an (f, factors) matrix learned with the factors. Batches then take
    the gathered-rows step (`_gathered_apply`) instead of the hand-written one, as they do
    with a row perturbation (`set_perturbation`).
    """

    default_lr: float = 0.01
    default_reg: float = 0.01
    uses_values: bool = False
    # The SGD step follows the gradient of this multiple of the reported per-sample loss.
    objective_scale: float = 1.0
    perturbation: RowPerturbation | None = None
    # Positions, in `_gathered_roles`, of the roles that read item rows (they get + f_i W).
    _item_roles: tuple[int, ...] = ()

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
        self._features: torch.Tensor | None = None  # (n_items, f)
        self._feature_weights: torch.Tensor | None = None  # W, (f, factors)
        self._initialise()

    # -- parameters --------------------------------------------------------------------------
    def _initialise(self) -> None:
        """Reseed the generator and draw fresh parameters (factors N(0, 0.1), biases 0; W 0
        when item features are set, which draws nothing from the generator)."""
        self.generator.manual_seed(self.seed)
        n_rows = self.n_users + self.n_items
        self.table = torch.randn(
            n_rows, self.factors, generator=self.generator, device=self.device
        ).mul_(INIT_STD)
        self.bias = torch.zeros(n_rows, device=self.device)
        self._reset_feature_weights()

    def reset(self) -> None:
        """Fresh parameters from the seed, as a cold start draws them."""
        self._initialise()

    def user_scorer(self) -> UserScorer:
        """p_u . q_i + biases with a substitute user table (`user_scores.FactorScorer`)."""
        return FactorScorer(self)

    @property
    def offset(self) -> float:
        """Constant added to every score (0 here; the global mean for rating models)."""
        return 0.0

    @property
    def _users(self) -> torch.Tensor:
        return self.table[: self.n_users]

    # -- training ----------------------------------------------------------------------------
    def fit(self, data: Interactions, epochs: int, warm_start: bool = False) -> TrainingReport:
        """Train for `epochs` epochs; cold starts re-initialise from `seed`.

        An empty table trains nothing: the report has epochs=0 and no losses (a cold start
        still re-initialises). With a row perturbation set (`set_perturbation`) every batch
        takes the perturbed step of `_gathered_apply` instead of the plain one; the reported
        losses stay the clean ones.
        With an adversary set, each batch is followed by one adversarial step on its distinct
        users (see `_adversary_step`). With item features set, every batch takes the
        gathered-rows step (`_gathered_apply`), which also updates W; this combines with a
        perturbation (which then covers the item vectors v_i, W itself is not perturbed) and
        with an adversary (whose step reads user rows only).

        After every epoch the loss and the largest row norm (table rows, item vectors v_i and
        rows of W) are checked (`base.divergence`); an unhealthy epoch ends the fit, is named
        in the report's `diverged`, and the factors, biases and W go back to their values at
        the end of the last healthy epoch (or at the start of the fit). The adversary's heads
        are not rolled back.
        """
        start, nothing = self.start_fit(data, epochs, warm_start)
        if nothing is not None:
            return nothing
        self._before_fit(data)
        adversary = self.adversary
        params = [self.table, self.bias]
        if self._feature_weights is not None:
            params.append(self._feature_weights)
        healthy = [p.clone() for p in params]
        diverged: list[str] = []

        def end_epoch(epoch: int, loss: float) -> bool:
            if adversary is not None:
                adversary.end_epoch()
            reason = divergence(epoch + 1, loss, self._largest_row_norm())
            if reason is None:
                for saved, param in zip(healthy, params, strict=True):
                    saved.copy_(param)
                return True
            diverged.append(reason)
            for saved, param in zip(healthy, params, strict=True):
                param.copy_(saved)
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

    def set_perturbation(self, perturbation: RowPerturbation | None) -> None:
        """From the next fit on, each batch steps on L(T) + weight * L(T + D), D the shift
        `perturbation` gives each row read (see `_gathered_apply`); None: plain training."""
        self.perturbation = perturbation

    def _batch_steps(
        self, pairs: sgd.PairIndex, adversary: UserEmbeddingAdversary | None
    ) -> tuple[Callable[[sgd.Batch], Any], Callable[[Any], torch.Tensor]]:
        """The (plan, apply) pair of a fit: the model's own, or the gathered-rows step (a row
        perturbation and/or item features), and/or an adversarial step."""
        perturbation = self.perturbation
        gathered = perturbation is not None or self._features is not None
        if adversary is None and not gathered:
            return (lambda b: self._plan(pairs, b)), self._apply

        def plan(b: sgd.Batch) -> Any:
            # Samples are grouped by user, so the distinct users are consecutive runs.
            users = None if adversary is None else torch.unique_consecutive(b.user)
            return self._plan(pairs, b), b.user, users

        def apply(planned: Any) -> torch.Tensor:
            model_plan, sample_users, users = planned
            if gathered:
                loss = self._gathered_apply(model_plan, sample_users, perturbation)
            else:
                loss = self._apply(model_plan)
            if adversary is not None:
                self._adversary_step(users, adversary)
            return loss

        return plan, apply

    def _adversary_step(self, users: torch.Tensor, adversary: UserEmbeddingAdversary) -> None:
        """The adversary's step on the batch's distinct users, after the model's step: the
        heads learn, and each user row takes -lr times its reversed read-out gradient
        (first-order equal to one joint SGD step on L_rec - weight * L_CE)."""
        rows = self.table.index_select(0, users)
        reversed_grad = adversary.step(users, rows)
        self.table.index_copy_(0, users, rows.sub_(reversed_grad, alpha=self.lr))

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
        """The item vectors v_i (q_i, plus f_i W with features) without the bias, shape
        (n_items, factors)."""
        return self._item_vectors().cpu().numpy().astype(np.float32, copy=True)

    def set_item_embeddings(self, embeddings: np.ndarray) -> None:
        """Make the item vectors v_i equal `embeddings` (shape (n_items, factors)) by setting
        q_i (to v_i - f_i W with features); user factors, biases and W are kept."""
        vectors = self._checked_item_embeddings(embeddings, self.factors)
        if self._features is not None:
            assert self._feature_weights is not None
            vectors = torch.addmm(vectors, self._features, self._feature_weights, alpha=-1.0)
        self.table[self.n_users :] = vectors

    def item_biases(self) -> np.ndarray:
        """b_i, shape (n_items,)."""
        return self.bias[self.n_users :].cpu().numpy().astype(np.float32, copy=True)
