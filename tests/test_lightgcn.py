"""Tests of LightGCN: its graph propagation, training, served embeddings and refusals."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from simulator.recommenders.base import ModelParams
from simulator.recommenders.graph_propagation import normalised_adjacency, propagate
from simulator.recommenders.lightgcn import LightGCN
from simulator.scenario.schema import Scenario
from simulator.world.base import Interactions
from tests import test_recommenders
from tests.test_recommenders import N_ITEMS, N_USERS, _hit_rate

CPU = torch.device("cpu")
planted = test_recommenders.planted  # the same planted table and split, as a fixture here


def _model(seed: int = 0, **kw: float | int | None) -> LightGCN:
    return LightGCN(N_USERS, N_ITEMS, ModelParams(factors=16, **kw), CPU, seed)


def _tiny() -> Interactions:
    """Three users, three items; (0, 1) appears twice and counts as one edge."""
    user = np.array([0, 0, 1, 2, 0])
    item = np.array([0, 1, 1, 2, 1])
    return Interactions(user, item, np.full(5, 4.0, np.float32), np.arange(5))


def test_adjacency_is_the_symmetric_normalised_graph() -> None:
    dense = np.zeros((6, 6))
    for u, i in {(0, 0), (0, 1), (1, 1), (2, 2)}:
        dense[u, 3 + i] = dense[3 + i, u] = 1.0
    degree = dense.sum(1)
    expected = dense / np.sqrt(np.outer(degree, degree))
    adjacency = normalised_adjacency(_tiny(), 3, 3, CPU)
    np.testing.assert_allclose(adjacency.to_dense().numpy(), expected, rtol=1e-6)
    isolated = normalised_adjacency(_tiny(), 4, 4, CPU).to_dense().numpy()
    assert not isolated[3].any() and not isolated[:, 7].any()


def test_propagation_and_its_gradient_match_dense_algebra() -> None:
    adjacency = normalised_adjacency(_tiny(), 3, 3, CPU)
    dense = adjacency.to_dense()
    ego = torch.randn(6, 4, generator=torch.Generator().manual_seed(0), requires_grad=True)
    weights = torch.randn(6, 4, generator=torch.Generator().manual_seed(1))
    (propagate(adjacency, ego, 2) * weights).sum().backward()
    assert ego.grad is not None
    ours = ego.grad.clone()
    ego.grad = None
    reference = (ego + dense @ ego + dense @ dense @ ego) / 3
    (reference * weights).sum().backward()
    np.testing.assert_allclose(ours.numpy(), ego.grad.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(propagate(adjacency, ego, 2).detach().numpy(),
                               reference.detach().numpy(), rtol=1e-5, atol=1e-6)
    assert torch.equal(propagate(adjacency, ego, 0), ego)


def test_learns_the_planted_tastes(planted) -> None:
    _, train, test = planted
    model = _model()
    report = model.fit(train, 20)
    assert report.epochs == 20 and report.losses[-1] < 0.8 * report.losses[0]
    popularity = np.bincount(train.item, minlength=N_ITEMS).astype(np.float64)
    hr_pop = _hit_rate(np.tile(popularity, (N_USERS, 1)), train, test)
    hr = _hit_rate(model.score(torch.arange(N_USERS)).numpy(), train, test)
    assert hr > hr_pop + 0.1, (hr, hr_pop)


def test_seeds_warm_starts_and_cold_starts(planted) -> None:
    _, train, _ = planted
    first, again, other = _model(0), _model(0), _model(1)
    for model in (first, again, other):
        model.fit(train, 3)
    np.testing.assert_array_equal(first.user_embeddings(), again.user_embeddings())
    assert not np.allclose(first.user_embeddings(), other.user_embeddings())
    ego = first.ego.clone()
    warm = first.fit(train, 1, warm_start=True)
    assert warm.warm_start and not torch.equal(first.ego, ego)
    first.fit(train, 3)  # a cold start draws the same E_0 and batches again
    np.testing.assert_array_equal(first.user_embeddings(), again.user_embeddings())


def test_serves_final_embeddings_until_the_next_fit(planted) -> None:
    _, train, _ = planted
    model = _model()
    model.fit(train, 2)
    users = torch.arange(N_USERS)
    scores = model.score(users)
    items = torch.randint(N_ITEMS, (50,), generator=torch.Generator().manual_seed(0))
    np.testing.assert_allclose(model.predict(users[:50].numpy(), items.numpy()),
                               scores[users[:50], items].numpy(), rtol=1e-5, atol=1e-5)
    scorer = model.user_scorer()
    emb = torch.as_tensor(model.user_embeddings())
    np.testing.assert_allclose(scorer.full(emb, users).numpy(), scores.numpy(), rtol=1e-5,
                               atol=1e-5)
    edited = np.zeros_like(model.user_embeddings())
    model.set_user_embeddings(edited)
    assert float(model.score(users).abs().max()) == 0.0
    new_items = np.ones_like(model.item_embeddings())
    model.set_item_embeddings(new_items)
    np.testing.assert_array_equal(model.item_embeddings(), new_items)
    model.fit(train, 1, warm_start=True)  # propagation from E_0 replaces the edits
    assert float(model.score(users).abs().max()) > 0.0
    with pytest.raises(ValueError, match="shape"):
        model.set_user_embeddings(edited[:, :3])


def test_perturbation_and_adversary_change_training(planted) -> None:
    from simulator.defenses.apr.defense import FastGradientPerturbation

    _, train, _ = planted
    plain, perturbed = _model(), _model()
    perturbed.set_perturbation(FastGradientPerturbation(epsilon=0.5, weight=1.0))
    plain.fit(train, 2)
    report = perturbed.fit(train, 2)
    assert report.diverged is None
    assert not np.allclose(plain.user_embeddings(), perturbed.user_embeddings())


def test_empty_table_bad_indices_and_divergence(planted) -> None:
    _, train, _ = planted
    model = _model()
    before = model.user_embeddings()
    assert model.fit(Interactions.empty(), 5).epochs == 0
    np.testing.assert_array_equal(model.user_embeddings(), before)
    bad = Interactions(np.array([N_USERS]), np.array([0]), np.ones(1, np.float32), np.zeros(1))
    with pytest.raises(ValueError, match="user indices"):
        model.fit(bad, 1)
    wild = _model(lr=1e6)
    start = wild.ego.clone()
    report = wild.fit(train, 3)
    assert report.diverged is not None and "epoch 1" in report.diverged
    assert torch.equal(wild.ego, start)


@pytest.mark.parametrize(("platform", "message"), [
    ({"defenses": {"dp": {}}}, "per-example gradients do not separate"),
    ({"item_features": True}, "interaction graph alone"),
    ({"ranking": {"method": "consumption"}}, "rating models"),
])
def test_scenarios_refuse_what_lightgcn_cannot_do(platform, message) -> None:
    with pytest.raises(ValueError, match=message):
        Scenario.model_validate({"platform": {"model": "lightgcn", **platform}})


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_trains_on_cuda(planted) -> None:
    _, train, _ = planted
    model = LightGCN(N_USERS, N_ITEMS, ModelParams(factors=8), torch.device("cuda"), 0)
    report = model.fit(train, 5)
    assert report.losses[-1] < report.losses[0]
    assert model.score(torch.arange(3)).device.type == "cuda"


def test_users_without_interactions_are_served_the_mean_user(planted) -> None:
    _, train, _ = planted
    kept = train.subset(train.user >= 10)
    model = _model()
    model.fit(kept, 2)
    users = model.user_embeddings()
    np.testing.assert_allclose(users[:10], np.tile(users[10:].mean(0), (10, 1)), rtol=1e-5,
                               atol=1e-6)
