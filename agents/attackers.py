"""Attackers. The inference attacker learns private attributes from what it sees of users."""

from __future__ import annotations

import mesa
import numpy as np

from simulator.attacks.features import build_features
from simulator.attacks.inference import AttackOutcome, infer_attribute
from simulator.recommenders.base import Recommender
from simulator.world.base import Interactions


class InferenceAttacker(mesa.Agent):
    """Knows the attributes of a fraction of users (e.g. public profiles) and infers the rest.

    After every retrain it looks at users through its threat model (`embedding`: the
    platform's user representations; `recommendations`: each user's top-k list;
    `ratings`: the ratings users disclosed), trains its classifiers on the users it knows
    and predicts everyone else.
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
    ) -> None:
        super().__init__(model)
        self.attributes = attributes
        self.n_classes = n_classes
        self.classifiers = classifiers
        self.folds = folds
        self.seed = seed
        self.threat = threat
        self.top_k = top_k
        n_users = len(next(iter(attributes.values())))
        self.known = np.zeros(n_users, dtype=bool)
        self.known[rng.permutation(n_users)[: int(round(known_fraction * n_users))]] = True
        self.results: dict[str, list[AttackOutcome]] = {}
        self.attacked_version = -1

    def attack(
        self, recommender: Recommender, disclosed: Interactions, version: int
    ) -> dict[str, list[AttackOutcome]]:
        """Infer every attribute from this model and the disclosed ratings (cached per
        platform model version, so features are built once per retrain)."""
        if version != self.attacked_version:
            features = build_features(self.threat, recommender, disclosed, self.top_k)
            # The platform may hold more accounts than there are real users (fake profiles
            # come after them); the attacker classifies the real ones.
            features = features[: len(self.known)]
            self.results = {
                name: infer_attribute(
                    features, labels, self.known, self.n_classes[name],
                    self.classifiers, self.folds, self.seed,
                )
                for name, labels in self.attributes.items()
            }
            self.attacked_version = version
        return self.results
