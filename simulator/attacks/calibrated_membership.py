"""Calibrated membership inference at user level (LiRA, Carlini et al. 2022, offline and
online): the target model's membership score of a user is compared with the scores the same
user gets from reference models trained with and without it.

The attacker knows the platform's recipe (model family, settings, epochs) and a population
table (ratings of users who are not candidates), but not which candidates the platform
trained on. Each reference model trains on the population plus each candidate's ratings
with probability 1/2 (every candidate is IN about half the models and OUT of the rest); the
score is the threshold attack's (`membership.membership_scores`: the mean percentile rank,
or minus the squared error, of the user's ratings). A candidate's calibrated score is the log
likelihood ratio of its target score under Gaussians fitted to its IN and OUT reference
scores, with the variances pooled over candidates (the fixed-variance variant, stable with
few reference models). Written by hand: the audit libraries (ML Privacy Meter, TF Privacy)
work on classifiers' per-example losses and cannot train a recommender per reference.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

from simulator.attacks.membership import Scorer, membership_scores
from simulator.world.base import Interactions

FPR_LEVELS = (0.001, 0.01)
MIN_STD = 1e-6

# Trains a fresh reference model of the platform's recipe on a table (seeded).
TrainReference = Callable[[Interactions, int], Scorer]


@dataclass(frozen=True)
class CalibratedResult:
    """The calibrated attack's scores of the candidates and how well they separate members.

    `scores` are log likelihood ratios, one per candidate (higher = more member-like);
    `auc`, `tpr_at_01pct_fpr` and `tpr_at_1pct_fpr` compare members with non-members (a
    threshold at the non-members' (1 - FPR) quantile, taken at an observed score, so the
    false-positive rate never exceeds the level; with fewer than 1/FPR non-members it is
    their largest score); `fpr` and `tpr` are the ROC curve."""

    scores: np.ndarray
    auc: float
    tpr_at_01pct_fpr: float
    tpr_at_1pct_fpr: float
    fpr: np.ndarray
    tpr: np.ndarray


def reference_scores(
    train: TrainReference, population: Interactions, candidates: Interactions,
    users: np.ndarray, n_references: int, seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Train `n_references` reference models; returns (inside, scores), both
    (n_references, len(users)): whether each candidate was in each model's table, and its
    membership score there."""
    if n_references < 2:
        raise ValueError(f"n_references must be at least 2, got {n_references}")
    rng = np.random.default_rng(seed)
    inside = rng.random((n_references, len(users))) < 0.5
    # Every candidate IN at least one model and OUT of at least one: flip where it is not.
    for column in np.flatnonzero(inside.all(0) | ~inside.any(0)):
        inside[rng.integers(n_references), column] ^= True
    scores = np.empty((n_references, len(users)))
    position = np.searchsorted(users, candidates.user)
    for r in range(n_references):
        kept = candidates.subset(inside[r][position])
        table = Interactions.concat([population, kept])
        model = train(table, seed * 1_000 + r)
        scores[r] = membership_scores(model, candidates, users)
    return inside, scores


def likelihood_ratios(target: np.ndarray, inside: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """log N(target; mu_in, s_in) - log N(target; mu_out, s_out) per candidate, with each
    candidate's IN and OUT means and the IN and OUT standard deviations pooled over
    candidates."""
    counts_in = inside.sum(0)
    counts_out = (~inside).sum(0)
    mu_in = np.where(inside, scores, 0.0).sum(0) / counts_in
    mu_out = np.where(~inside, scores, 0.0).sum(0) / counts_out
    s_in = max(float(np.sqrt(np.mean((scores - mu_in)[inside] ** 2))), MIN_STD)
    s_out = max(float(np.sqrt(np.mean((scores - mu_out)[~inside] ** 2))), MIN_STD)
    z_in = (target - mu_in) / s_in
    z_out = (target - mu_out) / s_out
    return -0.5 * z_in**2 - np.log(s_in) + 0.5 * z_out**2 + np.log(s_out)


def calibrated_attack(
    target: Scorer, train: TrainReference, population: Interactions, members: Interactions,
    nonmembers: Interactions, n_references: int = 8, seed: int = 0,
) -> CalibratedResult:
    """The calibrated attack on `target`: its members' ratings against non-members', with
    `n_references` reference models trained by `train` on `population` plus random halves of
    the candidates (members and non-members alike). Members and non-members must be
    different users, and no candidate may be in `population`."""
    member_users, nonmember_users = np.unique(members.user), np.unique(nonmembers.user)
    users = np.union1d(member_users, nonmember_users)
    if len(users) != len(member_users) + len(nonmember_users):
        raise ValueError("members and nonmembers must hold different users")
    if np.isin(population.user, users).any():
        raise ValueError("population must not hold the candidates' ratings")
    candidates = Interactions.concat([members, nonmembers])
    inside, scores = reference_scores(train, population, candidates, users, n_references, seed)
    ratios = likelihood_ratios(membership_scores(target, candidates, users), inside, scores)
    is_member = np.isin(users, member_users)
    return _separation(ratios, is_member)


def _separation(ratios: np.ndarray, is_member: np.ndarray) -> CalibratedResult:
    """AUC, TPR at the FPR levels and the ROC of the members' scores against the others'."""
    finite = np.isfinite(ratios)
    labels, values = is_member[finite], ratios[finite]
    if labels.all() or not labels.any():
        nan = float("nan")
        return CalibratedResult(ratios, nan, nan, nan, np.empty(0), np.empty(0))
    others = values[~labels]
    tprs = [float(np.mean(values[labels] > np.quantile(others, 1.0 - level, method="higher")))
            for level in FPR_LEVELS]
    fpr, tpr, _ = roc_curve(labels, values)
    return CalibratedResult(ratios, float(roc_auc_score(labels, values)), tprs[0], tprs[1],
                            fpr, tpr)
