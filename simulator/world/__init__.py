"""The world: users, items, every rating users would give, and their private attributes."""

from __future__ import annotations

import os
from typing import Any

from simulator.world.base import AGE_BRACKETS, GENDERS, Interactions, World
from simulator.world.movielens import load_movielens
from simulator.world.split import random_split, temporal_split
from simulator.world.synthetic import generate_synthetic

__all__ = [
    "AGE_BRACKETS",
    "GENDERS",
    "Interactions",
    "World",
    "generate_synthetic",
    "load_movielens",
    "load_world",
    "random_split",
    "temporal_split",
]

SOURCES = ("synthetic", "movielens")


def load_world(
    source: str,
    path: str | os.PathLike[str] | None = None,
    n_users: int | None = None,
    n_items: int | None = None,
    signal: float = 1.0,
    seed: int = 0,
    **synthetic_kwargs: Any,
) -> World:
    """Build the world named by ``source``: "synthetic" or "movielens".

    synthetic: ``n_users``/``n_items`` default to generate_synthetic's defaults when None;
    ``signal``, ``seed`` and ``synthetic_kwargs`` go to generate_synthetic; ``path`` is
    ignored. movielens: reads the folder at ``path`` (required); ``n_users`` keeps the first
    n_users users by id; ``n_items`` (may be None), ``signal``, ``seed`` and
    ``synthetic_kwargs`` are ignored, since the data fix the items and the ratings.
    """
    if source == "synthetic":
        sizes = {k: v for k, v in (("n_users", n_users), ("n_items", n_items)) if v is not None}
        return generate_synthetic(signal=signal, seed=seed, **sizes, **synthetic_kwargs)
    if source == "movielens":
        if path is None:
            raise ValueError("source 'movielens' needs path: a MovieLens folder")
        return load_movielens(path, n_users=n_users)
    raise ValueError(f"source must be one of {', '.join(SOURCES)}; got {source!r}")
