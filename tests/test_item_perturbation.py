"""Tests of white-box FGSM / PGD perturbation of an attacker's item embeddings."""

from __future__ import annotations

import numpy as np
import pytest

from simulator.attacks.item_perturbation import (
    PerturbationResult,
    apply_perturbation,
    perturb_items,
)

N_USERS, N_ITEMS, DIM = 300, 100, 16
OWNED = np.arange(5)


def _world(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Random users, items (owned ones shrunk so they start outside most top-10s), biases,
    and a random segment of 50 users."""
    rng = np.random.default_rng(seed)
    users = rng.normal(size=(N_USERS, DIM)).astype(np.float32)
    items = rng.normal(size=(N_ITEMS, DIM)).astype(np.float32)
    items[OWNED] *= 0.5
    bias = rng.normal(scale=0.1, size=N_ITEMS).astype(np.float32)
    segment = rng.choice(N_USERS, 50, replace=False)
    return users, items, bias, segment


def _mean_score(users: np.ndarray, items: np.ndarray, bias: np.ndarray, rows: np.ndarray) -> float:
    return float((users[rows].astype(np.float64) @ items[OWNED].T + bias[OWNED]).mean())


def _top10_share(users: np.ndarray, items: np.ndarray, bias: np.ndarray, rows: np.ndarray) -> float:
    scores = users[rows] @ items.T + bias
    top = np.argsort(-scores, axis=1, kind="stable")[:, :10]
    return float(np.isin(top, OWNED).any(axis=1).mean())


BUDGETS = {"l2": 1.5, "linf": 0.4}


@pytest.mark.parametrize("norm", ["l2", "linf"])
@pytest.mark.parametrize("method", ["fgsm", "pgd"])
def test_budget_is_respected_per_item(method: str, norm: str) -> None:
    users, items, bias, segment = _world()
    eps = BUDGETS[norm]
    result = perturb_items(users, items, bias, OWNED, segment, eps, method=method, norm=norm)
    assert isinstance(result, PerturbationResult)
    assert result.delta.shape == (len(OWNED), DIM)
    if norm == "l2":
        assert np.linalg.norm(result.delta.astype(np.float64), axis=1).max() <= eps + 1e-6
    else:
        assert np.abs(result.delta).max() <= eps + 1e-7
    assert result.norm <= eps + 1e-6
    # the score objective is linear, so the optimum sits on the boundary of every item's ball
    assert result.norm == pytest.approx(eps, rel=1e-5)
    assert result.steps == (1 if method == "fgsm" else 10)


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_both_methods_raise_the_target_score_and_pgd_matches_fgsm(norm: str) -> None:
    users, items, bias, segment = _world()
    eps = BUDGETS[norm]
    fgsm = perturb_items(users, items, bias, OWNED, segment, eps, method="fgsm", norm=norm)
    pgd = perturb_items(users, items, bias, OWNED, segment, eps, method="pgd", norm=norm)
    for result in (fgsm, pgd):
        assert result.score_after > result.score_before
        assert result.score_before == pytest.approx(_mean_score(users, items, bias, segment))
        moved = apply_perturbation(items, OWNED, result.delta)
        assert result.score_after == pytest.approx(_mean_score(users, moved, bias, segment))
    assert pgd.gain >= fgsm.gain - 1e-6


def test_fgsm_matches_the_closed_form_of_the_linear_objective() -> None:
    # d mean_score / d delta_i is the segment's mean user vector for every owned item
    users, items, bias, segment = _world(1)
    mean_user = users[segment].astype(np.float64).mean(axis=0)
    l2 = perturb_items(users, items, bias, OWNED, segment, 0.7, method="fgsm", norm="l2")
    expected = np.tile(0.7 * mean_user / np.linalg.norm(mean_user), (len(OWNED), 1))
    np.testing.assert_allclose(l2.delta, expected, atol=1e-6)
    assert l2.gain == pytest.approx(0.7 * np.linalg.norm(mean_user), rel=1e-5)
    linf = perturb_items(users, items, bias, OWNED, segment, 0.2, method="fgsm", norm="linf")
    np.testing.assert_allclose(linf.delta, np.tile(0.2 * np.sign(mean_user), (len(OWNED), 1)))


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_bigger_budget_gives_bigger_gain(norm: str) -> None:
    users, items, bias, segment = _world()
    budgets = [0.05, 0.2, 0.5, 1.0]
    gains = [
        perturb_items(users, items, bias, OWNED, segment, eps, norm=norm).gain
        for eps in budgets
    ]
    assert all(later > earlier for earlier, later in zip(gains, gains[1:], strict=False))


def test_rank_objective_puts_owned_items_into_more_top10_lists() -> None:
    users, items, bias, segment = _world()
    before = _top10_share(users, items, bias, segment)
    rank = perturb_items(
        users, items, bias, OWNED, segment, 1.5, objective="rank", k=10, steps=20
    )
    assert rank.norm <= 1.5 + 1e-6
    after = _top10_share(users, apply_perturbation(items, OWNED, rank.delta), bias, segment)
    assert after > before + 0.1
    # on the same budget, aiming at the top-10 boundary beats raising the mean score
    score = perturb_items(users, items, bias, OWNED, segment, 1.5, objective="score", steps=20)
    by_score = _top10_share(users, apply_perturbation(items, OWNED, score.delta), bias, segment)
    assert after > by_score


def test_rank_objective_skips_seen_pairs() -> None:
    users, items, bias, segment = _world()
    seen = np.zeros((N_USERS, N_ITEMS), dtype=bool)
    seen[:, OWNED] = True
    with pytest.raises(ValueError, match="seen"):
        perturb_items(users, items, bias, OWNED, segment, 1.0, objective="rank", seen=seen)
    # only owned item 0 unseen: the others get no gradient, so they do not move
    seen[:, OWNED[0]] = False
    result = perturb_items(users, items, bias, OWNED, segment, 1.0, objective="rank", seen=seen)
    assert np.linalg.norm(result.delta[0]) == pytest.approx(1.0, rel=1e-5)
    np.testing.assert_array_equal(result.delta[1:], 0.0)


def test_rank_threshold_counts_only_items_not_owned() -> None:
    # 5 other items cannot fill a top-6, so every owned item is already a sure hit there
    users, items, bias, segment = _world()
    small = items[:10]
    sure = perturb_items(users, small, bias[:10], OWNED, segment, 1.0, objective="rank", k=6)
    np.testing.assert_array_equal(sure.delta, 0.0)
    assert sure.gain == 0.0
    moving = perturb_items(users, small, bias[:10], OWNED, segment, 1.0, objective="rank", k=5)
    assert moving.gain > 0.0


def test_planted_segment_gains_more_than_the_rest() -> None:
    rng = np.random.default_rng(2)
    direction = rng.normal(size=DIM)
    direction /= np.linalg.norm(direction)
    users = rng.normal(size=(N_USERS, DIM))
    in_segment = np.zeros(N_USERS, dtype=bool)
    in_segment[rng.choice(N_USERS, 50, replace=False)] = True
    users[in_segment] += 3.0 * direction
    items = rng.normal(size=(N_ITEMS, DIM))
    result = perturb_items(users, items, None, OWNED, in_segment, 1.0)
    moved = apply_perturbation(items, OWNED, result.delta)
    gain = (users @ moved[OWNED].T - users @ items[OWNED].T).mean(axis=1)
    assert gain[in_segment].mean() > 2.0
    assert gain[in_segment].mean() > gain[~in_segment].mean() + 2.0
    # the perturbation points along the planted direction
    cosines = result.delta @ direction / np.linalg.norm(result.delta, axis=1)
    assert cosines.min() > 0.9


def test_segment_mask_and_indices_agree() -> None:
    users, items, bias, segment = _world()
    mask = np.zeros(N_USERS, dtype=bool)
    mask[segment] = True
    by_index = perturb_items(users, items, bias, OWNED, segment, 0.5, objective="rank")
    by_mask = perturb_items(users, items, bias, OWNED, mask, 0.5, objective="rank")
    np.testing.assert_allclose(by_index.delta, by_mask.delta, atol=1e-6)


def test_inputs_untouched_and_apply_moves_only_owned_rows() -> None:
    users, items, bias, segment = _world()
    copies = users.copy(), items.copy(), bias.copy()
    result = perturb_items(users, items, bias, OWNED, segment, 1.0, objective="rank")
    for original, copy in zip((users, items, bias), copies, strict=True):
        np.testing.assert_array_equal(original, copy)
    moved = apply_perturbation(items, OWNED, result.delta)
    assert moved is not items and moved.dtype == items.dtype
    np.testing.assert_array_equal(items, copies[1])
    others = np.setdiff1d(np.arange(N_ITEMS), OWNED)
    np.testing.assert_array_equal(moved[others], items[others])
    np.testing.assert_allclose(moved[OWNED], items[OWNED] + result.delta)
    assert not np.allclose(moved[OWNED], items[OWNED])


def test_deterministic() -> None:
    users, items, bias, segment = _world()
    for objective in ("score", "rank"):
        first = perturb_items(users, items, bias, OWNED, segment, 0.8, objective=objective)
        second = perturb_items(users, items, bias, OWNED, segment, 0.8, objective=objective)
        np.testing.assert_array_equal(first.delta, second.delta)
        assert (first.score_before, first.score_after, first.norm, first.steps) == (
            second.score_before, second.score_after, second.norm, second.steps
        )


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"epsilon": 0.0}, "epsilon"),
        ({"epsilon": -1.0}, "epsilon"),
        ({"epsilon": float("nan")}, "epsilon"),
        ({"owned": np.array([1, 1])}, "owned"),
        ({"owned": np.array([N_ITEMS])}, "owned"),
        ({"owned": np.array([-1])}, "owned"),
        ({"owned": np.array([], dtype=np.int64)}, "owned"),
        ({"owned": np.array([0.5])}, "owned"),
        ({"segment": np.array([], dtype=np.int64)}, "segment"),
        ({"segment": np.zeros(N_USERS, dtype=bool)}, "segment"),
        ({"segment": np.ones(3, dtype=bool)}, "segment"),
        ({"segment": np.array([N_USERS])}, "segment"),
        ({"segment": np.array([3, 3])}, "segment"),
        ({"method": "cw"}, "method"),
        ({"norm": "l1"}, "norm"),
        ({"objective": "ndcg"}, "objective"),
        ({"steps": 0}, "steps"),
        ({"step_size": 0.0}, "step_size"),
        ({"k": 0}, "k"),
        ({"k": N_ITEMS + 1}, "k"),
        ({"tau": -1.0}, "tau"),
        ({"seen": np.zeros((2, 2), dtype=bool)}, "seen"),
        ({"item_bias": np.zeros(3)}, "item_bias"),
        ({"user_emb": np.zeros((N_USERS, DIM + 1))}, "columns"),
    ],
)
def test_bad_arguments_raise(changes: dict, match: str) -> None:
    users, items, bias, segment = _world()
    kwargs = {
        "user_emb": users, "item_emb": items, "item_bias": bias, "owned": OWNED,
        "segment": segment, "epsilon": 0.5,
    }
    kwargs.update(changes)
    with pytest.raises(ValueError, match=match):
        perturb_items(**kwargs)


def test_apply_perturbation_rejects_bad_shapes() -> None:
    items = np.zeros((10, 4), dtype=np.float32)
    with pytest.raises(ValueError, match="delta"):
        apply_perturbation(items, np.array([1, 2]), np.zeros((3, 4)))
    with pytest.raises(ValueError, match="owned"):
        apply_perturbation(items, np.array([10]), np.zeros((1, 4)))
    with pytest.raises(ValueError, match="item_emb"):
        apply_perturbation(np.zeros(4), np.array([0]), np.zeros((1, 4)))
