"""The scenario schema: its sections as pydantic settings and the checks across them.

Every section forbids unknown keys, so a typo is an error that names its key path.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    Field,
    PrivateAttr,
    field_validator,
    model_validator,
)

from simulator.attacks.inference_attacker import InferenceAttackerConfig
from simulator.attacks.registry import (
    ATTACKERS,
    AttackerConfig,
    attacker_class,
)
from simulator.defenses.registry import (
    DefensesConfig,
    consumption_blockers,
    platform_defense_problems,
)
from simulator.foundations.errors import shown
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
    AttributeName,
    DefenseSection,
    Section,
)
from simulator.foundations.yaml_files import expand_env
from simulator.recommenders.registry import capabilities, models_with, why_lacking
from simulator.scenario.schedule import schedule_problems
from simulator.world.parameters import validate_parameters

SYNTHETIC_USERS, SYNTHETIC_ITEMS = 1000, 800  # the synthetic world's default size
DEFAULT_MOVIELENS = "${PRIVSIM_DATA:-../shared/data}/ml-100k"
PROJECT = Path(__file__).resolve().parents[2]  # relative data paths fall back to it

def _found(path: str, folder: bool, key: str, source: str = "movielens") -> str:
    """A data path that exists (a folder, or a file), as a run reads it: a relative path
    not found from the working folder is read from the project (the shipped
    `../shared/data/...` defaults), wherever privsim is run from. A missing world folder's
    message says what the `source` reads there."""
    kind = "folder" if folder else "file"
    place = Path(path)
    try:
        exists = place.is_dir() if folder else place.is_file()
        if not exists and not place.is_absolute():
            inside = PROJECT / place
            if inside.is_dir() if folder else inside.is_file():
                place, exists = inside.resolve(), True
    except (OSError, ValueError) as exc:  # a name too long, a NUL
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise ValueError(f"data {kind} {shown(path, 300)} cannot be used "
                         f"({shown(str(reason), quote=False)})") from None
    if not exists:
        name = str(place)  # quoted when it holds a character that does not print
        hint = ""
        if key == "world.path" and folder:
            hint = (" (set PRIVSIM_DATA to the folder that holds ml-100k/ and ml-1m-head/, or "
                    "give the dataset's own folder with --set world.path=/path/to/ml-100k)"
                    if source == "movielens" else
                    " (give a folder holding NAME.inter and, when present, NAME.user and "
                    "NAME.item with --set world.path=FOLDER; `python -m "
                    "simulator.world.example_shop FOLDER` writes the example shop there)")
        prefix = "" if key == "world.path" else f"{key}: "  # the world section is named
        raise ValueError(f"{prefix}data {kind} not found: "
                         f"{shown(name, 300, quote=not name.isprintable())}{hint}")
    return str(place)


class ColumnsConfig(Section):
    """Which columns of an interactions table hold what (source: files or recbole)."""

    user: str = Field("user_id", min_length=1, max_length=200)
    item: str = Field("item_id", min_length=1, max_length=200)
    rating: str | None = Field(
        "rating", min_length=1, max_length=200, description="ratings on the 1..5 scale; "
        "null: implicit feedback (interactions only, for models that learn from "
        "interactions: bpr)")
    timestamp: str | None = Field(
        "timestamp", min_length=1, max_length=200,
        description="seconds, or any number that orders the ratings; null: each user's "
        "ratings are in the order of their rows in the file")


FOLDER_SOURCES = ("movielens", "recbole")
FILE_SOURCES = ("movielens", "files", "recbole")  # worlds read from data, not generated


class WorldConfig(Section):
    """Where the ground truth comes from."""

    source: Literal["synthetic", "movielens", "files", "recbole"] = Field(
        "synthetic", description="a generated world, a MovieLens folder, your own tables "
        "(files), or RecBole atomic files (docs/data.md)")
    path: str | None = Field(
        None, description="movielens, recbole: the dataset's folder; files: the interactions "
        "table (.csv, .tsv, .txt, .parquet)")
    users: str | None = Field(
        None, description="files: the user table (one row per user; its columns become "
        "attributes)")
    items: str | None = Field(
        None, description="files: the item table (one row per item; its number columns "
        "become item features)")
    columns: ColumnsConfig = Field(default_factory=ColumnsConfig)
    attributes: list[str] | None = Field(
        None, description="files, recbole: the user table's columns to use as attributes "
        "(default: every column but the user id)")
    bins: dict[str, list[float]] = Field(
        default_factory=dict, description="files, recbole: number columns of the user table "
        "cut into classes at these increasing edges ({age: [18, 25, 35]} gives <18, 18-25, "
        "25-35, 35+)")
    item_features: list[str] | None = Field(
        None, description="files, recbole: the item table's columns to use as features "
        "(default: its number columns and token lists of at most 1000 tokens)")
    signal: float = Field(
        1.0, ge=0.0, le=100.0, description="synthetic: how strongly attributes shape taste"
    )
    n_users: int | None = Field(
        None, ge=2, le=MAX_USERS,
        description="synthetic: users (default 1000); data: keep the first n by id"
    )
    n_items: int | None = Field(
        None, ge=2, le=MAX_ITEMS,
        description="synthetic: items (default 800); data: keep this many (item_sample)",
    )
    item_sample: Literal["random", "popular"] = Field(
        "random", description="data with n_items: a seeded random subset, or the most rated"
    )
    duplicate_ratings: Literal["error", "latest"] = Field(
        "error", description="data: a user rating an item twice is an error naming both "
        "lines (the MovieLens releases hold each pair once, so a repeat means a damaged or "
        "merged file), or keeps the latest rating",
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
        if self.source in FILE_SOURCES:
            if self.source == "movielens" and not self.path:
                # The shared MovieLens 100K copy, so `--set world.source=movielens` is enough.
                self.__dict__["path"] = expand_env(DEFAULT_MOVIELENS)
            if not self.path:
                what = "folder" if self.source == "recbole" else "interactions table"
                raise ValueError(f"world.path: source {self.source} needs the {what}")
            folder = self.source in FOLDER_SOURCES
            self.__dict__["path"] = _found(self.path, folder, "world.path", self.source)
            for key in ("users", "items"):
                value = getattr(self, key)
                if value is not None:
                    if self.source != "files":
                        raise ValueError(f"world.{key}: only source files reads a separate "
                                         f"{key} table (recbole finds its own)")
                    self.__dict__[key] = _found(value, False, f"world.{key}")
            for name, edges in self.bins.items():
                if not edges or any(b <= a for a, b in zip(edges, edges[1:], strict=False)):
                    raise ValueError(f"world.bins.{name}: give increasing edges, got {edges}")
            if (self.attributes is not None or self.bins) and self.source == "movielens":
                raise ValueError("world.attributes, world.bins: MovieLens worlds have gender, "
                                 "age and occupation; the settings are for files and recbole")
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
    homophily_attribute: AttributeName = "gender"
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
    sensitive_attribute: AttributeName = Field(
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


class LightGCNConfig(Section):
    """LightGCN's graph propagation (He et al. 2020)."""

    layers: int = Field(3, ge=0, le=10, description="propagation layers K; the final "
                        "embeddings are the mean of layers 0..K")


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

    model: Literal["bpr", "mf", "metamf", "nometamf", "lightgcn"] = "bpr"
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
    lightgcn: LightGCNConfig = Field(default_factory=LightGCNConfig)
    ranking: RankingConfig = Field(default_factory=RankingConfig)
    defenses: DefensesConfig = Field(default_factory=DefensesConfig)

    @model_validator(mode="after")
    def _model_can_do_it(self) -> PlatformConfig:
        if self.item_features and "item_features" not in capabilities(self.model):
            models = " or ".join(models_with(frozenset({"item_features"})))
            why = why_lacking(self.model, frozenset({"item_features"}))
            raise ValueError(f"item_features needs a {models} model, not {self.model!r}{why}")
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
    settings: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="settings of measurements that declare their own, "
        "by measurement name (`metrics.settings.<name>.<key>`); checked when the model is "
        "built, against the settings the measurement declares",
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
    # Set (`made_from`) when overrides changed a named scenario: its name and the settings
    # they changed (`simulator.scenario.changes`).
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

    def made_from(self, base: str, changes: tuple[str, ...]) -> None:
        """Record that overrides made this scenario from the named scenario `base`, changing
        these settings (what a run of it then says about itself)."""
        self._base, self._changes = base, tuple(changes)

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
    def _at_most_one(cls, attackers: list[Any]) -> list[Any]:
        for declared in ATTACKERS:
            if declared.only_one and sum(a.kind == declared.kind for a in attackers) > 1:
                raise ValueError(f"at most one {declared.kind} attacker")
        return attackers

    @model_validator(mode="after")
    def _resolve_ranking(self) -> Scenario:
        """The default ranking: consumption for rating models, unless a defense cannot train
        it (DP-SGD) or an item owner moves the rows a model rates with; score otherwise."""
        platform = self.platform
        ranking = platform.ranking
        if ranking.method is None:
            blocked = any(not attacker_class(a).with_consumption for a in self.attackers)
            rated = platform.model in RATING_MODELS and not blocked \
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
    def _implicit_feedback(self) -> Scenario:
        world = self.world
        if world.source in ("files", "recbole") and world.columns.rating is None:
            if self.platform.model in RATING_MODELS:
                raise ValueError(
                    f"platform.model: {self.platform.model} learns ratings, but the world has "
                    "none (world.columns.rating: null, implicit feedback); use bpr or lightgcn, "
                    "which learn from interactions")
            if self.population.perturbation is not None and self.population.perturbation.enabled:
                raise ValueError("population.perturbation perturbs rating values, but the "
                                 "world has none (world.columns.rating: null)")
        return self

    @model_validator(mode="after")
    def _attackers_fit_the_platform(self) -> Scenario:
        for attacker in self.attackers:
            problem = attacker_class(attacker).platform_problem(attacker, self.platform)
            if problem is not None:
                raise ValueError(problem)
        return self

    @field_validator("name")
    @classmethod
    def _safe_name(cls, name: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
            raise ValueError("use letters, digits, '.', '_' and '-' only")
        return name
