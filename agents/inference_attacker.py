"""Attackers. The inference attacker learns private attributes from what it sees of users."""

from __future__ import annotations

import time

import mesa
import numpy as np
import torch

from agents.board import StepBoard
from simulator.attacks.features import build_features
from simulator.attacks.inference import AttackOutcome, infer_attribute
from simulator.recommenders.base import Recommender
from simulator.world.base import Interactions


class InferenceAttacker(mesa.Agent):
    """Knows the attributes of a fraction of users (e.g. public profiles) and infers the rest.

    Whenever what it sees has changed it looks at users afresh through its threat model
    (`embedding`: the platform's user representations, new at each retrain;
    `recommendations`: each user's top-k list among the items it has not disclosed, new at
    each retrain and whenever disclosures change; `ratings`: the ratings users disclosed,
    new whenever disclosures change), trains its classifiers on the users it knows and
    predicts everyone else.
    """

    def __init__(
        self,
        model: mesa.Model,
        attributes: dict[str, np.ndarray],
        n_classes: dict[str, int],
        known_fraction: float,
        classifiers: list[str],
        folds: int,
        rng: np.random.Generator,
        seed: int,
        threat: str = "embedding",
        top_k: int = 10,
        device: torch.device | None = None,
        selection_every: int = 1,
    ) -> None:
        super().__init__(model)
        self.attributes = attributes
        self.n_classes = n_classes
        self.classifiers = classifiers
        self.folds = folds
        self.seed = seed
        self.threat = threat
        self.top_k = top_k
        self.device = device or torch.device("cpu")
        self.selection_every = selection_every
        self.cross_validated = False  # whether the latest attack cross-validated
        n_users = len(next(iter(attributes.values())))
        self.known = np.zeros(n_users, dtype=bool)
        self.known[rng.permutation(n_users)[: int(round(known_fraction * n_users))]] = True
        self.results: dict[str, list[AttackOutcome]] = {}
        self.attacks = 0  # how many times it attacked afresh (identifies the latest results)
        self._seen: tuple[int, ...] | None = None

    def infer(self, board: StepBoard) -> None:
        """Phase: attack the platform's current model (`board.attacks`), logging each fresh
        attack; nothing before the platform first trains."""
        platform = board.platform
        if not platform.trained:
            return
        data = platform.data
        fresh = self.is_stale(platform.version, data.revision)
        started = time.perf_counter()
        board.attacks = self.attack(platform.recommender, data.table, platform.version,
                                    data.revision)
        if fresh:
            best = {a: max(o.cv_auc for o in outs) for a, outs in board.attacks.items()}
            board.event("attribute_inference", "attacker", float("nan"),
                        time.perf_counter() - started,
                        {"cv_auc": best, "threat": self.threat,
                         "cross_validated": self.cross_validated})

    def view_key(self, model_version: int, data_revision: int) -> tuple[int, ...]:
        """What the attacker's view depends on under its threat model: the model (embedding),
        the disclosed ratings (ratings), or both (recommendations)."""
        if self.threat == "embedding":
            return (model_version,)
        if self.threat == "ratings":
            return (data_revision,)
        return (model_version, data_revision)

    def is_stale(self, model_version: int, data_revision: int) -> bool:
        """Whether its view changed since it last attacked."""
        return self.view_key(model_version, data_revision) != self._seen

    def attack(
        self, recommender: Recommender, disclosed: Interactions, model_version: int,
        data_revision: int,
    ) -> dict[str, list[AttackOutcome]]:
        """Infer every attribute from what it sees of the model and the disclosed ratings;
        the results are kept until its view changes (`view_key`)."""
        if self.is_stale(model_version, data_revision):
            features = build_features(self.threat, recommender, disclosed, self.top_k)
            # The platform may hold more accounts than there are real users (fake profiles
            # come after them); the attacker classifies the real ones.
            features = features[: len(self.known)]
            # Cross-validate (choose) every `selection_every` attacks; refit in between.
            select = not self.results or self.attacks % self.selection_every == 0
            self.cross_validated = select
            self.results = {
                name: infer_attribute(
                    features, labels, self.known, self.n_classes[name],
                    self.classifiers, self.folds, self.seed, self.device,
                    refit=self.selection_every > 1,
                    selected=None if select else self.results[name],
                )
                for name, labels in self.attributes.items()
            }
            self._seen = self.view_key(model_version, data_revision)
            self.attacks += 1
        return self.results
