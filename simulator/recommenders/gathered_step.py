"""The gathered-rows SGD step of the latent-factor models: autograd on the rows a batch reads,
for what the hand-written steps do not cover (a row perturbation such as APR's, item side
information)."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from typing import Any

import torch

from simulator.recommenders import _sparse_sgd as sgd
from simulator.recommenders.hooks import RowPerturbation


class GatheredStep:
    """Mixin of `FactorModel`: `_gathered_apply` and the hooks a model defines for it
    (`_gathered_roles`, `_gathered_losses`, and optionally `_damping`, `_weights_damping`).

    The host provides `table`, `bias`, `factors`, `lr`, `reg`, `n_users`, `objective_scale`,
    `_item_roles`, `_features` and `_feature_weights`.
    """

    table: torch.Tensor
    bias: torch.Tensor
    factors: int
    lr: float
    reg: float
    n_users: int
    objective_scale: float
    _item_roles: tuple[int, ...]
    _features: torch.Tensor | None
    _feature_weights: torch.Tensor | None

    def _gathered_apply(
        self, plan: Any, user: torch.Tensor, perturbation: RowPerturbation | None
    ) -> torch.Tensor:
        """One SGD step on a planned batch from autograd on gathered rows, with a row
        perturbation when one is given and with W when item features are set; returns the
        batch's summed clean loss. `user` is the user of each sample.

        Each sample reads its user row p_u and item rows, whose vectors are v_i = q_i + f_i W
        with features (else q_i). With a perturbation, Gamma, the gradient of the clean batch
        objective with respect to every touched user row and item vector (factors only), is
        mapped per row to its shift D = perturbation(Gamma) (APR: epsilon * Gamma / ||Gamma||),
        and with D held constant the step is on L(T) + weight * L(T + D) (W is not
        perturbed); without one on L(T). Every touched
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
        roles = self._gathered_roles(plan, user)
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
            losses = self._gathered_losses(used, biases, plan)
            total = clean = losses.sum() * scale
            if perturbation is not None:
                gamma = groups.sum(
                    torch.cat(torch.autograd.grad(clean, factors, retain_graph=True))
                )
                delta_rows = perturbation(gamma)
                deltas = list(delta_rows.index_select(0, groups.inverse).split(n))
                shifted = [f + delta for f, delta in zip(used, deltas, strict=True)]
                adversarial = self._gathered_losses(shifted, biases, plan).sum() * scale
                total = clean + perturbation.weight * adversarial
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
        weight = 0.0 if perturbation is None else perturbation.weight
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
    def _gathered_roles(self, plan: Any, user: torch.Tensor) -> list[torch.Tensor]:
        """The table row each sample reads, one tensor per role (e.g. user, item)."""

    @abstractmethod
    def _gathered_losses(
        self, factors: Sequence[torch.Tensor], biases: Sequence[torch.Tensor], plan: Any
    ) -> torch.Tensor:
        """Per-sample loss, differentiable, from the gathered factor rows (item vectors v_i
        for item roles) and bias rows of each role (in the order of `_gathered_roles`)."""

    def _damping(
        self,
        groups: sgd.RowGroups,
        factors: Sequence[torch.Tensor],
        deltas: Sequence[torch.Tensor] | None,
        weight: float,
    ) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Per distinct row, the factors' and the bias's step multipliers; None: undamped.
        `factors` are the vectors each role read (v_i for items), `deltas` the row
        perturbations (None without one), `weight` the perturbed term's weight."""
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
