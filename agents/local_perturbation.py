"""User-side local perturbation of the ratings a user discloses, before the platform sees them.

Each disclosed rating is perturbed on its own with epsilon-local differential privacy for that
rating's value (which items a user rated is not hidden):

- `randomized_response`: k-ary randomised response over the k = 5 levels 1..5; the true level
  is kept with probability e^eps / (e^eps + k - 1), else one of the k - 1 other levels is
  reported uniformly. Non-integer input ratings are first rounded to the nearest level.
- `laplace`: r + Laplace(0, 4 / eps) (4 = the width of the 1..5 scale, the sensitivity),
  clipped to [1, 5] and not rounded; clipping is post-processing, so the guarantee holds.

The noise of a rating is a pure function of (seed, user, item) through
`simulator.foundations.random_streams`, so one user's noise never depends on anyone else's ratings.
"""

from __future__ import annotations

import math

import numpy as np

from simulator.foundations.random_streams import stream_uniform
from simulator.scenario.schema import PerturbationConfig
from simulator.world.base import Interactions

LEVELS = 5
RATING_MIN, RATING_MAX = 1.0, 5.0
MECHANISMS = ("randomized_response", "laplace")
_DRAWS_PER_RATING = 2  # random numbers a rating may use; counters are item * 2 + k


def _check_epsilon(epsilon: float) -> float:
    value = float(epsilon)
    if not math.isfinite(value) or value <= 0.0:
        raise ValueError(f"epsilon must be a positive finite number, got {epsilon!r}")
    return value


def keep_probability(epsilon: float, levels: int = LEVELS) -> float:
    """Probability that k-ary randomised response reports the true level."""
    eps = _check_epsilon(epsilon)
    return 1.0 / (1.0 + (levels - 1) * math.exp(-eps))


def laplace_scale(epsilon: float) -> float:
    """Scale b of the Laplace noise: sensitivity (5 - 1) / epsilon."""
    return (RATING_MAX - RATING_MIN) / _check_epsilon(epsilon)


def _uniforms(ratings: Interactions, seed: int, purpose: str) -> tuple[np.ndarray, np.ndarray]:
    """Two independent uniforms per rating, keyed by (seed, purpose, user, item)."""
    counter = ratings.item.astype(np.uint64) * np.uint64(_DRAWS_PER_RATING)
    first = stream_uniform(seed, purpose, ratings.user, counter)
    second = stream_uniform(seed, purpose, ratings.user, counter + np.uint64(1))
    return first, second


def randomized_response(ratings: Interactions, epsilon: float, seed: int) -> np.ndarray:
    """k-ary randomised response on each rating's level; returns float32 levels in 1..5."""
    keep = keep_probability(epsilon)
    u_keep, u_other = _uniforms(ratings, seed, "perturbation:randomized_response")
    level = np.clip(np.rint(ratings.rating), RATING_MIN, RATING_MAX).astype(np.int64) - 1
    shift = 1 + np.minimum((u_other * (LEVELS - 1)).astype(np.int64), LEVELS - 2)
    reported = np.where(u_keep < keep, level, (level + shift) % LEVELS)
    return (reported + 1).astype(np.float32)


def laplace(ratings: Interactions, epsilon: float, seed: int) -> np.ndarray:
    """r + Laplace(0, 4 / epsilon), clipped to [1, 5] (not rounded); float32."""
    scale = laplace_scale(epsilon)
    u_a, u_b = _uniforms(ratings, seed, "perturbation:laplace")
    # The difference of two Exp(1) draws is Laplace(0, 1); 1 - u lies in (0, 1].
    noise = scale * (np.log1p(-u_b) - np.log1p(-u_a))
    return np.clip(ratings.rating + noise, RATING_MIN, RATING_MAX).astype(np.float32)


def perturb_ratings(
    ratings: Interactions, mechanism: str, epsilon: float, seed: int
) -> Interactions:
    """The same table with each rating replaced by its locally perturbed value."""
    if mechanism not in MECHANISMS:
        raise ValueError(f"unknown perturbation mechanism {mechanism!r}; use one of {MECHANISMS}")
    _check_epsilon(epsilon)
    if len(ratings) == 0:
        return ratings
    perturb = randomized_response if mechanism == "randomized_response" else laplace
    return Interactions(
        ratings.user, ratings.item, perturb(ratings, epsilon, seed), ratings.timestamp
    )


def perturb_with(ratings: Interactions, config: PerturbationConfig, seed: int) -> Interactions:
    """`perturb_ratings` with the mechanism and epsilon of a scenario's perturbation section."""
    return perturb_ratings(ratings, config.mechanism, config.epsilon, seed)
