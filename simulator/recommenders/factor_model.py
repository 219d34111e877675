"""What BPR and MF share: one parameter table, seeded init, and the sparse-SGD fit loop,
with optional adversarial personalised ranking (APR, He et al. SIGIR 2018) and optional item
side information (content features mapped into the factor space by a learned matrix W)."""

from __future__ import annotations

import math
import time
from abc import abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from simulator.recommenders import _sparse_sgd as sgd
from simulator.recommenders.base import ModelParams, Recommender, TrainingReport, divergence
from simulator.world.base import Interactions

if TYPE_CHECKING:
    from simulator.defenses.adversarial import AttributeAdversary

INIT_STD = 0.1
# Floor on a gradient row's norm when it is normalised into an APR perturbation: rows whose
# gradient is (nearly) zero get a proportionally small perturbation, as tf.nn.l2_normalize
# (eps 1e-12 on the squared norm) does in the reference implementation.
APR_NORM_FLOOR = 1e-6


@dataclass(frozen=True)
class AprSettings:
    """APR: per-row L2 budget `epsilon` of the perturbation, `weight` of the adversarial loss."""

    epsilon: float
    weight: float


class FactorModel(Recommender):
    """A latent-factor model trained by hand-written minibatch SGD (`_sparse_sgd`).

    User and item factors live in one table, users first; `bias` has one entry per row.
    Subclasses set `default_lr`, `default_reg`, `uses_values` (whether batches carry the
    rating) and implement `_plan` (batch layout, no parameters read) and `_apply` (one SGD
    step, returning the batch's summed loss).

    Item features (`set_item_features`, shape (n_items, f)) make the item vector that scores
    use v_i = q_i + f_i W, W an (f, factors) matrix learned with the factors. Batches then take
    the gathered-rows step (`_gathered_apply`) instead of the hand-written one.
    """

    default_lr: float = 0.01
    default_reg: float = 0.01
    uses_values: bool = False
    # The SGD step follows the gradient of this multiple of the reported per-sample loss.
    objective_scale: float = 1.0
    apr: AprSettings | None = None
    # Positions, in `_apr_roles`, of the roles that read item rows (they get + f_i W).
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
        if self._features is not None:
            self._feature_weights = self._zero_weights(self._features.shape[1])

    def _zero_weights(self, n_features: int) -> torch.Tensor:
        return torch.zeros(n_features, self.factors, device=self.device)

    # -- item features -----------------------------------------------------------------------
    def set_item_features(self, features: np.ndarray | None) -> None:
        """Use content features (shape (n_items, f), finite) from now on: scores and
        `item_embeddings()` use v_i = q_i + f_i W at once, and fits learn W as well.

        W starts at zero (so setting features leaves the scores unchanged) and is kept when
        new features of the same width replace old ones; a different width starts a new W.
        Cold starts reset W to zero, warm starts keep it. None removes the features and W
        (items back to plain q_i)."""
        if features is None:
            self._features = None
            self._feature_weights = None
            return
        array = np.asarray(features)
        if (
            array.ndim != 2
            or array.shape[0] != self.n_items
            or array.shape[1] < 1
            or not np.issubdtype(array.dtype, np.number)
            or np.iscomplexobj(array)
        ):
            raise ValueError(
                f"item features must be a real array of shape (n_items={self.n_items}, f) with "
                f"f >= 1, got shape {array.shape} and dtype {array.dtype}"
            )
        with np.errstate(over="ignore"):  # too-large values become inf and are rejected below
            values = array.astype(np.float32)
        if not np.isfinite(values).all():
            raise ValueError("item features must be finite (also as float32)")
        width = values.shape[1]
        if self._feature_weights is None or self._feature_weights.shape[0] != width:
            self._feature_weights = self._zero_weights(width)
        self._features = torch.as_tensor(values, device=self.device)

    def item_features(self) -> np.ndarray | None:
        """The item features in use, shape (n_items, f), or None."""
        if self._features is None:
            return None
        return self._features.cpu().numpy().astype(np.float32, copy=True)

    def item_feature_weights(self) -> np.ndarray | None:
        """W, shape (f, factors), mapping features into the factor space; None without
        features."""
        if self._feature_weights is None:
            return None
        return self._feature_weights.cpu().numpy().astype(np.float32, copy=True)

    def _item_vectors(self) -> torch.Tensor:
        """v_i for every item, (n_items, factors): q_i, plus f_i W with features."""
        if self._features is None:
            return self._items
        assert self._feature_weights is not None
        return torch.addmm(self._items, self._features, self._feature_weights)

    def _item_rows(self, items: torch.Tensor) -> torch.Tensor:
        """v_i of the given items (item indices, not table rows)."""
        rows = self._items.index_select(0, items)
        if self._features is None:
            return rows
        assert self._feature_weights is not None
        return rows.addmm_(self._features.index_select(0, items), self._feature_weights)

    def _largest_row_norm(self) -> float:
        """The largest norm of a table row, of an item vector v_i and of a row of W."""
        norm = torch.linalg.vector_norm(self.table, dim=1).max()
        if self._feature_weights is not None:
            norms = [
                norm,
                torch.linalg.vector_norm(self._item_vectors(), dim=1).max(),
                torch.linalg.vector_norm(self._feature_weights, dim=1).max(),
            ]
            norm = torch.stack(norms).max()
        return float(norm)

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
        still re-initialises). With APR set (`set_apr`) every batch takes the adversarial step
        of `_gathered_apply` instead of the plain one; the reported losses stay the clean ones.
        With an adversary set, each batch is followed by one adversarial step on its distinct
        users (see `_adversary_step`). With item features set, every batch takes the
        gathered-rows step (`_gathered_apply`), which also updates W; this combines with APR
        (the perturbation then covers the item vectors v_i, W itself is not perturbed) and
        with an adversary (whose step reads user rows only).

        After every epoch the loss and the largest row norm (table rows, item vectors v_i and
        rows of W) are checked (`base.divergence`); an unhealthy epoch ends the fit, is named
        in the report's `diverged`, and the factors, biases and W go back to their values at
        the end of the last healthy epoch (or at the start of the fit). The adversary's heads
        are not rolled back.
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

    def set_apr(self, epsilon: float, weight: float) -> None:
        """Train by APR from the next fit on: each batch steps on L(T) + weight * L(T + D),
        D the per-row FGSM perturbation of budget `epsilon` (see `_gathered_apply`).
        `set_apr(0, 0)` returns to plain training."""
        epsilon, weight = float(epsilon), float(weight)
        if epsilon == 0.0 and weight == 0.0:
            self.apr = None
            return
        if not (math.isfinite(epsilon) and epsilon > 0.0):
            raise ValueError(
                f"epsilon must be a finite number > 0 (or 0 together with weight 0 to switch "
                f"APR off), got {epsilon}"
            )
        if not (math.isfinite(weight) and weight >= 0.0):
            raise ValueError(f"weight must be a finite number >= 0, got {weight}")
        self.apr = AprSettings(epsilon, weight)

    def clear_apr(self) -> None:
        """Return to plain training from the next fit on."""
        self.apr = None

    def _batch_steps(
        self, pairs: sgd.PairIndex, adversary: AttributeAdversary | None
    ) -> tuple[Callable[[sgd.Batch], Any], Callable[[Any], torch.Tensor]]:
        """The (plan, apply) pair of a fit: the model's own, or the gathered-rows step (APR
        and/or item features), and/or an adversarial step."""
        apr = self.apr
        gathered = apr is not None or self._features is not None
        if adversary is None and not gathered:
            return (lambda b: self._plan(pairs, b)), self._apply

        def plan(b: sgd.Batch) -> Any:
            # Samples are grouped by user, so the distinct users are consecutive runs.
            users = None if adversary is None else torch.unique_consecutive(b.user)
            return self._plan(pairs, b), b.user, users

        def apply(planned: Any) -> torch.Tensor:
            model_plan, sample_users, users = planned
            if gathered:
                loss = self._gathered_apply(model_plan, sample_users, apr)
            else:
                loss = self._apply(model_plan)
            if adversary is not None:
                self._adversary_step(users, adversary)
            return loss

        return plan, apply

    def _adversary_step(self, users: torch.Tensor, adversary: AttributeAdversary) -> None:
        """The adversary's step on the batch's distinct users, after the model's step: the
        heads learn, and each user row takes -lr times its reversed read-out gradient
        (first-order equal to one joint SGD step on L_rec - weight * L_CE)."""
        rows = self.table.index_select(0, users)
        reversed_grad = adversary.step(users, rows)
        self.table.index_copy_(0, users, rows.sub_(reversed_grad, alpha=self.lr))

    # -- gathered-rows step (APR, item features) ----------------------------------------------
    def _apr_apply(self, plan: Any, user: torch.Tensor, apr: AprSettings) -> torch.Tensor:
        """One APR step on a planned batch (`user`: the user of each sample); returns the
        batch's summed clean loss. See `_gathered_apply`."""
        return self._gathered_apply(plan, user, apr)

    def _gathered_apply(
        self, plan: Any, user: torch.Tensor, apr: AprSettings | None
    ) -> torch.Tensor:
        """One SGD step on a planned batch from autograd on gathered rows, with APR when
        `apr` is set and with W when item features are set; returns the batch's summed clean
        loss. `user` is the user of each sample.

        Each sample reads its user row p_u and item rows, whose vectors are v_i = q_i + f_i W
        with features (else q_i). With APR, Gamma, the gradient of the clean batch objective
        with respect to every touched user row and item vector (factors only), is normalised
        per row: D = epsilon * Gamma / ||Gamma||, and with D held constant the step is on
        L(T) + weight * L(T + D) (W is not perturbed); without APR on L(T). Every touched
        row and bias takes its SGD step after the same L2 decay (1 - lr*reg)**count as the
        plain step and, for models that damp their steps (`_damping`), the same damping.
        W's gradient is the sum over the batch's item occurrences of f_i^T times the
        gradient of v_i; W decays by (1 - lr*reg) once per batch (W is one dense parameter:
        a decay per occurrence would wipe it out in large batches) and takes its step, damped
        per row of W where the model says so (`_weights_damping`).

        The rows each sample reads are gathered into per-sample leaves (one per role), so
        the backward pass has no scatter, and the per-sample gradients are summed per row by
        one gather-reduce (`RowGroups`). This costs a few times the hand-written step and is
        deterministic.
        """
        roles = self._apr_roles(plan, user)
        n, d = len(user), self.factors
        groups = sgd.RowGroups.of(torch.cat(roles))
        factors = [self.table.index_select(0, r).requires_grad_() for r in roles]
        biases = [self.bias.index_select(0, r).requires_grad_() for r in roles]
        features = self._role_features(roles)
        weights = None
        leaves = factors + biases
        if self._feature_weights is not None:
            weights = self._feature_weights.detach().requires_grad_()
            leaves = [*leaves, weights]
        scale = self.objective_scale
        deltas: list[torch.Tensor] | None = None
        with torch.enable_grad():
            used = factors
            if weights is not None:
                used = [
                    f if feats is None else f + feats @ weights
                    for f, feats in zip(factors, features, strict=True)
                ]
            losses = self._apr_losses(used, biases, plan)
            total = clean = losses.sum() * scale
            if apr is not None:
                gamma = groups.sum(
                    torch.cat(torch.autograd.grad(clean, factors, retain_graph=True))
                )
                delta_rows = torch.nn.functional.normalize(gamma, dim=1, eps=APR_NORM_FLOOR)
                deltas = list(delta_rows.mul_(apr.epsilon).index_select(0, groups.inverse).split(n))
                shifted = [f + delta for f, delta in zip(used, deltas, strict=True)]
                adversarial = self._apr_losses(shifted, biases, plan).sum() * scale
                total = clean + apr.weight * adversarial
            grads = torch.autograd.grad(total, leaves, allow_unused=True)
        per_occurrence = [
            torch.zeros_like(leaf) if g is None else g
            for g, leaf in zip(grads, leaves, strict=True)
        ]
        role_count = len(roles)
        values = torch.cat(
            [
                torch.cat(per_occurrence[:role_count]),
                torch.cat(per_occurrence[role_count : 2 * role_count]).unsqueeze(1),
            ],
            1,
        )
        step = groups.sum(values).mul_(-self.lr)
        weight = 0.0 if apr is None else apr.weight
        detached = [f.detach() for f in used]
        damping = self._damping(groups, detached, deltas, weight)
        if damping is not None:
            step[:, :d].mul_(damping[0].unsqueeze(1))
            step[:, d].mul_(damping[1])
        rows = groups.rows
        decay = sgd.decay_factors(groups.counts, self.lr * self.reg)
        new_factors = self.table.index_select(0, rows).mul_(decay).add_(step[:, :d])
        new_bias = self.bias.index_select(0, rows).mul_(decay.view(-1)).add_(step[:, d])
        self.table.index_copy_(0, rows, new_factors)
        self.bias.index_copy_(0, rows, new_bias)
        if self._feature_weights is not None:
            weights_step = per_occurrence[-1].mul(-self.lr)
            weights_damping = self._weights_damping(detached, features, deltas, weight)
            if weights_damping is not None:
                weights_step.mul_(weights_damping.unsqueeze(1))
            self._feature_weights.mul_(1.0 - self.lr * self.reg).add_(weights_step)
        return losses.detach().sum(dtype=torch.float64)

    def _role_features(self, roles: Sequence[torch.Tensor]) -> list[torch.Tensor | None]:
        """Per role, the features of the item each sample reads (None for user roles, or
        for every role without features)."""
        if self._features is None:
            return [None] * len(roles)
        return [
            self._features.index_select(0, r - self.n_users) if k in self._item_roles else None
            for k, r in enumerate(roles)
        ]

    @abstractmethod
    def _apr_roles(self, plan: Any, user: torch.Tensor) -> list[torch.Tensor]:
        """The table row each sample reads, one tensor per role (e.g. user, item)."""

    @abstractmethod
    def _apr_losses(
        self, factors: Sequence[torch.Tensor], biases: Sequence[torch.Tensor], plan: Any
    ) -> torch.Tensor:
        """Per-sample loss, differentiable, from the gathered factor rows (item vectors v_i
        for item roles) and bias rows of each role (in the order of `_apr_roles`)."""

    def _damping(
        self,
        groups: sgd.RowGroups,
        factors: Sequence[torch.Tensor],
        deltas: Sequence[torch.Tensor] | None,
        weight: float,
    ) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Per distinct row, the factors' and the bias's step multipliers; None: undamped.
        `factors` are the vectors each role read (v_i for items), `deltas` the APR
        perturbations (None without APR)."""
        return None

    def _weights_damping(
        self,
        factors: Sequence[torch.Tensor],
        features: Sequence[torch.Tensor | None],
        deltas: Sequence[torch.Tensor] | None,
        weight: float,
    ) -> torch.Tensor | None:
        """Per row of W, its step multiplier; None: undamped."""
        return None

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
