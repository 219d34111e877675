"""The Mesa model: wires the world, the agents and the measurement, and steps them.

One step: users experience new ratings and disclose some; the platform ingests them
and retrains when due; the inference attacker attacks each new model; then everything
is measured. This is the only simulator module that imports `agents/`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

import mesa
import numpy as np

from agents import InferenceAttacker, PlatformAgent, UserAgent, UserPopulation
from agents.policies import make_policy
from agents.users import draw_inclinations, initial_betas
from simulator.config import Scenario
from simulator.defenses.stack import PlatformDefenses
from simulator.device import resolve_device
from simulator.errors import ScenarioError
from simulator.metrics.groups import build_groups, involvement_groups
from simulator.metrics.measure import Measurer, StepInputs
from simulator.recommenders.base import ModelParams
from simulator.recommenders.registry import make_recommender
from simulator.timeline import assign_steps
from simulator.world import Interactions, World, load_world, random_split, temporal_split


@dataclass
class Records:
    """Everything a run records, row by row."""

    metrics: list[dict[str, object]] = field(default_factory=list)
    groups: list[dict[str, object]] = field(default_factory=list)
    agents: list[dict[str, np.ndarray]] = field(default_factory=list)
    events: list[dict[str, object]] = field(default_factory=list)


class PrivacyModel(mesa.Model):
    """A privacy-dynamics simulation of one scenario."""

    def __init__(self, scenario: Scenario, world: World | None = None) -> None:
        seed = scenario.simulation.seed
        super().__init__(rng=seed)
        self.scenario = scenario
        self.device = resolve_device(scenario.simulation.device)
        self.world = world if world is not None else _load(scenario)
        self.train, self.test = _split(self.world, scenario)
        self.step_index = 0
        self.records = Records()
        self._build_users(seed)
        self._build_platform(seed)
        self._build_attackers(seed)
        involvement = involvement_groups(
            self.world.ratings_per_user(), scenario.metrics.group_share
        )
        self.involvement = involvement
        groups = build_groups(
            self.population.type_names, self.population.inclination, involvement,
            self.world.attributes, self.world.attribute_labels,
        )
        self.measurer = Measurer(
            self.test, self.world.n_users, self.world.n_items, scenario.metrics.k,
            groups, self.world.attributes, self.device,
        )

    # --- construction ------------------------------------------------------------------

    def _build_users(self, seed: int) -> None:
        population = self.scenario.population
        names = list(population.types)
        rng = np.random.default_rng([seed, 1])
        inclination = draw_inclinations(
            self.world.n_users, {n: t.share for n, t in population.types.items()}, rng
        )
        beta = initial_betas(
            inclination, [population.types[n].beta for n in names],
            population.beta_overrides, self.world,
        )
        shares = np.array([population.types[n].unlearning_share for n in names])
        asks_unlearning = np.random.default_rng([seed, 3]).random(len(inclination)) < shares[
            inclination
        ]
        self.population = UserPopulation(
            self.train, assign_steps(self.train, self.scenario.simulation.steps),
            self.world.n_users, names, inclination, beta, make_policy(population.policy), seed,
            asks_unlearning, population.perturbation,
        )
        for index in range(self.world.n_users):
            UserAgent(self, self.population, index)

    def _build_platform(self, seed: int) -> None:
        cfg = self.scenario.platform
        options = cfg.metamf.model_dump() if cfg.model in ("metamf", "nometamf") else {}
        params = ModelParams(cfg.factors, cfg.lr, cfg.reg, cfg.batch_size, options)
        recommender = make_recommender(
            cfg.model, self.world.n_users, self.world.n_items, params, self.device, seed
        )
        defenses = PlatformDefenses(
            cfg.defenses, dict(self.world.attributes),
            {a: len(labels) for a, labels in self.world.attribute_labels.items()},
            self.world.n_users, seed, requested_users=self.population.unlearning_requests,
        )
        self.platform = PlatformAgent(
            self, recommender, cfg.retrain_every, cfg.epochs,
            cfg.first_epochs or cfg.epochs, cfg.warm_start, defenses,
        )

    def _build_attackers(self, seed: int) -> None:
        self.attacker: InferenceAttacker | None = None
        for index, cfg in enumerate(self.scenario.attackers):
            missing = [a for a in cfg.attributes if a not in self.world.attributes]
            if missing:
                raise ScenarioError(
                    f"attackers.{index}.attributes: the {self.world.name} world has no "
                    f"{', '.join(missing)} (it has {', '.join(self.world.attributes) or 'none'})"
                )
            attributes = {a: self.world.attributes[a] for a in cfg.attributes}
            n_classes = {a: len(self.world.attribute_labels[a]) for a in cfg.attributes}
            self.attacker = InferenceAttacker(
                self, attributes, n_classes, cfg.known_fraction, list(cfg.classifiers),
                cfg.folds, np.random.default_rng([seed, 2]), seed, cfg.threat, cfg.top_k,
            )

    # --- stepping ----------------------------------------------------------------------

    def step(self) -> None:
        """Advance the simulation by one step and record its measurements."""
        step = self.step_index
        timings: dict[str, float] = {}

        started = time.perf_counter()
        disclosed = self.population.step(step)
        timings["seconds_agents"] = time.perf_counter() - started

        started = time.perf_counter()
        self.platform.ingest(disclosed)
        retrained = False
        if self.platform.due(step):
            event = self.platform.retrain(step)
            if event is not None:
                retrained = True
                self._event(step, "retrain", "platform", event.final_loss, event.seconds, {
                    "warm_start": event.warm_start, "epochs": event.epochs,
                    "n_ratings": event.n_ratings, "defenses": event.defenses,
                    **event.metrics,
                })
                if event.diverged is not None:
                    self._event(step, "training_diverged", "platform", event.final_loss, 0.0,
                                {"reason": event.diverged})
        timings["seconds_training"] = time.perf_counter() - started

        started = time.perf_counter()
        attacks = self._attack(step)
        row, group_rows = self._measure(attacks)
        timings["seconds_measurement"] = time.perf_counter() - started

        row = {
            "step": step, "retrained": retrained, "model_version": self.platform.version,
            "n_active": int(self.population.active.sum()),
            "n_platform_ratings": len(self.platform.data), **row,
            **self.platform.defenses.latest, **timings,
        }
        self.records.metrics.append(row)
        self.records.groups.extend({"step": step, **g} for g in group_rows)
        if self.scenario.output.agents_table:
            self.records.agents.append({"step": np.full(self.world.n_users, step),
                                        **self.population.snapshot()})
        self.step_index += 1

    def _attack(self, step: int) -> dict:
        """The inference attacker attacks the current model (once per model version)."""
        if not self.platform.trained or self.attacker is None:
            return {}
        fresh = self.attacker.attacked_version != self.platform.version
        started = time.perf_counter()
        results = self.attacker.attack(
            self.platform.recommender, self.platform.data.table, self.platform.version
        )
        if fresh:
            best = {a: max(o.cv_auc for o in outs) for a, outs in results.items()}
            self._event(step, "attribute_inference", "attacker", float("nan"),
                        time.perf_counter() - started,
                        {"cv_auc": best, "threat": self.attacker.threat})
        return results

    def _measure(self, attacks: dict) -> tuple[dict, list[dict]]:
        seen_user, seen_item = self.platform.seen_items()
        inputs = StepInputs(
            recommender=self.platform.recommender if self.platform.trained else None,
            seen_user=seen_user, seen_item=seen_item, attacks=attacks,
            attacker_known=self.attacker.known if self.attacker is not None else None,
            disclosure_fraction=self.population.disclosure_fraction,
            beta=self.population.beta,
            n_disclosed=self.population.n_disclosed,
            attack_version=self.attacker.attacked_version if self.attacker is not None else -1,
        )
        return self.measurer.measure(inputs)

    def _event(
        self, step: int, kind: str, agent: str, value: float, seconds: float, detail: dict
    ) -> None:
        self.records.events.append({
            "step": step, "kind": kind, "agent": agent, "value": value,
            "seconds": seconds, "detail": json.dumps(detail, sort_keys=True),
        })

    def run(self, steps: int | None = None) -> None:
        """Run the configured number of steps (or `steps`)."""
        for _ in range(steps if steps is not None else self.scenario.simulation.steps):
            self.step()


def _world_seed(scenario: Scenario) -> int:
    cfg = scenario.world
    return cfg.seed if cfg.seed is not None else scenario.simulation.seed


def _split(world: World, scenario: Scenario) -> tuple[Interactions, Interactions]:
    """Training ratings (experienced over time) and each user's held-out test ratings."""
    cfg = scenario.world
    if cfg.split == "random":
        return random_split(world.ratings, world.n_users, cfg.test_fraction, _world_seed(scenario))
    return temporal_split(world.ratings, world.n_users, cfg.test_fraction)


def _load(scenario: Scenario) -> World:
    cfg = scenario.world
    seed = _world_seed(scenario)
    return load_world(
        cfg.source, cfg.path, cfg.n_users, cfg.n_items, cfg.signal, seed,
        mean_ratings_per_user=cfg.mean_ratings_per_user,
        min_ratings_per_user=cfg.min_ratings_per_user,
    )
