"""The world's data types: the ground truth that agents act on and the platform never sees whole."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# ML-1M age brackets; ML-100K ages (years) are mapped onto the same brackets.
AGE_BRACKETS: tuple[str, ...] = ("<18", "18-24", "25-34", "35-44", "45-49", "50-55", "56+")
GENDERS: tuple[str, ...] = ("F", "M")


@dataclass(frozen=True)
class Interactions:
    """A table of ratings as parallel arrays (0-based dense user and item indices)."""

    user: np.ndarray  # int64
    item: np.ndarray  # int64
    rating: np.ndarray  # float32, 1..5
    timestamp: np.ndarray  # int64, Unix seconds

    def __post_init__(self) -> None:
        n = len(self.user)
        if not (len(self.item) == len(self.rating) == len(self.timestamp) == n):
            raise ValueError("Interactions arrays must have equal length")

    def __len__(self) -> int:
        return len(self.user)

    def subset(self, index: np.ndarray | slice) -> Interactions:
        """Rows selected by a boolean mask, an index array or a slice."""
        return Interactions(
            self.user[index], self.item[index], self.rating[index], self.timestamp[index]
        )

    @staticmethod
    def concat(parts: list[Interactions]) -> Interactions:
        """Rows of several tables, in order."""
        if not parts:
            return Interactions.empty()
        return Interactions(
            np.concatenate([p.user for p in parts]),
            np.concatenate([p.item for p in parts]),
            np.concatenate([p.rating for p in parts]),
            np.concatenate([p.timestamp for p in parts]),
        )

    @staticmethod
    def empty() -> Interactions:
        """A table with no rows."""
        return Interactions(
            np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32),
            np.zeros(0, np.int64),
        )


@dataclass(frozen=True)
class World:
    """Users, items, every rating users would give, and users' private attributes.

    `attributes` maps an attribute name ("gender", "age", "occupation") to one integer
    code per user; `attribute_labels` gives the label of each code.
    """

    name: str
    n_users: int
    n_items: int
    ratings: Interactions
    attributes: dict[str, np.ndarray]
    attribute_labels: dict[str, tuple[str, ...]]
    user_ids: np.ndarray  # original ids, index -> id
    item_ids: np.ndarray
    item_features: np.ndarray | None = None  # (n_items, f) side information, e.g. genre flags
    feature_names: tuple[str, ...] = field(default_factory=tuple)
    # Interactions only (no rating values): every interaction is held as a liked one (5), and
    # only models that learn from interactions, not ratings, may train on it.
    implicit: bool = False

    def ratings_per_user(self) -> np.ndarray:
        """Number of ratings each user has in the world (train and test together)."""
        return np.bincount(self.ratings.user, minlength=self.n_users)

    def describe(self) -> dict[str, float]:
        """Summary statistics: sizes, density, whether it holds interactions only, the rating
        histogram (worlds with ratings), gender skew."""
        r = self.ratings.rating
        stats: dict[str, float] = {
            "users": self.n_users,
            "items": self.n_items,
            "ratings": len(r),
            "density": len(r) / max(1, self.n_users * self.n_items),
            "implicit": float(self.implicit),
        }
        if not self.implicit:
            stats["mean_rating"] = float(r.mean()) if len(r) else float("nan")
            for v in range(1, 6):
                stats[f"share_rating_{v}"] = float(np.mean(r == v)) if len(r) else float("nan")
        if "gender" in self.attributes:
            stats["share_male"] = float(np.mean(self.attributes["gender"] == GENDERS.index("M")))
        return stats
