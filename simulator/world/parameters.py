"""Range checks of the synthetic generator's parameters, importable without the generator
(scenario validation runs them, and must not pay for importing torch)."""

from __future__ import annotations

import math

import numpy as np


def validate_parameters(
    n_users: int, n_items: int, signal: float, mean_ratings: float, min_ratings: int,
    factors: int, popularity_exponent: float, seed: int,
) -> None:
    """Raise ValueError naming the first generator parameter that is out of range."""
    for name, value in (("n_users", n_users), ("n_items", n_items),
                        ("min_ratings_per_user", min_ratings), ("factors", factors),
                        ("seed", seed)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise ValueError(f"{name} must be an integer, got {value!r}")
    if n_users < 2:
        raise ValueError(f"n_users must be >= 2, got {n_users}")
    if n_items < 2:
        raise ValueError(f"n_items must be >= 2, got {n_items}")
    if factors < 1:
        raise ValueError(f"factors must be >= 1, got {factors}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    for name, number in (("signal", signal), ("mean_ratings_per_user", mean_ratings),
                         ("popularity_exponent", popularity_exponent)):
        if not math.isfinite(number):
            raise ValueError(f"{name} must be a finite number, got {number!r}")
    if signal < 0:
        raise ValueError(f"signal must be >= 0, got {signal}")
    if popularity_exponent < 0:
        raise ValueError(f"popularity_exponent must be >= 0, got {popularity_exponent}")
    cap = n_items // 2
    if not 1 <= min_ratings <= cap:
        raise ValueError(
            f"min_ratings_per_user must be in 1..n_items // 2 = {cap}, got {min_ratings}"
        )
    if not min_ratings <= mean_ratings <= cap:
        raise ValueError(
            f"mean_ratings_per_user must be in min_ratings_per_user..n_items // 2 = "
            f"{min_ratings}..{cap}, got {mean_ratings}"
        )
