"""Bayesian Personalised Ranking (Rendle et al. 2009) with hand-written minibatch SGD."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from simulator.recommenders import _sparse_sgd as sgd
from simulator.recommenders.dense import bpr_training
from simulator.recommenders.factor_model import FactorModel
from simulator.recommenders.hooks import DenseTraining
from simulator.world.base import Interactions

DEFAULT_LR = 0.03
DEFAULT_REG = 0.01


@dataclass
class _Plan:
    """Everything about one batch that does not depend on the parameters."""

    offsets: torch.Tensor  # bag boundaries: users, then items (positives), items (negatives)
    columns: torch.Tensor  # table rows of (i, j) per sample, grouped by user
    rows: torch.Tensor  # the rows each bag sums over
    item_major_to_sample: torch.Tensor
    slot_sample: torch.Tensor  # sample owning each slot of the item-sorted negatives
    decay: torch.Tensor  # (rows, 1) L2 decay factors


class BPR(FactorModel):
    """Implicit-feedback matrix factorisation trained with the BPR pairwise loss.

    Every row of the interaction table is a positive (u, i). Score x_ui = p_u . q_i + b_i.
    Each epoch visits every positive once, in a fresh random partition into batches, with one
    uniformly drawn negative item j per positive (a draw that hits a known positive of u is
    redrawn once). Loss: -log sigmoid(x_ui - x_uj) plus L2 (lr * reg) on the touched rows and
    biases. Plain SGD, the learning rate folded into the per-sample weights.

    Defaults: lr 0.03, reg 0.01, batch about n/16 capped at 65,536 (see
    `_sparse_sgd.auto_batch_size`), factors N(0, 0.1), biases 0. User and item factors live in
    one table, users first; `bias` holds b_i at the item rows (its user entries stay 0).
    With a row perturbation (`set_perturbation`; APR's gives AMF, He et al. 2018) the shift
    covers p_u, q_i and q_j of every sample, the biases are not shifted.

    With item features (`set_item_features`) q_i becomes v_i = q_i + f_i W throughout (see
    `FactorModel`); W takes plain, undamped SGD steps like the rows.
    """

    name = "bpr"
    predicts_ratings = False
    default_lr = DEFAULT_LR
    default_reg = DEFAULT_REG
    _item_roles = (1, 2)

    @property
    def _item_dtype(self) -> torch.dtype:
        # Negatives are drawn as the narrowest integers that hold an item: radix sorts of int16
        # are several times faster than of int64.
        return torch.int16 if self.n_items <= 1 << 15 else torch.int32

    def _sample_negatives(
        self, pairs: sgd.PairIndex, user: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One uniform negative per sample (`_sparse_sgd.draw_negatives`), plus its grouping by
        item for the item bags.

        Returns (j, counts, slot_sample): the negatives sorted by item are `j[slot_sample]`
        and item t owns `counts[t]` consecutive slots. The grouping is a stable radix sort of
        small integers, cheaper than a random permutation.
        """
        draws = sgd.draw_negatives(pairs, user, self.n_items, self.generator, self._item_dtype)
        slot_sample = torch.sort(draws, stable=True).indices
        counts = torch.bincount(draws, minlength=self.n_items)
        return draws.long(), counts, slot_sample

    def _plan(self, pairs: sgd.PairIndex, batch: sgd.Batch) -> _Plan:
        """Negatives and bag layout of a batch (no parameter is read here)."""
        n_users, n_items, user = self.n_users, self.n_items, batch.user
        j, neg_counts, slot_sample = self._sample_negatives(pairs, user)
        # Bags: one per user (rows i and j of each of its samples), one per item for positives,
        # one per item for negatives. Item rows sit after the user rows in the table.
        user_counts = torch.bincount(user, minlength=n_users)
        pos_counts = torch.bincount(batch.item_major_item, minlength=n_items)
        columns = torch.stack([batch.item, j], 1).view(-1).add_(n_users)
        return _Plan(
            offsets=sgd.bag_offsets([user_counts * 2, pos_counts, neg_counts]),
            columns=columns,
            rows=torch.cat([columns, batch.item_major_user, user.index_select(0, slot_sample)]),
            item_major_to_sample=batch.item_major_to_sample,
            slot_sample=slot_sample,
            # Each touched row decays once per sample it appears in (the L2 term).
            decay=sgd.decay_factors(
                torch.cat([user_counts, pos_counts + neg_counts]), self.lr * self.reg
            ),
        )

    def _apply(self, plan: _Plan) -> torch.Tensor:
        """One SGD step; returns the summed BPR loss of the batch."""
        n_users, n_items, table, bias = self.n_users, self.n_items, self.table, self.bias
        n = len(plan.columns) // 2
        dots = sgd.sampled_scores(table, n_users, plan.offsets[: n_users + 1], plan.columns)
        scores = dots.add_(bias.index_select(0, plan.columns)).view(n, 2)
        x = scores[:, 0] - scores[:, 1]
        loss = torch.nn.functional.softplus(-x).sum(dtype=torch.float64)
        # d(-log sigmoid x)/dx = -sigmoid(-x); the learning rate is folded in here, so the bag
        # sums below are already the SGD steps.
        w = torch.sigmoid(x.neg_()).mul_(self.lr)
        signed = torch.stack([w, -w], 1).view(-1)  # per column: +w for i, -w for j
        weights = torch.cat(
            [
                signed,  # user u: +w q_i - w q_j
                w.index_select(0, plan.item_major_to_sample),  # item i: +w p_u
                w.index_select(0, plan.slot_sample).neg_(),  # item j: -w p_u
            ]
        )
        steps = sgd.bag_sums(table, plan.rows, plan.offsets, weights)
        bias_steps = torch.bincount(plan.columns, signed, len(bias))
        # row <- decay * row + step (one fused pass); the negatives' steps come second.
        torch.addcmul(steps[: n_users + n_items], table, plan.decay, out=table)
        table[n_users:].add_(steps[n_users + n_items :])
        torch.addcmul(bias_steps, bias, plan.decay.view(-1), out=bias)
        return loss

    # -- APR ---------------------------------------------------------------------------------
    def _gathered_roles(self, plan: _Plan, user: torch.Tensor) -> list[torch.Tensor]:
        """Rows read per sample: user u, positive i, negative j (table rows)."""
        pairs = plan.columns.view(-1, 2)
        return [user, pairs[:, 0], pairs[:, 1]]

    def _gathered_losses(
        self, factors: Sequence[torch.Tensor], biases: Sequence[torch.Tensor], plan: _Plan
    ) -> torch.Tensor:
        """-log sigmoid(x_ui - x_uj) per sample."""
        p, q_i, q_j = factors
        x = (p * (q_i - q_j)).sum(1) + biases[1] - biases[2]
        return torch.nn.functional.softplus(-x)

    # -- inference ---------------------------------------------------------------------------
    def dense_training(self, data: Interactions) -> DenseTraining:
        """BPR on `data` as dense tables, with this model's row perturbation
        and adversary (DP-SGD)."""
        return bpr_training(self, data, self.perturbation, self.adversary)

    def score(self, users: torch.Tensor) -> torch.Tensor:
        """p_u . v_i + b_i for every item, shape (len(users), n_items)."""
        users = torch.as_tensor(users, dtype=torch.int64, device=self.device)
        scores = self._users.index_select(0, users) @ self._item_vectors().t()
        return scores.add_(self.bias[self.n_users :])

    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Scores of (user, item) pairs as float32."""
        u = torch.as_tensor(np.asarray(users), dtype=torch.int64, device=self.device)
        i = torch.as_tensor(np.asarray(items), dtype=torch.int64, device=self.device)
        dots = (self._users.index_select(0, u) * self._item_rows(i)).sum(1)
        scores = dots + self.bias[self.n_users :].index_select(0, i)
        return scores.cpu().numpy().astype(np.float32)
