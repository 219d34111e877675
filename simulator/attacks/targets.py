"""Choosing attack targets (or owned items) by their public popularity."""

from __future__ import annotations

import numpy as np

# Percentile of the public rating counts (over items rated at least once) that each band
# is centred on: unpopular items sit in the long tail, median ones in the middle.
POPULARITY_PERCENTILE = {"unpopular": 10.0, "median": 50.0, "popular": 95.0}


def items_by_popularity(
    item_count: np.ndarray, band: str, n: int, rng: np.random.Generator
) -> np.ndarray:
    """`n` distinct items whose rating counts are closest to the band's percentile.

    Only items rated at least once are candidates (an attacker targets items that exist in
    public view); ties in distance are broken at random.
    """
    if band not in POPULARITY_PERCENTILE:
        raise ValueError(f"band must be one of {list(POPULARITY_PERCENTILE)}, got {band!r}")
    counts = np.asarray(item_count)
    rated = np.flatnonzero(counts > 0)
    if n < 1 or n > len(rated):
        raise ValueError(f"n must be in [1, {len(rated)}] (items rated at least once), got {n}")
    level = np.percentile(counts[rated], POPULARITY_PERCENTILE[band])
    distance = np.abs(counts[rated] - level)
    order = np.lexsort((rng.random(len(rated)), distance))
    return np.sort(rated[order[:n]]).astype(np.int64)


def configured_or_by_popularity(
    given: list[int] | None, band: str, n: int, item_count: np.ndarray,
    rng: np.random.Generator, name: str,
) -> np.ndarray:
    """The items a scenario names (each checked against the catalogue; `name` is the key
    reported), or, without a list, `n` items of the popularity `band`."""
    if given is None:
        return items_by_popularity(item_count, band, n, rng)
    items = np.asarray(given, dtype=np.int64)
    if items.max() >= len(item_count):
        raise ValueError(
            f"{name}: item {int(items.max())} is outside the catalogue of "
            f"{len(item_count)} items"
        )
    return items
