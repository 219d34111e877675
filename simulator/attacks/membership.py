"""Membership inference on a trained recommender, used to audit data deletion.

A model that still remembers a user's ratings ranks those items higher (ranking models) or
predicts those ratings more closely (rating models) than it does for a user whose ratings it
never saw. Comparing users whose data was deleted with never-seen users therefore measures
how much of the deleted data the model still carries: AUC 0.5 means nothing is left to detect.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from simulator.world.base import Interactions

USER_CHUNK = 1024  # users scored per call to the model, to bound the (chunk, n_items) matrix
FPR_LEVEL = 0.01


class Scorer(Protocol):
    """What the attack reads of a recommender (every `Recommender` qualifies)."""

    n_items: int
    device: torch.device
    predicts_ratings: bool

    def score(self, users: torch.Tensor) -> torch.Tensor: ...

    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class MembershipResult:
    """How well membership scores separate members from non-members."""

    auc: float
    tpr_at_1pct_fpr: float
    n_members: int
    n_nonmembers: int


def membership_scores(recommender: Scorer, ratings: Interactions, users: np.ndarray) -> np.ndarray:
    """One membership score per entry of `users`, higher = more member-like (float64).

    Ranking models: the mean percentile rank (1 = top, 0 = bottom, ties at their mid rank) of
    the user's rated items in the model's ranking of all items, seen items included. Rating
    models (`predicts_ratings`): minus the mean squared error of `predict` on the user's
    ratings. Users without ratings in `ratings` get NaN.
    """
    users = _user_array(users, getattr(recommender, "n_users", None))
    n_items = int(recommender.n_items)
    _check_items(ratings, n_items)
    table = ratings.subset(np.isin(ratings.user, users))
    order = np.argsort(table.user, kind="stable")
    table = table.subset(order)
    rated = np.unique(table.user)
    per_user = np.empty(len(rated), np.float64)
    with torch.no_grad():
        for lo in range(0, len(rated), USER_CHUNK):
            chunk = rated[lo : lo + USER_CHUNK]
            start = np.searchsorted(table.user, chunk[0], side="left")
            stop = np.searchsorted(table.user, chunk[-1], side="right")
            part = table.subset(slice(start, stop))
            local = np.searchsorted(chunk, part.user)
            if recommender.predicts_ratings:
                values = _negative_squared_errors(recommender, part)
            else:
                values = _percentile_ranks(recommender, chunk, part, local, n_items)
            counts = np.bincount(local, minlength=len(chunk))
            per_user[lo : lo + len(chunk)] = np.bincount(
                local, weights=values, minlength=len(chunk)
            ) / counts
    out = np.full(len(users), np.nan)
    if len(rated):
        index = np.minimum(np.searchsorted(rated, users), len(rated) - 1)
        found = rated[index] == users
        out[found] = per_user[index[found]]
    return out


def membership_inference(
    member_scores: np.ndarray, nonmember_scores: np.ndarray
) -> MembershipResult:
    """ROC AUC of members against non-members and the TPR at 1% FPR; NaN scores are dropped.

    The threshold is the 99th percentile of the non-member scores taken with
    `method="higher"` (the smallest observed score at or above it, no interpolation between
    scores), and a member counts as detected when its score is strictly above it. At most 1%
    of the non-members lie strictly above that threshold, so the false-positive rate never
    exceeds 1%. Both metrics are NaN when either side has no scores.
    """
    members = _finite_scores(member_scores, "member_scores")
    nonmembers = _finite_scores(nonmember_scores, "nonmember_scores")
    if len(members) == 0 or len(nonmembers) == 0:
        return MembershipResult(float("nan"), float("nan"), len(members), len(nonmembers))
    labels = np.concatenate([np.ones(len(members)), np.zeros(len(nonmembers))])
    auc = float(roc_auc_score(labels, np.concatenate([members, nonmembers])))
    threshold = np.quantile(nonmembers, 1.0 - FPR_LEVEL, method="higher")
    tpr = float(np.mean(members > threshold))
    return MembershipResult(auc, tpr, len(members), len(nonmembers))


def deletion_audit(
    recommender: Scorer, deleted: Interactions, never_seen: Interactions
) -> MembershipResult:
    """Membership inference of the deleted users (scored on their formerly trained ratings)
    against never-seen users (scored on theirs). AUC near 0.5 = deletion left no trace."""
    deleted_users = np.unique(deleted.user)
    unseen_users = np.unique(never_seen.user)
    overlap = np.intersect1d(deleted_users, unseen_users)
    if len(overlap):
        raise ValueError(
            f"deleted and never_seen must hold different users; {len(overlap)} appear in "
            f"both (e.g. user {int(overlap[0])})"
        )
    return membership_inference(
        membership_scores(recommender, deleted, deleted_users),
        membership_scores(recommender, never_seen, unseen_users),
    )


def _percentile_ranks(
    recommender: Scorer, chunk: np.ndarray, part: Interactions, local: np.ndarray, n_items: int
) -> np.ndarray:
    """Percentile rank of each row's item in its user's full ranking (rows grouped by user,
    `local` = the row's user's position in `chunk`)."""
    device = recommender.device
    scores = recommender.score(torch.as_tensor(chunk, dtype=torch.int64, device=device))
    if tuple(scores.shape) != (len(chunk), n_items):
        raise ValueError(
            f"recommender.score must return shape ({len(chunk)}, {n_items}), "
            f"got {tuple(scores.shape)}"
        )
    if not bool(torch.isfinite(scores).all()):
        raise ValueError("recommender.score returned non-finite scores")
    ordered = torch.sort(scores, dim=1).values
    # One padded row of targets per user, so that a batched searchsorted finds every target's
    # place among its own user's scores without materialising (ratings, n_items).
    starts = np.searchsorted(local, np.arange(len(chunk)))
    slot = np.arange(len(local)) - starts[local]
    rows = torch.as_tensor(local, dtype=torch.int64, device=device)
    slots = torch.as_tensor(slot, dtype=torch.int64, device=device)
    items = torch.as_tensor(part.item, dtype=torch.int64, device=device)
    targets = torch.zeros(len(chunk), int(slot.max()) + 1, dtype=scores.dtype, device=device)
    targets[rows, slots] = scores[rows, items]
    below = torch.searchsorted(ordered, targets, right=False)[rows, slots]
    at_or_below = torch.searchsorted(ordered, targets, right=True)[rows, slots]
    above = n_items - at_or_below
    ties = at_or_below - below  # includes the item itself
    rank = above.double() + (ties.double() - 1.0) / 2.0  # 0 = top
    return (1.0 - rank / max(n_items - 1, 1)).cpu().numpy()


def _negative_squared_errors(recommender: Scorer, part: Interactions) -> np.ndarray:
    predicted = np.asarray(recommender.predict(part.user, part.item), dtype=np.float64)
    if predicted.shape != (len(part),):
        raise ValueError(
            f"recommender.predict must return shape ({len(part)},), got {predicted.shape}"
        )
    return -((predicted - part.rating.astype(np.float64)) ** 2)


def _user_array(users: np.ndarray, n_users: int | None) -> np.ndarray:
    array = np.asarray(users)
    if array.ndim != 1 or not (np.issubdtype(array.dtype, np.integer) or array.size == 0):
        raise ValueError(
            f"users must be a 1-D array of integer indices, got shape {array.shape} and "
            f"dtype {array.dtype}"
        )
    array = array.astype(np.int64)
    if array.size and array.min() < 0:
        raise ValueError(f"users must be non-negative, got {int(array.min())}")
    if array.size and n_users is not None and array.max() >= n_users:
        raise ValueError(f"users must lie in [0, {n_users}), got {int(array.max())}")
    return array


def _check_items(ratings: Interactions, n_items: int) -> None:
    if len(ratings) and (int(ratings.item.min()) < 0 or int(ratings.item.max()) >= n_items):
        raise ValueError(f"ratings.item must lie in [0, {n_items})")


def _finite_scores(scores: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(scores, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array, got shape {array.shape}")
    array = array[~np.isnan(array)]
    if np.isinf(array).any():
        raise ValueError(f"{name} must be finite or NaN, got an infinite score")
    return array
