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

`perturb_items` works on dot-product models in closed form. `perturb_item_parameters` is the
same attack on any model whose items own a parameter row (MetaMF's row of the L generator):
it takes the segment's scores as a differentiable function of the owned rows and follows the
gradient through autograd, with the same methods, norms, objectives and per-item budget,
which then bounds the change of each owned item's own parameter row.
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
PairScores = Callable[[torch.Tensor], torch.Tensor]  # delta -> (n_segment, n_owned) scores


def _dot_scores(
    users: torch.Tensor, items: torch.Tensor, bias: torch.Tensor, owned: np.ndarray,
    segment: np.ndarray,
) -> PairScores:
    """s(u, i) = p_u . (q_i + delta_i) + b_i for segment users and owned items."""
    seg_users, owned_items, owned_bias = users[segment], items[owned], bias[owned]

    def scores(delta: torch.Tensor) -> torch.Tensor:
        return seg_users @ (owned_items + delta).T + owned_bias

    return scores


def _mean_objective(scores: PairScores) -> Objective:
    """Mean score over segment users and owned items."""

    def objective(delta: torch.Tensor) -> torch.Tensor:
        return scores(delta).mean()

    return objective


def _share_objective(
    scores: PairScores,
    clean: torch.Tensor,
    owned: np.ndarray,
    seen: torch.Tensor | None,
    k: int,
    tau: float | None,
) -> Objective:
    """mean over unseen (segment user, owned item) pairs of sigmoid((s - s_k) / tau), from the
    segment's clean scores of every item (`clean`, n_segment x n_items) and, optionally, what
    each segment user has seen (same shape)."""
    if tau is None:
        spread = float(clean.std())
        tau = spread if spread > 0.0 else 1.0
    competitors = clean.clone()
    competitors[:, owned] = -math.inf
    valid = torch.ones(len(clean), len(owned), dtype=torch.bool)
    if seen is not None:
        competitors.masked_fill_(seen, -math.inf)
        valid = ~seen[:, owned]
    if not bool(valid.any()):
        raise ValueError("seen: every segment user has already seen every owned item")
    threshold = torch.topk(competitors, k, dim=1).values[:, k - 1 : k]  # (n_segment, 1)
    weight = valid.to(clean.dtype) / valid.sum()

    def objective(delta: torch.Tensor) -> torch.Tensor:
        return (torch.sigmoid((scores(delta) - threshold) / tau) * weight).sum()

    return objective


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
    """The smooth top-k share of the dot-product scores."""
    clean = users[segment] @ items.T + bias  # (n_segment, n_items)
    seg_seen = None if seen is None else torch.from_numpy(seen[segment])
    return _share_objective(
        _dot_scores(users, items, bias, owned, segment), clean, owned, seg_seen, k, tau
    )


def _gradient(objective: Objective, delta: torch.Tensor) -> torch.Tensor:
    point = delta.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(objective(point), point)
    return grad


def _ascend(
    target: Objective, delta: torch.Tensor, eps: float, method: str, steps: int, alpha: float,
    norm: str,
) -> tuple[torch.Tensor, int]:
    """FGSM or PGD from `delta` (zeros); returns the perturbation and the steps taken."""
    if method == "fgsm":
        return eps * _direction(_gradient(target, delta), norm), 1
    for _ in range(steps):
        delta = _project(delta + alpha * _direction(_gradient(target, delta), norm), eps, norm)
    return delta, steps


def _check_settings(
    epsilon: float, method: str, steps: int, norm: str, step_size: float | None,
    objective: str, tau: float | None,
) -> tuple[float, float, float | None]:
    """Checks shared by both entry points; returns (epsilon, step size, tau)."""
    eps = _check_positive("epsilon", epsilon)
    _check_choice("method", method, METHODS)
    _check_choice("norm", norm, NORMS)
    _check_choice("objective", objective, OBJECTIVES)
    if method == "pgd" and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1):
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    alpha = (
        PGD_STEP_FACTOR * eps / steps if step_size is None
        else _check_positive("step_size", step_size)
    )
    return eps, alpha, None if tau is None else _check_positive("tau", tau)


def _check_k(k: int, n_items: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= n_items:
        raise ValueError(f"k must be an integer in [1, {n_items}], got {k!r}")


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
    eps, alpha, tau = _check_settings(epsilon, method, steps, norm, step_size, objective, tau)
    _check_k(k, n_items)

    # float64 keeps the sigmoid's gradient from vanishing for pairs far below the threshold
    users = torch.as_tensor(np.asarray(user_emb), dtype=torch.float64)
    items = torch.as_tensor(np.asarray(item_emb), dtype=torch.float64)
    bias = torch.as_tensor(bias_np, dtype=torch.float64)
    score = _mean_objective(_dot_scores(users, items, bias, owned_idx, segment_idx))
    target = (
        score if objective == "score"
        else _rank_objective(users, items, bias, owned_idx, segment_idx, seen_mask, k, tau)
    )
    start = torch.zeros(len(owned_idx), items.shape[1], dtype=torch.float64)
    delta, taken = _ascend(target, start, eps, method, steps, alpha, norm)

    out_dtype = np.result_type(np.asarray(item_emb).dtype, np.float32)
    delta_np = delta.numpy().astype(out_dtype)
    final = torch.from_numpy(delta_np.astype(np.float64))
    with torch.no_grad():
        before = float(score(torch.zeros_like(final)))
        after = float(score(final))
        largest = float(_row_norms(final, norm).max())
    return PerturbationResult(delta_np, before, after, largest, taken)


def perturb_item_parameters(
    score: Callable[[torch.Tensor], torch.Tensor],
    rows: np.ndarray,
    epsilon: float,
    *,
    method: str = "pgd",
    steps: int = 10,
    norm: str = "l2",
    step_size: float | None = None,
    objective: str = "score",
    owned: np.ndarray | None = None,
    clean_scores: np.ndarray | None = None,
    seen: np.ndarray | None = None,
    k: int = 10,
    tau: float | None = None,
) -> PerturbationResult:
    """Perturb the owned items' own parameter rows of any differentiable model within a
    per-item budget, with the methods, norms and objectives of `perturb_items`.

    `score(rows)` maps the owned items' rows (n_owned, width; a float64 CPU tensor) to the
    target segment's unclipped scores of those items, (n_segment, n_owned), on any device or
    dtype, differentiably; `rows` are their current rows. epsilon bounds each owned item's
    change of its own row, ||delta_i|| <= epsilon in the chosen norm, so its meaning follows
    the scale of that row: for MetaMF the row is the item's m weight rows and m biases of
    the L generator (width rank * hidden + rank), whose l2 norm differs from that of a
    factor embedding, and an l-infinity budget bounds every one of those entries.

    Objective "rank" also needs `owned` (the owned items' columns in `clean_scores`) and
    `clean_scores` (n_segment, n_items): the segment users' clean unclipped scores of every
    item, from which s_k(u) and tau are taken and held fixed; `seen` (boolean, same shape)
    marks what each segment user has already seen. The inputs are not modified; `delta` has
    the dtype of `rows` (at least float32) and score_before / score_after are the segment's
    mean score of the owned items with `rows` and with `rows + delta`.
    """
    base_np = np.asarray(rows)
    if base_np.ndim != 2 or base_np.shape[0] == 0 or base_np.shape[1] == 0:
        raise ValueError(f"rows must be a non-empty 2-D array, got shape {base_np.shape}")
    if not np.isfinite(base_np).all():
        raise ValueError("rows must be finite")
    eps, alpha, tau = _check_settings(epsilon, method, steps, norm, step_size, objective, tau)
    base = torch.as_tensor(base_np, dtype=torch.float64)

    def pair_scores(delta: torch.Tensor) -> torch.Tensor:
        return score(base + delta).to(device="cpu", dtype=torch.float64)

    mean = _mean_objective(pair_scores)
    target = mean
    if objective == "rank":
        if owned is None or clean_scores is None:
            raise ValueError("objective 'rank' needs owned and clean_scores")
        clean = torch.as_tensor(np.asarray(clean_scores), dtype=torch.float64)
        if clean.ndim != 2 or not bool(torch.isfinite(clean).all()):
            raise ValueError(
                f"clean_scores must be a finite 2-D array, got shape {tuple(clean.shape)}"
            )
        n_segment, n_items = clean.shape
        owned_idx = _check_owned(owned, n_items)
        if len(owned_idx) != len(base):
            raise ValueError(f"owned must name one item per row, got {len(owned_idx)} items "
                             f"for {len(base)} rows")
        _check_k(k, n_items)
        seen_mask = None
        if seen is not None:
            seen_mask = torch.from_numpy(_check_seen(seen, n_segment, n_items))
        target = _share_objective(pair_scores, clean, owned_idx, seen_mask, k, tau)

    start = torch.zeros_like(base)
    with torch.no_grad():
        before = pair_scores(start)
    if before.shape != (before.shape[0], len(base)) or before.shape[0] == 0:
        raise ValueError(
            f"score must return (n_segment, {len(base)}) scores, got {tuple(before.shape)}"
        )
    delta, taken = _ascend(target, start, eps, method, steps, alpha, norm)

    out_dtype = np.result_type(base_np.dtype, np.float32)
    delta_np = delta.numpy().astype(out_dtype)
    moved = base_np.astype(out_dtype) + delta_np  # the rows a caller sets
    change = torch.from_numpy(moved.astype(np.float64)) - base
    with torch.no_grad():
        after = float(pair_scores(change).mean())
        largest = float(_row_norms(change, norm).max())
    return PerturbationResult(delta_np, float(before.mean()), after, largest, taken)


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
