"""One interface for every platform model: fit on interactions, score, expose embeddings."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from simulator.world.base import Interactions


@dataclass(frozen=True)
class ModelParams:
    """Hyper-parameters shared by the latent-factor models (None = the model's default)."""

    factors: int = 32
    lr: float | None = None
    reg: float | None = None
    batch_size: int | None = None
    options: dict[str, Any] = field(default_factory=dict)  # model-specific settings


@dataclass
class TrainingReport:
    """What one call to fit did: loss per epoch and wall time."""

    epochs: int
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0
    warm_start: bool = False


class Recommender(ABC):
    """A recommender trained on a platform's interaction table.

    Subclasses set `name` and `predicts_ratings` (True for explicit-rating models, whose
    `score` is a predicted rating on the 1..5 scale).
    """

    name: str = ""
    predicts_ratings: bool = False

    def __init__(
        self, n_users: int, n_items: int, params: ModelParams, device: torch.device, seed: int
    ) -> None:
        self.n_users = n_users
        self.n_items = n_items
        self.params = params
        self.device = device
        self.seed = seed

    @abstractmethod
    def fit(self, data: Interactions, epochs: int, warm_start: bool = False) -> TrainingReport:
        """Train for `epochs` epochs; warm_start continues from the current parameters."""

    def check_indices(self, data: Interactions) -> None:
        """Raise ValueError when an index falls outside the model's user or item range."""
        if len(data) == 0:
            return
        if int(data.user.min()) < 0 or int(data.user.max()) >= self.n_users:
            raise ValueError(f"user indices must lie in [0, {self.n_users})")
        if int(data.item.min()) < 0 or int(data.item.max()) >= self.n_items:
            raise ValueError(f"item indices must lie in [0, {self.n_items})")

    def partial_fit(self, data: Interactions, epochs: int) -> TrainingReport:
        """Continue training from the current parameters (warm start)."""
        return self.fit(data, epochs, warm_start=True)

    @abstractmethod
    def score(self, users: torch.Tensor) -> torch.Tensor:
        """Scores of every item for the given users, shape (len(users), n_items)."""

    @abstractmethod
    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Score (or predicted rating) of each (user, item) pair."""

    @abstractmethod
    def user_embeddings(self) -> np.ndarray:
        """The user representation an attacker with platform access would see, (n_users, d)."""

    @abstractmethod
    def item_embeddings(self) -> np.ndarray:
        """Item representation, (n_items, d)."""
