"""Post-training attribute unlearning: edit only the user embeddings of a trained model so that
attribute classes become indistinguishable while recommendations are kept.

Distinguishability (Gaussian KL or multi-kernel MMD, `distinguishability`) is traded against a
utility loss: the model's own training loss on an interaction table, the distance to the
original embeddings, or a hinge keeping each user's original top-k order (Li et al. 2023).
The two are combined by two-task MGDA (`mgda`) or a fixed weight, and Adam moves the edited
rows only.
"""

from __future__ import annotations

import functools
import operator
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from simulator.defenses.unlearning.distinguishability import distinguishability
from simulator.defenses.unlearning.mgda import mgda_direction
from simulator.defenses.unlearning.probes import TORCH_FAMILIES, held_out_aucs
from simulator.defenses.unlearning.settings import UnlearningConfig
from simulator.recommenders.base import Recommender
from simulator.recommenders.user_scores import UserScorer
from simulator.world.base import Interactions

TOPK_MARGIN = 0.05
MODEL_LOSS_BATCH = 65_536  # interactions drawn per step for the `model` utility

Loss = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class UnlearningReport:
    """Losses before and after the edit, the mean MGDA weight (NaN for fixed weighting),
    the number of steps kept and of edited users, wall time, and the strongest held-out
    probe's AUC before and after (NaN with `stop: steps`)."""

    distance_before: float
    distance_after: float
    utility_before: float
    utility_after: float
    mean_alpha: float
    steps: int
    edited_users: int
    seconds: float
    probe_auc_before: float = float("nan")
    probe_auc_after: float = float("nan")


def _seen_pairs(
    data: Interactions | None, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The (user, item) pairs of `data` as tensors, or None for no data."""
    if data is None or len(data) == 0:
        return None
    return (torch.as_tensor(data.user, device=device), torch.as_tensor(data.item, device=device))


def topk_hinge_loss(
    scorer: UserScorer, e0: torch.Tensor, rows: torch.Tensor, k: int,
    data: Interactions | None,
) -> Loss:
    """mean_u sum_k max(0, s_u(item_{k+1}) - s_u(item_k) + margin) over the edited users, with
    each user's original top-k list (items seen in `data` excluded). Averaging over users keeps
    a fixed utility weight meaning the same thing on worlds of any size."""
    top = scorer.top_k(e0, k, _seen_pairs(data, e0.device)).index_select(0, rows)
    users = rows.unsqueeze(1).expand_as(top).reshape(-1)
    items = top.reshape(-1)
    width = top.shape[1]

    def loss(emb: torch.Tensor) -> torch.Tensor:
        s = scorer.pairs(emb, users, items).view(-1, width)
        return F.relu(s[:, 1:] - s[:, :-1] + TOPK_MARGIN).sum(1).mean()

    return loss


def distance_loss(e0: torch.Tensor, rows: torch.Tensor) -> Loss:
    """mean_u ||e_u - e0_u||^2 over the edited rows."""
    anchor = e0.index_select(0, rows)
    return lambda emb: (emb.index_select(0, rows) - anchor).square().sum(1).mean()


def model_loss(
    scorer: UserScorer, data: Interactions, rows: torch.Tensor, generator: torch.Generator,
) -> Loss:
    """The recommender's own loss on the edited users' interactions, a fresh random batch of
    at most MODEL_LOSS_BATCH rows per call: BPR with one uniform negative per positive
    (a draw hitting a positive is redrawn once), or MSE for rating models."""
    device, n_items = scorer.device, scorer.model.n_items
    user = torch.as_tensor(data.user, device=device)
    item = torch.as_tensor(data.item, device=device)
    edited = torch.zeros(scorer.model.n_users, dtype=torch.bool, device=device)
    edited[rows] = True
    keep = edited[user]
    user, item = user[keep], item[keep]
    rating = torch.as_tensor(data.rating, dtype=torch.float32, device=device)[keep]
    keys = torch.sort(torch.as_tensor(data.user, device=device) * n_items
                      + torch.as_tensor(data.item, device=device)).values
    explicit = scorer.model.predicts_ratings

    def is_positive(u: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
        key = u * n_items + j
        at = torch.searchsorted(keys, key).clamp_(max=len(keys) - 1)
        return keys[at] == key

    def loss(emb: torch.Tensor) -> torch.Tensor:
        if len(user) == 0:
            return emb.sum() * 0.0
        pick = torch.randint(len(user), (min(len(user), MODEL_LOSS_BATCH),),
                             generator=generator, device="cpu").to(device)
        u, i = user[pick], item[pick]
        if explicit:
            return (scorer.rating_pairs(emb, u, i) - rating[pick]).square().mean()
        j = torch.randint(n_items, (len(u),), generator=generator, device="cpu").to(device)
        redraw = torch.randint(n_items, (len(u),), generator=generator, device="cpu").to(device)
        j = torch.where(is_positive(u, j), redraw, j)
        return F.softplus(scorer.pairs(emb, u, j) - scorer.pairs(emb, u, i)).mean()

    return loss


def _utility_loss(
    settings: UnlearningConfig, scorer: UserScorer, e0: torch.Tensor, rows: torch.Tensor,
    data: Interactions | None, generator: torch.Generator,
) -> Loss:
    if settings.utility == "topk":
        return topk_hinge_loss(scorer, e0, rows, settings.top_k, data)
    if settings.utility == "distance":
        return distance_loss(e0, rows)
    if settings.utility == "model":
        if data is None:
            raise ValueError("utility 'model' needs the interaction table (data)")
        return model_loss(scorer, data, rows, generator)
    raise ValueError(f"unknown utility {settings.utility!r}")


def _edited_mask(settings: UnlearningConfig, n_users: int, users: np.ndarray | None) -> np.ndarray:
    """The rows that may move: all users, or the `users` mask for scope 'requested'."""
    if settings.scope == "all":
        return np.ones(n_users, dtype=bool)
    if users is None:
        raise ValueError("scope 'requested' needs a boolean mask of users")
    mask = np.asarray(users, dtype=bool)
    if mask.shape != (n_users,):
        raise ValueError(f"users must be a boolean mask of shape ({n_users},)")
    return mask.copy()


def unlearn_attribute(
    model: Recommender,
    labels: np.ndarray,
    settings: UnlearningConfig,
    data: Interactions | None = None,
    users: np.ndarray | None = None,
    seed: int = 0,
    probes: tuple[str, ...] = TORCH_FAMILIES,
) -> UnlearningReport:
    """Edit the model's user embeddings in place (through `set_user_embeddings`).

    `labels` holds one attribute code per user (-1 = unknown), or one row of codes per
    attribute, which the edit makes indistinguishable together (the sum of each attribute's
    distance in units of its value before the edit; the probes must find none of them). With
    scope 'all' every row may move; with 'requested' only the rows in the boolean mask `users`.
    `data` is the training table: required by the 'model' utility, used by 'topk' to leave
    already-seen items out of the stored lists, and telling which users the model has learned
    anything about. Users without a rating in `data` keep their rows and stay out of the class
    statistics: their rows are still the seeded initialisation, independent of any attribute,
    and a tight cluster that a class-wise shift would make separable.

    With `stop: probe` the edit is checked every `probe_every` steps by held-out probes of
    each family in `probes` (`probes.held_out_aucs`, on the edited labelled users). It ends
    at the first check where no family finds the attribute (every AUC at or below chance),
    or once `PATIENCE` checks in a row came no closer to chance; the check whose farthest
    family is closest to chance is kept (it may be an earlier one), so the edit neither
    stops while one family still finds the attribute nor over-shoots into a mirror image
    of the sample's noise.
    """
    start = time.perf_counter()
    device = model.device
    codes = np.asarray(labels, dtype=np.int64)
    codes = codes[None, :] if codes.ndim == 1 else codes  # one row per attribute
    if codes.ndim != 2 or codes.shape[1] != model.n_users:
        raise ValueError(f"labels must have shape ({model.n_users},) or (attributes, "
                         f"{model.n_users})")
    scope = _edited_mask(settings, model.n_users, users)
    if data is not None and len(data):
        learned = np.bincount(data.user, minlength=model.n_users) > 0
        codes = np.where(learned[None, :], codes, -1)
        scope &= learned
    rows = torch.as_tensor(np.flatnonzero(scope), device=device)
    scorer = model.user_scorer()
    e0 = torch.as_tensor(model.user_embeddings(), dtype=torch.float32, device=device)
    labels_t = [torch.as_tensor(row, device=device) for row in codes]
    generator = torch.Generator().manual_seed(seed)
    utility = _utility_loss(settings, scorer, e0, rows, data, generator)
    probe = _Probe(settings, codes[:, scope], seed, probes)

    def full(edit: torch.Tensor) -> torch.Tensor:
        return e0.index_copy(0, rows, edit)

    kinds: tuple[Literal["kl", "mmd"], ...] = (
        ("kl", "mmd") if settings.distance == "kl+mmd"
        else ("kl",) if settings.distance == "kl" else ("mmd",)
    )
    # Each attribute and kind of distance in units of its value before the edit (with one
    # of each, the distance itself); the joint objective is their sum.
    parts_of = [(label_t, k) for label_t in labels_t for k in kinds]
    with torch.no_grad():
        units = [max(float(distinguishability(e0, label_t, k, settings.covariance, generator)),
                     1e-12) if len(parts_of) > 1 else 1.0 for label_t, k in parts_of]

    def dist(emb: torch.Tensor) -> torch.Tensor:
        parts = [distinguishability(emb, label_t, k, settings.covariance, generator) / unit
                 for (label_t, k), unit in zip(parts_of, units, strict=True)]
        return functools.reduce(operator.add, parts)

    with torch.no_grad():
        dist_before, util_before = float(dist(e0)), float(utility(e0))
    edit = e0.index_select(0, rows).clone().requires_grad_(True)
    optimiser = torch.optim.Adam([edit], lr=settings.lr)
    alphas = []
    scales = _GradientScales()
    steps = 0
    if len(rows) > 0 and not probe.check(0, edit):
        for steps in range(1, settings.steps + 1):
            emb = full(edit)
            l_dist, l_util = dist(emb), utility(emb)
            if settings.weighting == "mgda":
                g1 = scales.apply(0, _grad(l_dist, edit))
                g2 = scales.apply(1, _grad(l_util, edit))
                direction, alpha = _combine(g1, g2)
                alphas.append(alpha)
            else:
                direction = _grad(l_dist + settings.weight * l_util, edit)
            optimiser.zero_grad(set_to_none=True)
            edit.grad = direction
            optimiser.step()
            if probe.check(steps, edit):
                break
    chosen = probe.best if probe.best is not None else edit.detach()
    final = full(chosen)
    with torch.no_grad():
        dist_after, util_after = float(dist(final)), float(utility(final))
    model.set_user_embeddings(final.cpu().numpy())
    return UnlearningReport(
        distance_before=dist_before,
        distance_after=dist_after,
        utility_before=util_before,
        utility_after=util_after,
        mean_alpha=float(np.mean(alphas)) if alphas else float("nan"),
        steps=probe.best_step if probe.best is not None else steps,
        edited_users=len(rows),
        seconds=time.perf_counter() - start,
        probe_auc_before=probe.first_auc,
        probe_auc_after=probe.best_auc,
    )


class _Probe:
    """The `stop: probe` rule: held-out probes every `probe_every` steps, remembering the
    edit closest to chance; `check` says when to stop. Inactive (never stops, no AUC) with
    `stop: steps` or with too few labelled users to split."""

    MIN_PER_CLASS = 8
    PATIENCE = 3  # checks without getting closer to chance before the edit gives up

    def __init__(self, settings: UnlearningConfig, codes: np.ndarray, seed: int,
                 families: tuple[str, ...]) -> None:
        self.every = settings.probe_every
        self.families = families
        # One row of codes per attribute; probes need two classes or more of an attribute,
        # each with enough users to split into halves.
        self.attributes = []
        for row in codes:
            labelled = row >= 0
            counts = np.bincount(row[labelled]) if labelled.any() else np.zeros(0)
            present = counts[counts > 0]
            if len(present) >= 2 and int(present.min()) >= self.MIN_PER_CLASS:
                self.attributes.append((labelled, row[labelled]))
        self.active = settings.stop == "probe" and bool(self.attributes)
        self.seed = seed
        self.best: torch.Tensor | None = None
        self.best_step = 0
        self.best_auc = float("nan")
        self.best_gap = float("inf")
        self.first_auc = float("nan")
        self.since_best = 0

    def check(self, step: int, edit: torch.Tensor) -> bool:
        """Probe the edit at `step` (when due); True once no probe family finds any of the
        attributes, or once the edit has stopped getting closer to chance."""
        if not self.active or step % self.every:
            return False
        found = []
        for labelled, codes in self.attributes:
            mask = torch.as_tensor(labelled, device=edit.device)
            aucs = held_out_aucs(edit.detach()[mask].cpu(), codes, self.seed, self.families)
            found += [auc for auc in aucs.values() if auc == auc]
        if not found:
            return False
        strongest = max(found)
        gap = max(abs(auc - 0.5) for auc in found)
        if step == 0:
            self.first_auc = strongest
        if gap < self.best_gap:
            self.best, self.best_step, self.best_auc = edit.detach().clone(), step, strongest
            self.best_gap, self.since_best = gap, 0
        else:
            self.since_best += 1
        return strongest <= 0.5 or self.since_best >= self.PATIENCE


def _combine(g1: torch.Tensor, g2: torch.Tensor) -> tuple[torch.Tensor, float]:
    """MGDA direction, except that a task whose gradient vanishes (it sits at a stationary
    point, e.g. the distance utility at the original embeddings) sets no constraint: the step
    then follows the other task alone instead of stopping at the zero min-norm point."""
    if not bool(g2.any()):
        return g1, 1.0
    if not bool(g1.any()):
        return g2, 0.0
    return mgda_direction(g1, g2)


def _grad(loss: torch.Tensor, edit: torch.Tensor) -> torch.Tensor:
    """d loss / d edit (zeros when the loss does not depend on it)."""
    if not loss.requires_grad:
        return torch.zeros_like(edit)
    (grad,) = torch.autograd.grad(loss, edit, retain_graph=True, allow_unused=True)
    return torch.zeros_like(edit) if grad is None else grad


class _GradientScales:
    """Divides each task's gradient by its first non-zero norm.

    MGDA's min-norm weight follows whichever gradient is smaller, so with raw gradients the
    units of the two losses (a handful of nats against a sum over users' lists) would decide
    the trade-off. Fixing each scale at the task's first non-zero gradient norm puts both
    tasks on the same footing at the start and lets alpha* track how they change afterwards.
    """

    def __init__(self) -> None:
        self.norms: dict[int, float] = {}

    def apply(self, task: int, grad: torch.Tensor) -> torch.Tensor:
        if task not in self.norms:
            norm = float(grad.norm())
            if norm == 0.0:
                return grad
            self.norms[task] = norm
        return grad / self.norms[task]
