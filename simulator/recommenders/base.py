"""One interface for every platform model: fit on interactions, score, expose embeddings."""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from simulator.world.base import Interactions

if TYPE_CHECKING:
    from simulator.recommenders.hooks import DenseTraining, RowPerturbation, UserEmbeddingAdversary
    from simulator.recommenders.user_scores import UserScorer

# Training stops when a user or item embedding row grows beyond this norm (divergence).
MAX_ROW_NORM = 1e3


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
    """What one call to fit did: loss per epoch and wall time.

    `diverged` is None after healthy training, else why training stopped early (the epoch that
    went non-finite or blew up); `epochs` and `losses` then include that epoch.
    """

    epochs: int
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0
    warm_start: bool = False
    diverged: str | None = None


def divergence(epoch: int, loss: float, row_norm: float) -> str | None:
    """Why epoch `epoch` (1-based) counts as diverged, or None when it is healthy: a
    non-finite loss, or a largest embedding row norm that is non-finite or above MAX_ROW_NORM."""
    if not math.isfinite(loss):
        return f"epoch {epoch}: loss is {loss}"
    if not row_norm <= MAX_ROW_NORM:
        return f"epoch {epoch}: largest embedding row norm {row_norm:.3g} > {MAX_ROW_NORM:g}"
    return None


@torch.no_grad()
def place_unseen_users(user_rows: torch.Tensor, users: torch.Tensor, n_users: int) -> None:
    """Users without a row in this fit (`users`: the fitted rows' users) get, in place, the
    mean of `user_rows` over those with one.

    Their own rows are still the initialisation, a point the model never learned to serve,
    so it would rank or rate everything for them as for no real user; the mean user is the
    platform's best guess for someone it knows nothing about (a factor model's item biases
    play that role in BPR and MF).
    """
    seen = torch.bincount(users, minlength=n_users) > 0
    if seen.all() or not seen.any():
        return
    user_rows[~seen] = user_rows[seen].mean(0)


class Recommender(ABC):
    """A recommender trained on a platform's interaction table.

    Subclasses set `name` and `predicts_ratings` (True for explicit-rating models, whose
    `score` is a predicted rating on the 1..5 scale).
    """

    name: str = ""
    predicts_ratings: bool = False
    adversary: UserEmbeddingAdversary | None = None
    perturbation: RowPerturbation | None = None

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

    def reset(self) -> None:
        """Fresh parameters from the seed, as a cold start draws them."""
        raise NotImplementedError(f"{self.name} cannot reset its parameters")

    def user_scorer(self) -> UserScorer:
        """Scores as a differentiable function of a substitute user-embedding table (what
        post-training edits of the user embeddings optimise)."""
        raise NotImplementedError(f"{self.name} has no user scorer")

    def set_perturbation(self, perturbation: RowPerturbation | None) -> None:
        """Train on the perturbed objective from the next fit on (`gradient_perturbation`
        capability); None returns to plain training."""
        raise NotImplementedError(f"{self.name} cannot train with a row perturbation")

    def dense_training(self, data: Interactions) -> DenseTraining:
        """The model on `data` as dense per-example tables (`dense_training` capability)."""
        raise NotImplementedError(f"{self.name} has no dense per-example training")

    def set_adversary(self, adversary: UserEmbeddingAdversary | None) -> None:
        """Train the user embeddings against `adversary`'s read-outs from the next fit on
        (gradient reversal); None returns to plain training. Binds the adversary's heads to
        this model's embedding width and device."""
        if adversary is not None:
            adversary.bind(self.n_users, self.user_embeddings().shape[1], self.device)
        self.adversary = adversary

    def start_fit(
        self, data: Interactions, epochs: int, warm_start: bool
    ) -> tuple[float, TrainingReport | None]:
        """What every fit (the model's own, DP-SGD's) does first: refuse negative epochs, draw
        fresh parameters on a cold start (`reset`) and check the indices. Returns the start
        time and, when there is nothing to train (an empty table or no epochs), the report of
        that fit."""
        if epochs < 0:
            raise ValueError(f"epochs must be >= 0, got {epochs}")
        start = time.perf_counter()
        if not warm_start:
            self.reset()
        self.check_indices(data)
        if len(data) == 0 or epochs == 0:
            return start, TrainingReport(0, [], time.perf_counter() - start, warm_start)
        return start, None

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
    def set_user_embeddings(self, embeddings: np.ndarray) -> None:
        """Replace the user representation (same shape as `user_embeddings()`), e.g. after a
        post-training edit; everything else in the model is left as it is."""

    @abstractmethod
    def item_embeddings(self) -> np.ndarray:
        """Item representation, (n_items, d)."""

    def set_item_embeddings(self, embeddings: np.ndarray) -> None:
        """Replace the item representation (same shape as `item_embeddings()`); everything
        else in the model is left as it is. Models whose item representation is not a free
        parameter raise NotImplementedError."""
        raise NotImplementedError(f"{self.name} cannot set its item embeddings")

    def _checked_user_embeddings(self, embeddings: np.ndarray, dim: int) -> torch.Tensor:
        """`embeddings` as a float32 tensor on the model's device, after a shape check."""
        return self._checked_rows(embeddings, (self.n_users, dim), "user embeddings")

    def _checked_item_embeddings(self, embeddings: np.ndarray, dim: int) -> torch.Tensor:
        """`embeddings` as a float32 tensor on the model's device, after a shape check."""
        return self._checked_rows(embeddings, (self.n_items, dim), "item embeddings")

    def _checked_rows(
        self, embeddings: np.ndarray, shape: tuple[int, int], what: str
    ) -> torch.Tensor:
        array = np.asarray(embeddings, dtype=np.float32)
        if array.shape != shape:
            raise ValueError(f"{what} must have shape {shape}, got {array.shape}")
        if not np.isfinite(array).all():
            raise ValueError(f"{what} must be finite")
        return torch.as_tensor(array, device=self.device)
