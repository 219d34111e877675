"""User population: the fixed disclosure policy, inclination mix and the population agent."""

from __future__ import annotations

import math

import mesa
import numpy as np
import pytest

from agents.policies import FixedPolicy, make_policy
from agents.users import UserPopulation, draw_inclinations
from simulator.experiments.catalog import load_scenario
from simulator.foundations.errors import ScenarioError
from simulator.scenario.schema import PopulationConfig
from simulator.world import generate_synthetic, temporal_split
from simulator.world.timeline import assign_steps


def _population(beta_by_type: list[float], steps: int = 5, seed: int = 0) -> UserPopulation:
    world = generate_synthetic(n_users=200, n_items=150, seed=3)
    train, _ = temporal_split(world.ratings, world.n_users, 0.2)
    inclination = np.arange(world.n_users) % len(beta_by_type)
    beta = np.asarray(beta_by_type)[inclination]
    return UserPopulation(
        mesa.Model(rng=seed), settings=types(len(beta_by_type)), train=train,
        train_step=assign_steps(train, steps), inclination=inclination, beta=beta,
        policy=FixedPolicy(), seed=seed,
    )


def types(count: int) -> PopulationConfig:
    """Population settings with `count` inclination types t0, t1... of equal shares."""
    return PopulationConfig(types={f"t{i}": {"share": 1 / count, "beta": 0.5}
                                   for i in range(count)})


def test_fixed_policy_discloses_exactly_ceil_beta_n_each_step() -> None:
    population = _population([1.0, 0.5, 0.1, 0.0], steps=5)
    seen = []
    for step in range(5):
        disclosed = population.experience(step)
        expected = np.ceil(np.round(population.beta * population.n_experienced, 9))
        assert np.array_equal(population.n_disclosed, expected.astype(np.int64))
        seen.append(disclosed)
    all_disclosed = np.concatenate([d.user for d in seen])
    assert np.array_equal(np.bincount(all_disclosed, minlength=200), population.n_disclosed)
    assert population.n_disclosed[population.beta == 0.0].sum() == 0
    full = population.beta == 1.0
    assert np.array_equal(population.n_disclosed[full], population.n_experienced[full])


def test_every_rating_is_experienced_once_and_disclosures_are_unique() -> None:
    population = _population([0.5], steps=4)
    disclosed = [population.experience(s) for s in range(4)]
    pairs = np.concatenate([d.user * 10_000 + d.item for d in disclosed])
    assert len(np.unique(pairs)) == len(pairs)
    assert population.n_experienced.sum() == len(population._train)


def test_disclosure_is_uniform_over_a_users_ratings() -> None:
    # Over many seeds, each rating of a user is disclosed about beta of the time.
    world = generate_synthetic(n_users=50, n_items=100, mean_ratings_per_user=30, seed=1)
    train, _ = temporal_split(world.ratings, world.n_users, 0.2)
    counts = np.zeros(len(train))
    for seed in range(200):
        pop = UserPopulation(mesa.Model(rng=seed), settings=types(1), train=train,
                             train_step=np.zeros(len(train), np.int64),
                             inclination=np.zeros(50, np.int64), beta=np.full(50, 0.3),
                             policy=FixedPolicy(), seed=seed)
        chosen = pop.experience(0)
        key = chosen.user * 10_000 + chosen.item
        counts += np.isin(train.user * 10_000 + train.item, key)
    rates = counts / 200
    n_u = np.bincount(train.user)[train.user]
    expected = np.ceil(0.3 * n_u) / n_u  # each user keeps exactly ceil(beta * n) ratings
    assert abs(rates.mean() - expected.mean()) < 0.005
    # Binomial noise over 200 draws has sd ~0.033: no rating is favoured or avoided.
    assert np.abs(rates - expected).max() < 0.16


def test_changing_one_users_budget_leaves_others_unchanged() -> None:
    a = _population([0.5], steps=3, seed=9)
    b = _population([0.5], steps=3, seed=9)
    b.beta[0] = 0.1
    for step in range(3):
        da, db = a.experience(step), b.experience(step)
        keep_a, keep_b = da.user != 0, db.user != 0
        assert np.array_equal(da.item[keep_a], db.item[keep_b])


def test_draw_inclinations_respects_shares() -> None:
    rng = np.random.default_rng(0)
    types = draw_inclinations(1001, {"a": 0.2, "b": 0.55, "c": 0.25}, rng)
    counts = np.bincount(types)
    assert counts.sum() == 1001
    shares = [0.2, 0.55, 0.25]
    pairs = zip(counts, shares, strict=True)
    assert all(math.isclose(c / 1001, s, abs_tol=0.002) for c, s in pairs)


def test_the_population_is_one_mesa_agent_over_the_arrays() -> None:
    population = _population([0.5, 1.0], steps=2)
    model = population.model
    assert len(model.agents) == 1
    assert list(model.agents_by_type[UserPopulation]) == [population]
    population.experience(0)
    assert population.n_disclosed.shape == (population.n_users,)
    assert population.type_names[population.inclination[1]] == "t1"


def test_unknown_policy() -> None:
    world = generate_synthetic(n_users=50, n_items=40, seed=3, mean_ratings_per_user=20)
    fixed = make_policy(PopulationConfig(), world, np.zeros(50, np.int64), np.ones(50), 0)
    assert fixed.name == "fixed"
    with pytest.raises(ScenarioError, match="population.policy"):
        load_scenario("quickstart", ["population.policy=psychic"])
