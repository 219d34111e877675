"""Adaptive disclosure policies on hand-made inputs, and inside a running simulation."""

from __future__ import annotations

import json

import mesa
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from agents.policies import PrivacyCalculusPolicy, SocialPolicy, StepSignals
from agents.sensitivity import rating_sensitivity
from agents.users import UserPopulation
from simulator.experiments.catalog import load_scenario
from simulator.scenario.schema import CalculusConfig, EventConfig, SocialConfig
from simulator.simulation.model import PrivacyModel
from simulator.world import generate_synthetic, temporal_split
from simulator.world.base import Interactions
from simulator.world.timeline import assign_steps
from tests.test_users import types

CALCULUS = CalculusConfig(rate=0.5, benefit_weight=5.0, risk_weight=2.0, memory=0.0, forget=0.5)
BREACH = EventConfig(step=1, severity=2.0, reach=1.0)


def _calculus(n: int = 4, concern: float = 1.0) -> tuple[PrivacyCalculusPolicy, np.ndarray]:
    beta0 = np.full(n, 0.5)
    return PrivacyCalculusPolicy(CALCULUS, beta0=beta0, concern=np.full(n, concern),
                                 seed=0), beta0.copy()


def test_benefit_above_the_baseline_raises_budgets_and_below_lowers_them() -> None:
    policy, beta = _calculus()
    quality = np.array([0.6, 0.4, 0.2, np.nan])
    signals = StepSignals(quality=quality, baseline=np.full(4, 0.4))
    for step in range(10):
        policy.update(beta, step, signals)
    # target = sigmoid(logit(0.5) +- 5 * 0.2)
    assert beta[0] == pytest.approx(1 / (1 + np.exp(-1.0)), abs=0.01)
    assert beta[2] == pytest.approx(1 / (1 + np.exp(1.0)), abs=0.01)
    assert beta[1] == pytest.approx(0.5) and beta[3] == pytest.approx(0.5)  # no gain, unknown


def test_a_breach_lowers_budgets_by_concern_and_they_recover_as_it_fades() -> None:
    beta0 = np.full(4, 0.5)
    concern = np.array([0.0, 0.5, 1.0, 2.0])
    policy = PrivacyCalculusPolicy(CALCULUS, beta0=beta0, concern=concern, seed=0)
    beta = beta0.copy()
    policy.update(beta, 0, StepSignals())
    policy.update(beta, 1, StepSignals(breaches=[BREACH]))
    shocked = beta.copy()
    assert shocked[0] == pytest.approx(0.5)
    assert np.all(np.diff(shocked) < 0)  # more concern, lower budget
    for step in range(2, 30):
        policy.update(beta, step, StepSignals())
    assert np.allclose(beta, 0.5, atol=0.01)


def test_breach_reach_uses_per_user_streams() -> None:
    partial = EventConfig(step=1, severity=1.0, reach=0.5)
    heard = []
    for concern in (np.ones(1000), np.r_[np.full(500, 5.0), np.ones(500)]):
        policy = PrivacyCalculusPolicy(CALCULUS, beta0=np.full(1000, 0.5), concern=concern, seed=3)
        policy.update(np.full(1000, 0.5), 1, StepSignals(breaches=[partial]))
        heard.append(policy.informed.copy())
    assert 0.45 < heard[0].mean() < 0.55
    np.testing.assert_array_equal(heard[0], heard[1])  # other users' concern changes nothing


def _two_cliques() -> sp.csr_matrix:
    block = np.ones((3, 3)) - np.eye(3)
    dense = np.zeros((6, 6))
    dense[:3, :3] = block
    dense[3:, 3:] = block
    dense[2, 3] = dense[3, 2] = 1.0  # one bridge
    return sp.csr_matrix(dense)


def test_social_influence_pulls_budgets_toward_neighbours() -> None:
    social = SocialConfig(influence=0.5, pass_news=0.0)
    beta0 = np.array([1.0, 1.0, 1.0, 0.0, 0.0, 0.0])
    calm = CalculusConfig(rate=0.0001, benefit_weight=0.0, risk_weight=0.0)
    policy = SocialPolicy(calm, social=social, adjacency=_two_cliques(), beta0=beta0,
                          concern=np.ones(6), seed=0)
    beta = beta0.copy()
    policy.update(beta, 0, StepSignals())
    assert beta[0] == pytest.approx(1.0, abs=1e-3) and beta[5] == pytest.approx(0.0, abs=1e-3)
    assert beta[2] < 1.0 and beta[3] > 0.0  # the bridge users meet in the middle
    assert beta[2] == pytest.approx(1.0 - beta[3], abs=1e-3)


def test_breach_news_travels_one_hop_per_step() -> None:
    social = SocialConfig(influence=0.0, pass_news=1.0)
    policy = SocialPolicy(CALCULUS, social=social, adjacency=_two_cliques(),
                          beta0=np.full(6, 0.5), concern=np.ones(6), seed=0)
    beta = np.full(6, 0.5)
    first = EventConfig(step=0, severity=1.0, reach=0.0)
    policy.update(beta, 0, StepSignals(breaches=[first]))
    assert not policy.heard.any()  # nobody heard it directly, nobody can pass it on
    policy = SocialPolicy(CALCULUS, social=social, adjacency=_two_cliques(),
                          beta0=np.full(6, 0.5), concern=np.ones(6), seed=0)
    policy.informed = np.zeros(6, dtype=bool)
    policy.update(beta, 0, StepSignals(breaches=[EventConfig(step=0, severity=1.0, reach=1.0)]))
    assert policy.heard.all()
    # Only user 0 hears the next breach directly; it spreads through the cliques hop by hop.
    policy = SocialPolicy(CALCULUS, social=social, adjacency=_two_cliques(),
                          beta0=np.full(6, 0.5), concern=np.ones(6), seed=0)
    policy.update(beta, 0, StepSignals())
    policy.informed = np.zeros(6, dtype=bool)
    policy._announced([first])
    policy.heard[:] = policy.carrying[:] = np.arange(6) == 0
    reached = []
    for step in range(1, 4):
        policy.update(beta, step, StepSignals())
        reached.append(np.flatnonzero(policy.heard).tolist())
    assert reached == [[0, 1, 2], [0, 1, 2, 3], [0, 1, 2, 3, 4, 5]]


def test_sensitivity_aware_users_withhold_revealing_ratings_first() -> None:
    world = generate_synthetic(n_users=300, n_items=200, seed=1, signal=2.0,
                               mean_ratings_per_user=40)
    train, _ = temporal_split(world.ratings, world.n_users, 0.2)
    gender = world.attributes["gender"]
    sensitivity = rating_sensitivity(train, gender, world.n_items)
    steps = assign_steps(train, 1)
    inclination = np.zeros(world.n_users, dtype=np.int64)
    beta = np.full(world.n_users, 0.5)
    from agents.policies import FixedPolicy

    model = mesa.Model(rng=0)
    common = {"settings": types(1), "train": train, "train_step": steps,
              "inclination": inclination, "beta": beta, "policy": FixedPolicy(), "seed": 0}
    plain = UserPopulation(model, **common)
    aware = UserPopulation(model, **common, disclosure_key=sensitivity)
    shown = {name: population.experience(0) for name, population in (("plain", plain),
                                                                       ("aware", aware))}
    assert len(shown["plain"]) == len(shown["aware"])  # the same budgets
    key = {(u, i): s for u, i, s in zip(train.user, train.item, sensitivity, strict=True)}

    def mean_sensitivity(table: Interactions) -> float:
        return float(np.mean([key[(u, i)] for u, i in zip(table.user, table.item, strict=True)]))

    assert mean_sensitivity(shown["aware"]) < 0.7 * mean_sensitivity(shown["plain"])


def test_rating_sensitivity_on_a_hand_made_audience() -> None:
    # Users 0, 1 are women, 2, 3 men. Item 0: only women; item 1: only men; item 2: all.
    ratings = Interactions(np.array([0, 1, 2, 3, 0, 1, 2, 3]), np.array([0, 0, 1, 1, 2, 2, 2, 2]),
                           np.ones(8, np.float32), np.zeros(8, np.int64))
    score = rating_sensitivity(ratings, np.array([0, 0, 1, 1]), 3)
    # with one pseudo-rating per class: P(own class | item 0 or 1) = 3/4 against 1/2 overall
    np.testing.assert_allclose(score[:4], np.log(1.5))
    np.testing.assert_allclose(score[4:], 0.0, atol=1e-12)  # a balanced item reveals nothing


TINY = [
    "world.n_users=300", "world.n_items=200", "world.mean_ratings_per_user=30",
    "simulation.steps=8", "simulation.device=cpu", "platform.retrain_every=1",
    "platform.first_epochs=10", "platform.epochs=2", "attackers=[]", "output.plots=false",
]


@pytest.mark.parametrize("policy", ["privacy_calculus", "social"])
def test_a_breach_moves_disclosure_in_a_running_simulation(policy: str) -> None:
    model = PrivacyModel(load_scenario("quickstart", [
        *TINY, f"population.policy={policy}", "events=[{step: 4, severity: 3.0, reach: 0.3}]",
    ]))
    model.run()
    metrics = pd.DataFrame(model.records.metrics)
    assert metrics["beta_mean"].iloc[4] < metrics["beta_mean"].iloc[3] - 0.03
    assert metrics["breach_informed_share"].iloc[4] == pytest.approx(0.3, abs=0.06)
    if policy == "social":  # the news and the concern travel along the graph
        assert metrics["breach_heard_share"].iloc[-1] > 0.8
        assert metrics["beta_assortativity"].iloc[-1] > metrics["beta_assortativity"].iloc[0] + 0.1
    events = pd.DataFrame(model.records.events)
    breach = events[events["kind"] == "breach"]
    assert breach["step"].tolist() == [4]
    assert json.loads(breach["detail"].iloc[0])["severity"] == 3.0
    groups = pd.DataFrame(model.records.groups)
    by_type = groups[groups["group_kind"] == "inclination"].pivot(
        index="step", columns="group", values="group_beta_mean")
    # fundamentalists (concern 1, like everyone here) start low and stay lowest
    assert (by_type["fundamentalist"] < by_type["unconcerned"]).all()
