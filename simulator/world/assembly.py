"""Assembling a world from tables read by any loader (MovieLens folders, interaction files,
RecBole atomic files): each (user, item) pair once, the users and items that have ratings
indexed in order of their original ids, their attributes and the items' features.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from simulator.foundations.errors import DataFormatError
from simulator.world.base import Interactions, World

DUPLICATE_POLICIES = ("error", "latest")


@dataclass(frozen=True)
class RatingRows:
    """The rows of an interactions file: original user and item ids (integers, or codes
    of their sorted text ids), ratings and timestamps, in file order."""

    user: np.ndarray
    item: np.ndarray
    rating: np.ndarray
    timestamp: np.ndarray

    def subset(self, keep: np.ndarray) -> RatingRows:
        """The rows at `keep` (a mask or an index array)."""
        return RatingRows(self.user[keep], self.item[keep], self.rating[keep],
                          self.timestamp[keep])


@dataclass(frozen=True)
class Side:
    """A user or item table: its ids (file order), per-user attribute codes and their labels,
    or per-item features and their names."""

    ids: np.ndarray
    codes: dict[str, np.ndarray]
    labels: dict[str, tuple[str, ...]]
    features: np.ndarray | None = None
    feature_names: tuple[str, ...] = ()


def without_duplicates(r: RatingRows, policy: str, path: object,
                       line_of: Callable[[int], int | None]) -> RatingRows:
    """The rows with each (user, item) pair once: a repeat is an error naming both rows'
    lines (`line_of(row)`), or (`"latest"`) the latest rating is kept (largest timestamp,
    then later row)."""
    if policy not in DUPLICATE_POLICIES:
        raise ValueError(f"duplicates must be one of {DUPLICATE_POLICIES}, got {policy!r}")
    key = r.user * (int(r.item.max()) + 1) + r.item
    order = np.lexsort((np.arange(len(key)), key))
    repeated = np.flatnonzero(key[order][1:] == key[order][:-1]) + 1
    if not len(repeated):
        return r
    if policy == "error":
        # The second occurrence that comes first in the file, and the row it repeats.
        later = order[repeated]
        first_repeat = int(later.min())
        earlier = int(order[repeated[np.argmin(later)] - 1])
        raise DataFormatError(
            path, line_of(first_repeat),
            f"user {r.user[first_repeat]} rates item {r.item[first_repeat]} again (first on "
            f"line {line_of(earlier)}); set world.duplicate_ratings: latest to keep the latest",
        )
    # Keep the last row of each pair in (timestamp, row) order.
    by_time = np.lexsort((np.arange(len(key)), r.timestamp, key))
    ends = np.r_[np.flatnonzero(key[by_time][1:] != key[by_time][:-1]), len(key) - 1]
    return r.subset(np.sort(by_time[ends]))


def assemble(name: str, users: Side, items: Side, ratings: RatingRows,
             n_users: int | None) -> World:
    """The world of `ratings`: its users (the first `n_users` by original id when given)
    and the items they rated, indexed by original id, each user's ratings in time order,
    with the users' attributes and the items' features from their tables."""
    user_ids = np.unique(ratings.user)
    if n_users is not None and n_users < len(user_ids):
        user_ids = user_ids[:n_users]
        ratings = ratings.subset(np.isin(ratings.user, user_ids))
    item_ids = np.unique(ratings.item)
    user = np.searchsorted(user_ids, ratings.user).astype(np.int64)
    item = np.searchsorted(item_ids, ratings.item).astype(np.int64)
    order = np.lexsort((item, ratings.timestamp, user))
    table = Interactions(user[order], item[order], ratings.rating[order].astype(np.float32),
                         ratings.timestamp[order].astype(np.int64))
    rows = positions(users.ids, user_ids)
    features = None if items.features is None else items.features[positions(items.ids,
                                                                             item_ids)]
    return World(
        name=name,
        n_users=len(user_ids),
        n_items=len(item_ids),
        ratings=table,
        attributes={attribute: codes[rows] for attribute, codes in users.codes.items()},
        attribute_labels=dict(users.labels),
        user_ids=user_ids.astype(np.int64),
        item_ids=item_ids.astype(np.int64),
        item_features=features,
        feature_names=items.feature_names,
    )


def positions(file_ids: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Row of each wanted id in a file's id column (every wanted id is present)."""
    order = np.argsort(file_ids, kind="stable")
    return order[np.searchsorted(file_ids[order], wanted)]
