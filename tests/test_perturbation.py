"""Tests of user-side local perturbation of disclosed ratings."""

from __future__ import annotations

import numpy as np
import pytest

from agents.local_perturbation import (
    keep_probability,
    laplace_scale,
    perturb_ratings,
    perturb_with,
)
from simulator.scenario.schema import PerturbationConfig
from simulator.world.base import Interactions


def _table(n_users: int = 400, per_user: int = 100, seed: int = 0) -> Interactions:
    rng = np.random.default_rng(seed)
    users = np.repeat(np.arange(n_users), per_user)
    items = np.tile(np.arange(per_user), n_users)
    ratings = rng.integers(1, 6, len(users)).astype(np.float32)
    return Interactions(users, items, ratings, np.zeros(len(users), np.int64))


def test_randomized_response_keep_rate_and_uniform_others() -> None:
    data = _table()
    out = perturb_ratings(data, "randomized_response", 1.0, seed=3)
    kept = out.rating == data.rating
    assert keep_probability(1.0) == pytest.approx(np.e / (np.e + 4))
    assert kept.mean() == pytest.approx(keep_probability(1.0), abs=0.01)
    assert set(np.unique(out.rating)) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    # a changed 3 becomes each of the four other levels equally often
    changed = out.rating[(data.rating == 3) & ~kept]
    shares = np.array([np.mean(changed == v) for v in (1, 2, 4, 5)])
    np.testing.assert_allclose(shares, 0.25, atol=0.02)


def test_laplace_noise_scale_matches_theory() -> None:
    data = _table()
    middle = Interactions(data.user, data.item, np.full(len(data), 3.0, np.float32), data.timestamp)
    eps = 40.0  # small scale, so clipping to [1, 5] almost never bites
    noise = perturb_ratings(middle, "laplace", eps, seed=1).rating - 3.0
    b = laplace_scale(eps)
    assert b == pytest.approx(4.0 / eps)
    assert np.mean(noise) == pytest.approx(0.0, abs=0.01 * b + 1e-3)
    assert np.mean(np.abs(noise)) == pytest.approx(b, rel=0.02)
    assert np.var(noise) == pytest.approx(2 * b * b, rel=0.05)


@pytest.mark.parametrize("mechanism", ["randomized_response", "laplace"])
def test_output_in_range_and_seeded(mechanism: str) -> None:
    data = _table(100, 50)
    out = perturb_ratings(data, mechanism, 0.5, seed=7)
    assert out.rating.dtype == np.float32
    assert out.rating.min() >= 1.0 and out.rating.max() <= 5.0
    np.testing.assert_array_equal(out.user, data.user)
    np.testing.assert_array_equal(out.item, data.item)
    again = perturb_ratings(data, mechanism, 0.5, seed=7)
    np.testing.assert_array_equal(out.rating, again.rating)
    other_seed = perturb_ratings(data, mechanism, 0.5, seed=8)
    assert not np.array_equal(out.rating, other_seed.rating)


@pytest.mark.parametrize("mechanism", ["randomized_response", "laplace"])
def test_a_users_noise_ignores_other_users(mechanism: str) -> None:
    data = _table(50, 40)
    ratings = data.rating.copy()
    ratings[data.user != 0] = 6 - ratings[data.user != 0]  # others change their ratings
    keep = (data.user == 0) | (np.arange(len(data)) % 3 == 0)  # and some leave the table
    changed = Interactions(data.user, data.item, ratings, data.timestamp).subset(keep)
    base = perturb_ratings(data, mechanism, 1.0, seed=2)
    moved = perturb_ratings(changed, mechanism, 1.0, seed=2)
    np.testing.assert_array_equal(base.rating[data.user == 0], moved.rating[changed.user == 0])


def test_config_and_bad_arguments() -> None:
    data = _table(10, 10)
    config = PerturbationConfig(mechanism="randomized_response", epsilon=2.0)
    np.testing.assert_array_equal(
        perturb_with(data, config, 4).rating,
        perturb_ratings(data, "randomized_response", 2.0, 4).rating,
    )
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="epsilon"):
            perturb_ratings(data, "laplace", bad, 0)
    with pytest.raises(ValueError, match="mechanism"):
        perturb_ratings(data, "gaussian", 1.0, 0)
    assert len(perturb_ratings(Interactions.empty(), "laplace", 1.0, 0)) == 0
