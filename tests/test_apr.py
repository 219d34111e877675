"""Tests of adversarial personalised ranking (APR) training, the FGSM robustness measure and
item-embedding replacement."""

from __future__ import annotations

import math

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
from simulator.recommenders.registry import make_recommender
from simulator.recommenders.robustness import (
    adversarial_score_drop,
    fgsm_deltas,
    pairwise_auc,
    ranking_objective,
)
from simulator.world.base import Interactions

N_USERS, N_ITEMS, RANK = 200, 150, 4
CPU = torch.device("cpu")


def _planted(seed: int = 0) -> tuple[Interactions, Interactions]:
    """Users pick 15-29 items by a planted rank-4 affinity (Gumbel top-k); ratings follow it.
    Returns (training table, one held-out positive per user)."""
    rng = np.random.default_rng(seed)
    users_f = rng.normal(size=(N_USERS, RANK))
    items_f = rng.normal(size=(N_ITEMS, RANK))
    affinity = users_f @ items_f.T
    gumbel = -np.log(-np.log(rng.random(affinity.shape)))
    n_per_user = rng.integers(15, 30, N_USERS)
    chosen = np.argsort(-(2.0 * affinity + gumbel), axis=1)
    user = np.repeat(np.arange(N_USERS), n_per_user)
    item = np.concatenate([chosen[u, :n] for u, n in enumerate(n_per_user)])
    raw = 3.0 + 0.6 * affinity[user, item] + rng.normal(0, 0.3, len(user))
    rating = np.clip(np.round(raw), 1, 5).astype(np.float32)
    data = Interactions(user.astype(np.int64), item.astype(np.int64), rating, np.arange(len(user)))
    starts = np.concatenate([[0], np.cumsum(n_per_user)[:-1]])
    held = starts + rng.integers(0, n_per_user)
    return data.subset(np.setdiff1d(np.arange(len(data)), held)), data.subset(held)


@pytest.fixture(scope="module")
def planted() -> tuple[Interactions, Interactions]:
    return _planted()


def _bpr(seed: int = 0, **kw: float | int | None) -> BPR:
    params = {"factors": 16, "batch_size": 256, **kw}
    return BPR(N_USERS, N_ITEMS, ModelParams(**params), CPU, seed)  # type: ignore[arg-type]


def _mf(seed: int = 0, **kw: float | int | None) -> MF:
    params = {"factors": 8, "batch_size": 256, **kw}
    return MF(N_USERS, N_ITEMS, ModelParams(**params), CPU, seed)  # type: ignore[arg-type]


def _one_batch(model: FactorModel, data: Interactions, n_batches: int) -> tuple[object, sgd.Batch]:
    pairs = sgd.PairIndex(data, model.n_users, model.n_items, CPU, with_values=model.uses_values)
    batch = next(sgd.epoch_batches(pairs, n_batches, model.generator))
    return model._plan(pairs, batch), batch


def _reference_step(
    table: torch.Tensor,
    bias: torch.Tensor,
    loss: object,
    roles: list[torch.Tensor],
    epsilon: float,
    weight: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradients of L(T) + weight * L(T + D) on dense float64 parameters, D built from the
    gradient of L on the whole table, normalised per row."""
    t = table.double().requires_grad_()
    b = bias.double().requires_grad_()
    (gamma,) = torch.autograd.grad(loss(t, b), t)  # type: ignore[operator]
    norms = gamma.norm(dim=1, keepdim=True).clamp_min(APR_NORM_FLOOR)
    delta = epsilon * gamma / norms
    touched = torch.zeros(len(table), dtype=torch.bool)
    touched[torch.cat(roles)] = True
    assert torch.allclose(delta[touched].norm(dim=1), torch.tensor(epsilon, dtype=torch.float64))
    assert torch.all(delta[~touched] == 0)
    total = loss(t, b) + weight * loss(t + delta, b)  # type: ignore[operator]
    grad_t, grad_b = torch.autograd.grad(total, [t, b])
    return grad_t, grad_b


def _counts(roles: list[torch.Tensor], n_rows: int) -> torch.Tensor:
    return torch.bincount(torch.cat(roles), minlength=n_rows).double()


# -- the APR step against dense autograd ------------------------------------------------------
def test_bpr_apr_step_matches_dense_autograd(planted) -> None:
    train, _ = planted
    lr, reg, epsilon, weight = 0.1, 0.05, 0.3, 0.7
    model = _bpr(factors=8, lr=lr, reg=reg)
    model.fit(train, 2)
    model.set_perturbation(FastGradientPerturbation(epsilon, weight))
    plan, batch = _one_batch(model, train, 64)
    table, bias = model.table.clone(), model.bias.clone()
    loss = model._gathered_apply(plan, batch.user, model.perturbation)

    u = batch.user
    i, j = plan.columns.view(-1, 2).unbind(1)

    def bpr_loss(t: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        x = (t[u] * (t[i] - t[j])).sum(1) + b[i] - b[j]
        return torch.nn.functional.softplus(-x).sum()

    grad_t, grad_b = _reference_step(table, bias, bpr_loss, [u, i, j], epsilon, weight)
    decay = (1 - lr * reg) ** _counts([u, i, j], len(table))
    expected_t = decay[:, None] * table.double() - lr * grad_t
    expected_b = decay * bias.double() - lr * grad_b
    torch.testing.assert_close(model.table.double(), expected_t, atol=2e-6, rtol=1e-5)
    torch.testing.assert_close(model.bias.double(), expected_b, atol=2e-6, rtol=1e-5)
    torch.testing.assert_close(float(loss), float(bpr_loss(table.double(), bias.double())))
    assert float((model.table - table).abs().max()) > 1e-3  # the step did move the rows


def test_mf_apr_step_matches_dense_autograd(planted) -> None:
    train, _ = planted
    lr, reg, epsilon, weight = 0.05, 0.05, 0.2, 1.5
    model = _mf(lr=lr, reg=reg)
    model.fit(train, 2)
    model.set_perturbation(FastGradientPerturbation(epsilon, weight))
    plan, batch = _one_batch(model, train, 64)
    table, bias = model.table.clone(), model.bias.clone()
    model._gathered_apply(plan, batch.user, model.perturbation)

    u, i = batch.user, batch.item + N_USERS
    rating, mu = batch.value.double(), model.offset

    def half_squared_error(t: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        err = rating - ((t[u] * t[i]).sum(1) + b[u] + b[i] + mu)
        return 0.5 * err.square().sum()

    grad_t, grad_b = _reference_step(table, bias, half_squared_error, [u, i], epsilon, weight)
    # The damping of the combined objective: 1 / (1 + lr * sum |x|^2 + w |x + delta|^2).
    t = table.double().requires_grad_()
    (gamma,) = torch.autograd.grad(half_squared_error(t, bias.double()), t)
    shifted = t.detach() + epsilon * gamma / gamma.norm(dim=1, keepdim=True).clamp_min(1e-6)
    clean_sq, shifted_sq = t.detach().square().sum(1), shifted.square().sum(1)
    curvature = torch.zeros(len(table), dtype=torch.float64)
    curvature.index_add_(0, u, clean_sq[i] + weight * shifted_sq[i])
    curvature.index_add_(0, i, clean_sq[u] + weight * shifted_sq[u])
    counts = _counts([u, i], len(table))
    decay = (1 - lr * reg) ** counts
    expected_t = decay[:, None] * t.detach() - lr * grad_t / (1 + lr * curvature[:, None])
    expected_b = decay * bias.double() - lr * grad_b / (1 + lr * (1 + weight) * counts)
    torch.testing.assert_close(model.table.double(), expected_t, atol=2e-6, rtol=1e-5)
    torch.testing.assert_close(model.bias.double(), expected_b, atol=2e-6, rtol=1e-5)


@pytest.mark.parametrize("make", [_bpr, _mf])
def test_apr_with_zero_weight_follows_the_plain_step(make, planted) -> None:
    """The autograd APR path with no adversarial term is the hand-written step."""
    train, _ = planted
    plain, apr = make(), make()
    apr.set_perturbation(FastGradientPerturbation(0.5, 0.0))
    plain.fit(train, 3)
    apr.fit(train, 3)
    np.testing.assert_allclose(apr.user_embeddings(), plain.user_embeddings(), atol=1e-5)
    np.testing.assert_allclose(apr.item_embeddings(), plain.item_embeddings(), atol=1e-5)
    np.testing.assert_allclose(apr.bias.numpy(), plain.bias.numpy(), atol=1e-5)


# -- switching APR on and off -----------------------------------------------------------------
@pytest.mark.parametrize("make", [_bpr, _mf])
def test_apr_off_is_bit_identical_to_plain_training(make, planted) -> None:
    train, _ = planted
    never = make()
    cleared = make()
    cleared.set_perturbation(FastGradientPerturbation(0.5, 1.0))
    cleared.set_perturbation(None)
    zeroed = make()
    zeroed.set_perturbation(FastGradientPerturbation(0.5, 1.0))
    zeroed.set_perturbation(None)
    reports = [m.fit(train, 3) for m in (never, cleared, zeroed)]
    for model, report in zip((cleared, zeroed), reports[1:], strict=True):
        assert model.perturbation is None
        assert report.losses == reports[0].losses
        assert torch.equal(model.table, never.table) and torch.equal(model.bias, never.bias)
    with_apr = make()
    with_apr.set_perturbation(FastGradientPerturbation(0.5, 1.0))
    with_apr.fit(train, 3)
    assert not torch.equal(with_apr.table, never.table)


@pytest.mark.parametrize(
    ("epsilon", "weight", "match"),
    [
        (0.0, 1.0, "epsilon"),
        (-0.1, 1.0, "epsilon"),
        (math.nan, 1.0, "epsilon"),
        (math.inf, 1.0, "epsilon"),
        (0.5, -1.0, "weight"),
        (0.5, math.nan, "weight"),
        (0.5, math.inf, "weight"),
    ],
)
def test_bad_apr_settings_raise(epsilon, weight, match) -> None:
    model = _bpr()
    with pytest.raises(ValueError, match=match):
        model.set_perturbation(FastGradientPerturbation(epsilon, weight))
    assert model.perturbation is None


@pytest.mark.parametrize("make", [_bpr, _mf])
def test_apr_training_is_deterministic_across_thread_budgets(make, planted) -> None:
    train, _ = planted
    threads = torch.get_num_threads()
    results = []
    try:
        for budget in (1, 2, 2):  # sequential, then twice with batches prepared in a thread
            torch.set_num_threads(budget)
            model = make(seed=3)
            model.set_perturbation(FastGradientPerturbation(0.3, 1.0))
            losses = model.fit(train, 2).losses
            results.append((losses, model.table.clone(), model.bias.clone()))
    finally:
        torch.set_num_threads(threads)
    for losses, table, bias in results[1:]:
        assert losses == results[0][0]
        assert torch.equal(table, results[0][1]) and torch.equal(bias, results[0][2])
    other = make(seed=4)
    other.set_perturbation(FastGradientPerturbation(0.3, 1.0))
    other.fit(train, 2)
    assert not torch.equal(other.table, results[0][1])


# -- what APR buys ---------------------------------------------------------------------------
def test_apr_makes_bpr_more_robust_at_similar_accuracy(planted) -> None:
    """Pre-trained BPR continued plainly or by APR (eps 0.5, weight 1, as in He et al.)."""
    train, held = planted
    model = _bpr(lr=0.05)
    model.fit(train, 20)
    pretrained = model.table.clone(), model.bias.clone(), model.generator.get_state()
    drops, aucs = [], []
    for apr in (False, True):
        model.table.copy_(pretrained[0])
        model.bias.copy_(pretrained[1])
        model.generator.set_state(pretrained[2])
        if apr:
            model.set_perturbation(FastGradientPerturbation(0.5, 1.0))
        assert model.fit(train, 20, warm_start=True).diverged is None
        drops.append(adversarial_score_drop(model, held.user, held.item, 0.5))
        aucs.append(pairwise_auc(model, held.user, held.item))
    assert aucs[0] > 0.8  # the plain model learned the planted structure
    assert abs(aucs[1] - aucs[0]) < 0.02
    assert drops[0] > 0.15
    assert drops[1] < 0.85 * drops[0]


def test_mf_with_apr_trains(planted) -> None:
    train, held = planted
    model = _mf(lr=0.02)
    model.set_perturbation(FastGradientPerturbation(0.1, 1.0))
    report = model.fit(train, 25)
    assert report.diverged is None and report.epochs == 25
    assert report.losses[-1] < 0.7 * report.losses[0]
    mae = float(np.abs(model.predict(held.user, held.item) - held.rating).mean())
    baseline = float(np.abs(held.rating - train.rating.mean()).mean())
    assert mae < baseline


def test_apr_and_attribute_adversary_combine(planted) -> None:
    train, _ = planted
    codes = {"group": (np.arange(N_USERS) % 2).astype(np.int64)}

    def trained(apr: bool, adversary: bool) -> BPR:
        model = _bpr()
        if apr:
            model.set_perturbation(FastGradientPerturbation(0.3, 1.0))
        if adversary:
            model.set_adversary(AttributeAdversary(codes, weight=1.0, lr=0.05))
        report = model.fit(train, 2)
        assert report.diverged is None
        if adversary:
            assert model.adversary is not None and len(model.adversary.history) == 2
        return model

    both = trained(True, True)
    assert not torch.equal(both.table, trained(True, False).table)
    assert not torch.equal(both.table, trained(False, True).table)


# -- the robustness measure ----------------------------------------------------------------
def test_fgsm_deltas_reproduce_the_score_drop(planted) -> None:
    train, held = planted
    model = _bpr()
    model.fit(train, 20)
    users, items = held.user[:80], held.item[:80]
    before = model.table.clone()
    drop = adversarial_score_drop(model, users, items, 0.3)
    assert torch.equal(model.table, before)  # the model is not changed
    user_delta, item_delta = fgsm_deltas(model, users, items, 0.3)
    touched = np.zeros(N_USERS, dtype=bool)
    touched[users] = True
    np.testing.assert_allclose(np.linalg.norm(user_delta[touched], axis=1), 0.3, rtol=1e-6)
    assert np.all(user_delta[~touched] == 0)
    np.testing.assert_allclose(np.linalg.norm(item_delta, axis=1), 0.3, rtol=1e-6)
    clean_auc, clean_objective = (
        pairwise_auc(model, users, items),
        ranking_objective(model, users, items),
    )
    model.set_user_embeddings(model.user_embeddings() + user_delta)
    model.set_item_embeddings(model.item_embeddings() + item_delta)
    assert math.isclose(clean_auc - pairwise_auc(model, users, items), drop, abs_tol=2e-3)
    assert ranking_objective(model, users, items) < clean_objective - 0.05
    # A random perturbation of the same per-row norm hurts much less than the FGSM one.
    model.table.copy_(before)
    rng = np.random.default_rng(0)
    noise = rng.normal(size=(N_USERS + N_ITEMS, model.factors))
    noise *= 0.3 / np.linalg.norm(noise, axis=1, keepdims=True)
    model.set_user_embeddings(model.user_embeddings() + noise[:N_USERS])
    model.set_item_embeddings(model.item_embeddings() + noise[N_USERS:])
    assert clean_auc - pairwise_auc(model, users, items) < 0.5 * drop


def test_score_drop_grows_with_epsilon_and_checks_arguments(planted) -> None:
    train, held = planted
    model = _bpr()
    model.fit(train, 10)
    u, i = held.user, held.item
    drops = [adversarial_score_drop(model, u, i, e) for e in (0.0, 0.1, 0.5)]
    assert drops[0] == 0.0 and 0 < drops[1] < drops[2]
    with pytest.raises(ValueError, match="epsilon"):
        adversarial_score_drop(model, u, i, -0.1)
    with pytest.raises(ValueError, match="equal length"):
        adversarial_score_drop(model, u, i[:-1], 0.1)
    with pytest.raises(ValueError, match="users must lie"):
        adversarial_score_drop(model, u + N_USERS, i, 0.1)
    with pytest.raises(ValueError, match="items must lie"):
        pairwise_auc(model, u, i + N_ITEMS)
    with pytest.raises(ValueError, match="integer"):
        ranking_objective(model, u.astype(float), i)


def test_row_groups_sum_like_a_scatter() -> None:
    rng = np.random.default_rng(0)
    rows = torch.as_tensor(rng.integers(0, 30, 500))
    values = torch.as_tensor(rng.normal(size=(500, 3)), dtype=torch.float64)
    groups = sgd.RowGroups.of(rows)
    expected = torch.zeros(30, 3, dtype=torch.float64).index_add_(0, rows, values)
    torch.testing.assert_close(groups.sum(values), expected[groups.rows])
    assert torch.equal(groups.rows[groups.inverse], rows)
    assert torch.equal(groups.counts, torch.bincount(rows)[groups.rows])


# -- item embeddings ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["bpr", "mf"])
def test_set_item_embeddings_round_trips_and_checks_shape(name) -> None:
    model = make_recommender(name, 6, 5, ModelParams(factors=4), "cpu", 0)
    model.bias.copy_(torch.arange(11, dtype=torch.float32))
    users_before = model.user_embeddings()
    new = np.random.default_rng(0).normal(size=(5, 4))
    model.set_item_embeddings(new)
    np.testing.assert_array_equal(model.item_embeddings(), new.astype(np.float32))
    np.testing.assert_array_equal(model.user_embeddings(), users_before)
    assert torch.equal(model.bias, torch.arange(11, dtype=torch.float32))  # biases kept
    with pytest.raises(ValueError, match="item embeddings must have shape"):
        model.set_item_embeddings(new[:, :3])
    with pytest.raises(ValueError, match="item embeddings must have shape"):
        model.set_item_embeddings(new[:4])
    with pytest.raises(ValueError, match="finite"):
        model.set_item_embeddings(np.full_like(new, np.inf))
    np.testing.assert_array_equal(model.item_embeddings(), new.astype(np.float32))


def test_models_without_free_item_embeddings_refuse_to_set_them() -> None:
    options = {"user_dim": 4, "memory_dim": 8, "hidden": 8, "item_dim": 4, "rank": 2}
    model = make_recommender("metamf", 6, 5, ModelParams(options=options), "cpu", 0)
    with pytest.raises(NotImplementedError, match="metamf cannot set its item embeddings"):
        model.set_item_embeddings(model.item_embeddings())
