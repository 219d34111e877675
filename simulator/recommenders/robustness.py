"""How much a worst-case (FGSM) perturbation of the embeddings hurts a factor model's ranking:
the robustness measure behind adversarial personalised ranking (He et al., SIGIR 2018)."""

from __future__ import annotations

import math

import numpy as np
import torch

from simulator.recommenders import _sparse_sgd as sgd
from simulator.recommenders.factor_model import FactorModel

# Floor on a gradient row's norm when it is normalised into a perturbation (as APR's).
APR_NORM_FLOOR = 1e-6

# Pairs are scored against the whole catalogue in chunks of about this many scores.
_CHUNK_SCORES = 1 << 22


def _checked_pairs(
    model: FactorModel, users: np.ndarray, items: np.ndarray
) -> tuple[torch.Tensor, torch.Tensor]:
    u = np.asarray(users)
    i = np.asarray(items)
    if u.ndim != 1 or i.ndim != 1 or len(u) != len(i) or len(u) == 0:
        raise ValueError(
            f"users and items must be non-empty 1-d arrays of equal length, got shapes "
            f"{u.shape} and {i.shape}"
        )
    if not (np.issubdtype(u.dtype, np.integer) and np.issubdtype(i.dtype, np.integer)):
        raise ValueError("users and items must hold integer indices")
    if int(u.min()) < 0 or int(u.max()) >= model.n_users:
        raise ValueError(f"users must lie in [0, {model.n_users})")
    if int(i.min()) < 0 or int(i.max()) >= model.n_items:
        raise ValueError(f"items must lie in [0, {model.n_items})")
    if model.n_items < 2:
        raise ValueError(f"the model needs at least 2 items to rank, has {model.n_items}")
    device = model.device
    return (
        torch.as_tensor(u, dtype=torch.int64, device=device),
        torch.as_tensor(i, dtype=torch.int64, device=device),
    )


def _objective_sum(
    p: torch.Tensor, q: torch.Tensor, item_bias: torch.Tensor, items: torch.Tensor
) -> torch.Tensor:
    """Sum over pairs k and items j != items[k] of log sigmoid(x_k,items[k] - x_k,j)."""
    scores = p @ q.t() + item_bias
    diff = scores.gather(1, items.unsqueeze(1)) - scores
    log_sig = torch.nn.functional.logsigmoid(diff)
    return log_sig.sum() - log_sig.gather(1, items.unsqueeze(1)).sum()  # drop j == i


def _objective(
    model: FactorModel,
    users: torch.Tensor,
    items: torch.Tensor,
    user_delta: torch.Tensor | None = None,
    item_delta: torch.Tensor | None = None,
    with_gradient: bool = False,
) -> tuple[float, torch.Tensor | None, torch.Tensor | None]:
    """The mean ranking objective, in float64, optionally with its gradient per pair's user
    row (len(users), d) and per item row (n_items, d). Deltas are added to the factors."""
    table = model.table.detach().to(torch.float64)
    item_bias = model.bias[model.n_users :].detach().to(torch.float64)
    q = table[model.n_users :].clone()
    if item_delta is not None:
        q += item_delta
    q.requires_grad_(with_gradient)
    n_pairs = len(users)
    denominator = n_pairs * (model.n_items - 1)
    chunk = max(1, _CHUNK_SCORES // model.n_items)
    total = 0.0
    user_grads: list[torch.Tensor] = []
    item_grad = torch.zeros_like(q) if with_gradient else None
    for start in range(0, n_pairs, chunk):
        stop = min(start + chunk, n_pairs)
        p = table.index_select(0, users[start:stop])
        if user_delta is not None:
            p += user_delta[start:stop]
        p.requires_grad_(with_gradient)
        with torch.set_grad_enabled(with_gradient):
            value = _objective_sum(p, q, item_bias, items[start:stop]) / denominator
            if with_gradient:
                grad_p, grad_q = torch.autograd.grad(value, [p, q])
                user_grads.append(grad_p)
                assert item_grad is not None
                item_grad += grad_q
        total += float(value.detach())
    return total, (torch.cat(user_grads) if with_gradient else None), item_grad


def fgsm_deltas(
    model: FactorModel, users: np.ndarray, items: np.ndarray, epsilon: float
) -> tuple[np.ndarray, np.ndarray]:
    """The FGSM perturbation against `ranking_objective`: for every user row and item row,
    epsilon times the normalised gradient of the loss (minus the objective) with respect to
    that row. Returns (user deltas (n_users, d), item deltas (n_items, d)); rows the
    objective does not read stay 0."""
    u, i = _checked_pairs(model, users, items)
    epsilon = _checked_epsilon(epsilon)
    user_delta, item_delta = _fgsm(model, u, i, epsilon)
    groups = sgd.RowGroups.of(u)
    first = groups.order.index_select(0, groups.offsets[:-1])  # one pair of each user
    full_users = torch.zeros(model.n_users, model.factors, dtype=torch.float64)
    full_users[groups.rows.cpu()] = user_delta.index_select(0, first).cpu()
    return full_users.numpy(), item_delta.cpu().numpy()


def _fgsm(
    model: FactorModel, users: torch.Tensor, items: torch.Tensor, epsilon: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pair user deltas (len(users), d) and item deltas (n_items, d), in float64."""
    _, user_grad, item_grad = _objective(model, users, items, with_gradient=True)
    assert user_grad is not None and item_grad is not None
    groups = sgd.RowGroups.of(users)
    # The attacker ascends the loss, i.e. descends the objective: minus its gradient.
    user_rows = torch.nn.functional.normalize(-groups.sum(user_grad), dim=1, eps=APR_NORM_FLOOR)
    item_rows = torch.nn.functional.normalize(-item_grad, dim=1, eps=APR_NORM_FLOOR)
    return user_rows.mul_(epsilon).index_select(0, groups.inverse), item_rows.mul_(epsilon)


def _checked_epsilon(epsilon: float) -> float:
    epsilon = float(epsilon)
    if not (math.isfinite(epsilon) and epsilon >= 0.0):
        raise ValueError(f"epsilon must be a finite number >= 0, got {epsilon}")
    return epsilon


def ranking_objective(model: FactorModel, users: np.ndarray, items: np.ndarray) -> float:
    """Mean over the (user, item) pairs and over every other item j of
    log sigmoid(x_ui - x_uj): BPR's objective on the whole catalogue, a smooth AUC (0 is
    perfect). x is the model's unclipped score; user terms and global offsets cancel."""
    u, i = _checked_pairs(model, users, items)
    return _objective(model, u, i)[0]


def _pair_auc(
    model: FactorModel,
    users: torch.Tensor,
    items: torch.Tensor,
    user_delta: torch.Tensor | None = None,
    item_delta: torch.Tensor | None = None,
) -> float:
    """Mean over pairs of the fraction of other items scored strictly below the pair's item
    (ties count against the model), with optional deltas added to the factors."""
    table = model.table.detach().to(torch.float64)
    item_bias = model.bias[model.n_users :].detach().to(torch.float64)
    q = table[model.n_users :].clone()
    if item_delta is not None:
        q += item_delta
    chunk = max(1, _CHUNK_SCORES // model.n_items)
    below = 0
    for start in range(0, len(users), chunk):
        stop = min(start + chunk, len(users))
        p = table.index_select(0, users[start:stop])
        if user_delta is not None:
            p += user_delta[start:stop]
        scores = p @ q.t() + item_bias
        below += int((scores < scores.gather(1, items[start:stop].unsqueeze(1))).sum())
    return below / (len(users) * (model.n_items - 1))


def pairwise_auc(model: FactorModel, users: np.ndarray, items: np.ndarray) -> float:
    """Mean over the (user, item) pairs of the fraction of the other items the model scores
    strictly below the pair's item (full-catalogue AUC; known positives are not excluded)."""
    u, i = _checked_pairs(model, users, items)
    return _pair_auc(model, u, i)


def adversarial_score_drop(
    model: FactorModel, users: np.ndarray, items: np.ndarray, epsilon: float
) -> float:
    """How much `pairwise_auc` on the given (user, item) pairs (e.g. held-out positives)
    falls when every user and item embedding row is moved by the FGSM perturbation of L2
    norm `epsilon` (per row, biases untouched) built against `ranking_objective` on the
    same pairs. The model is not changed.

    The drop is measured in ranking (the share of item pairs that flip), not in the
    log-sigmoid objective itself: the objective's drop grows with the embeddings' scale on
    misranked pairs, so a model with larger norms would look less robust even when fewer of
    its rankings flip.
    """
    u, i = _checked_pairs(model, users, items)
    epsilon = _checked_epsilon(epsilon)
    if epsilon == 0.0:
        return 0.0
    user_delta, item_delta = _fgsm(model, u, i, epsilon)
    return _pair_auc(model, u, i) - _pair_auc(model, u, i, user_delta, item_delta)
