"""Scenario files: the pydantic schema, YAML loading, `--set` overrides and clear errors.

Every section forbids unknown keys, so a typo is an error that names its key path.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from simulator.errors import ScenarioError
from simulator.world.synthetic import validate_parameters

SYNTHETIC_USERS, SYNTHETIC_ITEMS = 1000, 800  # the synthetic world's default size

ATTRIBUTES = ("gender", "age", "occupation")


class Section(BaseModel):
    """Base of every scenario section: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class WorldConfig(Section):
    """Where the ground truth comes from."""

    source: Literal["synthetic", "movielens"] = "synthetic"
    path: str | None = Field(None, description="MovieLens folder (source: movielens)")
    signal: float = Field(1.0, ge=0.0, description="synthetic: how strongly attributes shape taste")
    n_users: int | None = Field(
        None, ge=2, description="synthetic: users (default 1000); movielens: keep the first n"
    )
    n_items: int | None = Field(
        None, ge=2, description="synthetic: items (default 800); ignored for movielens"
    )
    mean_ratings_per_user: float = Field(60.0, gt=0)
    min_ratings_per_user: int = Field(20, ge=1)
    test_fraction: float = Field(0.2, gt=0.0, lt=1.0, description="share of each user's ratings")
    split: Literal["temporal", "random"] = Field(
        "temporal", description="hold out each user's latest ratings, or a random share"
    )
    seed: int | None = Field(None, ge=0, description="synthetic world seed (default: simulation)")

    @model_validator(mode="after")
    def _check_source(self) -> WorldConfig:
        if self.source == "movielens":
            if not self.path:
                raise ValueError("world.path is required when world.source is 'movielens'")
            folder = Path(self.path)
            if not folder.is_dir():
                raise ValueError(f"data folder not found: {folder}")
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


def _default_types() -> dict[str, InclinationType]:
    return {
        "unconcerned": InclinationType(share=0.20, beta=1.0),
        "pragmatist": InclinationType(share=0.55, beta=0.6),
        "fundamentalist": InclinationType(share=0.25, beta=0.2),
    }


class DefenseSection(Section):
    """What every defense shares: a switch and the step from which it acts."""

    enabled: bool = True
    start_step: int = Field(0, ge=0, description="first step at which the defense acts")


class PerturbationConfig(DefenseSection):
    """User-side local perturbation of disclosed ratings before the platform sees them."""

    mechanism: Literal["randomized_response", "laplace"] = "laplace"
    epsilon: float = Field(1.0, gt=0.0, description="local privacy parameter per rating")

class PopulationConfig(Section):
    """The users: inclination mix, disclosure policy and per-user overrides."""

    types: dict[str, InclinationType] = Field(default_factory=_default_types)
    policy: Literal["fixed"] = "fixed"
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
        total = sum(t.share for t in types.values())
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"type shares must sum to 1, they sum to {total:g}")
        return types

    @field_validator("beta_overrides")
    @classmethod
    def _betas_in_range(cls, overrides: dict[int, float]) -> dict[int, float]:
        for user, beta in overrides.items():
            if not 0.0 <= beta <= 1.0:
                raise ValueError(f"beta for user {user} must be in [0, 1], got {beta}")
        return overrides


class MetaMFConfig(Section):
    """MetaMF's dimensions (Lin et al. 2020 defaults) and training choices."""

    user_dim: int = Field(32, ge=1)
    memory_dim: int = Field(128, ge=1)
    hidden: int = Field(512, ge=1)
    item_dim: int = Field(32, ge=4)
    rank: int = Field(8, ge=1)
    user_init_std: float = Field(
        0.01, gt=0.0, description="std of the initial user embeddings (reference: 1.0)"
    )
    lr_schedule: Literal["cosine", "constant"] = Field(
        "cosine", description="learning rate over each training's epochs (reference: constant)"
    )


class AdversarialConfig(DefenseSection):
    """Privacy-adversarial training: gradient-reversal read-outs on the user embeddings."""

    attributes: list[Literal["gender", "age", "occupation"]] = Field(
        default_factory=lambda: ["gender"], min_length=1
    )
    weight: float = Field(1.0, ge=0.0, description="lambda, the reversed gradient's weight")
    readout: Literal["linear", "mlp"] = "linear"
    hidden: int = Field(32, ge=1, description="hidden width of the mlp read-out")
    lr: float = Field(0.1, gt=0.0, description="read-out learning rate (Adam)")
    head_steps: int = Field(
        5, ge=1, description="read-out updates per training batch (it must keep up with p_u)"
    )


class UnlearningConfig(DefenseSection):
    """Post-training attribute unlearning: edits user embeddings after each retrain."""

    attribute: Literal["gender", "age", "occupation"] = "gender"
    distance: Literal["kl", "mmd"] = "kl"
    covariance: Literal["diagonal", "shrunk"] = "shrunk"
    utility: Literal["model", "distance", "topk"] = "topk"
    weighting: Literal["mgda", "fixed"] = "mgda"
    weight: float = Field(
        1.0, ge=0.0, description="utility weight when weighting is fixed (per-user utility)"
    )
    steps: int = Field(300, ge=1)
    lr: float = Field(3e-3, gt=0.0)
    top_k: int = Field(20, ge=2, description="list length kept by the topk utility")
    scope: Literal["all", "requested"] = Field(
        "all", description="every user, or only users who asked for unlearning"
    )


class DPConfig(DefenseSection):
    """DP-SGD training (Opacus); rating-level adjacency."""

    noise_multiplier: float | None = Field(1.0, ge=0.0)
    target_epsilon: float | None = Field(None, gt=0.0)
    max_grad_norm: float = Field(1.0, gt=0.0)
    delta: float | None = Field(None, gt=0.0, lt=1.0, description="default: 1 / ratings")

    @model_validator(mode="after")
    def _one_noise_setting(self) -> DPConfig:
        if self.target_epsilon is not None:
            self.__dict__["noise_multiplier"] = None
        elif self.noise_multiplier is None:
            raise ValueError("set noise_multiplier or target_epsilon")
        return self


class DefensesConfig(Section):
    """The platform's defenses; each is off unless its section is present."""

    adversarial: AdversarialConfig | None = None
    unlearning: UnlearningConfig | None = None
    dp: DPConfig | None = None


class PlatformConfig(Section):
    """The platform's recommender and its retraining schedule."""

    model: Literal["bpr", "mf", "metamf", "nometamf"] = "bpr"
    retrain_every: int = Field(2, ge=1)
    epochs: int = Field(5, ge=1, description="epochs per (warm-started) retrain")
    first_epochs: int | None = Field(20, ge=1, description="epochs of the first training")
    warm_start: bool = True
    factors: int = Field(32, ge=1)
    lr: float | None = Field(None, gt=0)
    reg: float | None = Field(None, ge=0)
    batch_size: int | None = Field(None, ge=1)
    metamf: MetaMFConfig = Field(default_factory=MetaMFConfig)
    defenses: DefensesConfig = Field(default_factory=DefensesConfig)

    @model_validator(mode="after")
    def _dp_needs_a_factor_model(self) -> PlatformConfig:
        if self.defenses.dp is not None and self.model not in ("bpr", "mf"):
            raise ValueError(f"defenses.dp trains bpr or mf models, not {self.model!r}")
        return self


class InferenceAttackerConfig(Section):
    """An attribute-inference attacker: what it sees of users and how it classifies them."""

    kind: Literal["inference"] = "inference"
    threat: Literal["embedding", "recommendations", "ratings"] = Field(
        "embedding",
        description="what it sees: user embeddings, each user's top-k recommendations, "
        "or the ratings users disclosed",
    )
    top_k: int = Field(10, ge=1, description="threat recommendations: length of each list")
    known_fraction: float = Field(0.5, gt=0.0, lt=1.0, description="share of users it knows")
    attributes: list[Literal["gender", "age", "occupation"]] = Field(
        default_factory=lambda: ["gender", "age"]
    )
    classifiers: list[Literal["logreg", "xgboost", "mlp", "forest"]] = Field(
        default_factory=lambda: ["logreg", "xgboost"]
    )
    folds: int = Field(5, ge=2)

    @field_validator("attributes", "classifiers")
    @classmethod
    def _non_empty(cls, values: list[str]) -> list[str]:
        if not values:
            raise ValueError("must list at least one entry")
        if len(set(values)) != len(values):
            raise ValueError("entries must not repeat")
        return values


class SimulationConfig(Section):
    """Time, randomness and hardware."""

    steps: int = Field(20, ge=1)
    seed: int = Field(0, ge=0)
    device: Literal["auto", "cpu", "cuda"] = "auto"


class MetricsConfig(Section):
    """What is measured each step."""

    k: int = Field(10, ge=1, description="cut-off of HR@k and NDCG@k")
    group_share: float = Field(
        0.05, gt=0.0, le=1 / 3, description="size of the Low/Med/High involvement groups"
    )


class OutputConfig(Section):
    """Where and what a run writes."""

    dir: str = "outputs"
    agents_table: bool = True
    plots: bool = True


class Scenario(Section):
    """A whole what-if: world, population, platform, attackers, simulation, metrics, output."""

    name: str = "scenario"
    description: str = ""
    world: WorldConfig = Field(default_factory=WorldConfig)
    population: PopulationConfig = Field(default_factory=PopulationConfig)
    platform: PlatformConfig = Field(default_factory=PlatformConfig)
    attackers: list[InferenceAttackerConfig] = Field(
        default_factory=lambda: [InferenceAttackerConfig()], max_length=1,
        description="at most one inference attacker",
    )
    simulation: SimulationConfig = Field(default_factory=SimulationConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)

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
        raise ScenarioError(f"environment variable {match.group(1)} is not set")

    return _ENV_PATTERN.sub(substitute, text)


def read_yaml(path: Path) -> dict[str, Any]:
    """Parse a YAML mapping, naming the file and line on syntax errors."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read scenario file ({exc.strerror})") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ScenarioError(f"{where}: invalid YAML: {problem}") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ScenarioError(f"{path}: a scenario must be a YAML mapping of sections")
    return data


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split `a.b.c=value` into its key path and a YAML-typed value."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ScenarioError(f"--set {text!r}: expected key.path=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ScenarioError(f"--set {text!r}: value is not valid YAML") from exc
    return key.strip().split("."), value


def apply_override(data: dict[str, Any], path: list[str], value: Any) -> None:
    """Set a nested key in the raw scenario mapping; list items are addressed by index."""
    node: Any = data
    for depth, key in enumerate(path[:-1]):
        where = ".".join(path[: depth + 1])
        if isinstance(node, list):
            node = node[_list_index(node, key, where)]
            continue
        if key not in node or node[key] is None:
            node[key] = {}
        node = node[key]
        if not isinstance(node, dict | list):
            raise ScenarioError(f"--set {'.'.join(path)}: {where} is a value, not a section")
    last = path[-1]
    if isinstance(node, list):
        node[_list_index(node, last, ".".join(path))] = value
    else:
        node[last] = value


def _list_index(items: list[Any], key: str, where: str) -> int:
    if not key.isdigit() or int(key) >= len(items):
        raise ScenarioError(f"--set {where}: expected an index below {len(items)}")
    return int(key)


def _format_validation_error(source: str, error: ValidationError) -> str:
    first = error.errors()[0]
    location = ".".join(str(part) for part in first["loc"]) or "(top level)"
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        message = "unknown key"
    elif first["type"] != "missing" and not isinstance(first.get("input"), dict | list):
        message = f"{message} (got {first['input']!r})"
    more = len(error.errors()) - 1
    suffix = f" (and {more} more problem{'s' * (more > 1)})" if more else ""
    return f"{source}: {location}: {message}{suffix}"


def build_scenario(
    data: dict[str, Any],
    source: str,
    overrides: list[str] | None = None,
    values: dict[str, Any] | None = None,
) -> Scenario:
    """Validate a raw mapping plus `--set` overrides (text) and typed `values` into a Scenario."""
    data = _deep_copy(data)
    pairs = [parse_override(text) for text in overrides or []]
    pairs += [(key.split("."), value) for key, value in (values or {}).items()]
    # The default attacker list must exist before an override can address its items.
    if any(path[0] == "attackers" and len(path) > 1 for path, _ in pairs):
        data.setdefault("attackers", [InferenceAttackerConfig().model_dump()])
    for path, value in pairs:
        apply_override(data, path, value)
    world = data.get("world")
    if isinstance(world, dict) and isinstance(world.get("path"), str):
        world["path"] = expand_env(world["path"])
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(_format_validation_error(source, exc)) from None


def _deep_copy(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _deep_copy(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_deep_copy(v) for v in data]
    return data


def scenario_to_yaml(scenario: Scenario) -> str:
    """The fully resolved scenario as YAML (what a run writes to config.yaml)."""
    return yaml.safe_dump(scenario.model_dump(mode="json"), sort_keys=False)
