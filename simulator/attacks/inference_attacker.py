"""The attribute-inference attacker: knows some users' attributes (public profiles) and
infers everyone else's from what it sees of them (`attackers: [{kind: inference}]`)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import Field, field_validator

from simulator.attacks.protocol import Attacker, AttackerContext, Board
from simulator.foundations.errors import ScenarioError
from simulator.foundations.random_streams import random_stream
from simulator.foundations.settings import AttributeName, Section, distinct_entries

if TYPE_CHECKING:
    from simulator.attacks.inference import AttackOutcome
    from simulator.recommenders.base import Recommender
    from simulator.world.base import Interactions


def _default_inferred() -> list[AttributeName]:
    return ["gender", "age"]


def _default_classifiers() -> list[Literal["logreg", "xgboost", "mlp", "forest"]]:
    return ["logreg", "xgboost"]


class InferenceAttackerConfig(Section):
    """An attribute-inference attacker: what it sees of users and how it classifies them."""

    kind: Literal["inference"] = "inference"
    threat: Literal["embedding", "recommendations", "ratings"] = Field(
        "embedding",
        description="what it sees: user embeddings, each user's top-k recommendations, "
        "or the ratings users disclosed",
    )
    top_k: int = Field(10, ge=1, le=1000, description="threat recommendations: length of each list")
    known_fraction: float = Field(0.5, gt=0.0, lt=1.0, description="share of users it knows")
    attributes: list[AttributeName] = Field(
        default_factory=_default_inferred
    )
    classifiers: list[Literal["logreg", "xgboost", "mlp", "forest"]] = Field(
        default_factory=_default_classifiers
    )
    folds: int = Field(5, ge=2, le=20)
    selection_every: int = Field(
        1, ge=1, le=1000, description="fresh attacks per cross-validation: 1 cross-validates "
        "every attack and predicts with the mean of the fold models; K > 1 cross-validates "
        "every K-th attack (choosing the classifier and XGBoost's rounds) and in between "
        "refits each classifier once on all known users; predictions then always come from "
        "one fit on all known users",
    )

    @field_validator("attributes", "classifiers")
    @classmethod
    def _non_empty(cls, values: list[str]) -> list[str]:
        return distinct_entries(values)


class InferenceAttacker(Attacker):
    """Knows the attributes of a fraction of users (e.g. public profiles) and infers the rest.

    Whenever what it sees has changed it looks at users afresh through its threat model
    (`embedding`: the platform's user representations, new at each retrain;
    `recommendations`: each user's top-k list among the items it has not disclosed, new at
    each retrain and whenever disclosures change; `ratings`: the ratings users disclosed,
    new whenever disclosures change), trains its classifiers on the users it knows and
    predicts everyone else.
    """

    kind = "inference"
    title = "an inference attacker"
    settings = InferenceAttackerConfig
    label_prefix = "attacker"
    reads = ("the model", "recommendations", "public ratings", "attributes")
    phases = ("infer",)
    only_one = True
    example = {"kind": "inference", "known_fraction": 0.5, "attributes": ["gender", "age"],
               "classifiers": ["logreg"], "folds": 2}

    @classmethod
    def describe(cls, settings: Any, index: int) -> list[str]:
        """When it attacks: after every retrain (embeddings), or whenever its view changes."""
        cadence = "after every retrain" if settings.threat == "embedding" else (
            "every step its view changes")
        return [f"inference attacker ({settings.threat}, {', '.join(settings.attributes)}): "
                f"{cadence} [attackers.{index}]"]

    def __init__(self, *, settings: InferenceAttackerConfig, context: AttackerContext) -> None:
        super().__init__(settings=settings, context=context)
        world = context.world  # has every attribute named (`build.check_attributes`)
        if round(settings.known_fraction * world.n_users) < 1:  # the attacker draws this many
            raise ScenarioError(
                f"{context.where}.known_fraction: {settings.known_fraction:g} of the "
                f"{world.n_users:,} users of the world is no user; the attacker must know at "
                "least one to train on")
        self.attributes = {a: world.attributes[a] for a in settings.attributes}
        self.n_classes = {a: len(world.attribute_labels[a]) for a in settings.attributes}
        self.classifiers: list[str] = list(settings.classifiers)
        self.folds = settings.folds
        self.seed = context.seed
        self.threat = settings.threat
        self.top_k = settings.top_k
        self.device = context.device
        self.selection_every = settings.selection_every
        self.cross_validated = False  # whether the latest attack cross-validated
        n_users = world.n_users
        known = random_stream(context.seed, "inference_known_users").permutation(n_users)
        self.known = np.zeros(n_users, dtype=bool)
        self.known[known[: int(round(settings.known_fraction * n_users))]] = True
        self.results: dict[str, list[AttackOutcome]] = {}
        self.attacks = 0  # how many times it attacked afresh (identifies the latest results)
        self._seen: tuple[int, ...] | None = None

    def infer(self, board: Board) -> None:
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
        from simulator.attacks.features import build_features
        from simulator.attacks.inference import infer_attribute

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
