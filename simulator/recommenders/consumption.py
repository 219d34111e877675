"""Top-N lists for rating models from a consumption task learned alongside the ratings.

A model fitted only to observed ratings ranks poorly: it predicts how much a user would like
an item *if* they rated it, not whether they would consume it, and a most-popular list beats
it (Cremonesi, Koren and Turrin, RecSys 2010). `ConsumptionRanked` follows collective matrix
factorisation (Singh and Gordon, KDD 2008): the platform's model is trained on two matrices
that share the user representation, the ratings and a consumption matrix whose entries are 1
for every rated item and 0 for unconsumed items sampled as weak negatives (Pan et al., ICDM
2008; Hu, Koren and Volinsky, ICDM 2008). The rating task keeps its own item parameters, so
predicted ratings (MAE) stay a rating model's; the lists rank items by the consumption task.

The inner model is built with twice the catalogue: items [0, n) are rated, items [n, 2n) are
the same items in the consumption task. Factor models (MF) treat the second half as ordinary
items (their own factors and biases, the user factors and bias shared); MetaMF and NoMetaMF
score it with a dot-product head on the collaborative vector p_u M (`MetaMFNet.head_scores`),
stepped with the ratings' batches. Each fit draws its own negatives: `negatives` per consumed item,
for the same user, items uniform over the catalogue (a draw may hit a consumed item, as
uniform weak negatives do); targets are centred (`consumption_table`). Every path of the
inner model (APR's perturbation, the gradient reversal adversary, warm starts) trains on the
joint table. DP-SGD is refused by the scenario check: its per-rating accounting counts a
rating once, and here it is trained twice. The scenario resolves `negatives` per model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from simulator.foundations.random_streams import random_stream
from simulator.recommenders.base import ModelParams, Recommender, TrainingReport
from simulator.recommenders.metamf import MetaMF
from simulator.recommenders.registry import recommender_class
from simulator.recommenders.user_scores import UserScorer
from simulator.world.base import Interactions

if TYPE_CHECKING:
    from simulator.recommenders.hooks import RowPerturbation, UserEmbeddingAdversary

def consumption_table(
    data: Interactions, n_items: int, negatives: int, rng: np.random.Generator,
    offset: float = 0.0,
) -> Interactions:
    """`data`, then a consumed row (u, n_items + i, 1) per rating and `negatives` rows
    (u, n_items + j, 0) per rating with j uniform over the catalogue.

    The 1/0 targets are centred (minus the consumed share 1 / (1 + negatives)) and moved to
    `offset`, so that the consumption rows' mean is `offset`: a model with one global offset
    (MF's mean rating) then serves both tasks from it, and items new to a fit (bias 0) start
    at the average of their task instead of at the other task's level."""
    n = len(data)
    draws = n * negatives
    users = np.repeat(data.user, negatives)
    items = rng.integers(0, n_items, draws)
    low = np.float32(offset - 1.0 / (1 + negatives))
    return Interactions.concat([
        data,
        Interactions(data.user, data.item + n_items, np.full(n, low + 1, np.float32),
                     data.timestamp),
        Interactions(users.astype(np.int64), items.astype(np.int64) + n_items,
                     np.full(draws, low, np.float32), np.zeros(draws, np.int64)),
    ])


class ConsumptionRanked(Recommender):
    """A rating model whose lists rank by a jointly trained consumption task (module doc).

    `score` is the consumption score of every item; `predict` the predicted rating.
    `user_embeddings` is the shared user representation and `item_embeddings` the
    consumption task's item vectors (what the lists rank by).
    """

    def __init__(
        self, name: str, n_users: int, n_items: int, params: ModelParams,
        device: torch.device, seed: int, *, negatives: int,
    ) -> None:
        super().__init__(n_users, n_items, params, device, seed)
        cls = recommender_class(name)
        if not cls.predicts_ratings:
            raise ValueError(f"{name} ranks by its own objective; ranking by consumption is "
                             "for rating models")
        if negatives < 1:
            raise ValueError(f"negatives must be at least 1, got {negatives}")
        if issubclass(cls, MetaMF):
            options = {**params.options, "consumption_items": n_items}
            params = ModelParams(params.factors, params.lr, params.reg, params.batch_size,
                                 options)
        self.inner: Recommender = cls(n_users, 2 * n_items, params, device, seed)
        self.name = name
        self.predicts_ratings = True
        self.negatives = negatives
        self.rng = random_stream(seed, "consumption_negatives")

    def fit(self, data: Interactions, epochs: int, warm_start: bool = False) -> TrainingReport:
        """Train the inner model on the ratings and a fresh draw of the consumption rows."""
        self.check_indices(data)
        # Factor models share one global offset (MF's mean rating); MetaMF's head has its own.
        offset = 0.0 if isinstance(self.inner, MetaMF) or len(data) == 0 \
            else float(np.mean(data.rating, dtype=np.float64))
        joint = consumption_table(data, self.n_items, self.negatives, self.rng, offset)
        return self.inner.fit(joint, epochs, warm_start=warm_start)

    def reset(self) -> None:
        """Fresh parameters from the seed, as a cold start draws them."""
        self.inner.reset()

    def set_perturbation(self, perturbation: RowPerturbation | None) -> None:
        """APR's perturbation on the inner model's joint objective."""
        self.inner.set_perturbation(perturbation)
        self.perturbation = perturbation

    def set_adversary(self, adversary: UserEmbeddingAdversary | None) -> None:
        """Gradient reversal on the shared user representation."""
        self.inner.set_adversary(adversary)
        self.adversary = adversary

    def user_scorer(self) -> UserScorer:
        """The inner scorer, read on the consumption items (`ConsumptionScorer`)."""
        return ConsumptionScorer(self, self.inner.user_scorer())

    def score(self, users: torch.Tensor) -> torch.Tensor:
        """Consumption scores of every item, (len(users), n_items)."""
        return self.inner.score(users)[:, self.n_items:]

    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Predicted ratings of (user, item) pairs (the rating task)."""
        return self.inner.predict(users, items)

    def user_embeddings(self) -> np.ndarray:
        """The user representation both tasks share."""
        return self.inner.user_embeddings()

    def set_user_embeddings(self, embeddings: np.ndarray) -> None:
        """Replace the shared user representation."""
        self.inner.set_user_embeddings(embeddings)

    def item_embeddings(self) -> np.ndarray:
        """The consumption task's item vectors, (n_items, d)."""
        if isinstance(self.inner, MetaMF):
            head = self.inner.net.head
            assert head is not None
            return head[:, :-1].detach().cpu().numpy().astype(np.float32)
        return self.inner.item_embeddings()[self.n_items:]

    def set_item_features(self, features: np.ndarray) -> None:
        """Item side information for both halves of the inner catalogue."""
        self.inner.set_item_features(np.vstack([features, features]))  # type: ignore[attr-defined]


class ConsumptionScorer(UserScorer):
    """Scores of a `ConsumptionRanked` model from a substitute user table: `pairs` and `full`
    are consumption scores (what lists rank by), `rating_pairs` the rating task's."""

    def __init__(self, model: ConsumptionRanked, inner: UserScorer) -> None:
        super().__init__(model)
        self.inner = inner
        self.offset = model.n_items

    def pairs(self, emb: torch.Tensor, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Consumption scores of (user, item) pairs, differentiable in `emb`."""
        return self.inner.pairs(emb, users, items + self.offset)

    def rating_pairs(
        self, emb: torch.Tensor, users: torch.Tensor, items: torch.Tensor
    ) -> torch.Tensor:
        """Predicted ratings (unclipped) of (user, item) pairs, differentiable in `emb`."""
        return self.inner.pairs(emb, users, items)

    @torch.no_grad()
    def full(self, emb: torch.Tensor, users: torch.Tensor) -> torch.Tensor:
        """Consumption scores of every item for `users`, without gradient."""
        return self.inner.full(emb, users)[:, self.offset:]

    def chunk_size(self) -> int:
        """The inner scorer's blocks (it scores both halves)."""
        return self.inner.chunk_size()
