"""The item-perturbation attacker: owns items and nudges their embeddings toward a segment."""

from __future__ import annotations

import math
import time
from typing import Protocol, runtime_checkable

import mesa
import numpy as np
import torch

from agents.board import StepBoard
from simulator.attacks.item_perturbation import (
    apply_perturbation,
    perturb_item_parameters,
    perturb_items,
)
from simulator.attacks.targets import configured_or_by_popularity
from simulator.recommenders.base import Recommender
from simulator.recommenders.factor_model import FactorModel
from simulator.recommenders.registry import capabilities
from simulator.scenario.schema import ItemPerturbationConfig
from simulator.world.base import Interactions

CLEAN_SCORE_USERS = 256  # segment users scored at once for the rank objective's thresholds


@runtime_checkable
class ItemParameterModel(Protocol):
    """A model with the `item_parameters` capability: items own parameter rows."""

    def item_parameters(self, items: np.ndarray) -> np.ndarray: ...

    def set_item_parameters(self, items: np.ndarray, rows: np.ndarray) -> None: ...

    def score_item_parameters(self, users: torch.Tensor, rows: torch.Tensor) -> torch.Tensor: ...


class ItemOwner(mesa.Agent):
    """White-box owner of some items (an uploader or a seller).

    Knowledge it assumes: the platform's current model (user and item embeddings, item
    biases, or the whole network) and which users form its target segment (e.g. an audience
    defined by an attribute the platform exposes to advertisers). After every retrain from
    `start_step` it perturbs its own items' embeddings within the per-item budget epsilon
    (FGSM or PGD) so that they rise in the segment's rankings; users and other items are
    never touched. On models without free item embeddings but with per-item parameters
    (MetaMF: each item's row of the L generator) it perturbs those rows instead, through
    the model's gradients, and epsilon bounds each owned row's change.
    Owned items without an explicit list are chosen by public popularity at the first act.
    With `target: features` it instead rewrites the side information (genre flags) the
    platform ingests about its items, within the budget around their true values.
    """

    def __init__(
        self,
        model: mesa.Model,
        config: ItemPerturbationConfig,
        segment: np.ndarray,
        n_items: int,
        rng: np.random.Generator,
        label: str = "item_owner0",
    ) -> None:
        super().__init__(model)
        self.label = label  # names the attacker in the events table
        self.config = config
        self.segment = segment
        self.n_items = n_items
        self.draws = rng
        self.owned: np.ndarray | None = None
        self.true_features: np.ndarray | None = None
        self.last_gain = math.nan

    # --- phases (run by the model through Mesa's AgentSet) ----------------------------------

    def pick_items(self, board: StepBoard) -> None:
        """Phase: fix the owned items as soon as there is public data to choose from."""
        if self.owned is None and len(board.public):
            self.choose_items(board.public)

    def perturb(self, board: StepBoard) -> None:
        """Phase, after a retrain: perturb the owned items in the new model."""
        if self.owned is None:
            return
        started = time.perf_counter()
        platform = board.platform
        gain = self.act(board.step, platform.recommender, board.public, *platform.seen_items())
        if not math.isnan(gain):
            board.event("item_perturbation", self.label, gain, time.perf_counter() - started,
                        {"items": self.owned.tolist()})

    # --- acting -----------------------------------------------------------------------------

    def act(
        self, step: int, recommender: Recommender, public: Interactions,
        seen_user: np.ndarray, seen_item: np.ndarray,
    ) -> float:
        """Perturb the owned items in the freshly retrained model; returns the segment's mean
        score gain on them (NaN before the start step). Models with `settable_items` move
        the items' embeddings, models with `item_parameters` the items' own parameter rows
        (the gain is then in unclipped predicted ratings)."""
        cfg = self.config
        if step < cfg.start_step:
            return math.nan
        if self.owned is None:
            self.choose_items(public)
        assert self.owned is not None
        n_genuine = len(self.segment)
        if cfg.target == "features":
            assert isinstance(recommender, FactorModel)
            return self._perturb_features(recommender, recommender.user_embeddings()[:n_genuine])
        seen = np.zeros((n_genuine, self.n_items), dtype=bool)
        genuine = seen_user < n_genuine
        seen[seen_user[genuine], seen_item[genuine]] = True
        offers = capabilities(recommender.name)
        if "settable_items" not in offers:
            if "item_parameters" not in offers:
                raise ValueError(f"{recommender.name} exposes no item embeddings or parameters")
            assert isinstance(recommender, ItemParameterModel)
            return self._perturb_parameters(recommender, seen)
        users = recommender.user_embeddings()[:n_genuine]
        items = recommender.item_embeddings()
        bias = recommender.item_biases() if hasattr(recommender, "item_biases") else None
        result = perturb_items(
            users, items, bias, self.owned, self.segment, cfg.epsilon, method=cfg.method,
            steps=cfg.steps, norm=cfg.norm, objective=cfg.objective, seen=seen,
        )
        recommender.set_item_embeddings(apply_perturbation(items, self.owned, result.delta))
        self.last_gain = float(result.score_after - result.score_before)
        return self.last_gain

    def _perturb_parameters(self, recommender: ItemParameterModel, seen: np.ndarray) -> float:
        """Perturb the owned items' own parameter rows through the model's gradients (the
        segment's unclipped scores); `seen` is (genuine users, items)."""
        cfg = self.config
        assert self.owned is not None
        users = np.flatnonzero(self.segment)
        user_index = torch.as_tensor(users)
        rows = recommender.item_parameters(self.owned)
        clean = None
        if cfg.objective == "rank":
            clean = self._clean_scores(recommender, user_index)

        def score(candidate: torch.Tensor) -> torch.Tensor:
            return recommender.score_item_parameters(user_index, candidate)

        result = perturb_item_parameters(
            score, rows, cfg.epsilon, method=cfg.method, steps=cfg.steps, norm=cfg.norm,
            objective=cfg.objective, owned=self.owned, clean_scores=clean, seen=seen[users],
        )
        recommender.set_item_parameters(self.owned, rows + result.delta)
        self.last_gain = float(result.score_after - result.score_before)
        return self.last_gain

    def _clean_scores(self, recommender: ItemParameterModel, users: torch.Tensor) -> np.ndarray:
        """The users' unclipped scores of every item, (len(users), n_items)."""
        every = torch.from_numpy(recommender.item_parameters(np.arange(self.n_items)))
        with torch.no_grad():
            parts = [
                recommender.score_item_parameters(users[lo : lo + CLEAN_SCORE_USERS], every)
                .cpu().numpy()
                for lo in range(0, len(users), CLEAN_SCORE_USERS)
            ]
        return np.concatenate(parts).astype(np.float64)

    def _perturb_features(self, recommender: FactorModel, users: np.ndarray) -> float:
        """Rewrite the owned items' side information within the budget around their true
        values. With effective item vectors q_i + f_i W, a user's score is linear in f_i
        with weights W p_u, so the items are perturbed in feature space against those
        user vectors (objective: the segment's mean score); features stay in [0, 1]. The
        platform keeps the rewritten features, so the next retrain learns from them too."""
        cfg = self.config
        assert self.owned is not None
        features = recommender.item_features()
        weights = recommender.item_feature_weights()
        assert features is not None and weights is not None
        if self.true_features is None:
            self.true_features = features[self.owned].copy()
        current = features.copy()
        current[self.owned] = self.true_features
        result = perturb_items(
            users @ weights.T, current, None, self.owned, self.segment, cfg.epsilon,
            method=cfg.method, steps=cfg.steps, norm=cfg.norm, objective="score",
        )
        perturbed = apply_perturbation(current, self.owned, result.delta)
        perturbed[self.owned] = np.clip(perturbed[self.owned], 0.0, 1.0)
        recommender.set_item_features(perturbed)
        segment = users[self.segment] @ weights.T
        change = perturbed[self.owned] - self.true_features
        self.last_gain = float((segment @ change.T).mean())
        return self.last_gain

    def choose_items(self, public: Interactions) -> None:
        """Fix the owned items (the configured list, or by public popularity)."""
        cfg = self.config
        counts = np.bincount(public.item, minlength=self.n_items)
        self.owned = configured_or_by_popularity(
            cfg.items, cfg.item_popularity, cfg.n_items, counts, self.draws, "items"
        )
