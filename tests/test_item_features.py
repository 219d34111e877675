"""Tests of item side information in the factor models: v_i = q_i + f_i W."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch

from simulator.defenses.adversarial.gradient_reversal import AttributeAdversary
from simulator.defenses.apr.defense import NORM_FLOOR as APR_NORM_FLOOR
from simulator.defenses.apr.defense import FastGradientPerturbation
from simulator.recommenders import _sparse_sgd as sgd
from simulator.recommenders.base import ModelParams
from simulator.recommenders.bpr import BPR
from simulator.recommenders.factor_model import FactorModel
from simulator.recommenders.mf import MF
from simulator.world.base import Interactions

N_USERS, N_ITEMS, N_FEATURES, N_COLD = 300, 120, 6, 20
CPU = torch.device("cpu")

Loss = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


class Planted:
    """Genre-like item flags that alone explain the users' tastes; `cold` items have no
    training rows (all their rows are in the `*_cold` tables)."""

    def __init__(self, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        feats = np.zeros((N_ITEMS, N_FEATURES), np.float32)
        feats[np.arange(N_ITEMS), rng.integers(0, N_FEATURES, N_ITEMS)] = 1.0
        second = np.flatnonzero(rng.random(N_ITEMS) < 0.4)
        feats[second, rng.integers(0, N_FEATURES, len(second))] = 1.0
        self.features = feats
        affinity = rng.normal(size=(N_USERS, N_FEATURES)) @ feats.T
        self.cold = np.sort(rng.choice(N_ITEMS, N_COLD, replace=False))
        is_cold = np.isin(np.arange(N_ITEMS), self.cold)

        # Ratings: 30 uniformly chosen items per user, rated by the planted affinity.
        per_user = 30
        items = np.concatenate(
            [rng.choice(N_ITEMS, per_user, replace=False) for _ in range(N_USERS)]
        )
        users = np.repeat(np.arange(N_USERS), per_user)
        raw = 3.0 + 0.8 * affinity[users, items] + rng.normal(0, 0.3, len(users))
        rated = _table(users, items, np.clip(np.round(raw), 1, 5))
        self.ratings, self.ratings_cold = (
            rated.subset(~is_cold[items]),
            rated.subset(is_cold[items]),
        )

        # Choices: 25 items per user by the same affinity (Gumbel top-k).
        gumbel = -np.log(-np.log(rng.random(affinity.shape)))
        chosen = np.argsort(-(2.0 * affinity + gumbel), axis=1)[:, :25].ravel()
        picked = _table(np.repeat(np.arange(N_USERS), 25), chosen, np.ones(len(chosen)))
        self.choices, self.choices_cold = (
            picked.subset(~is_cold[chosen]),
            picked.subset(is_cold[chosen]),
        )


def _table(users: np.ndarray, items: np.ndarray, ratings: np.ndarray) -> Interactions:
    return Interactions(
        users.astype(np.int64),
        items.astype(np.int64),
        ratings.astype(np.float32),
        np.arange(len(users), dtype=np.int64),
    )


@pytest.fixture(scope="module")
def planted() -> Planted:
    return Planted()


def _bpr(seed: int = 0, **kw: float | int | None) -> BPR:
    params = {"factors": 8, "batch_size": 512, **kw}
    return BPR(N_USERS, N_ITEMS, ModelParams(**params), CPU, seed)  # type: ignore[arg-type]


def _mf(seed: int = 0, **kw: float | int | None) -> MF:
    params = {"factors": 8, "batch_size": 512, **kw}
    return MF(N_USERS, N_ITEMS, ModelParams(**params), CPU, seed)  # type: ignore[arg-type]


def _data(model: FactorModel, planted: Planted) -> Interactions:
    return planted.ratings if model.predicts_ratings else planted.choices


def _weights(model: FactorModel) -> np.ndarray:
    weights = model.item_feature_weights()
    assert weights is not None
    return weights


def _fitted(make: Callable[..., FactorModel], planted: Planted, epochs: int = 10) -> FactorModel:
    model = make()
    model.set_item_features(planted.features)
    assert model.fit(_data(model, planted), epochs).diverged is None
    return model


# -- one batch against dense float64 autograd ---------------------------------------------------
def _reference(
    table: torch.Tensor,
    bias: torch.Tensor,
    weights: torch.Tensor,
    loss: Loss,
    apr: FastGradientPerturbation | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients of L (or of L(T) + weight * L(T + D) with APR, D from the per-row gradient
    of L on the whole table) with respect to dense float64 table, bias and W; and D (zero
    without APR)."""
    t = table.double().requires_grad_()
    b = bias.double().requires_grad_()
    w = weights.double().requires_grad_()
    total = loss(t, b, w)
    delta = torch.zeros_like(t)
    if apr is not None:
        (gamma,) = torch.autograd.grad(loss(t, b, w), t)
        delta = apr.epsilon * gamma / gamma.norm(dim=1, keepdim=True).clamp_min(APR_NORM_FLOOR)
        total = total + apr.weight * loss(t + delta, b, w)
    grad_t, grad_b, grad_w = torch.autograd.grad(total, [t, b, w])
    return grad_t, grad_b, grad_w, delta


def _vectors(t: torch.Tensor, w: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    """Dense v = q + F W over all items (float64)."""
    return t[N_USERS:] + features.double() @ w


@pytest.mark.parametrize("apr", [None, FastGradientPerturbation(0.3, 0.7)])
def test_bpr_feature_step_matches_dense_autograd(planted, apr) -> None:
    lr, reg = 0.1, 0.05
    model = _fitted(lambda: _bpr(lr=lr, reg=reg), planted, epochs=3)
    assert np.abs(_weights(model)).max() > 1e-2  # W is non-zero, so f W enters the check
    pairs = sgd.PairIndex(planted.choices, N_USERS, N_ITEMS, CPU)
    batch = next(sgd.epoch_batches(pairs, 8, model.generator))
    plan = model._plan(pairs, batch)
    table, bias = model.table.clone(), model.bias.clone()
    weights = torch.as_tensor(_weights(model))
    loss = model._gathered_apply(plan, batch.user, apr)

    features = torch.as_tensor(planted.features)
    u = batch.user
    i, j = plan.columns.view(-1, 2).unbind(1)

    def bpr_loss(t: torch.Tensor, b: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        v = _vectors(t, w, features)
        x = (t[u] * (v[i - N_USERS] - v[j - N_USERS])).sum(1) + b[i] - b[j]
        return torch.nn.functional.softplus(-x).sum()

    grad_t, grad_b, grad_w, _ = _reference(table, bias, weights, bpr_loss, apr)
    counts = torch.bincount(torch.cat([u, i, j]), minlength=len(table)).double()
    decay = (1 - lr * reg) ** counts
    expected_t = decay[:, None] * table.double() - lr * grad_t
    expected_b = decay * bias.double() - lr * grad_b
    expected_w = (1 - lr * reg) * weights.double() - lr * grad_w
    torch.testing.assert_close(model.table.double(), expected_t, atol=2e-6, rtol=1e-5)
    torch.testing.assert_close(model.bias.double(), expected_b, atol=2e-6, rtol=1e-5)
    new_w = torch.as_tensor(_weights(model)).double()
    torch.testing.assert_close(new_w, expected_w, atol=2e-6, rtol=1e-5)
    clean = bpr_loss(table.double(), bias.double(), weights.double())
    torch.testing.assert_close(float(loss), float(clean))
    assert float((new_w - weights.double()).abs().max()) > 1e-3  # the step did move W


@pytest.mark.parametrize("apr", [None, (0.2, 1.5)])
def test_mf_feature_fit_of_one_batch_matches_dense_autograd(planted, apr) -> None:
    """A warm fit of one epoch in one batch (batch larger than the table) is one step."""
    lr, reg = 0.05, 0.05
    data = planted.ratings
    model = _fitted(lambda: _mf(lr=lr, reg=reg, batch_size=len(data)), planted, epochs=6)
    assert np.abs(_weights(model)).max() > 1e-2
    if apr is not None:
        model.set_perturbation(FastGradientPerturbation(*apr))
    table, bias = model.table.clone(), model.bias.clone()
    weights = torch.as_tensor(_weights(model))
    report = model.fit(data, 1, warm_start=True)

    features = torch.as_tensor(planted.features).double()
    u = torch.as_tensor(data.user)
    i = torch.as_tensor(data.item)
    rating, mu = torch.as_tensor(data.rating).double(), model.offset

    def mf_loss(t: torch.Tensor, b: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        v = _vectors(t, w, features)
        predicted = (t[u] * v[i]).sum(1) + b[u] + b[i + N_USERS] + mu
        return 0.5 * (rating - predicted).square().sum()

    settings = None if apr is None else FastGradientPerturbation(*apr)
    grad_t, grad_b, grad_w, delta = _reference(table, bias, weights, mf_loss, settings)
    # Damping 1 / (1 + lr * curvature): per row the summed |other vector|^2 of its samples
    # plus weight times the perturbed ones, per bias its count times (1 + weight), per row k
    # of W sum_s f_ik^2 (|p_u|^2 + weight |p_u + delta_u|^2).
    weight = 0.0 if settings is None else settings.weight
    p, v = table.double()[u], _vectors(table.double(), weights.double(), features)[i]
    user_sq = p.square().sum(1) + weight * (p + delta[u]).square().sum(1)
    item_sq = v.square().sum(1) + weight * (v + delta[i + N_USERS]).square().sum(1)
    rows = torch.cat([u, i + N_USERS])
    curvature = torch.zeros(len(table), dtype=torch.float64).index_add_(
        0, rows, torch.cat([item_sq, user_sq])
    )
    counts = torch.bincount(rows, minlength=len(table)).double()
    row_damping = 1 / (1 + lr * curvature)
    bias_damping = 1 / (1 + lr * (1 + weight) * counts)
    weights_damping = 1 / (1 + lr * (features[i].square().t() @ user_sq))
    decay = (1 - lr * reg) ** counts
    expected_t = decay[:, None] * table.double() - lr * row_damping[:, None] * grad_t
    expected_b = decay * bias.double() - lr * bias_damping * grad_b
    expected_w = (1 - lr * reg) * weights.double() - lr * weights_damping[:, None] * grad_w
    assert report.epochs == 1 and report.diverged is None
    torch.testing.assert_close(model.table.double(), expected_t, atol=2e-6, rtol=1e-5)
    torch.testing.assert_close(model.bias.double(), expected_b, atol=2e-6, rtol=1e-5)
    new_w = torch.as_tensor(_weights(model)).double()
    torch.testing.assert_close(new_w, expected_w, atol=2e-6, rtol=1e-5)
    assert float((new_w - weights.double()).abs().max()) > 1e-4
    expected_loss = 2 * float(mf_loss(table.double(), bias.double(), weights.double())) / len(data)
    assert report.losses[0] == pytest.approx(expected_loss, rel=1e-5)


# -- no features: the plain model, bit for bit ----------------------------------------------------
@pytest.mark.parametrize("make", [_bpr, _mf])
def test_without_features_the_model_is_bit_identical_to_plain(make, planted) -> None:
    data = _data(make(), planted)
    plain = make()
    plain.fit(data, 5)
    cleared = make()
    cleared.set_item_features(planted.features)
    cleared.fit(data, 3)
    cleared.set_item_features(None)
    assert cleared.item_features() is None and cleared.item_feature_weights() is None
    cleared.fit(data, 5)  # a cold start: plain training again
    assert torch.equal(cleared.table, plain.table) and torch.equal(cleared.bias, plain.bias)
    users = torch.arange(N_USERS)
    assert torch.equal(cleared.score(users), plain.score(users))
    np.testing.assert_array_equal(cleared.item_embeddings(), plain.item_embeddings())
    np.testing.assert_array_equal(
        cleared.predict(data.user, data.item), plain.predict(data.user, data.item)
    )


@pytest.mark.parametrize("make", [_bpr, _mf])
def test_new_features_start_w_at_zero_and_leave_scores_unchanged(make, planted) -> None:
    model = make()
    model.fit(_data(model, planted), 3)
    users = torch.arange(N_USERS)
    before = model.score(users)
    model.set_item_features(planted.features)
    np.testing.assert_array_equal(_weights(model), np.zeros((N_FEATURES, 8), np.float32))
    torch.testing.assert_close(model.score(users), before, atol=0, rtol=0)
    np.testing.assert_array_equal(model.item_features(), planted.features)


# -- features carry signal to cold items -----------------------------------------------------------
def _cold_auc(model: FactorModel, planted: Planted) -> float:
    """Mean over users of the AUC of their held-out cold items among all cold items."""
    scores = model.score(torch.arange(N_USERS)).numpy()[:, planted.cold]
    positive = np.zeros((N_USERS, N_ITEMS), bool)
    positive[planted.choices_cold.user, planted.choices_cold.item] = True
    positive = positive[:, planted.cold]
    aucs = []
    for user in np.flatnonzero(positive.any(1) & ~positive.all(1)):
        pos = scores[user, positive[user]][:, None]
        neg = scores[user, ~positive[user]][None, :]
        aucs.append(float(np.mean((pos > neg) + 0.5 * (pos == neg))))
    return float(np.mean(aucs))


def test_features_rank_cold_items_for_bpr(planted) -> None:
    plain = _bpr()
    plain.fit(planted.choices, 30)
    with_features = _fitted(_bpr, planted, epochs=30)
    auc_plain, auc_features = _cold_auc(plain, planted), _cold_auc(with_features, planted)
    assert auc_plain < 0.62
    assert auc_features > 0.78 and auc_features > auc_plain + 0.15, (auc_plain, auc_features)


def test_features_predict_cold_items_for_mf(planted) -> None:
    cold = planted.ratings_cold
    plain = _mf()
    plain.fit(planted.ratings, 30)
    with_features = _fitted(_mf, planted, epochs=30)
    mae_plain = float(np.abs(plain.predict(cold.user, cold.item) - cold.rating).mean())
    mae_features = float(np.abs(with_features.predict(cold.user, cold.item) - cold.rating).mean())
    mean_only = float(np.abs(plain.offset - cold.rating).mean())
    assert mae_plain > 0.9 * mean_only  # without features a cold item is a guess
    assert mae_features < 0.65 * mae_plain, (mae_plain, mae_features)


# -- changing features, replacing item vectors ---------------------------------------------------
@pytest.mark.parametrize("make", [_bpr, _mf])
def test_changing_one_items_features_moves_only_its_scores(make, planted) -> None:
    model = _fitted(make, planted, epochs=5)
    users = torch.arange(N_USERS)
    weights, embeddings, before = _weights(model), model.item_embeddings(), model.score(users)
    target = int(planted.cold[0])
    changed = planted.features.copy()
    changed[target] = 1.0 - changed[target]
    model.set_item_features(changed)
    after = model.score(users)
    others = np.setdiff1d(np.arange(N_ITEMS), [target])
    assert torch.equal(after[:, others], before[:, others])
    assert float((after[:, target] - before[:, target]).abs().max()) > 1e-3
    np.testing.assert_array_equal(_weights(model), weights)  # W is kept
    moved = model.item_embeddings()
    np.testing.assert_array_equal(moved[others], embeddings[others])
    expected = embeddings[target] + (changed[target] - planted.features[target]) @ weights
    np.testing.assert_allclose(moved[target], expected, atol=1e-6)
    pair = model.predict(np.array([3]), np.array([target]))
    np.testing.assert_allclose(pair, after[3, target].numpy()[None], atol=1e-6)


@pytest.mark.parametrize("make", [_bpr, _mf])
def test_set_item_embeddings_round_trips_with_features(make, planted) -> None:
    model = _fitted(make, planted, epochs=5)
    weights = _weights(model)
    wanted = np.random.default_rng(3).normal(0, 0.5, (N_ITEMS, 8)).astype(np.float32)
    model.set_item_embeddings(wanted)
    np.testing.assert_allclose(model.item_embeddings(), wanted, atol=1e-6)
    np.testing.assert_array_equal(_weights(model), weights)
    q = model.table[N_USERS:].numpy()
    np.testing.assert_allclose(q, wanted - planted.features @ weights, atol=1e-6)
    users = torch.arange(N_USERS)
    expected = model.table[:N_USERS].numpy() @ wanted.T + model.item_biases()
    if model.predicts_ratings:
        expected = np.clip(expected + model.user_biases()[:, None] + model.offset, 1, 5)
    np.testing.assert_allclose(model.score(users).numpy(), expected, atol=1e-5)


# -- validation ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "features",
    [
        np.zeros(N_ITEMS),
        np.zeros((N_ITEMS - 1, 3)),
        np.zeros((N_ITEMS, 0)),
        np.zeros((N_ITEMS, 3, 1)),
        np.array([["a"] * 3] * N_ITEMS),
    ],
)
def test_bad_feature_shapes_raise(features) -> None:
    model = _bpr()
    with pytest.raises(ValueError, match=rf"shape \(n_items={N_ITEMS}, f\)"):
        model.set_item_features(features)
    assert model.item_features() is None


@pytest.mark.parametrize("bad", [np.nan, np.inf, 1e39])
def test_non_finite_features_raise(bad) -> None:
    model = _mf()
    features = np.ones((N_ITEMS, 3))
    features[5, 1] = bad
    with pytest.raises(ValueError, match="finite"):
        model.set_item_features(features)
    assert model.item_features() is None


def test_a_new_feature_width_starts_a_new_w(planted) -> None:
    model = _fitted(_mf, planted, epochs=3)
    model.set_item_features(planted.features * 2.0)  # same width: W kept
    assert np.abs(_weights(model)).max() > 1e-2
    model.set_item_features(planted.features[:, :4])
    np.testing.assert_array_equal(_weights(model), np.zeros((4, 8), np.float32))


# -- determinism, warm and cold starts, divergence -------------------------------------------------
@pytest.mark.parametrize("make", [_bpr, _mf])
def test_fits_with_features_are_deterministic(make, planted) -> None:
    first, second = _fitted(make, planted, epochs=4), _fitted(make, planted, epochs=4)
    assert torch.equal(first.table, second.table) and torch.equal(first.bias, second.bias)
    np.testing.assert_array_equal(_weights(first), _weights(second))
    other = _fitted(lambda: make(seed=1), planted, epochs=4)
    assert not np.array_equal(_weights(first), _weights(other))


def test_warm_starts_keep_w_and_cold_starts_reset_it(planted) -> None:
    model = _fitted(_bpr, planted, epochs=3)
    weights = _weights(model)
    model.fit(planted.choices, 0, warm_start=True)
    np.testing.assert_array_equal(_weights(model), weights)
    model.fit(planted.choices, 2, warm_start=True)
    assert not np.array_equal(_weights(model), weights)
    model.fit(planted.choices, 0)
    np.testing.assert_array_equal(_weights(model), np.zeros_like(weights))
    restarted = _fitted(_bpr, planted, epochs=3)
    restarted.fit(planted.choices, 3)  # a cold start repeats the first fit exactly
    np.testing.assert_array_equal(_weights(restarted), weights)


def test_divergence_rolls_back_w(planted) -> None:
    model = _fitted(_bpr, planted, epochs=3)
    table, bias, weights = model.table.clone(), model.bias.clone(), _weights(model)
    model.lr, model.reg = 1e4, 0.0  # steps that blow every touched row up
    report = model.fit(planted.choices, 3, warm_start=True)
    assert report.diverged is not None and report.epochs == 1
    assert torch.equal(model.table, table) and torch.equal(model.bias, bias)
    np.testing.assert_array_equal(_weights(model), weights)


def test_divergence_check_covers_item_vectors(planted) -> None:
    """Huge features blow up v_i = q_i + f_i W while every table row stays small."""
    model = _fitted(_mf, planted, epochs=3)
    model.set_item_features(planted.features * 1e5)
    report = model.fit(planted.ratings, 1, warm_start=True)
    assert report.diverged is not None and "row norm" in report.diverged


# -- features with APR and with the attribute adversary -------------------------------------------
@pytest.mark.parametrize("make", [_bpr, _mf])
def test_apr_trains_with_features(make, planted) -> None:
    model = make()
    model.set_item_features(planted.features)
    model.set_perturbation(FastGradientPerturbation(0.1, 0.5))
    report = model.fit(_data(model, planted), 8)
    assert report.diverged is None and report.losses[-1] < 0.8 * report.losses[0]
    assert np.abs(_weights(model)).max() > 1e-2


@pytest.mark.parametrize("make", [_bpr, _mf])
def test_adversary_of_weight_zero_leaves_the_feature_model_unchanged(make, planted) -> None:
    plain = _fitted(make, planted, epochs=4)
    watched = make()
    watched.set_item_features(planted.features)
    labels = np.arange(N_USERS) % 2
    watched.set_adversary(AttributeAdversary({"gender": labels}, weight=0.0, head_steps=1))
    watched.fit(_data(watched, planted), 4)
    assert torch.equal(watched.table, plain.table)
    np.testing.assert_array_equal(_weights(watched), _weights(plain))
    defended = make()
    defended.set_item_features(planted.features)
    defended.set_adversary(AttributeAdversary({"gender": labels}, weight=1.0, head_steps=1))
    assert defended.fit(_data(defended, planted), 4).diverged is None
    assert not torch.equal(defended.table[:N_USERS], plain.table[:N_USERS])
