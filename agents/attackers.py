"""Attackers. The inference attacker learns private attributes from user embeddings."""

from __future__ import annotations

import mesa
import numpy as np

from simulator.attacks.inference import AttackOutcome, infer_attribute


class InferenceAttacker(mesa.Agent):
    """Knows the attributes of a fraction of users (e.g. public profiles) and infers the rest.

    Threat model `embedding`: it sees the platform's user representations after every
    retrain, trains its classifiers on the users it knows and predicts everyone else.
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
    ) -> None:
        super().__init__(model)
        self.attributes = attributes
        self.n_classes = n_classes
        self.classifiers = classifiers
        self.folds = folds
        self.seed = seed
        n_users = len(next(iter(attributes.values())))
        self.known = np.zeros(n_users, dtype=bool)
        self.known[rng.permutation(n_users)[: int(round(known_fraction * n_users))]] = True
        self.results: dict[str, list[AttackOutcome]] = {}
        self.attacked_version = -1

    def attack(self, embeddings: np.ndarray, version: int) -> dict[str, list[AttackOutcome]]:
        """Infer every attribute from these embeddings (cached per platform model version)."""
        if version != self.attacked_version:
            self.results = {
                name: infer_attribute(
                    embeddings, labels, self.known, self.n_classes[name],
                    self.classifiers, self.folds, self.seed,
                )
                for name, labels in self.attributes.items()
            }
            self.attacked_version = version
        return self.results
