"""Fake-profile generators of the classic shilling (profile-injection) attacks.

A fake profile rates the target items, an attack-specific set of selected items I_S and
``filler_size`` filler items I_F drawn uniformly from the rest; every other item stays unrated.
A *push* attack gives the targets r_max = 5, a *nuke* attack gives them r_min = 1.

| kind              | I_S (rating)                          | I_F ratings                 |
|-------------------|---------------------------------------|-----------------------------|
| random            | none                                  | N(global mean, global std)  |
| average           | none                                  | N(item mean, item std)      |
| bandwagon         | most-rated items (5)                  | N(global mean, global std)  |
| segment           | the segment's liked items, given (5)  | 1                           |
| love_hate (nuke)  | none                                  | 5                           |
| reverse_bandwagon | widely known, low-mean items (1)      | N(global mean, global std)  |

Gaussian filler ratings are rounded to the nearest integer and clipped to [1, 5].
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from simulator.world.base import Interactions

ATTACK_KINDS: tuple[str, ...] = (
    "random", "average", "bandwagon", "segment", "love_hate", "reverse_bandwagon",
)
NUKE_ONLY: tuple[str, ...] = ("love_hate", "reverse_bandwagon")
INTENTS: tuple[str, ...] = ("push", "nuke")
R_MIN = 1.0
R_MAX = 5.0

# Kinds whose profiles carry selected items, and the rating those items get.
_SELECTED_RATING = {"bandwagon": R_MAX, "segment": R_MAX, "reverse_bandwagon": R_MIN}
# Bound on the random keys drawn at once when sampling fillers (rows x candidate items).
_KEY_BLOCK = 1 << 22


@dataclass(frozen=True, eq=False)
class PublicStats:
    """What an outside attacker can learn from the ratings a platform publishes.

    Knowledge each attack uses: random uses ``global_mean``/``global_std``; average uses
    ``item_mean``/``item_std``; bandwagon uses ``item_count`` (popularity) and the global
    distribution; reverse_bandwagon uses ``item_count`` and ``item_mean`` (widely known,
    disliked items) and the global distribution; segment and love_hate use only ``n_items``.
    Standard deviations are sample standard deviations (ddof = 1).
    """

    n_items: int
    item_count: np.ndarray  # int64, ratings per item
    item_mean: np.ndarray  # float64, global_mean where an item has no ratings
    item_std: np.ndarray  # float64, global_std where an item has fewer than 2 ratings
    global_mean: float
    global_std: float

    def __post_init__(self) -> None:
        if self.n_items < 1:
            raise ValueError(f"n_items must be >= 1, got {self.n_items}")
        for name in ("item_count", "item_mean", "item_std"):
            shape = np.shape(getattr(self, name))
            if shape != (self.n_items,):
                raise ValueError(f"{name} must have shape ({self.n_items},), got {shape}")

    @classmethod
    def from_ratings(cls, ratings: Interactions, n_items: int) -> PublicStats:
        """Per-item and global rating statistics of the published ``ratings``."""
        if n_items < 1:
            raise ValueError(f"n_items must be >= 1, got {n_items}")
        if len(ratings) < 2:
            raise ValueError(f"ratings must hold at least 2 rows, got {len(ratings)}")
        item = np.asarray(ratings.item, dtype=np.int64)
        if item.min() < 0 or item.max() >= n_items:
            raise ValueError(f"ratings.item must lie in [0, {n_items}), n_items={n_items}")
        value = np.asarray(ratings.rating, dtype=np.float64)
        global_mean = float(value.mean())
        global_std = float(value.std(ddof=1))

        count = np.bincount(item, minlength=n_items).astype(np.int64)
        total = np.bincount(item, weights=value, minlength=n_items)
        rated = count > 0
        mean = np.full(n_items, global_mean)
        mean[rated] = total[rated] / count[rated]
        # Deviations from the item's own mean: stable, unlike E[x^2] - E[x]^2.
        squares = np.bincount(item, weights=(value - mean[item]) ** 2, minlength=n_items)
        several = count >= 2
        std = np.full(n_items, global_std)
        std[several] = np.sqrt(squares[several] / (count[several] - 1))
        return cls(n_items, count, mean, std, global_mean, global_std)


def filler_count(filler_fraction: float, n_items: int) -> int:
    """Filler items per fake profile: ``filler_fraction`` of the catalogue, rounded, >= 1."""
    _check_fraction("filler_fraction", filler_fraction)
    if n_items < 1:
        raise ValueError(f"n_items must be >= 1, got {n_items}")
    return max(1, math.floor(filler_fraction * n_items + 0.5))


def profile_count(attack_fraction: float, n_genuine: int) -> int:
    """Fake profiles to inject: ``attack_fraction`` of the genuine users, rounded, >= 1."""
    _check_fraction("attack_fraction", attack_fraction)
    if n_genuine < 1:
        raise ValueError(f"n_genuine must be >= 1, got {n_genuine}")
    return max(1, math.floor(attack_fraction * n_genuine + 0.5))


def _check_fraction(name: str, value: float) -> None:
    if not 0.0 < value <= 1.0:  # also rejects NaN
        raise ValueError(f"{name} must be in (0, 1], got {value}")


def fake_profiles(
    kind: str,
    intent: str,
    targets: np.ndarray,
    n_profiles: int,
    filler_size: int,
    stats: PublicStats,
    rng: np.random.Generator,
    *,
    selected: np.ndarray | None = None,
    n_selected: int = 10,
    first_user: int = 0,
    timestamp: int = 0,
    filler_pool: np.ndarray | None = None,
) -> Interactions:
    """Ratings of ``n_profiles`` fake users ``first_user, first_user + 1, ...``.

    Each profile rates every target (5 for ``intent="push"``, 1 for ``"nuke"``), the
    attack's selected items and ``filler_size`` distinct filler items that are neither
    targets nor selected. ``selected`` overrides the default choice of bandwagon and
    reverse_bandwagon (``n_selected`` items) and is required by segment; targets are
    dropped from it. ``filler_pool`` restricts the fillers to those items (for example what
    the platform currently recommends); when it holds fewer than ``filler_size`` usable
    items, the rest are drawn from all others. Rows are grouped by user: targets, then
    selected, then fillers.
    """
    if kind not in ATTACK_KINDS:
        raise ValueError(f"kind must be one of {ATTACK_KINDS}, got {kind!r}")
    if intent not in INTENTS:
        raise ValueError(f"intent must be one of {INTENTS}, got {intent!r}")
    if kind in NUKE_ONLY and intent == "push":
        raise ValueError(f"kind {kind!r} is a nuke attack; intent must be 'nuke', got 'push'")
    if n_profiles < 1:
        raise ValueError(f"n_profiles must be >= 1, got {n_profiles}")
    if filler_size < 0:
        raise ValueError(f"filler_size must be >= 0, got {filler_size}")
    if first_user < 0:
        raise ValueError(f"first_user must be >= 0, got {first_user}")
    n_items = stats.n_items
    target = _item_array("targets", targets, n_items)
    if len(target) == 0:
        raise ValueError("targets must be non-empty")

    chosen = _selected_items(kind, target, stats, selected, n_selected)
    excluded = np.zeros(n_items, dtype=bool)
    excluded[target] = True
    excluded[chosen] = True
    pool = np.flatnonzero(~excluded)
    if filler_size > len(pool):
        raise ValueError(
            f"filler_size must be <= {len(pool)} (items that are neither targets nor "
            f"selected), got {filler_size}"
        )
    if filler_pool is None:
        fillers = _draw_fillers(pool, n_profiles, filler_size, rng)
    else:
        preferred = np.intersect1d(pool, _item_array("filler_pool", filler_pool, n_items))
        if len(preferred) >= filler_size:
            fillers = _draw_fillers(preferred, n_profiles, filler_size, rng)
        else:
            rest = _draw_fillers(
                np.setdiff1d(pool, preferred), n_profiles, filler_size - len(preferred), rng
            )
            fillers = np.sort(np.hstack([np.tile(preferred, (n_profiles, 1)), rest]), axis=1)
    filler_rating = _filler_ratings(kind, fillers, stats, rng)

    target_rating = R_MAX if intent == "push" else R_MIN
    width = len(target) + len(chosen) + filler_size
    items = np.empty((n_profiles, width), dtype=np.int64)
    ratings = np.empty((n_profiles, width), dtype=np.float32)
    n_fixed = len(target) + len(chosen)
    items[:, : len(target)] = target
    items[:, len(target) : n_fixed] = chosen
    items[:, n_fixed:] = fillers
    ratings[:, : len(target)] = target_rating
    ratings[:, len(target) : n_fixed] = _SELECTED_RATING.get(kind, np.nan)
    ratings[:, n_fixed:] = filler_rating

    users = np.repeat(np.arange(first_user, first_user + n_profiles, dtype=np.int64), width)
    return Interactions(
        users, items.ravel(), ratings.ravel(), np.full(users.shape, timestamp, dtype=np.int64)
    )


def _item_array(name: str, values: np.ndarray, n_items: int) -> np.ndarray:
    """``values`` as a 1-d int64 array of unique items in [0, n_items)."""
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be a 1-d array of item indices, got shape {array.shape}")
    if len(array) and not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{name} must hold integer item indices, got dtype {array.dtype}")
    array = array.astype(np.int64)
    if len(array) and (array.min() < 0 or array.max() >= n_items):
        raise ValueError(f"{name} must lie in [0, {n_items}), got {array.min()}..{array.max()}")
    if len(np.unique(array)) != len(array):
        raise ValueError(f"{name} must not repeat an item")
    return array


def _selected_items(
    kind: str,
    target: np.ndarray,
    stats: PublicStats,
    selected: np.ndarray | None,
    n_selected: int,
) -> np.ndarray:
    """The attack's selected items I_S, never a target (empty for kinds without I_S)."""
    if kind not in _SELECTED_RATING:
        if selected is not None:
            raise ValueError(
                f"selected must be None for kind {kind!r}, which has no selected items"
            )
        return np.zeros(0, dtype=np.int64)
    is_target = np.zeros(stats.n_items, dtype=bool)
    is_target[target] = True
    if selected is not None:
        chosen = _item_array("selected", selected, stats.n_items)
        chosen = chosen[~is_target[chosen]]
        if kind == "segment" and len(chosen) == 0:
            raise ValueError("selected must name at least one non-target item for 'segment'")
        return chosen
    if kind == "segment":
        raise ValueError("selected is required for 'segment': the items the segment likes")
    if n_selected < 1:
        raise ValueError(f"n_selected must be >= 1, got {n_selected}")
    index = np.arange(stats.n_items)
    if kind == "bandwagon":
        candidate = ~is_target
        order = np.lexsort((index, -stats.item_count))  # most rated first, ties by index
    else:  # reverse_bandwagon: widely known (>= median count, rated at all), lowest mean
        median = np.median(stats.item_count)
        candidate = ~is_target & (stats.item_count >= median) & (stats.item_count > 0)
        order = np.lexsort((index, stats.item_mean))
    order = order[candidate[order]]
    return order[:n_selected].astype(np.int64)


def _draw_fillers(
    pool: np.ndarray, n_profiles: int, filler_size: int, rng: np.random.Generator
) -> np.ndarray:
    """(n_profiles, filler_size) items, each row a uniform sample of ``pool`` without
    replacement: the ``filler_size`` smallest of one uniform key per pool item."""
    if filler_size == 0:
        return np.zeros((n_profiles, 0), dtype=np.int64)
    out = np.empty((n_profiles, filler_size), dtype=np.int64)
    rows = max(1, _KEY_BLOCK // len(pool))
    for start in range(0, n_profiles, rows):
        stop = min(n_profiles, start + rows)
        keys = rng.random((stop - start, len(pool)))
        pick = np.argpartition(keys, filler_size - 1, axis=1)[:, :filler_size]
        out[start:stop] = np.sort(pool[pick], axis=1)
    return out


def _filler_ratings(
    kind: str, fillers: np.ndarray, stats: PublicStats, rng: np.random.Generator
) -> np.ndarray:
    """Filler ratings of each kind, same shape as ``fillers``."""
    if kind == "segment":
        return np.full(fillers.shape, R_MIN)
    if kind == "love_hate":
        return np.full(fillers.shape, R_MAX)
    if kind == "average":
        raw = rng.normal(stats.item_mean[fillers], stats.item_std[fillers])
    else:  # random, bandwagon, reverse_bandwagon
        raw = rng.normal(stats.global_mean, stats.global_std, size=fillers.shape)
    return np.clip(np.rint(raw), R_MIN, R_MAX)
