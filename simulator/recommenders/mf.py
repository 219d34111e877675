"""Explicit-rating matrix factorisation (biased MF, "Funk SVD") with hand-written SGD."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from simulator.recommenders import _sparse_sgd as sgd
from simulator.recommenders.dense import mf_training
from simulator.recommenders.factor_model import FactorModel
from simulator.recommenders.hooks import DenseTraining
from simulator.world.base import Interactions

DEFAULT_LR = 0.01
DEFAULT_REG = 0.05
RATING_MIN = 1.0
RATING_MAX = 5.0


@dataclass
class _Plan:
    """Everything about one batch that does not depend on the parameters."""

    offsets: torch.Tensor  # bag boundaries: users, then items
    rows: torch.Tensor  # the rows each bag sums over (rated items, then raters)
    rating: torch.Tensor  # per sample, grouped by user
    item_major_to_sample: torch.Tensor
    bag_of_row: torch.Tensor  # the table row (bag) each entry of `rows` belongs to
    counts: torch.Tensor  # samples per table row in this batch
    decay: torch.Tensor  # (rows, 1) L2 decay factors


class MF(FactorModel):
    """r_hat = mu + b_u + b_i + p_u . q_i, trained on squared error with L2 by minibatch SGD.

    mu is the mean rating of the first table the model is fitted on (kept by warm starts, reset
    by cold ones). Each epoch visits every rating once in a fresh random partition into batches;
    each touched row takes the summed SGD step of its samples, damped by 1 / (1 + lr * its batch
    curvature) so that popular items stay stable in large batches.
    Defaults: lr 0.01, reg 0.05 (on factors and biases), batch about n/16 capped at 65,536,
    factors N(0, 0.1), biases 0. User and item factors live in one table, users first, and
    `bias` holds b_u then b_i in the same row order. `user_embeddings()` returns p_u only (no
    bias, like BPR); `user_biases()` gives b_u.

    A row perturbation (`set_perturbation`; APR's min-max objective carried over from
    ranking to rating prediction, an analogue: He et al. define APR for BPR only) shifts p_u
    and q_i of the squared error, and the damping uses the curvature of the combined objective,
    sum |x|^2 + weight * sum |x + delta|^2 over the row's samples (x the other row of each).

    With item features (`set_item_features`) q_i becomes v_i = q_i + f_i W throughout (see
    `FactorModel`); row k of W is damped like a row read by every sample with weight f_ik:
    1 / (1 + lr * sum_s f_ik^2 (|p_u|^2 + weight * |p_u + delta_u|^2)), weight 0 without APR.
    """

    name = "mf"
    predicts_ratings = True

    default_lr = DEFAULT_LR
    default_reg = DEFAULT_REG
    uses_values = True
    objective_scale = 0.5  # the SGD step follows d(err^2 / 2)
    mu: float | None = None  # set by the first fit after each initialisation
    _item_roles = (1,)

    def _initialise(self) -> None:
        """Fresh parameters; mu is fixed again by the next fit."""
        super()._initialise()
        self.mu = None

    @property
    def offset(self) -> float:
        """mu, or the scale midpoint 3 before the first fit has fixed it."""
        return 3.0 if self.mu is None else self.mu

    def _before_fit(self, data: Interactions) -> None:
        """Fix mu to the mean rating of the first table fitted since initialisation."""
        if self.mu is None:
            self.mu = float(np.mean(data.rating, dtype=np.float64))

    def _plan(self, pairs: sgd.PairIndex, batch: sgd.Batch) -> _Plan:
        """Bag layout of a batch (no parameter is read here)."""
        assert batch.value is not None
        # Bags: one per user (rows of its rated items), one per item (rows of its raters).
        user_counts = torch.bincount(batch.user, minlength=self.n_users)
        item_counts = torch.bincount(batch.item_major_item, minlength=self.n_items)
        columns = batch.item + self.n_users
        counts = torch.cat([user_counts, item_counts])
        return _Plan(
            offsets=sgd.bag_offsets([user_counts, item_counts]),
            rows=torch.cat([columns, batch.item_major_user]),
            rating=batch.value,
            item_major_to_sample=batch.item_major_to_sample,
            bag_of_row=torch.cat([batch.user, batch.item_major_item + self.n_users]),
            counts=counts.to(torch.float32),
            decay=sgd.decay_factors(counts, self.lr * self.reg),
        )

    def _apply(self, plan: _Plan) -> torch.Tensor:
        """One SGD step; returns the summed squared error of the batch."""
        n_users, table, bias = self.n_users, self.table, self.bias
        n = len(plan.rating)
        columns = plan.rows[:n]
        predicted = sgd.sampled_scores(table, n_users, plan.offsets[: n_users + 1], columns)
        predicted += bias.index_select(0, plan.bag_of_row[:n])  # b_u
        predicted += bias.index_select(0, columns)  # b_i
        err = plan.rating - predicted.add_(self.offset)
        loss = (err * err).sum(dtype=torch.float64)
        # d(err^2/2)/d p_u = -err q_i: the SGD step is +lr*err*q_i, lr folded into the weight.
        w = err.mul_(self.lr)
        weights = torch.cat([w, w.index_select(0, plan.item_major_to_sample)])
        steps = sgd.bag_sums(table, plan.rows, plan.offsets, weights)
        bias_steps = torch.bincount(plan.bag_of_row, weights, len(bias))
        # A row's summed step can overshoot when it appears in many samples of one batch (a
        # popular item's bias has curvature = its count); damping each row by its batch
        # curvature, 1 / (1 + lr * sum |x|^2), keeps large batches stable and is ~1 otherwise.
        sq_norms = table.square().sum(1)
        curvature = torch.bincount(plan.bag_of_row, sq_norms.index_select(0, plan.rows), len(bias))
        damping = curvature.mul_(self.lr).add_(1.0).reciprocal_().unsqueeze(1)
        bias_damping = plan.counts.mul(self.lr).add_(1.0).reciprocal_()
        table.mul_(plan.decay).addcmul_(steps, damping)
        bias.mul_(plan.decay.view(-1)).addcmul_(bias_steps, bias_damping)
        return loss

    # -- APR ---------------------------------------------------------------------------------
    def _gathered_roles(self, plan: _Plan, user: torch.Tensor) -> list[torch.Tensor]:
        """Rows read per sample: user u, item i."""
        return [user, plan.rows[: len(user)]]

    def _gathered_losses(
        self, factors: Sequence[torch.Tensor], biases: Sequence[torch.Tensor], plan: _Plan
    ) -> torch.Tensor:
        """Squared error per sample."""
        p, q = factors
        predicted = (p * q).sum(1) + biases[0] + biases[1] + self.offset
        return (plan.rating - predicted).square()

    def _damping(
        self,
        groups: sgd.RowGroups,
        factors: Sequence[torch.Tensor],
        deltas: Sequence[torch.Tensor] | None,
        weight: float,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """1 / (1 + lr * curvature) per row, as in `_apply`, for the combined objective."""
        p, q = factors
        clean = torch.cat([q.square().sum(1), p.square().sum(1)])
        if deltas is not None:
            shifted = torch.cat([(q + deltas[1]).square().sum(1), (p + deltas[0]).square().sum(1)])
            clean.add_(shifted, alpha=weight)
        curvature = groups.sum(clean.unsqueeze(1)).squeeze(1)
        row = curvature.mul_(self.lr).add_(1.0).reciprocal_()
        bias = groups.counts.to(torch.float32).mul_(self.lr * (1.0 + weight)).add_(1.0)
        return row, bias.reciprocal_()

    def _weights_damping(
        self,
        factors: Sequence[torch.Tensor],
        features: Sequence[torch.Tensor | None],
        deltas: Sequence[torch.Tensor] | None,
        weight: float,
    ) -> torch.Tensor:
        """1 / (1 + lr * sum_s f_ik^2 (|p_u|^2 + weight |p_u + delta_u|^2)) per row k of W."""
        p, item_features = factors[0], features[1]
        assert item_features is not None
        sq_norms = p.square().sum(1)
        if deltas is not None:
            sq_norms.add_((p + deltas[0]).square().sum(1), alpha=weight)
        curvature = item_features.square().t() @ sq_norms
        return curvature.mul_(self.lr).add_(1.0).reciprocal_()

    # -- inference ---------------------------------------------------------------------------
    def dense_training(self, data: Interactions) -> DenseTraining:
        """MF on `data` as dense tables, with this model's row perturbation
        and adversary (DP-SGD)."""
        return mf_training(self, data, self.perturbation, self.adversary)

    def score(self, users: torch.Tensor) -> torch.Tensor:
        """Ranking scores of every item, shape (len(users), n_items): the predicted ratings
        before they are clipped to [1, 5] (`predict` clips), since clipped ratings tie at 5
        and would rank by accident."""
        users = torch.as_tensor(users, dtype=torch.int64, device=self.device)
        raw = self._users.index_select(0, users) @ self._item_vectors().t()
        raw += self.bias.index_select(0, users).unsqueeze(1)
        raw += self.bias[self.n_users :]
        return raw.add_(self.offset)

    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Predicted ratings of (user, item) pairs, clipped to [1, 5], as float32."""
        u = torch.as_tensor(np.asarray(users), dtype=torch.int64, device=self.device)
        i = torch.as_tensor(np.asarray(items), dtype=torch.int64, device=self.device)
        raw = (self._users.index_select(0, u) * self._item_rows(i)).sum(1)
        raw += self.bias.index_select(0, u) + self.bias.index_select(0, i + self.n_users)
        out = raw.add_(self.offset).clamp_(RATING_MIN, RATING_MAX)
        return out.cpu().numpy().astype(np.float32)

    def user_biases(self) -> np.ndarray:
        """b_u, shape (n_users,)."""
        return self.bias[: self.n_users].cpu().numpy().astype(np.float32, copy=True)
