"""The world: users, items, every rating users would give, and their private attributes."""

from __future__ import annotations

import os
from importlib import import_module
from typing import TYPE_CHECKING, Any

from simulator.world.base import AGE_BRACKETS, GENDERS, Interactions, World

if TYPE_CHECKING:
    from simulator.world.files import load_files, load_recbole
    from simulator.world.movielens import load_movielens
    from simulator.world.split import random_split, temporal_split
    from simulator.world.synthetic import generate_synthetic

__all__ = [
    "AGE_BRACKETS",
    "GENDERS",
    "Interactions",
    "World",
    "generate_synthetic",
    "load_files",
    "load_movielens",
    "load_recbole",
    "load_world",
    "random_split",
    "temporal_split",
]

SOURCES = ("synthetic", "movielens", "files", "recbole")

# The readers import pandas and torch; they load on first use so that importing the package
# (scenario validation does) stays cheap.
_LAZY = {
    "load_movielens": "simulator.world.movielens",
    "load_files": "simulator.world.files",
    "load_recbole": "simulator.world.files",
    "random_split": "simulator.world.split",
    "temporal_split": "simulator.world.split",
    "generate_synthetic": "simulator.world.synthetic",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def load_world(
    source: str,
    path: str | os.PathLike[str] | None = None,
    n_users: int | None = None,
    n_items: int | None = None,
    signal: float = 1.0,
    seed: int = 0,
    duplicates: str = "error",
    tables: dict[str, Any] | None = None,
    **synthetic_kwargs: Any,
) -> World:
    """Build the world named by ``source``: "synthetic", "movielens", "files" or "recbole".

    synthetic: ``n_users``/``n_items`` default to generate_synthetic's defaults when None;
    ``signal``, ``seed`` and ``synthetic_kwargs`` go to generate_synthetic; ``path`` is
    ignored. movielens: reads the folder at ``path`` (required); ``n_users`` keeps the first
    n_users users by id; ``n_items`` (may be None), ``signal``, ``seed`` and
    ``synthetic_kwargs`` are ignored, since the data fix the items and the ratings;
    ``duplicates`` says what a repeated (user, item) rating is (see load_movielens).
    files: ``path`` is the interactions table; recbole: the folder of atomic files; both
    take ``n_users`` and ``duplicates`` as movielens does, and ``tables`` holds the rest of
    `load_files`'s options (users, items, columns, attributes, item_features).
    """
    if source == "synthetic":
        sizes = {k: v for k, v in (("n_users", n_users), ("n_items", n_items)) if v is not None}
        from simulator.world.synthetic import generate_synthetic

        return generate_synthetic(signal=signal, seed=seed, **sizes, **synthetic_kwargs)
    if source == "movielens":
        if path is None:
            raise ValueError("source 'movielens' needs path: a MovieLens folder")
        from simulator.world.movielens import load_movielens

        return load_movielens(path, n_users=n_users, duplicates=duplicates)
    if source in ("files", "recbole"):
        if path is None:
            raise ValueError(f"source {source!r} needs path")
        from simulator.world.files import load_files, load_recbole

        options = {**(tables or {}), "n_users": n_users, "duplicates": duplicates}
        if source == "recbole":
            return load_recbole(os.fspath(path), **options)
        return load_files(os.fspath(path), **options)
    raise ValueError(f"source must be one of {', '.join(SOURCES)}; got {source!r}")
