"""Reshaping a world's catalogue: keep a subset of its items (for data-characteristics studies)."""

from __future__ import annotations

import dataclasses

import numpy as np

from simulator.foundations.random_streams import random_stream
from simulator.world.base import World

ITEM_SAMPLES = ("random", "popular")


def keep_items(world: World, n_items: int, by: str, seed: int) -> World:
    """The world with only `n_items` of its items: a seeded random subset (`by="random"`,
    density about unchanged) or the most-rated ones (`"popular"`, a denser head). Ratings of
    dropped items go; users are kept even if few of their ratings remain."""
    if by not in ITEM_SAMPLES:
        raise ValueError(f"by must be one of {list(ITEM_SAMPLES)}, got {by!r}")
    if not 1 <= n_items <= world.n_items:
        raise ValueError(f"n_items must be in [1, {world.n_items}], got {n_items}")
    if n_items == world.n_items:
        return world
    if by == "random":
        kept = np.sort(random_stream(seed, "item_sample").choice(world.n_items, n_items,
                                                                  replace=False))
    else:
        counts = np.bincount(world.ratings.item, minlength=world.n_items)
        kept = np.sort(np.lexsort((np.arange(world.n_items), -counts))[:n_items])
    position = np.full(world.n_items, -1, dtype=np.int64)
    position[kept] = np.arange(n_items)
    rows = position[world.ratings.item] >= 0
    ratings = world.ratings.subset(rows)
    ratings = dataclasses.replace(ratings, item=position[ratings.item])
    features = world.item_features[kept] if world.item_features is not None else None
    return dataclasses.replace(
        world, n_items=n_items, ratings=ratings, item_ids=world.item_ids[kept],
        item_features=features,
    )
