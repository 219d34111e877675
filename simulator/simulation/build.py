"""Building a model: the world and its split, the agents, and the measurements.

The only place agents are made, in a fixed order (the population, the attackers in the
scenario's order, the platform and its clean twin), which is the order Mesa's agent sets
run them in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from agents import AttackerAgent, CleanTwin, PlatformAgent, UserPopulation
from agents.policies import make_policy
from agents.sensitivity import rating_sensitivity
from agents.users import draw_inclinations, initial_betas
from simulator.attacks.inference_attacker import InferenceAttackerConfig
from simulator.attacks.protocol import AttackerContext
from simulator.attacks.registry import attacker_class
from simulator.defenses.registry import clean_twin_config, configured
from simulator.defenses.stack import PlatformDefenses
from simulator.foundations.device import resolve_device
from simulator.foundations.errors import ScenarioError
from simulator.foundations.random_streams import random_stream
from simulator.foundations.settings import attribute_settings
from simulator.measurements.suite import Measurer
from simulator.recommenders.base import ModelParams, Recommender
from simulator.recommenders.consumption import ConsumptionRanked
from simulator.recommenders.factor_model import FactorModel
from simulator.recommenders.registry import make_recommender, recommender_class
from simulator.scenario.memory import check_fits, estimate_memory, synthetic_size
from simulator.scenario.schema import DefensesConfig, Scenario
from simulator.world import Interactions, World, load_world, random_split, temporal_split
from simulator.world.subsample import keep_items
from simulator.world.timeline import assign_steps

if TYPE_CHECKING:
    from simulator.simulation.model import PrivacyModel


def build_model(model: PrivacyModel, world: World | None) -> None:
    """Fill a fresh model: its device, world (loaded unless given), training and test
    ratings, agents and measurements."""
    scenario = model.scenario
    seed = scenario.simulation.seed
    model.device = resolve_device(scenario.simulation.device)
    model.world = world if world is not None else load_checked(scenario, model.device.type)
    check_attributes(scenario, model.world)
    model.train, model.test = split(model.world, scenario)
    model.agent_table_users = sampled_users(model.world.n_users, scenario.output.agents_sample,
                                            seed)
    build_users(model, seed)
    build_attackers(model, seed)
    build_platforms(model, seed)
    model.measurer = Measurer(model)


def build_users(model: PrivacyModel, seed: int) -> None:
    """The population: inclinations, budgets, who asks for unlearning, the policy, and when
    each training rating is experienced."""
    population = model.scenario.population
    world = model.world
    names = list(population.types)
    rng = random_stream(seed, "inclinations")
    inclination = draw_inclinations(
        world.n_users, {n: t.share for n, t in population.types.items()}, rng
    )
    beta = initial_betas(
        inclination, [population.types[n].beta for n in names], population.beta_overrides,
        world,
    )
    shares = np.array([population.types[n].unlearning_share for n in names])
    asks_unlearning = random_stream(seed, "unlearning_requests").random(len(inclination)) < shares[
        inclination
    ]
    policy = make_policy(population, world, inclination, beta, seed)
    key = None
    if policy.name == "sensitivity_aware":
        labels = world.attributes[population.sensitive_attribute]
        key = rating_sensitivity(model.train, labels, world.n_items)
    model.train_step = assign_steps(model.train, model.scenario.simulation.steps)
    model.population = UserPopulation(
        model, settings=population, train=model.train, train_step=model.train_step,
        inclination=inclination, beta=beta, policy=policy, seed=seed,
        asks_unlearning=asks_unlearning, disclosure_key=key,
    )


def check_attributes(scenario: Scenario, world: World) -> None:
    """Refuse an attacker or a configured defense that names a user attribute the world does
    not have, naming the setting and the attributes there are."""
    named = [found for index, attacker in enumerate(scenario.attackers)
             for found in attribute_settings(attacker, f"attackers.{index}")]
    named += [found for key, section in configured(scenario.platform.defenses).items()
              for found in attribute_settings(section, f"platform.defenses.{key}")]
    for key, name in named:
        if name not in world.attributes:
            raise ScenarioError(
                f"{key}: the {world.name} world has no {name} (it has "
                f"{', '.join(world.attributes) or 'no attributes'})")


def build_attackers(model: PrivacyModel, seed: int) -> None:
    """The scenario's attackers, each run by an `AttackerAgent`, in the order listed: fake
    accounts take the platform slots after the genuine users, each attacker's block after
    the one before; then every platform account's declared attributes (genuine users' true
    ones, fake accounts' filled in by their attacker at sign-up)."""
    scenario, world = model.scenario, model.world
    model.n_genuine = world.n_users
    implicit = not recommender_class(scenario.platform.model).predicts_ratings
    slot = model.n_genuine
    accounts: dict[str, np.ndarray] = {}
    counts: dict[str, int] = {}
    model.attackers = []
    for index, settings in enumerate(scenario.attackers):
        declared = attacker_class(settings)
        number = counts[declared.kind] = counts.get(declared.kind, -1) + 1
        context = AttackerContext(
            index=index, label=f"{declared.label_prefix}{number}", world=world, seed=seed,
            n_genuine=model.n_genuine, first_slot=slot, implicit=implicit,
            device=model.device, accounts=accounts)
        attacker = declared(settings=settings, context=context)
        slot += attacker.n_slots
        model.attackers.append(attacker)
        AttackerAgent(model, attacker=attacker)
    model.n_platform_users = slot
    model.poisoned = any(a.poisons for a in model.attackers)
    for name, codes in world.attributes.items():
        accounts[name] = np.full(slot, -1, dtype=np.int64)
        accounts[name][: world.n_users] = codes
    model.account_attributes = accounts


def n_classes(world: World) -> dict[str, int]:
    """Each attribute's number of classes."""
    return {a: len(labels) for a, labels in world.attribute_labels.items()}


def build_platforms(model: PrivacyModel, seed: int) -> None:
    """The platform, and with poisoners its clean twin: what the platform would be without
    the attack. Defenses that declare they are not kept on the twin are left out (detection:
    there is nothing to detect); the others stay so the comparison isolates the attack."""
    defenses = model.scenario.platform.defenses
    model.platform = platform_agent(model, seed, defenses, PlatformAgent)
    model.clean_platform = None
    if model.poisoned:
        twin = platform_agent(model, seed, clean_twin_config(defenses), CleanTwin)
        assert isinstance(twin, CleanTwin)
        model.clean_platform = twin


def platform_agent(
    model: PrivacyModel, seed: int, defense_config: DefensesConfig,
    kind: type[PlatformAgent] = PlatformAgent,
) -> PlatformAgent:
    """A platform agent (of `kind`) with its recommender and defenses."""
    cfg = model.scenario.platform
    world = model.world
    options = (cfg.metamf.model_dump() if cfg.model in ("metamf", "nometamf")
               else cfg.lightgcn.model_dump() if cfg.model == "lightgcn" else {})
    params = ModelParams(cfg.factors, cfg.lr, cfg.reg, cfg.batch_size, options)
    recommender: Recommender
    if cfg.ranking.method == "consumption":
        assert cfg.ranking.negatives is not None  # resolved by the scenario check
        recommender = ConsumptionRanked(cfg.model, model.n_platform_users, world.n_items, params,
                                        torch.device(model.device), seed,
                                        negatives=cfg.ranking.negatives)
    else:
        recommender = make_recommender(
            cfg.model, model.n_platform_users, world.n_items, params, model.device, seed
        )
    if cfg.item_features:
        if world.item_features is None:
            raise ScenarioError(
                f"platform.item_features: the {world.name} world has no item side information"
            )
        assert isinstance(recommender, FactorModel | ConsumptionRanked)
        recommender.set_item_features(world.item_features.astype(np.float32))
    defenses = PlatformDefenses(
        config=defense_config, attributes=model.account_attributes,
        n_classes=n_classes(world), n_users=model.n_platform_users, seed=seed,
        requested_users=model.unlearning_requests, n_genuine=model.n_genuine,
        attacker_classifiers=attacker_classifiers(model.scenario),
    )
    return kind(model, recommender=recommender, settings=cfg, defenses=defenses)


def attacker_classifiers(scenario: Scenario) -> dict[str, tuple[str, ...]]:
    """Per attribute, the classifiers of the scenario's inference attackers that infer it."""
    found: dict[str, dict[str, None]] = {}
    for cfg in scenario.attackers:
        if isinstance(cfg, InferenceAttackerConfig):
            for attribute in cfg.attributes:
                found.setdefault(attribute, {}).update(dict.fromkeys(cfg.classifiers))
    return {attribute: tuple(names) for attribute, names in found.items()}


def world_seed(scenario: Scenario) -> int:
    """The seed of the world (its own, else the simulation's)."""
    cfg = scenario.world
    return cfg.seed if cfg.seed is not None else scenario.simulation.seed


def split(world: World, scenario: Scenario) -> tuple[Interactions, Interactions]:
    """Training ratings (experienced over time) and each user's held-out test ratings."""
    cfg = scenario.world
    if cfg.split == "random":
        train, test = random_split(world.ratings, world.n_users, cfg.test_fraction,
                                   world_seed(scenario))
    else:
        train, test = temporal_split(world.ratings, world.n_users, cfg.test_fraction)
    if not len(test):  # a user with one rating keeps it for training
        raise ScenarioError(
            "world: no user has a held-out rating to measure accuracy on (every user has a "
            "single rating); raise world.min_ratings_per_user or world.mean_ratings_per_user")
    return train, test


def load_checked(scenario: Scenario, device_type: str) -> World:
    """The scenario's world, refused before it is generated (synthetic) or right after it
    is read (MovieLens) when it cannot fit in memory."""
    if scenario.world.source == "synthetic":
        check_fits(estimate_memory(scenario, *synthetic_size(scenario)), device_type,
                   "synthetic")
        return load(scenario)
    world = load(scenario)
    check_fits(estimate_memory(scenario, world.n_users, world.n_items, len(world.ratings)),
               device_type, scenario.world.source)
    return world


def load(scenario: Scenario) -> World:
    """Generate or read the scenario's world (a MovieLens world cut to `n_items`)."""
    cfg = scenario.world
    seed = world_seed(scenario)
    tables: dict[str, Any] | None = None
    if cfg.source in ("files", "recbole"):
        tables = {"columns": cfg.columns.model_dump(), "attributes": cfg.attributes,
                  "item_features": cfg.item_features, "bins": cfg.bins}
        if cfg.source == "files":
            tables.update(users=cfg.users, items=cfg.items)
    world = load_world(
        cfg.source, cfg.path, cfg.n_users, cfg.n_items, cfg.signal, seed,
        duplicates=cfg.duplicate_ratings, tables=tables,
        mean_ratings_per_user=cfg.mean_ratings_per_user,
        min_ratings_per_user=cfg.min_ratings_per_user,
    )
    if cfg.source != "synthetic" and cfg.n_items is not None:
        if cfg.n_items > world.n_items:
            raise ScenarioError(
                f"world.n_items: the {world.name} world has {world.n_items} items, "
                f"got {cfg.n_items}"
            )
        world = keep_items(world, cfg.n_items, cfg.item_sample, seed)
    return world


def sampled_users(n_users: int, share: float, seed: int) -> np.ndarray:
    """The users the agents table follows: everyone, or a fixed random share (sorted)."""
    if share >= 1.0:
        return np.arange(n_users)
    count = max(1, int(round(share * n_users)))
    rng = random_stream(seed, "agents_table_sample")
    return np.sort(rng.choice(n_users, size=count, replace=False))
