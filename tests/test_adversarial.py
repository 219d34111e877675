"""Tests of privacy-adversarial training (gradient reversal) and of divergence detection."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from simulator.defenses.adversarial.gradient_reversal import (
    AttributeAdversary,
    GradReverse,
    grad_reverse,
)
from simulator.recommenders.base import MAX_ROW_NORM, ModelParams, Recommender, divergence
from simulator.recommenders.registry import make_recommender
from simulator.world.base import Interactions, World
from simulator.world.synthetic import generate_synthetic

TINY = {"user_dim": 8, "memory_dim": 16, "hidden": 32, "item_dim": 8, "rank": 4}


@pytest.fixture(scope="module")
def world() -> World:
    """Taste strongly shaped by gender, so plain embeddings leak it."""
    return generate_synthetic(
        n_users=500, n_items=250, signal=3.0, mean_ratings_per_user=30, seed=0
    )


@pytest.fixture(scope="module")
def rated() -> tuple[Interactions, np.ndarray]:
    """Explicit ratings whose user factors are shifted by gender (the synthetic world puts
    gender mostly in which items are rated, which explicit MF does not see)."""
    rng = np.random.default_rng(0)
    n_users, n_items, rank = 400, 200, 4
    gender = (rng.random(n_users) < 0.6).astype(np.int64)
    users = rng.normal(size=(n_users, rank)) + 1.5 * (2 * gender[:, None] - 1) * np.eye(rank)[0]
    items = rng.normal(size=(n_items, rank))
    keys = np.unique(rng.integers(0, n_users * n_items, 16_000))
    u, i = keys // n_items, keys % n_items
    raw = 3.0 + 0.5 * (users[u] * items[i]).sum(1) + rng.normal(0, 0.2, len(u))
    rating = np.clip(raw, 1, 5).astype(np.float32)
    return Interactions(u, i, rating, np.zeros(len(u), np.int64)), gender


def _model(name: str, world: World, **kw: object) -> Recommender:
    if name == "metamf":
        options = {**TINY, "user_init_std": 1.0, "lr_schedule": "constant"}
        params = ModelParams(lr=3e-3, batch_size=512, options=options)
    else:
        params = ModelParams(factors=16, **kw)  # type: ignore[arg-type]
    return make_recommender(name, world.n_users, world.n_items, params, "cpu", 0)


def _adversary(world: World, weight: float, **kw: object) -> AttributeAdversary:
    options: dict[str, object] = {"lr": 0.1, "head_steps": 5, **kw}
    return AttributeAdversary.from_world(world, ["gender"], weight=weight, **options)


def _attacker_auc(embeddings: np.ndarray, labels: np.ndarray) -> float:
    """AUC of a fresh logistic regression trained on half the users, tested on the rest."""
    order = np.random.default_rng(0).permutation(len(labels))
    train, test = order[: len(order) // 2], order[len(order) // 2 :]
    clf = LogisticRegression(max_iter=1000).fit(embeddings[train], labels[train])
    return float(roc_auc_score(labels[test], clf.predict_proba(embeddings[test])[:, 1]))


# -- the gradient-reversal layer ------------------------------------------------------------
def test_grl_is_identity_forward_and_reverses_gradient() -> None:
    x = torch.randn(5, 3, requires_grad=True)
    upstream = torch.randn(5, 3)
    y = grad_reverse(x, 2.5)
    assert torch.equal(y, x)
    y.backward(upstream)
    assert x.grad is not None
    torch.testing.assert_close(x.grad, -2.5 * upstream)
    # With weight -1 the backward is the true gradient of the identity: gradcheck agrees.
    x64 = torch.randn(4, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: GradReverse.apply(t, -1.0) ** 2, (x64,))


def test_step_returns_minus_weight_times_readout_gradient() -> None:
    codes = np.array([0, 1, -1, 1, 0, 2, 1])
    adversary = AttributeAdversary({"age": codes}, n_classes={"age": 3}, weight=3.0, lr=0.01)
    adversary.bind(7, 4, "cpu")
    head = adversary.heads["age"]
    before = {k: v.clone() for k, v in head.state_dict().items()}
    users = torch.tensor([0, 2, 5, 6])
    rows = torch.randn(4, 4)
    expected_rows = rows.clone().requires_grad_(True)
    logits = torch.nn.functional.linear(expected_rows, before["weight"], before["bias"])
    known = torch.tensor([True, False, True, True])
    target = torch.tensor([0, 0, 2, 1])
    ce = torch.nn.functional.cross_entropy(logits, target, reduction="none")[known].sum()
    ce.backward()
    got = adversary.step(users, rows)
    assert expected_rows.grad is not None
    torch.testing.assert_close(got, -3.0 * expected_rows.grad)
    assert got[1].abs().sum() == 0  # unknown label: no push
    assert not torch.equal(head.weight, before["weight"])  # the head took a step


def test_adversary_rejects_bad_inputs() -> None:
    with pytest.raises(ValueError, match="readout"):
        AttributeAdversary({"gender": np.zeros(3, np.int64)}, readout="tree")
    with pytest.raises(ValueError, match="codes"):
        AttributeAdversary({"gender": np.array([0, 2, 1])}, n_classes={"gender": 2})
    adversary = AttributeAdversary({"gender": np.array([0, 1, 1])})
    with pytest.raises(ValueError, match="3 users"):
        adversary.bind(4, 8, "cpu")
    with pytest.raises(RuntimeError, match="bind"):
        adversary.step(torch.tensor([0]), torch.zeros(1, 8))


# -- training with the adversary -------------------------------------------------------------
@pytest.mark.parametrize("name", ["bpr", "mf"])
def test_weight_zero_reproduces_plain_model_and_readout_learns(name, world) -> None:
    plain = _model(name, world)
    plain.fit(world.ratings, 8)
    watched = _model(name, world)
    adversary = _adversary(world, 0.0, head_steps=1, readout="mlp", hidden=8)
    watched.set_adversary(adversary)
    watched.fit(world.ratings, 8)
    np.testing.assert_array_equal(watched.user_embeddings(), plain.user_embeddings())
    np.testing.assert_array_equal(watched.item_embeddings(), plain.item_embeddings())
    first, last = adversary.history[0]["gender"], adversary.history[-1]["gender"]
    assert len(adversary.history) == 8
    assert last["loss"] < first["loss"] and last["accuracy"] > first["accuracy"]


def test_weight_zero_reproduces_plain_metamf(world) -> None:
    plain = _model("metamf", world)
    plain.fit(world.ratings, 1)
    watched = _model("metamf", world)
    watched.set_adversary(_adversary(world, 0.0, head_steps=1))
    watched.fit(world.ratings, 1)
    np.testing.assert_array_equal(watched.user_embeddings(), plain.user_embeddings())


def test_adversary_lowers_leakage_of_bpr(world) -> None:
    labels = world.attributes["gender"]
    plain = _model("bpr", world)
    plain.fit(world.ratings, 15)
    defended = _model("bpr", world)
    adversary = _adversary(world, 1.0)
    defended.set_adversary(adversary)
    report = defended.fit(world.ratings, 15)
    assert report.diverged is None
    before = _attacker_auc(plain.user_embeddings(), labels)
    after = _attacker_auc(defended.user_embeddings(), labels)
    assert before > 0.85
    assert abs(after - 0.5) < 0.6 * abs(before - 0.5), (before, after)
    # The read-out is kept near the majority rate instead of separating the classes.
    majority = max(labels.mean(), 1 - labels.mean())
    assert adversary.history[-1]["gender"]["accuracy"] < majority + 0.05


def test_adversary_lowers_leakage_of_mf(rated) -> None:
    data, labels = rated
    params = ModelParams(factors=8, lr=0.05)
    plain = make_recommender("mf", 400, 200, params, "cpu", 0)
    plain.fit(data, 15)
    defended = make_recommender("mf", 400, 200, params, "cpu", 0)
    adversary = AttributeAdversary({"gender": labels}, weight=1.0, lr=0.1, head_steps=5)
    defended.set_adversary(adversary)
    assert defended.fit(data, 15).diverged is None
    before = _attacker_auc(plain.user_embeddings(), labels)
    after = _attacker_auc(defended.user_embeddings(), labels)
    assert before > 0.85
    assert abs(after - 0.5) < 0.6 * abs(before - 0.5), (before, after)


def test_adversary_lowers_leakage_of_metamf(world) -> None:
    labels = world.attributes["gender"]
    plain = _model("metamf", world)
    plain.fit(world.ratings, 3)
    defended = _model("metamf", world)
    adversary = _adversary(world, 1.0)
    defended.set_adversary(adversary)
    report = defended.fit(world.ratings, 3)
    assert report.diverged is None and len(adversary.history) == 3
    before = _attacker_auc(plain.user_embeddings(), labels)
    after = _attacker_auc(defended.user_embeddings(), labels)
    assert abs(after - 0.5) < abs(before - 0.5), (before, after)


def test_set_adversary_none_restores_plain_training(world) -> None:
    plain = _model("bpr", world)
    plain.fit(world.ratings, 3)
    switched = _model("bpr", world)
    switched.set_adversary(_adversary(world, 5.0))
    switched.fit(world.ratings, 2)
    switched.set_adversary(None)
    assert switched.adversary is None
    switched.fit(world.ratings, 3)  # a cold start: no trace of the adversary may remain
    np.testing.assert_array_equal(switched.user_embeddings(), plain.user_embeddings())


def test_adversary_can_be_switched_on_between_fits(world) -> None:
    model = _model("bpr", world)
    model.fit(world.ratings, 2)
    adversary = _adversary(world, 1.0, readout="mlp")
    model.set_adversary(adversary)
    report = model.partial_fit(world.ratings, 2)
    assert report.diverged is None and len(adversary.history) == 2


# -- divergence ------------------------------------------------------------------------------
def test_divergence_reasons() -> None:
    assert divergence(3, 0.5, 10.0) is None
    assert "epoch 2" in str(divergence(2, float("nan"), 1.0))
    assert "epoch 4" in str(divergence(4, 0.1, 2 * MAX_ROW_NORM))
    assert divergence(1, 0.1, float("inf")) is not None


@pytest.mark.parametrize("name", ["bpr", "mf"])
def test_divergence_stops_sgd_models_and_keeps_last_healthy_parameters(name, world) -> None:
    model = _model(name, world)
    model.fit(world.ratings, 2)
    healthy = model.user_embeddings(), model.item_embeddings()
    data = world.ratings
    if name == "bpr":
        model.lr, model.reg = 1e4, 0.0  # type: ignore[attr-defined]
    else:  # MF damps its steps, so it is driven to overflow by absurd ratings instead
        data = Interactions(data.user, data.item, data.rating * 1e30, data.timestamp)
    report = model.partial_fit(data, 5)
    assert report.diverged is not None and report.diverged.startswith("epoch 1")
    assert report.epochs == 1 and len(report.losses) == 1
    np.testing.assert_array_equal(model.user_embeddings(), healthy[0])
    np.testing.assert_array_equal(model.item_embeddings(), healthy[1])


def test_divergence_stops_cold_fit_with_huge_learning_rate(world) -> None:
    model = make_recommender(
        "bpr", world.n_users, world.n_items, ModelParams(factors=16, lr=1e5, reg=0.0), "cpu", 0
    )
    report = model.fit(world.ratings, 4)
    assert report.diverged is not None and report.epochs < 4
    assert np.isfinite(model.user_embeddings()).all()
    assert np.linalg.norm(model.user_embeddings(), axis=1).max() <= MAX_ROW_NORM


def test_divergence_stops_metamf(world) -> None:
    model = _model("metamf", world)
    model.fit(world.ratings, 1)
    healthy = model.user_embeddings()
    model.lr = 1e4  # type: ignore[attr-defined]
    report = model.partial_fit(world.ratings, 3)
    assert report.diverged is not None and report.epochs < 3
    np.testing.assert_array_equal(model.user_embeddings(), healthy)
    assert model.predict(world.ratings.user[:5], world.ratings.item[:5]).shape == (5,)
