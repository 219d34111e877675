"""The item owner: a white-box owner of some items (an uploader or a seller) who perturbs
them after every retrain to push them to a target segment (`attackers: [{kind:
item_perturbation}]`)."""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import numpy as np
from pydantic import Field

from simulator.attacks.protocol import Attacker, AttackerContext, Board
from simulator.attacks.targets import configured_or_by_popularity
from simulator.foundations.errors import ScenarioError
from simulator.foundations.random_streams import random_stream
from simulator.foundations.settings import MAX_ITEMS, MAX_STEPS, AttributeName, Scheduled, Section
from simulator.recommenders.registry import capabilities, models_with
from simulator.world.base import Interactions, World

if TYPE_CHECKING:
    import torch

    from simulator.recommenders.base import Recommender
    from simulator.recommenders.factor_model import FactorModel

# Capabilities through which a white-box item owner can move its items.
WHITE_BOX_ITEMS = frozenset({"settable_items", "item_parameters"})


class ItemPerturbationConfig(Section):
    """A white-box item owner: after every retrain it perturbs its items' own parameters (a
    factor model's item embeddings, a MetaMF item's row of the item table) within a budget
    to push them to a target segment of users."""

    kind: Literal["item_perturbation"] = "item_perturbation"
    target: Literal["embedding", "features"] = Field(
        "embedding", description="what it perturbs: the items' embeddings in the model "
        "(white box), or the side information the platform ingests about them (needs "
        "platform.item_features; features stay in [0, 1])",
    )
    items: list[int] | None = Field(
        None, description="owned item indices (0-based); default: chosen by popularity"
    )
    item_popularity: Literal["unpopular", "median", "popular"] = "unpopular"
    n_items: int = Field(1, ge=1, le=MAX_ITEMS, description="without items: how many to own")
    segment_attribute: AttributeName | None = Field(
        None, description="target segment: users with this attribute value (None: everyone)"
    )
    segment_value: int = Field(0, ge=0, le=1000, description="the attribute code of the segment")
    epsilon: float = Field(
        0.5, gt=0.0, le=100.0, description="per-item budget on the change of the item's own "
        "parameters, in `norm` (its scale follows the model's: MetaMF's item rows have a "
        "median l2 norm near 0.3 at the default sizes)",
    )
    method: Literal["fgsm", "pgd"] = "pgd"
    steps: int = Field(10, ge=1, le=10_000, description="pgd steps")
    norm: Literal["l2", "linf"] = "l2"
    objective: Literal["score", "rank"] = "rank"
    start_step: int = Field(0, ge=0, le=MAX_STEPS)


CLEAN_SCORE_USERS = 256  # segment users scored at once for the rank objective's thresholds


@runtime_checkable
class ItemParameterModel(Protocol):
    """A model with the `item_parameters` capability: items own parameter rows."""

    def item_parameters(self, items: np.ndarray) -> np.ndarray: ...

    def set_item_parameters(self, items: np.ndarray, rows: np.ndarray) -> None: ...

    def score_item_parameters(self, users: torch.Tensor, rows: torch.Tensor) -> torch.Tensor: ...


class ItemOwner(Attacker):
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

    kind = "item_perturbation"
    title = "an item owner (item_perturbation)"
    settings = ItemPerturbationConfig
    label_prefix = "item_owner"
    poisons = True
    reads = ("the model", "public ratings", "attributes")
    phases = ("pick_items", "perturb")
    with_consumption = False
    example = {"kind": "item_perturbation", "steps": 3, "segment_attribute": "gender",
               "segment_value": 0}

    def __init__(self, *, settings: ItemPerturbationConfig, context: AttackerContext) -> None:
        super().__init__(settings=settings, context=context)
        self.segment = segment(context.world, context.where, settings.segment_attribute,
                               settings.segment_value)
        self.n_items = context.world.n_items
        self.draws = random_stream(context.seed, "poisoner", context.index)
        self.owned: np.ndarray | None = None
        self.true_features: np.ndarray | None = None
        self.last_gain = math.nan

    @classmethod
    def scheduled(cls, settings: Any, index: int) -> list[Scheduled]:
        """Its first perturbation (it acts at every retrain from `start_step`)."""
        return [Scheduled(settings.start_step, settings.start_step,
                          f"item owner ({settings.target})", f"attackers.{index}.start_step",
                          True)]

    @classmethod
    def platform_problem(cls, settings: Any, platform: Any) -> str | None:
        """It needs a model whose items have their own parameters, lists ranked by the rows it
        moves, and, to rewrite side information, a platform that learns from it."""
        if platform.ranking.method == "consumption":
            return ("item_perturbation attackers move the item rows a model rates with, but "
                    "with platform.ranking.method: consumption its lists rank by the "
                    "consumption task's rows; set platform.ranking.method: score")
        have = capabilities(platform.model)
        if not have & WHITE_BOX_ITEMS:
            white_box = sorted({m for need in WHITE_BOX_ITEMS
                                for m in models_with(frozenset({need}))})
            return (f"item_perturbation attackers need a platform model whose items have "
                    f"their own parameters ({', '.join(white_box)})")
        if settings.target == "features" and "item_features" not in have:
            models = " or ".join(models_with(frozenset({"item_features"})))
            return ("an item_perturbation attacker with target: features rewrites item side "
                    f"information, which only {models} models learn from")
        if settings.target == "features" and not platform.item_features:
            return ("an item_perturbation attacker with target: features needs "
                    "platform.item_features: true (the platform must use side information)")
        return None

    # --- phases (run by the model through Mesa's AgentSet) ----------------------------------

    def pick_items(self, board: Board) -> None:
        """Phase: fix the owned items as soon as there is public data to choose from."""
        if self.owned is None and len(board.public):
            self.choose_items(board.public)

    def perturb(self, board: Board) -> None:
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
        from simulator.attacks.item_perturbation import apply_perturbation, perturb_items
        from simulator.recommenders.factor_model import FactorModel

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
        import torch

        from simulator.attacks.item_perturbation import perturb_item_parameters

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
        import torch

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
        from simulator.attacks.item_perturbation import apply_perturbation, perturb_items

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


def segment(world: World, where: str, attribute: str | None, value: int) -> np.ndarray:
    """An item owner's target segment: the genuine users with that attribute value (all
    users without an attribute; the world has the attribute: `build.check_attributes`)."""
    if attribute is None:
        return np.ones(world.n_users, dtype=bool)
    labels = world.attribute_labels[attribute]
    if value >= len(labels):
        raise ScenarioError(
            f"{where}.segment_value: {attribute} codes are 0..{len(labels) - 1} "
            f"({', '.join(labels)}), got {value}"
        )
    return world.attributes[attribute] == value
