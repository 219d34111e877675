"""White-box perturbation of an attacker's item embeddings towards a target user segment.

The attacker owns some items and may move each owned item's embedding q_i by a vector
delta_i with ||delta_i|| <= epsilon (per item, in l2 or l-infinity), to raise the latent-factor
scores s(u, i) = p_u . q_i + b_i of a target segment of users. Users, biases and every other
item stay as they are. The constant offset of rating models changes neither the gradients nor
the gains, so scores here leave it out.

Methods (the FGSM and multi-step "MSAP" perturbations of adversarial personalised ranking):

- `fgsm`: one step of size epsilon along the gradient's normalised direction at delta = 0
  (l2: g_i / ||g_i|| per owned item row; linf: sign(g_i)).
- `pgd`: `steps` steps of size `step_size` (default 2.5 * epsilon / steps) along the same
  normalised directions, starting at delta = 0, each followed by projection onto the per-item
  ball of radius epsilon (l2 ball per row, or the linf box). The last iterate is returned.

Objectives:

- `score`: the mean of s(u, i) over segment users u and owned items i. It is linear in delta,
  so FGSM already reaches its optimum over the ball and PGD ends at the same point.
- `rank`: a smooth share of (segment user, owned item) pairs in which the item reaches the
  user's top-k, mean over pairs of sigmoid((s(u, i) - s_k(u)) / tau). s_k(u) is the user's
  k-th best clean score among the items that are neither owned nor already `seen` by u (held
  fixed; -inf when fewer than k such items exist, making the pair a sure hit). Pairs whose
  item the user has seen are left out. tau defaults to the standard deviation of the
  segment's clean scores over all items, so the sigmoid's width follows the score scale.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

METHODS = ("fgsm", "pgd")
NORMS = ("l2", "linf")
OBJECTIVES = ("score", "rank")
PGD_STEP_FACTOR = 2.5  # step_size = 2.5 * epsilon / steps, as in MSAP

Objective = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class PerturbationResult:
    """A perturbation of the owned items and what it does to the segment's mean score."""

    delta: np.ndarray  # (n_owned, d), row j moves item owned[j]
    score_before: float  # mean s(u, i) over segment users and owned items, clean
    score_after: float  # the same with delta applied
    norm: float  # largest per-item norm of delta in the chosen norm
    steps: int  # gradient steps taken (1 for fgsm)

    @property
    def gain(self) -> float:
        """score_after - score_before."""
        return self.score_after - self.score_before


# -- validation --------------------------------------------------------------------------------
def _check_embeddings(
    user_emb: np.ndarray, item_emb: np.ndarray, item_bias: np.ndarray | None
) -> np.ndarray:
    """Shape checks; returns the item biases (zeros when None)."""
    user_emb, item_emb = np.asarray(user_emb), np.asarray(item_emb)
    if user_emb.ndim != 2 or user_emb.shape[0] == 0:
        raise ValueError(f"user_emb must be a non-empty 2-D array, got shape {user_emb.shape}")
    if item_emb.ndim != 2 or item_emb.shape[0] == 0:
        raise ValueError(f"item_emb must be a non-empty 2-D array, got shape {item_emb.shape}")
    if user_emb.shape[1] != item_emb.shape[1]:
        raise ValueError(
            f"user_emb and item_emb must have the same number of columns, got "
            f"{user_emb.shape[1]} and {item_emb.shape[1]}"
        )
    n_items = item_emb.shape[0]
    if item_bias is None:
        return np.zeros(n_items)
    bias = np.asarray(item_bias)
    if bias.shape != (n_items,):
        raise ValueError(f"item_bias must have shape ({n_items},), got {bias.shape}")
    return bias


def _check_owned(owned: np.ndarray, n_items: int) -> np.ndarray:
    """Owned item indices as int64: 1-D, non-empty, unique, in [0, n_items)."""
    arr = np.asarray(owned)
    if arr.ndim != 1 or arr.size == 0 or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"owned must be a non-empty 1-D integer array, got {arr!r}")
    if arr.min() < 0 or arr.max() >= n_items:
        raise ValueError(f"owned must hold item indices in [0, {n_items}), got {arr!r}")
    if np.unique(arr).size != arr.size:
        raise ValueError("owned must not repeat an item")
    return arr.astype(np.int64)


def _check_segment(segment: np.ndarray, n_users: int) -> np.ndarray:
    """Segment users as int64 indices, from indices or a boolean mask over all users."""
    arr = np.asarray(segment)
    if arr.dtype == np.bool_:
        if arr.shape != (n_users,):
            raise ValueError(f"a boolean segment must have shape ({n_users},), got {arr.shape}")
        arr = np.flatnonzero(arr)
    elif arr.ndim != 1 or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"segment must be 1-D user indices or a boolean mask, got {arr!r}")
    if arr.size == 0:
        raise ValueError("segment must select at least one user")
    if arr.min() < 0 or arr.max() >= n_users:
        raise ValueError(f"segment must hold user indices in [0, {n_users}), got {arr!r}")
    if np.unique(arr).size != arr.size:
        raise ValueError("segment must not repeat a user")
    return arr.astype(np.int64)


def _check_seen(seen: np.ndarray | None, n_users: int, n_items: int) -> np.ndarray | None:
    if seen is None:
        return None
    arr = np.asarray(seen)
    if arr.dtype != np.bool_ or arr.shape != (n_users, n_items):
        raise ValueError(
            f"seen must be a boolean array of shape ({n_users}, {n_items}), got "
            f"{arr.dtype} {arr.shape}"
        )
    return arr


def _check_positive(name: str, value: float) -> float:
    number = float(value)
    if not math.isfinite(number) or number <= 0.0:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return number


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


# -- geometry ----------------------------------------------------------------------------------
def _row_norms(delta: torch.Tensor, norm: str) -> torch.Tensor:
    if norm == "l2":
        return torch.linalg.vector_norm(delta, dim=1)
    return delta.abs().amax(dim=1)


def _direction(grad: torch.Tensor, norm: str) -> torch.Tensor:
    """The unit-norm ascent direction of each row (zero where the gradient is zero)."""
    if norm == "linf":
        return torch.sign(grad)
    length = torch.linalg.vector_norm(grad, dim=1, keepdim=True)
    return torch.where(length > 0, grad / length.clamp_min(1e-300), torch.zeros_like(grad))


def _project(delta: torch.Tensor, epsilon: float, norm: str) -> torch.Tensor:
    """Each row onto the ball of radius epsilon."""
    if norm == "linf":
        return delta.clamp(-epsilon, epsilon)
    length = torch.linalg.vector_norm(delta, dim=1, keepdim=True)
    return delta * torch.clamp(epsilon / length.clamp_min(1e-300), max=1.0)


# -- objectives --------------------------------------------------------------------------------
def _rank_objective(
    users: torch.Tensor,
    items: torch.Tensor,
    bias: torch.Tensor,
    owned: np.ndarray,
    segment: np.ndarray,
    seen: np.ndarray | None,
    k: int,
    tau: float | None,
) -> Objective:
    """mean over unseen (segment user, owned item) pairs of sigmoid((s - s_k) / tau)."""
    seg_users = users[segment]
    clean = seg_users @ items.T + bias  # (n_segment, n_items)
    if tau is None:
        spread = float(clean.std())
        tau = spread if spread > 0.0 else 1.0
    competitors = clean.clone()
    competitors[:, owned] = -math.inf
    valid = torch.ones(len(segment), len(owned), dtype=torch.bool)
    if seen is not None:
        seg_seen = torch.from_numpy(seen[segment])
        competitors.masked_fill_(seg_seen, -math.inf)
        valid = ~seg_seen[:, owned]
    if not bool(valid.any()):
        raise ValueError("seen: every segment user has already seen every owned item")
    threshold = torch.topk(competitors, k, dim=1).values[:, k - 1 : k]  # (n_segment, 1)
    owned_items, owned_bias = items[owned], bias[owned]
    weight = valid.to(clean.dtype) / valid.sum()

    def objective(delta: torch.Tensor) -> torch.Tensor:
        scores = seg_users @ (owned_items + delta).T + owned_bias
        return (torch.sigmoid((scores - threshold) / tau) * weight).sum()

    return objective


def _score_objective(
    users: torch.Tensor, items: torch.Tensor, bias: torch.Tensor, owned: np.ndarray,
    segment: np.ndarray,
) -> Objective:
    """Mean s(u, i) over segment users and owned items."""
    seg_users, owned_items, owned_bias = users[segment], items[owned], bias[owned]

    def objective(delta: torch.Tensor) -> torch.Tensor:
        return (seg_users @ (owned_items + delta).T + owned_bias).mean()

    return objective


def _gradient(objective: Objective, delta: torch.Tensor) -> torch.Tensor:
    point = delta.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(objective(point), point)
    return grad


# -- public API --------------------------------------------------------------------------------
def perturb_items(
    user_emb: np.ndarray,
    item_emb: np.ndarray,
    item_bias: np.ndarray | None,
    owned: np.ndarray,
    segment: np.ndarray,
    epsilon: float,
    *,
    method: str = "pgd",
    steps: int = 10,
    norm: str = "l2",
    step_size: float | None = None,
    objective: str = "score",
    k: int = 10,
    seen: np.ndarray | None = None,
    tau: float | None = None,
) -> PerturbationResult:
    """Perturb the owned items' embeddings within a per-item budget to raise the segment's
    scores (objective "score") or top-k hits (objective "rank"); see the module docstring.

    `segment` is user indices or a boolean mask over users; `seen` (boolean, users x items)
    and `tau` only matter for objective "rank". The inputs are not modified.
    """
    bias_np = _check_embeddings(user_emb, item_emb, item_bias)
    n_users, n_items = np.shape(user_emb)[0], np.shape(item_emb)[0]
    owned_idx = _check_owned(owned, n_items)
    segment_idx = _check_segment(segment, n_users)
    seen_mask = _check_seen(seen, n_users, n_items)
    eps = _check_positive("epsilon", epsilon)
    _check_choice("method", method, METHODS)
    _check_choice("norm", norm, NORMS)
    _check_choice("objective", objective, OBJECTIVES)
    if method == "pgd" and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1):
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= n_items:
        raise ValueError(f"k must be an integer in [1, {n_items}], got {k!r}")
    alpha = (
        PGD_STEP_FACTOR * eps / steps if step_size is None
        else _check_positive("step_size", step_size)
    )
    if tau is not None:
        tau = _check_positive("tau", tau)

    # float64 keeps the sigmoid's gradient from vanishing for pairs far below the threshold
    users = torch.as_tensor(np.asarray(user_emb), dtype=torch.float64)
    items = torch.as_tensor(np.asarray(item_emb), dtype=torch.float64)
    bias = torch.as_tensor(bias_np, dtype=torch.float64)
    score = _score_objective(users, items, bias, owned_idx, segment_idx)
    target = (
        score if objective == "score"
        else _rank_objective(users, items, bias, owned_idx, segment_idx, seen_mask, k, tau)
    )

    delta = torch.zeros(len(owned_idx), items.shape[1], dtype=torch.float64)
    if method == "fgsm":
        delta = eps * _direction(_gradient(target, delta), norm)
        taken = 1
    else:
        for _ in range(steps):
            delta = _project(delta + alpha * _direction(_gradient(target, delta), norm), eps, norm)
        taken = steps

    out_dtype = np.result_type(np.asarray(item_emb).dtype, np.float32)
    delta_np = delta.numpy().astype(out_dtype)
    final = torch.from_numpy(delta_np.astype(np.float64))
    with torch.no_grad():
        before = float(score(torch.zeros_like(final)))
        after = float(score(final))
        largest = float(_row_norms(final, norm).max())
    return PerturbationResult(delta_np, before, after, largest, taken)


def apply_perturbation(item_emb: np.ndarray, owned: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """A new item embedding matrix with row owned[j] moved by delta[j]; the rest copied."""
    items = np.asarray(item_emb)
    if items.ndim != 2:
        raise ValueError(f"item_emb must be a 2-D array, got shape {items.shape}")
    owned_idx = _check_owned(owned, items.shape[0])
    moves = np.asarray(delta)
    if moves.shape != (len(owned_idx), items.shape[1]):
        raise ValueError(
            f"delta must have shape ({len(owned_idx)}, {items.shape[1]}), got {moves.shape}"
        )
    out = items.astype(np.result_type(items.dtype, np.float32), copy=True)
    out[owned_idx] += moves
    return out
