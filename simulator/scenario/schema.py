"""Scenario files: the pydantic schema, YAML loading, `--set` overrides and clear errors.

Every section forbids unknown keys, so a typo is an error that names its key path.
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo

from simulator.defenses.registry import (
    DefensesConfig,
    consumption_blockers,
    platform_defense_problems,
)
from simulator.foundations.errors import ScenarioError, shown
from simulator.foundations.settings import (
    MAX_EPOCHS,
    MAX_ITEMS,
    MAX_LR,
    MAX_SEED,
    MAX_STEPS,
    MAX_USERS,
    MAX_WEIGHT,
    MAX_WIDTH,
    TYPE_NAME,
    DefenseSection,
    Section,
)
from simulator.recommenders.registry import capabilities, models_with
from simulator.scenario.schedule import schedule_problems
from simulator.world.parameters import validate_parameters

SYNTHETIC_USERS, SYNTHETIC_ITEMS = 1000, 800  # the synthetic world's default size
DEFAULT_MOVIELENS = "${PRIVSIM_DATA:-../shared/data}/ml-100k"
PROJECT = Path(__file__).resolve().parents[2]  # relative data paths fall back to it

class WorldConfig(Section):
    """Where the ground truth comes from."""

    source: Literal["synthetic", "movielens"] = "synthetic"
    path: str | None = Field(None, description="MovieLens folder (source: movielens)")
    signal: float = Field(
        1.0, ge=0.0, le=100.0, description="synthetic: how strongly attributes shape taste"
    )
    n_users: int | None = Field(
        None, ge=2, le=MAX_USERS,
        description="synthetic: users (default 1000); movielens: keep the first n"
    )
    n_items: int | None = Field(
        None, ge=2, le=MAX_ITEMS,
        description="synthetic: items (default 800); movielens: keep this many (item_sample)",
    )
    item_sample: Literal["random", "popular"] = Field(
        "random", description="movielens with n_items: a seeded random subset, or the most rated"
    )
    duplicate_ratings: Literal["error", "latest"] = Field(
        "error", description="movielens: a user rating an item twice is an error naming both "
        "lines (the releases hold each pair once, so a repeat means a damaged or merged "
        "file), or keeps the latest rating",
    )
    mean_ratings_per_user: float = Field(60.0, gt=0, le=MAX_ITEMS)
    min_ratings_per_user: int = Field(20, ge=1, le=MAX_ITEMS)
    test_fraction: float = Field(0.2, gt=0.0, lt=1.0, description="share of each user's ratings")
    split: Literal["temporal", "random"] = Field(
        "temporal", description="hold out each user's latest ratings, or a random share"
    )
    seed: int | None = Field(
        None, ge=0, le=MAX_SEED, description="synthetic world seed (default: simulation)"
    )

    @model_validator(mode="after")
    def _check_source(self) -> WorldConfig:
        if self.source == "movielens":
            path = self.path
            if not path:
                # The shared MovieLens 100K copy, so `--set world.source=movielens` is enough.
                path = expand_env(DEFAULT_MOVIELENS)
                self.__dict__["path"] = path
            folder = Path(path)
            try:
                found = folder.is_dir()
                # A relative path not found from the working folder is read from the project
                # (the shipped `../shared/data/...` defaults), wherever privsim is run from.
                if not found and not folder.is_absolute() and (PROJECT / folder).is_dir():
                    folder, found = (PROJECT / folder).resolve(), True
                    self.__dict__["path"] = str(folder)
            except (OSError, ValueError) as exc:  # a name too long, a NUL
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
                raise ValueError(f"data folder {shown(path, 300)} cannot be used "
                                 f"({shown(str(reason), quote=False)})") from None
            if not found:
                name = str(folder)  # quoted when it holds a character that does not print
                raise ValueError(
                    f"data folder not found: {shown(name, 300, quote=not name.isprintable())} (set "
                    "PRIVSIM_DATA to the folder that holds ml-100k/ and ml-1m-head/, or give the "
                    "dataset's own folder with --set world.path=/path/to/ml-100k)")
        else:
            validate_parameters(
                self.n_users or SYNTHETIC_USERS, self.n_items or SYNTHETIC_ITEMS, self.signal,
                self.mean_ratings_per_user, self.min_ratings_per_user, 16, 1.0, self.seed or 0,
            )
        return self


class InclinationType(Section):
    """One privacy inclination type: its share of the population and its disclosure budget."""

    share: float = Field(ge=0.0, le=1.0)
    beta: float = Field(ge=0.0, le=1.0, description="fraction of experienced ratings disclosed")
    unlearning_share: float = Field(
        0.0, ge=0.0, le=1.0, description="share of these users who ask for attribute unlearning"
    )
    concern: float = Field(
        1.0, ge=0.0, le=MAX_WEIGHT,
        description="privacy_calculus, social: weight of perceived risk (breaches)"
    )


def _default_types() -> dict[str, InclinationType]:
    return {
        "unconcerned": InclinationType(share=0.20, beta=1.0),
        "pragmatist": InclinationType(share=0.55, beta=0.6),
        "fundamentalist": InclinationType(share=0.25, beta=0.2),
    }


class CalculusConfig(Section):
    """The privacy-calculus update: each step a user moves its budget toward a target that
    rises with its perceived benefit and falls with its perceived risk."""

    rate: float = Field(0.3, gt=0.0, le=1.0, description="share of the gap closed per step")
    benefit_weight: float = Field(
        5.0, ge=0.0, le=MAX_WEIGHT,
        description="logit change per unit of own NDCG above the popularity baseline"
    )
    risk_weight: float = Field(
        3.0, ge=0.0, le=MAX_WEIGHT, description="logit change per unit of concern x breach salience"
    )
    memory: float = Field(
        0.5, ge=0.0, lt=1.0, description="smoothing of perceived benefit (EMA weight of the past)"
    )
    forget: float = Field(0.2, ge=0.0, le=1.0, description="share of breach salience lost per step")


class SocialConfig(Section):
    """The social graph users influence each other over."""

    graph: Literal["watts_strogatz", "barabasi_albert", "homophilous", "file"] = "watts_strogatz"
    path: str | None = Field(None, description="graph file: an edge list of user ids")
    k: int = Field(
        10, ge=2, le=1000, description="watts_strogatz, homophilous: neighbours per user"
    )
    p: float = Field(0.1, ge=0.0, le=1.0, description="watts_strogatz: rewiring probability")
    m: int = Field(5, ge=1, le=1000, description="barabasi_albert: edges per new user")
    homophily_attribute: Literal["gender", "age", "occupation"] = "gender"
    homophily: float = Field(0.8, ge=0.0, le=1.0, description="homophilous: same-group share")
    influence: float = Field(
        0.2, ge=0.0, le=1.0, description="share of the gap to the neighbours' mean beta closed"
    )
    pass_news: float = Field(
        0.3, ge=0.0, le=1.0, description="chance that an informed user tells each neighbour"
    )

    @model_validator(mode="after")
    def _file_needs_path(self) -> SocialConfig:
        if self.graph == "file" and not self.path:
            raise ValueError("graph: file needs path (an edge list)")
        return self


class PerturbationConfig(DefenseSection):
    """User-side local perturbation of disclosed ratings before the platform sees them."""

    mechanism: Literal["randomized_response", "laplace"] = "laplace"
    epsilon: float = Field(1.0, gt=0.0, le=50.0, description="local privacy parameter per rating")


class PopulationConfig(Section):
    """The users: inclination mix, disclosure policy and per-user overrides."""

    types: dict[str, InclinationType] = Field(default_factory=_default_types)
    policy: Literal["fixed", "sensitivity_aware", "privacy_calculus", "social"] = Field(
        "fixed", description="fixed budgets; fixed budgets withholding the most revealing "
        "ratings first; budgets that follow perceived benefit and risk; the same plus "
        "influence and breach news over a social graph",
    )
    sensitive_attribute: Literal["gender", "age", "occupation"] = Field(
        "gender", description="sensitivity_aware: the attribute users protect"
    )
    calculus: CalculusConfig = Field(default_factory=CalculusConfig)
    social: SocialConfig = Field(default_factory=SocialConfig)
    beta_overrides: dict[int, float] = Field(
        default_factory=dict, description="original user id -> beta"
    )
    perturbation: PerturbationConfig | None = Field(
        None, description="local noise users add to the ratings they disclose"
    )

    @field_validator("types")
    @classmethod
    def _shares_sum_to_one(cls, types: dict[str, InclinationType]) -> dict[str, InclinationType]:
        if not types:
            raise ValueError("at least one inclination type is needed")
        for name in types:
            if not re.fullmatch(TYPE_NAME, name):
                raise ValueError(f"type name {shown(name)}: use up to 40 letters, digits, spaces, "
                                 "'.', '_', '+' and '-', starting with a letter or digit")
        total = sum(t.share for t in types.values())
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"type shares must sum to 1, they sum to {total:g}")
        return types

    @field_validator("beta_overrides")
    @classmethod
    def _betas_in_range(cls, overrides: dict[int, float]) -> dict[int, float]:
        for user, beta in overrides.items():
            if not 0.0 <= beta <= 1.0:
                raise ValueError(
                    f"beta for user {shown(user)} must be in [0, 1], got {shown(beta)}")
        return overrides


class MetaMFConfig(Section):
    """MetaMF's dimensions (Lin et al. 2020 defaults) and training choices."""

    user_dim: int = Field(32, ge=1, le=MAX_WIDTH)
    memory_dim: int = Field(128, ge=1, le=MAX_WIDTH)
    hidden: int = Field(512, ge=1, le=MAX_WIDTH)
    item_dim: int = Field(32, ge=4, le=MAX_WIDTH)
    rank: int = Field(8, ge=1, le=MAX_WIDTH)
    user_init_std: float = Field(
        0.01, gt=0.0, le=10.0, description="std of the initial user embeddings (reference: 1.0)"
    )
    lr_schedule: Literal["cosine", "constant"] = Field(
        "cosine", description="learning rate over each training's epochs (reference: constant)"
    )
    validation: float = Field(
        0.05, ge=0.0, lt=0.5, description="share of each training's ratings held out to stop "
        "early and keep the best epoch (0: train on all for every epoch, as the reference)",
    )
    patience: int = Field(3, ge=1, le=1000, description="epochs without a better held-out error "
                          "before a training stops")


RATING_MODELS = ("mf", "metamf", "nometamf")
# Sampled unrated items per rated one in the consumption task, per model (measured on
# ml100k-baseline, 4 steps: MetaMF's head needs more contrast than MF's item factors).
DEFAULT_NEGATIVES = {"mf": 4, "metamf": 12, "nometamf": 12}


class RankingConfig(Section):
    """How the platform orders its top-N lists (`recommenders.consumption`)."""

    method: Literal["score", "consumption"] | None = Field(
        None, description="score: by the model's own score (BPR's preference, a rating "
        "model's predicted rating); consumption: a rating model also learns which items users "
        "consume (collective MF: shared user representation, rated items 1, sampled unrated "
        "items 0) and lists rank by it. Default: consumption for rating models, score for "
        "bpr, under DP-SGD and with item_perturbation attackers",
    )
    negatives: int | None = Field(
        None, ge=1, le=100, description="consumption: unrated items sampled per rated one at "
        "each retrain (default: 4 for mf, 12 for metamf and nometamf, whose consumption head "
        "learns from the shared user embedding only)",
    )


class PlatformConfig(Section):
    """The platform's recommender and its retraining schedule."""

    model: Literal["bpr", "mf", "metamf", "nometamf"] = "bpr"
    retrain_every: int = Field(2, ge=1, le=MAX_STEPS)
    epochs: int = Field(5, ge=1, le=MAX_EPOCHS, description="epochs per (warm-started) retrain")
    first_epochs: int | None = Field(
        20, ge=1, le=MAX_EPOCHS, description="epochs of the first training"
    )
    warm_start: bool = True
    deletion: Literal["retrain", "finetune"] = Field(
        "retrain", description="how deletion requests are honoured at the next retrain: "
        "exact (retrain from scratch without the data) or approximate (drop the data, zero "
        "the users' rows and continue from the current model)",
    )
    factors: int = Field(32, ge=1, le=MAX_WIDTH)
    lr: float | None = Field(None, gt=0, le=MAX_LR)
    reg: float | None = Field(None, ge=0, le=100.0)
    batch_size: int | None = Field(None, ge=1, le=10_000_000)
    item_features: bool = Field(
        False, description="bpr, mf: learn from the world's item side information (genres)"
    )
    metamf: MetaMFConfig = Field(default_factory=MetaMFConfig)
    ranking: RankingConfig = Field(default_factory=RankingConfig)
    defenses: DefensesConfig = Field(default_factory=DefensesConfig)

    @model_validator(mode="after")
    def _model_can_do_it(self) -> PlatformConfig:
        if self.item_features and "item_features" not in capabilities(self.model):
            models = " or ".join(models_with(frozenset({"item_features"})))
            raise ValueError(f"item_features needs a {models} model, not {self.model!r}")
        if self.ranking.method == "consumption":
            blockers = consumption_blockers(self.defenses)
            if self.model not in RATING_MODELS:
                raise ValueError(f"ranking.method: consumption is for rating models "
                                 f"({', '.join(RATING_MODELS)}); {self.model} ranks by its own "
                                 "objective (use score)")
            if blockers:
                raise ValueError(f"ranking.method: consumption cannot train under "
                                 f"defenses.{blockers[0]} (DP-SGD's per-rating accounting "
                                 "counts each rating once; the consumption task trains it "
                                 "twice): use ranking.method: score")
        problem = platform_defense_problems(self.model, self.item_features, self.defenses)
        if problem is not None:
            raise ValueError(problem)
        return self


def _default_inferred() -> list[Literal["gender", "age", "occupation"]]:
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
    attributes: list[Literal["gender", "age", "occupation"]] = Field(
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
        if not values:
            raise ValueError("must list at least one entry")
        if len(set(values)) != len(values):
            raise ValueError("entries must not repeat")
        return values


ATTACK_MODELS = ("random", "average", "bandwagon", "segment", "love_hate", "reverse_bandwagon")


class ShillingAttackerConfig(Section):
    """A profile-injection attacker: fake users whose ratings push or nuke target items."""

    kind: Literal["shilling"] = "shilling"
    model: Literal[ATTACK_MODELS] = Field(  # type: ignore[valid-type]
        "average", description="how fake profiles rate their selected and filler items"
    )
    intent: Literal["push", "nuke"] = "push"
    targets: list[int] | None = Field(
        None, description="target item indices (0-based); default: chosen by popularity"
    )
    target_popularity: Literal["unpopular", "median", "popular"] = Field(
        "unpopular", description="without targets: public rating count of the chosen targets"
    )
    n_targets: int = Field(1, ge=1, le=MAX_ITEMS, description="without targets: how many to choose")
    attack_size: float = Field(
        0.03, gt=0.0, le=1.0, description="fake profiles as a share of genuine users"
    )
    filler_size: float = Field(
        0.03, gt=0.0, le=1.0, description="filler items per profile as a share of all items"
    )
    selected: list[int] | None = Field(
        None, description="selected items (bandwagon, segment, reverse_bandwagon); default: "
        "chosen from public statistics",
    )
    n_selected: int = Field(10, ge=1, le=MAX_ITEMS)
    start_step: int = Field(
        0, ge=0, le=MAX_STEPS, description="first step at which profiles are injected"
    )
    spread_steps: int = Field(
        1, ge=1, le=MAX_STEPS, description="inject the profiles evenly over this many steps"
    )
    adaptive: bool = Field(
        False, description="watch the targets through probe accounts after every retrain and "
        "react: inject more, and move fillers toward what the platform recommends",
    )
    probes: int = Field(
        5, ge=1, le=10_000, description="adaptive: probe accounts that only observe"
    )
    goal: float = Field(
        0.5, gt=0.0, le=1.0, description="adaptive: share of probes with a target in the "
        "top-k that counts as success (push), or without one (nuke)",
    )
    reserve: float = Field(
        0.5, ge=0.0, lt=1.0, description="adaptive: share of the profiles held back for "
        "re-injection when the goal is not reached",
    )
    declared_attributes: Literal["marginal", "flipped"] = Field(
        "marginal", description="what each fake account declares about itself (gender, age, "
        "occupation) at sign-up, which defenses trained on declared attributes take at face "
        "value: drawn from the public class shares, or the class its own ratings look least "
        "like (to turn the platform's read-outs around)",
    )
    known_fraction: float = Field(
        0.5, ge=0.0, le=1.0, description="share of genuine users whose attributes the "
        "attacker knows (public profiles): its class shares and its flipped declarations",
    )

    @model_validator(mode="after")
    def _consistent(self) -> ShillingAttackerConfig:
        if self.model in ("love_hate", "reverse_bandwagon") and self.intent == "push":
            raise ValueError(f"model {self.model} is a nuke attack: set intent: nuke")
        for name in ("targets", "selected"):
            values = getattr(self, name)
            if values is not None and (not values or len(set(values)) != len(values)
                                       or min(values) < 0):
                raise ValueError(f"{name}: give distinct item indices >= 0")
        return self


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
    segment_attribute: Literal["gender", "age", "occupation"] | None = Field(
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


def _attacker_kind(value: Any) -> str:
    """The `kind` of an attacker entry (inference when not given)."""
    if isinstance(value, dict):
        return str(value.get("kind", "inference"))
    return str(getattr(value, "kind", "inference"))


AttackerConfig = Annotated[
    Annotated[InferenceAttackerConfig, Tag("inference")]
    | Annotated[ShillingAttackerConfig, Tag("shilling")]
    | Annotated[ItemPerturbationConfig, Tag("item_perturbation")],
    Discriminator(_attacker_kind),
]
ATTACKER_KINDS = ("inference", "shilling", "item_perturbation")
# Capabilities through which a white-box item owner can move its items.
WHITE_BOX_ITEMS = frozenset({"settable_items", "item_parameters"})
ATTACKER_CLASSES: dict[str, type[Section]] = {
    "inference": InferenceAttackerConfig, "shilling": ShillingAttackerConfig,
    "item_perturbation": ItemPerturbationConfig,
}


def _default_attackers() -> list[AttackerConfig]:
    return [InferenceAttackerConfig()]


class EventConfig(Section):
    """Something that happens at a given step.

    breach: a data breach is announced (privacy_calculus and social users react);
    opt_out: a share of users stop disclosing (their data stays until deleted);
    deletion: a share of users leave and ask the platform to delete their data;
    unlearning_request: a share of users ask the platform to unlearn their attributes (the
    unlearning defense with scope: requested acts on them);
    convert: a share of users take on another inclination type (its beta and concern).
    `types` restricts who is drawn (default: everyone); draws come from per-user streams.
    """

    step: int = Field(ge=0, le=MAX_STEPS)
    kind: Literal["breach", "opt_out", "deletion", "unlearning_request", "convert"] = "breach"
    severity: float = Field(
        1.0, gt=0.0, le=MAX_WEIGHT, description="breach: salience added to informed users"
    )
    reach: float = Field(
        1.0, ge=0.0, le=1.0, description="breach: share of users who hear it directly"
    )
    share: float = Field(
        1.0, ge=0.0, le=1.0, description="share of the users of `types` drawn (not breach)"
    )
    types: list[str] | None = Field(None, description="inclination types drawn from (all)")
    to: str | None = Field(None, description="convert: the type users take on")

    @model_validator(mode="after")
    def _convert_needs_a_type(self) -> EventConfig:
        if self.kind == "convert" and not self.to:
            raise ValueError("a convert event needs 'to' (an inclination type)")
        return self


class SimulationConfig(Section):
    """Time, randomness and hardware."""

    steps: int = Field(20, ge=1, le=MAX_STEPS, description="how many steps the history is cut into")
    seed: int = Field(0, ge=0, le=MAX_SEED)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    stop_after: int | None = Field(
        None, ge=1, le=MAX_STEPS,
        description="run only the first K steps of the schedule (a quick look; "
        "`privsim run --first K`); null: all of them",
    )

    @model_validator(mode="after")
    def _stop_inside_the_run(self) -> SimulationConfig:
        if self.stop_after is not None and self.stop_after > self.steps:
            raise ValueError(
                f"stop_after={self.stop_after} is past the last step (steps={self.steps})"
            )
        return self

    @property
    def run_steps(self) -> int:
        """How many steps a run actually takes (`stop_after`, else all)."""
        return self.stop_after or self.steps


class MetricsConfig(Section):
    """What is measured each step."""

    k: int = Field(10, ge=1, le=1000, description="cut-off of HR@k and NDCG@k")
    group_share: float = Field(
        0.05, gt=0.0, le=1 / 3, description="size of the Low/Med/High involvement groups"
    )
    membership: bool = Field(
        False, description="after every retrain, membership inference of the users the "
        "platform trained on (their disclosed ratings) against users who disclosed nothing "
        "(the ratings they experienced in the same time): mia_members_auc, "
        "mia_members_tpr_at_1pct_fpr",
    )


class OutputConfig(Section):
    """Where and what a run writes."""

    dir: str = "outputs"
    agents_table: bool = True
    agents_sample: float = Field(
        1.0, gt=0.0, le=1.0, description="share of users the agents table follows (a "
        "fixed random subset drawn from the seed); 1 follows everyone",
    )
    plots: bool = True


class ReportConfig(Section):
    """What the end-of-run summary shows."""

    headline: list[str] = Field(
        default_factory=list, max_length=20,
        description="metrics.parquet columns the summary shows first, each with its chance "
        "level or baseline and its change since the first step (default: accuracy, "
        "disclosure and leakage)",
    )


class Scenario(Section):
    """A whole what-if: world, population, platform, attackers, simulation, metrics, output."""

    name: str = "scenario"
    description: str = ""
    # Set by `catalog.load_scenario` when overrides changed a named scenario: its name and
    # the settings they changed (`core.changes`).
    _base: str | None = PrivateAttr(default=None)
    _changes: tuple[str, ...] = PrivateAttr(default=())

    @property
    def base(self) -> str | None:
        """The named scenario this one was made from by overrides that changed it, if any."""
        return self._base

    @property
    def changes(self) -> tuple[str, ...]:
        """The settings the overrides changed from `base` (empty: the named scenario)."""
        return self._changes

    @property
    def title(self) -> str:
        """The name a run of it goes by: the name, or `base + N changes`."""
        from simulator.scenario.changes import run_title

        return run_title(self.name, self._base, self._changes)
    world: WorldConfig = Field(default_factory=WorldConfig)
    population: PopulationConfig = Field(default_factory=PopulationConfig)
    platform: PlatformConfig = Field(default_factory=PlatformConfig)
    attackers: list[AttackerConfig] = Field(
        default_factory=_default_attackers,
        description="at most one inference attacker, and any number of poisoning attackers",
    )
    events: list[EventConfig] = Field(default_factory=list, description="scheduled events")
    simulation: SimulationConfig = Field(default_factory=SimulationConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)

    @field_validator("attackers")
    @classmethod
    def _one_inference_attacker(cls, attackers: list[Any]) -> list[Any]:
        if sum(a.kind == "inference" for a in attackers) > 1:
            raise ValueError("at most one inference attacker")
        return attackers

    @model_validator(mode="after")
    def _resolve_ranking(self) -> Scenario:
        """The default ranking: consumption for rating models, unless a defense cannot train
        it (DP-SGD) or an item owner moves the rows a model rates with; score otherwise."""
        platform = self.platform
        ranking = platform.ranking
        if ranking.method is None:
            owners = any(a.kind == "item_perturbation" for a in self.attackers)
            rated = platform.model in RATING_MODELS and not owners \
                and not consumption_blockers(platform.defenses)
            ranking.method = "consumption" if rated else "score"
        if ranking.method == "consumption" and ranking.negatives is None:
            ranking.negatives = DEFAULT_NEGATIVES[platform.model]
        return self

    @model_validator(mode="after")
    def _events_name_known_types(self) -> Scenario:
        known = set(self.population.types)
        for index, event in enumerate(self.events):
            named = [*(event.types or []), *([event.to] if event.to else [])]
            unknown = [t for t in named if t not in known]
            if unknown:
                raise ValueError(
                    f"events.{index}: unknown inclination type {shown(unknown[0])} "
                    f"(population.types has {', '.join(sorted(known))})"
                )
        return self

    @model_validator(mode="after")
    def _schedule_fits(self) -> Scenario:
        problems = schedule_problems(self)
        if problems:
            last = self.simulation.steps - 1
            raise ValueError(
                f"simulation.steps={self.simulation.steps} ends at step {last}, so these "
                f"cannot happen: {'; '.join(problems)} (to look at the first K steps of the "
                "whole schedule, keep steps and use --first K / simulation.stop_after)"
            )
        return self

    @model_validator(mode="after")
    def _poisoning_support(self) -> Scenario:
        poisoning = [a for a in self.attackers if a.kind != "inference"]
        if not poisoning:
            return self
        owners = [a for a in poisoning if a.kind == "item_perturbation"]
        if owners and self.platform.ranking.method == "consumption":
            raise ValueError(
                "item_perturbation attackers move the item rows a model rates with, but with "
                "platform.ranking.method: consumption its lists rank by the consumption task's "
                "rows; set platform.ranking.method: score")
        have = capabilities(self.platform.model)
        if owners and not have & WHITE_BOX_ITEMS:
            white_box = sorted({m for need in WHITE_BOX_ITEMS
                                for m in models_with(frozenset({need}))})
            raise ValueError(
                f"item_perturbation attackers need a platform model whose items have their own "
                f"parameters ({', '.join(white_box)})")
        if any(a.target == "features" for a in owners) and "item_features" not in have:
            models = " or ".join(models_with(frozenset({"item_features"})))
            raise ValueError("an item_perturbation attacker with target: features rewrites "
                             f"item side information, which only {models} models learn from")
        if any(a.target == "features" for a in owners) and not self.platform.item_features:
            raise ValueError(
                "an item_perturbation attacker with target: features needs "
                "platform.item_features: true (the platform must use side information)"
            )
        return self

    @field_validator("name")
    @classmethod
    def _safe_name(cls, name: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
            raise ValueError("use letters, digits, '.', '_' and '-' only")
        return name


# --- loading -----------------------------------------------------------------------------

_ENV_PATTERN = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand_env(text: str) -> str:
    """Expand ${VAR} and ${VAR:-default} in a string (used for data paths)."""

    def substitute(match: re.Match[str]) -> str:
        value = os.environ.get(match.group(1))
        if value:
            return value
        if match.group(2) is not None:
            return match.group(2)
        raise ScenarioError(
            f"environment variable {shown(match.group(1), quote=False)} is not set")

    return _ENV_PATTERN.sub(substitute, text)


# Scenario, sweep and results files are small; these bound what a hostile or broken file can
# make the loader (and the override machinery, which copies the data) do.
MAX_YAML_BYTES = 1 << 20
MAX_YAML_NODES = 100_000  # counted with every alias expanded
MAX_YAML_DEPTH = 64


MAX_INT_CHARACTERS = 4_300  # the most digits Python reads as an int
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_CONSTRUCTOR_FAILURES = (ValueError, TypeError, AttributeError, KeyError, IndexError,
                         OverflowError)


# libyaml's parser where PyYAML was built with it (the wheels are): a tenth of the pure-Python
# parser's time, with the same safe constructors.
_SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _StrictLoader(_SafeLoader):  # type: ignore[valid-type,misc]
    """PyYAML's safe loader that refuses a key given twice in one mapping, reads what looks
    like a date (`2001-01-01`) as the text it is, and refuses a value its tag cannot build
    (`!!int "abc"`, `!!timestamp x`, an integer of 100,000 digits) as invalid YAML at its
    line."""

    # No setting is a date: YAML 1.1's implicit dates would only turn `seed: 2001-01-01`
    # into a date (and `2001-13-45` into a crash) where the text gives a clear error.
    yaml_implicit_resolvers = {
        first: [(tag, pattern) for tag, pattern in resolvers if tag != _TIMESTAMP]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except _CONSTRUCTOR_FAILURES as exc:
            tag = str(node.tag).replace("tag:yaml.org,2002:", "!!")
            value = f"{shown(node.value)} " if isinstance(node, yaml.ScalarNode) else ""
            # A ValueError says what is wrong (`month must be in 1..12`); the others only
            # how the constructor tripped.
            reason = f" ({shown(str(exc), quote=False)})" if isinstance(exc, ValueError) else ""
            raise yaml.constructor.ConstructorError(
                None, None, f"{value}cannot be read as {shown(tag, quote=False)}{reason}",
                node.start_mark) from None

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        if len(str(node.value)) > MAX_INT_CHARACTERS:
            raise yaml.constructor.ConstructorError(
                None, None, f"an integer of {len(str(node.value)):,} characters is too long "
                f"(at most {MAX_INT_CHARACTERS:,})", node.start_mark)
        return int(super().construct_yaml_int(node))

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> dict[Any, Any]:
        if not isinstance(node, yaml.MappingNode):  # `!!map x`: the base class says so
            return super().construct_mapping(node, deep=deep)
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, str | int | float | bool):
                continue
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {shown(key)} given twice (first on line {seen[key]})",
                    key_node.start_mark)
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


_StrictLoader.add_constructor("tag:yaml.org,2002:int", _StrictLoader.construct_yaml_int)


_SURROGATE = re.compile("[\ud800-\udfff]")


def _load_yaml(text: str) -> Any:
    """Parse YAML with the strict loader; whatever fails is a yaml.YAMLError (or, for text
    nested too deeply, a RecursionError)."""
    bad = _SURROGATE.search(text)
    if bad is not None:  # libyaml reads UTF-8 bytes, which a lone surrogate cannot become
        raise yaml.YAMLError(f"unacceptable character #x{ord(bad.group()):04x} at position "
                             f"{bad.start()}: not valid text")
    try:
        return yaml.load(text, Loader=_StrictLoader)  # a SafeLoader: builds plain data only
    except (yaml.YAMLError, RecursionError):
        raise
    except _CONSTRUCTOR_FAILURES as exc:  # anything the constructors above did not place
        raise yaml.YAMLError(shown(f"{type(exc).__name__}: {exc}", quote=False)) from None


def _check_size(data: Any, where: str) -> None:
    """Refuse data nested too deep, or too large once its aliases are expanded (sizes are
    memoised per shared object, so a billion-laughs file is measured without expanding)."""
    _expanded_size(data, 1, {}, where)


def _expanded_size(value: Any, depth: int, memo: dict[int, int], where: str) -> int:
    if not isinstance(value, dict | list):
        return 1
    if depth > MAX_YAML_DEPTH:  # also ends a self-referencing alias
        raise ScenarioError(f"{where}: nested deeper than {MAX_YAML_DEPTH} levels")
    if id(value) in memo:
        return memo[id(value)]
    parts = [*value.keys(), *value.values()] if isinstance(value, dict) else value
    total = 1 + sum(_expanded_size(part, depth + 1, memo, where) for part in parts)
    if total > MAX_YAML_NODES:
        raise ScenarioError(
            f"{where}: more than {MAX_YAML_NODES:,} values once its aliases (*) are expanded")
    memo[id(value)] = total
    return total


def read_yaml(path: Path) -> dict[str, Any]:
    """Parse a YAML mapping, naming the file and line on syntax errors; a file that is too
    large, nested too deep, not UTF-8 or that gives a key twice is refused in one line."""
    try:
        size = path.stat().st_size
        raw = b""
        if size <= MAX_YAML_BYTES:
            with path.open("rb") as file:  # a file of /proc may hold more than its size says
                raw = file.read(MAX_YAML_BYTES + 1)
        if size > MAX_YAML_BYTES or len(raw) > MAX_YAML_BYTES:
            amount = f"{size:,}" if size > MAX_YAML_BYTES else f"over {MAX_YAML_BYTES:,}"
            raise ScenarioError(
                f"{path}: {amount} bytes; scenario files are limited to {MAX_YAML_BYTES:,}")
        text = raw.decode("utf-8")
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read scenario file ({exc.strerror})") from exc
    except UnicodeDecodeError as exc:
        raise ScenarioError(f"{path}: not UTF-8 text (byte {exc.start})") from exc
    except ValueError as exc:  # a NUL in the name
        raise ScenarioError(f"{shown(str(path), 300, quote=False)}: cannot read scenario file "
                            f"({exc})") from exc
    try:
        data = _load_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = _first_line(getattr(exc, "problem", None) or str(exc))
        raise ScenarioError(f"{where}: invalid YAML: {shown(problem, 300, quote=False)}"
                            ) from exc
    except RecursionError as exc:
        raise ScenarioError(f"{path}: nested too deeply to read") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ScenarioError(f"{path}: a scenario must be a YAML mapping of sections")
    _check_size(data, str(path))
    return data


ModelT = TypeVar("ModelT", bound=BaseModel)


def load_model_file(model: type[ModelT], path: Path) -> ModelT:
    """Read a YAML file into a pydantic model (sweep and results files), naming the file and
    the first bad key on errors."""
    data = read_yaml(path)
    _check_text(data, lambda location: str(path))
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = _key_path(first["loc"]) or "(top level)"
        message = first["msg"].removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            message = "unknown key"
        raise ScenarioError(f"{path}: {where}: {shown(message, 300, quote=False)}") from None


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text


def _key_path(location: tuple[int | str, ...]) -> str:
    """A key path as messages show it (`a.b.0.c`), each part cut to a readable length."""
    return ".".join(shown(str(part), quote=False) for part in location)


def _check_text(data: Any, source: Any, at: tuple[int | str, ...] = ()) -> None:
    """Refuse a string (key or value) that is not valid Unicode: a lone surrogate, as an
    argument or file name whose bytes are not UTF-8 arrives in Python. `source(location)`
    says where the value came from."""
    items = (data.items() if isinstance(data, dict) else
             enumerate(data) if isinstance(data, list) else ())
    for key, value in items:
        for text in (key, value):
            if isinstance(text, str) and not _encodable(text):
                location = (*at, key)
                raise ScenarioError(
                    f"{source(location)}: {_key_path(location)}: {shown(text)} is not valid "
                    "text (it holds a lone surrogate, as bytes that are not UTF-8 become)")
        _check_text(value, source, (*at, key))


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split `a.b.c=value` into its key path and a YAML-typed value."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ScenarioError(f"--set {shown(text)}: expected key.path=value")
    try:
        value = _load_yaml(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        problem = _first_line(getattr(exc, "problem", None) or str(exc))
        raise ScenarioError(f"--set {shown(text)}: value is not valid YAML"
                            + (f" ({shown(problem, 300, quote=False)})" if problem else "")
                            ) from exc
    except RecursionError as exc:
        raise ScenarioError(f"--set {shown(text)}: nested too deeply") from exc
    _check_size(value, f"--set {shown(text)}")
    return key.strip().split("."), value


APPEND = "+"  # `attackers+={...}` adds an item to a list


def apply_override(data: dict[str, Any], path: list[str], value: Any) -> None:
    """Set a nested key in the raw scenario mapping; list items are addressed by index. A
    last key ending in `+` (`attackers+={...}`) appends the value to that list (each item of
    a list value), and the index one past the end (`attackers.1=...` on a list of one) appends
    it too."""
    node: Any = data
    text = ".".join(path)
    for depth, key in enumerate(path[:-1]):
        where = ".".join(path[: depth + 1])
        if isinstance(node, list):
            node = node[_list_index(node, key, where, text)]
        else:
            if key not in node or node[key] is None:
                node[key] = {}
            node = node[key]
        if not isinstance(node, dict | list):  # also a list item that is a value
            raise ScenarioError(f"--set {shown(text, quote=False)}: "
                                f"{shown(where, quote=False)} is a value, not a section")
    last = path[-1]
    if last.endswith(APPEND) and len(last) > len(APPEND):
        _append(node, last.removesuffix(APPEND), value, text)
    elif isinstance(node, list):
        if re.fullmatch(r"[0-9]{1,9}", last) and int(last) == len(node):
            node.append(value)
        else:
            node[_list_index(node, last, text, text, appendable=True)] = value
    else:
        node[last] = value


def _append(node: Any, key: str, value: Any, text: str) -> None:
    """`key+=value`: add `value` (each item of a list value) to the list at `key`."""
    if isinstance(node, list):
        node = node[_list_index(node, key, text, text)]
        target: Any = node
    else:
        if key not in node or node[key] is None:
            node[key] = []
        target = node[key]
    if not isinstance(target, list):
        raise ScenarioError(f"--set {shown(text, quote=False)}: {shown(key, quote=False)} is "
                            f"not a list; += appends to a list (set it with {key}=...)")
    target.extend(value if isinstance(value, list) else [value])


def _list_index(items: list[Any], key: str, where: str, text: str,
                appendable: bool = False) -> int:
    """The list index `key` names at `where` (part of the override `text`), or a refusal
    that says which indices exist and how to add an item."""
    # ASCII digits only: str.isdigit() also takes '²' and '٣', which int() refuses.
    if not re.fullmatch(r"[0-9]{1,9}", key) or int(key) >= len(items):
        lst = where.rpartition(".")[0] or where
        span = f"0 to {len(items) - 1}" if items else "none: the list is empty"
        add = (f"{len(items)} appends" if appendable else
               f"set {lst}.{len(items)}={{...}} first")
        raise ScenarioError(f"--set {shown(where, quote=False)}: expected an index below "
                            f"{len(items)} (indices {span}; {add}, as does {lst}+=...)")
    return int(key)


RANGE_ERRORS = {"greater_than", "greater_than_equal", "less_than", "less_than_equal",
                "finite_number", "int_parsing", "float_parsing", "int_type", "float_type",
                "value_error"}


MAX_LISTED = 10  # validation problems listed in one message


def _model_at(location: tuple[int | str, ...]) -> tuple[type[BaseModel] | None, FieldInfo | None]:
    """The settings class that holds the last key of `location`, and that key's field (None
    where the path leaves the schema)."""
    annotation: Any = Scenario
    owner: type[BaseModel] | None = None
    field = None
    for part in location:
        annotation = _without_none(annotation)
        if get_origin(annotation) is Annotated:
            annotation = get_args(annotation)[0]
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            owner, field = annotation, annotation.model_fields.get(str(part))
            if field is None:
                return owner, None
            annotation = field.annotation
        elif get_origin(annotation) in (list, dict):
            annotation, owner, field = get_args(annotation)[-1], None, None
        elif part in ATTACKER_KINDS:
            annotation, owner, field = ATTACKER_CLASSES[str(part)], None, None
        else:
            return None, None
    return owner, field


def _allowed_range(location: tuple[int | str, ...]) -> str | None:
    """The range a numeric setting accepts ("> 0 and <= 10"), found from its key path."""
    _, field = _model_at(location)
    bounds = field_bounds(field) if field is not None else []
    return " and ".join(bounds) if bounds else None


def _suggestion(location: tuple[int | str, ...]) -> str:
    """ "; did you mean 'x'?" for a misspelt key, from the keys its section accepts."""
    owner, _ = _model_at(location)
    if owner is None or not location:
        return ""
    close = difflib.get_close_matches(str(location[-1]), list(owner.model_fields), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def field_bounds(field: FieldInfo) -> list[str]:
    """A setting's bounds as text (">= 1", "<= 100000"), from its schema."""
    symbols = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}
    return [f"{symbols[name]} {getattr(item, name)}" for item in field.metadata
            for name in symbols if hasattr(item, name)]


def _without_none(annotation: Any) -> Any:
    args = [a for a in get_args(annotation) if a is not type(None)]
    return args[0] if type(None) in get_args(annotation) and len(args) == 1 else annotation


def _problem(error: Any) -> tuple[tuple[int | str, ...], str]:
    """One validation error as (its key path, the message shown)."""
    # The attacker union adds its tag to the location (attackers.0.shilling.x): drop it.
    loc = tuple(p for i, p in enumerate(error["loc"])
                if not (i == 2 and error["loc"][0] == "attackers" and p in ATTACKER_KINDS))
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown key" + _suggestion(tuple(error["loc"]))
    elif error["type"] == "union_tag_invalid":
        message = (f"unknown kind {shown(error['ctx']['tag'])}; expected one of "
                   f"{', '.join(ATTACKER_KINDS)}")
    elif error["type"] != "missing" and not isinstance(error.get("input"), dict | list):
        message = f"{message} (got {shown(error['input'])})"
        if error["type"] in RANGE_ERRORS and (allowed := _allowed_range(error["loc"])):
            message = f"{message}; allowed: {allowed}"
    return loc, message


def _source_of(loc: tuple[int | str, ...], source: str,
               overrides: dict[tuple[str, ...], str]) -> str:
    """Where a problem came from: the `--set` that wrote its key (or a section above it); for
    a check on a whole section, the file and the `--set`s inside that section; else the
    scenario file."""
    path = tuple(str(p) for p in loc)
    for length in range(len(path), 0, -1):
        text = overrides.get(path[:length])
        if text is not None:
            return f"--set {shown(text)}"
    inside = [shown(text) for key, text in overrides.items() if key[:len(path)] == path]
    if len(inside) > 3:
        inside = [*inside[:3], f"and {len(inside) - 3} more"]
    return f"{source} with --set {', '.join(inside)}" if inside else source


def _format_validation_error(source: str, error: ValidationError,
                             overrides: dict[tuple[str, ...], str] | None = None) -> str:
    """Every problem (up to MAX_LISTED), each with its source (the file, or the `--set` that
    wrote the key), its key path and what was expected; one line for a single problem."""
    lines = []
    for found in error.errors()[:MAX_LISTED]:
        loc, message = _problem(found)
        location = _key_path(loc)
        # Whole-scenario checks name their own keys.
        lines.append(f"{_source_of(loc, source, overrides or {})}: "
                     f"{location + ': ' if location else ''}{message}")
    more = len(error.errors()) - len(lines)
    if len(lines) == 1:
        return lines[0]
    listed = "\n".join(f"  {line}" for line in lines)
    suffix = f"\n  (and {more} more)" if more else ""
    return f"{len(error.errors())} problems in the scenario:\n{listed}{suffix}"


def build_scenario(
    data: dict[str, Any],
    source: str,
    overrides: list[str] | None = None,
    values: dict[str, Any] | None = None,
) -> Scenario:
    """Validate a raw mapping plus `--set` overrides (text) and typed `values` into a Scenario."""
    data = _deep_copy(data)
    texts = list(overrides or [])
    pairs = [parse_override(text) for text in texts]
    written = {tuple(part.removesuffix(APPEND) for part in path): text
               for (path, _), text in zip(pairs, texts, strict=True)}
    written.update({tuple(key.split(".")): f"{key}={shown(value)}"
                    for key, value in (values or {}).items()})
    pairs += [(key.split("."), value) for key, value in (values or {}).items()]
    # The default attacker list must exist before an override can address its items.
    if any(path[0] == "attackers" and len(path) > 1 for path, _ in pairs):
        data.setdefault("attackers", [InferenceAttackerConfig().model_dump()])
    for path, value in pairs:
        apply_override(data, path, value)
    _check_text(data, lambda location: _source_of(location, source, written))
    world = data.get("world")
    if isinstance(world, dict) and isinstance(world.get("path"), str):
        world["path"] = expand_env(world["path"])
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(_format_validation_error(source, exc, written)) from None


def _deep_copy(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _deep_copy(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_deep_copy(v) for v in data]
    return data


def scenario_to_yaml(scenario: Scenario) -> str:
    """The fully resolved scenario as YAML (what a run writes to config.yaml)."""
    return yaml.safe_dump(scenario.model_dump(mode="json"), sort_keys=False)
