"""What fake accounts declare about themselves at sign-up (gender, age, occupation).

A platform that trains its privacy defenses on the attributes accounts declare (adversarial
read-outs, attribute unlearning) takes a fake account's declaration at face value, so the
attacker chooses it:

- `marginal`: drawn from the public class shares (what a fake account does to pass as an
  ordinary user);
- `flipped`: the class the account's own ratings look *least* like, judged by a naive Bayes
  model of the public labelled users' ratings (items rated by each class). Read-outs trained
  on such accounts learn the association between taste and attribute backwards, which works
  against the defenses that rely on them.

The attacker's knowledge: the public ratings and the attributes of the genuine users who made
them public (`public_labels`, -1 elsewhere), never the platform's model.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from simulator.world.base import Interactions

Strategy = Literal["marginal", "flipped"]
STRATEGIES: tuple[str, ...] = ("marginal", "flipped")
SMOOTHING = 1.0  # Laplace smoothing of the per-class item counts


def public_shares(public_labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Class shares among the publicly labelled users (uniform when none is labelled)."""
    known = public_labels[public_labels >= 0]
    counts = np.bincount(known, minlength=n_classes).astype(np.float64)
    if counts.sum() == 0:
        return np.full(n_classes, 1.0 / n_classes)
    return counts / counts.sum()


def class_log_likelihoods(
    public: Interactions, public_labels: np.ndarray, n_classes: int, n_items: int
) -> np.ndarray:
    """log P(item | class) of a multinomial naive Bayes over the public ratings of labelled
    users, (n_classes, n_items), Laplace-smoothed."""
    user_label = np.full(max(int(public.user.max(initial=-1)) + 1, len(public_labels)), -1)
    user_label[: len(public_labels)] = public_labels
    label = user_label[public.user]
    known = label >= 0
    counts = np.zeros((n_classes, n_items))
    np.add.at(counts, (label[known], public.item[known]), 1.0)
    counts += SMOOTHING
    return np.log(counts / counts.sum(1, keepdims=True))


def declare(
    strategy: str,
    profiles: Interactions,
    users: np.ndarray,
    public: Interactions,
    public_labels: np.ndarray,
    n_classes: int,
    n_items: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """The class each of `users` declares, given their ratings `profiles` (marginal: drawn
    from the public shares; flipped: the least likely class of their ratings)."""
    shares = public_shares(public_labels, n_classes)
    if strategy == "marginal":
        return rng.choice(n_classes, size=len(users), p=shares).astype(np.int64)
    if strategy != "flipped":
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    log_item = class_log_likelihoods(public, public_labels, n_classes, n_items)
    row = np.searchsorted(users, profiles.user)
    inside = (row < len(users)) & (users[np.minimum(row, len(users) - 1)] == profiles.user)
    scores = np.tile(np.log(np.maximum(shares, 1e-12)), (len(users), 1))
    np.add.at(scores, row[inside], log_item[:, profiles.item[inside]].T)
    return scores.argmin(1).astype(np.int64)
