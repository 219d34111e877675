"""The Mesa model: wires the world, the agents and the measurement, and steps them.

One step: users experience new ratings and disclose some; poisoning attackers add their
fake profiles; the platform ingests everything and retrains when due; item owners perturb
the new model and adaptive attackers look at it; the inference attacker attacks each new
model; then everything is measured. With poisoning attackers a clean twin of the platform
(same model, seed and schedule, genuine ratings only) trains alongside, so every step also
measures what the attack changed against the same platform without it. This is the only
simulator module that imports `agents/`.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from typing import Any

import mesa
import numpy as np

from agents import (
    InferenceAttacker,
    ItemOwner,
    PlatformAgent,
    ShillingAttacker,
    UserAgent,
    UserPopulation,
)
from agents.policies import StepSignals, make_policy
from agents.sensitivity import rating_sensitivity
from agents.users import draw_inclinations, initial_betas
from simulator.attacks.membership import deletion_audit
from simulator.core.config import DefensesConfig, Scenario
from simulator.core.device import resolve_device
from simulator.core.errors import ScenarioError
from simulator.core.memory import check_fits, estimate_memory, synthetic_size
from simulator.core.timeline import assign_steps
from simulator.defenses.stack import PlatformDefenses
from simulator.metrics.accuracy import rating_errors
from simulator.metrics.groups import build_groups, involvement_groups
from simulator.metrics.measure import Measurer, StepInputs
from simulator.metrics.poisoning import TARGET_KS, TargetView, target_metrics, target_view
from simulator.recommenders.base import ModelParams
from simulator.recommenders.factor_model import FactorModel
from simulator.recommenders.registry import make_recommender, recommender_class
from simulator.world import Interactions, World, load_world, random_split, temporal_split
from simulator.world.subsample import keep_items

MEMBERSHIP_COLUMNS = ("mia_members_auc", "mia_members_tpr_at_1pct_fpr")


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
        if world is None and scenario.world.source == "synthetic":
            # Refuse a world that cannot fit before generating it.
            check_fits(estimate_memory(scenario, *synthetic_size(scenario)), self.device.type,
                       "synthetic")
        self.world = world if world is not None else _load(scenario)
        if world is None and scenario.world.source != "synthetic":
            check_fits(estimate_memory(scenario, self.world.n_users, self.world.n_items,
                                       len(self.world.ratings)), self.device.type,
                       scenario.world.source)
        self.train, self.test = _split(self.world, scenario)
        self.step_index = 0
        self.records = Records()
        self.agent_table_users = _sampled_users(
            self.world.n_users, scenario.output.agents_sample, seed)
        self._build_users(seed)
        self._build_poisoners(seed)
        self._build_platform(seed)
        self._build_attackers(seed)
        self._poisoning_cache: tuple[tuple[int, int], dict[str, float]] | None = None
        self._last_audit: dict[str, float] = (
            dict.fromkeys(["mia_auc_before_deletion", "mia_auc", "mia_tpr_at_1pct_fpr",
                           "deleted_users"], np.nan)
            if self.deletion_audit_columns else {}
        )
        if scenario.metrics.membership:
            self._last_audit.update(dict.fromkeys(MEMBERSHIP_COLUMNS, np.nan))
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
        policy = make_policy(population, self.world, inclination, beta, seed)
        key = None
        if policy.name == "sensitivity_aware":
            labels = self.world.attributes[population.sensitive_attribute]
            key = rating_sensitivity(self.train, labels, self.world.n_items)
        self.train_step = assign_steps(self.train, self.scenario.simulation.steps)
        self.population = UserPopulation(
            self.train, self.train_step,
            self.world.n_users, names, inclination, beta, policy, seed,
            asks_unlearning, population.perturbation, disclosure_key=key,
        )
        for index in range(self.world.n_users):
            UserAgent(self, self.population, index)

    def _build_poisoners(self, seed: int) -> None:
        """Shilling attackers (each with its own block of fake-account slots after the
        genuine users) and item owners."""
        self.n_genuine = self.world.n_users
        self.shillers: list[ShillingAttacker] = []
        self.item_owners: list[ItemOwner] = []
        model_cls = recommender_class(self.scenario.platform.model)
        slot = self.n_genuine
        for index, cfg in enumerate(self.scenario.attackers):
            rng = np.random.default_rng([seed, 20, index])
            if cfg.kind == "shilling":
                attacker = ShillingAttacker(
                    self, cfg, self.n_genuine, self.world.n_items, slot,
                    not model_cls.predicts_ratings, rng,
                )
                slot += attacker.n_slots
                self.shillers.append(attacker)
            elif cfg.kind == "item_perturbation":
                self.item_owners.append(ItemOwner(
                    self, cfg, self._segment(index, cfg.segment_attribute, cfg.segment_value),
                    self.world.n_items, rng,
                ))
        self.n_platform_users = slot
        self.poisoned = bool(self.shillers or self.item_owners)

    def _segment(self, index: int, attribute: str | None, value: int) -> np.ndarray:
        if attribute is None:
            return np.ones(self.n_genuine, dtype=bool)
        where = f"attackers.{index}.segment_attribute"
        if attribute not in self.world.attributes:
            raise ScenarioError(f"{where}: the {self.world.name} world has no {attribute}")
        labels = self.world.attribute_labels[attribute]
        if value >= len(labels):
            raise ScenarioError(
                f"attackers.{index}.segment_value: {attribute} codes are 0..{len(labels) - 1} "
                f"({', '.join(labels)}), got {value}"
            )
        return self.world.attributes[attribute] == value

    def _build_platform(self, seed: int) -> None:
        self.platform = self._platform_agent(seed, self.scenario.platform.defenses)
        # The clean twin: what the platform would be without the attack. Detection is left
        # out (there is nothing to detect); other defenses stay so the comparison isolates
        # the attack.
        self.clean_platform = (
            self._platform_agent(
                seed, self.scenario.platform.defenses.model_copy(update={"detection": None})
            )
            if self.poisoned else None
        )

    def _platform_agent(self, seed: int, defense_config: DefensesConfig) -> PlatformAgent:
        cfg = self.scenario.platform
        options = cfg.metamf.model_dump() if cfg.model in ("metamf", "nometamf") else {}
        params = ModelParams(cfg.factors, cfg.lr, cfg.reg, cfg.batch_size, options)
        recommender = make_recommender(
            cfg.model, self.n_platform_users, self.world.n_items, params, self.device, seed
        )
        if cfg.item_features:
            if self.world.item_features is None:
                raise ScenarioError(
                    f"platform.item_features: the {self.world.name} world has no item "
                    "side information"
                )
            assert isinstance(recommender, FactorModel)
            recommender.set_item_features(self.world.item_features.astype(np.float32))
        defenses = PlatformDefenses(
            defense_config, dict(self.world.attributes),
            {a: len(labels) for a, labels in self.world.attribute_labels.items()},
            self.n_platform_users, seed, requested_users=self._unlearning_requests,
            n_genuine=self.n_genuine,
        )
        return PlatformAgent(
            self, recommender, cfg.retrain_every, cfg.epochs,
            cfg.first_epochs or cfg.epochs, cfg.warm_start, defenses, cfg.deletion,
        )

    def _unlearning_requests(self) -> np.ndarray:
        """Users who asked for unlearning, over every platform account (fakes never ask)."""
        requests = self.population.unlearning_requests()
        if self.n_platform_users == self.n_genuine:
            return requests
        padded = np.zeros(self.n_platform_users, dtype=bool)
        padded[: self.n_genuine] = requests
        return padded

    def _build_attackers(self, seed: int) -> None:
        self.attacker: InferenceAttacker | None = None
        for index, cfg in enumerate(self.scenario.attackers):
            if cfg.kind != "inference":
                continue
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
                self.device, cfg.selection_every,
            )

    # --- stepping ----------------------------------------------------------------------

    def step(self) -> None:
        """Advance the simulation by one step and record its measurements."""
        step = self.step_index
        timings: dict[str, float] = {}

        started = time.perf_counter()
        self._apply_events(step)
        breaches = [e for e in self.scenario.events if e.step == step and e.kind == "breach"]
        for breach in breaches:
            self._event(step, "breach", "world", breach.severity, 0.0,
                        {"severity": breach.severity, "reach": breach.reach})
        signals = StepSignals(self.measurer.user_quality, self.measurer.user_baseline, breaches)
        disclosed = self.population.step(step, signals)
        timings["seconds_agents"] = time.perf_counter() - started

        started = time.perf_counter()
        self.platform.ingest(disclosed)
        if self.clean_platform is not None:
            self.clean_platform.ingest(disclosed)
        self._inject(step)
        retrained = False
        audit: dict[str, float] = {}
        if self.platform.due(step):
            audit = self._audit_before_deletion()
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
        if retrained:
            self._after_retrain(step)
            audit.update(self._audit_deletions())
            audit.update(self._audit_members())
        if retrained and self._last_audit:
            # The audit columns describe the latest retrain (kept between retrains).
            self._last_audit = {name: audit.get(name, np.nan) for name in self._last_audit}
        if self.clean_platform is not None:
            started = time.perf_counter()
            if self.clean_platform.due(step):
                self.clean_platform.retrain(step)
            timings["seconds_clean_training"] = time.perf_counter() - started

        started = time.perf_counter()
        attacks = self._attack(step)
        timings["seconds_attack"] = time.perf_counter() - started
        row, group_rows = self._measure(attacks)
        if self.poisoned:
            row.update(self._poisoning_metrics(row))
        timings["seconds_measurement"] = time.perf_counter() - started

        row = {
            "step": step, "retrained": retrained, "model_version": self.platform.version,
            "n_active": int(self.population.active.sum()),
            "n_platform_ratings": len(self.platform.data), **row, **self._last_audit,
            **self.population.policy.metrics(self.population.beta),
            **self.platform.defenses.latest, **timings,
        }
        self.records.metrics.append(row)
        self.records.groups.extend({"step": step, **g} for g in group_rows)
        if self.scenario.output.agents_table:
            rows = self.agent_table_users
            self.records.agents.append({"step": np.full(len(rows), step),
                                        **self.population.snapshot(rows)})
        self.step_index += 1

    # --- lifecycle --------------------------------------------------------------------

    @property
    def deletion_audit_columns(self) -> bool:
        """Whether the scenario has deletions to audit."""
        return any(e.kind == "deletion" for e in self.scenario.events)

    def _apply_events(self, step: int) -> None:
        """Opt-outs, deletion requests and type conversions scheduled for this step."""
        population = self.population
        types = self.scenario.population.types
        names = list(types)
        for index, event in enumerate(self.scenario.events):
            if event.step != step or event.kind == "breach":
                continue
            eligible = ~population.deleted
            if event.types is not None:
                eligible &= np.isin(population.inclination, [names.index(t) for t in event.types])
            users = population.draw(f"event-{index}", event.share, eligible)
            if event.kind == "opt_out":
                population.opt_out(users)
            elif event.kind == "unlearning_request":
                population.asks_unlearning |= users
            elif event.kind == "deletion":
                population.delete(users)
                for platform in (self.platform, self.clean_platform):
                    if platform is not None:
                        platform.request_deletion(np.flatnonzero(users))
            else:
                assert event.to is not None
                target = types[event.to]
                population.convert(users, names.index(event.to), target.beta)
                population.policy.retype(users, target.beta, target.concern)
                self._regroup_inclination()
            self._event(step, event.kind, "users", float(users.sum()), 0.0,
                        {"share": event.share, "types": event.types, "to": event.to})

    def _regroup_inclination(self) -> None:
        """Inclination groups follow users who changed type (cached leakage is dropped)."""
        names = list(self.scenario.population.types)
        for group in self.measurer.groups:
            if group.kind == "inclination":
                group.mask[:] = self.population.inclination == names.index(group.name)
        self.measurer.forget_cached_leakage()

    def _never_seen(self) -> Interactions:
        """Ratings that users the platform never saw anything from (non-members) have
        experienced so far: the same time window as the members' ratings, since tastes and
        popularity drift over time and a later window would tell the two apart by itself."""
        unseen = (self.population.n_disclosed == 0) & ~self.population.deleted
        return self.train.subset(unseen[self.train.user]
                                 & (self.train_step <= self.step_index))

    def _audit_before_deletion(self) -> dict[str, float]:
        """Membership inference on users about to be deleted, against the model that still
        holds their data (NaN when nobody is pending)."""
        platform = self.platform
        if not (self.deletion_audit_columns and len(platform.pending_deletion)
                and platform.trained):
            return {}
        table = platform.data.table
        members = table.subset(np.isin(table.user, platform.pending_deletion))
        result = deletion_audit(platform.recommender, members, self._never_seen())
        return {"mia_auc_before_deletion": result.auc}

    def _audit_deletions(self) -> dict[str, float]:
        """Membership inference on every deleted user (their former ratings) against users
        the platform never saw, on the freshly retrained model."""
        if not self.deletion_audit_columns:
            return {}
        deleted = self.platform.deleted_ratings
        if len(deleted) == 0:
            return {"deleted_users": 0.0}
        result = deletion_audit(self.platform.recommender, deleted, self._never_seen())
        return {"mia_auc": result.auc, "mia_tpr_at_1pct_fpr": result.tpr_at_1pct_fpr,
                "deleted_users": float(len(np.unique(deleted.user)))}

    def _audit_members(self) -> dict[str, float]:
        """Membership inference of the genuine users the platform trained on against users
        it never saw (`metrics.membership`)."""
        if not self.scenario.metrics.membership:
            return {}
        table = self.platform.data.table
        members = table.subset(table.user < self.n_genuine)
        result = deletion_audit(self.platform.recommender, members, self._never_seen())
        return {"mia_members_auc": result.auc,
                "mia_members_tpr_at_1pct_fpr": result.tpr_at_1pct_fpr}

    def _public_ratings(self) -> Interactions:
        """What attackers can read in public: every rating genuine users disclosed."""
        holder = self.clean_platform if self.clean_platform is not None else self.platform
        return holder.data.table

    def _inject(self, step: int) -> None:
        """Shilling attackers send this step's fake ratings; item owners fix their items."""
        if not self.poisoned:
            return
        public = self._public_ratings()
        for index, attacker in enumerate(self.shillers):
            injection = attacker.act(step, public)
            self.platform.data.drop_users(injection.replaced_users)
            self.platform.ingest(injection.ratings)
            if len(injection.ratings):
                self._event(step, "profile_injection", f"shilling{index}",
                            float(len(np.unique(injection.ratings.user))), 0.0, {
                                "ratings": len(injection.ratings),
                                "profiles_total": attacker.injected,
                                "rewritten": len(injection.replaced_users),
                                "targets": attacker.targets.tolist(),
                            })
        for owner in self.item_owners:
            if owner.owned is None and len(public):
                owner.choose_items(public)

    def _after_retrain(self, step: int) -> None:
        """Item owners perturb the new model; adaptive attackers look at it."""
        for index, owner in enumerate(self.item_owners):
            if owner.owned is None:
                continue
            started = time.perf_counter()
            gain = owner.act(step, self.platform.recommender, self._public_ratings(),
                             *self.platform.seen_items())
            if not math.isnan(gain):
                self._event(step, "item_perturbation", f"item_owner{index}", gain,
                            time.perf_counter() - started, {"items": owner.owned.tolist()})
        for index, attacker in enumerate(self.shillers):
            if attacker.n_probes and attacker.started:
                success = attacker.observe(self.platform.recommender)
                self._event(step, "attack_observation", f"shilling{index}", success, 0.0, {
                    "goal_met": attacker.goal_met, "reserve_left": attacker.reserve,
                })

    def _poisoning_metrics(self, measured: dict[str, Any]) -> dict[str, float]:
        """Targets' standing with and without the attack, and the collateral damage
        (`measured`: this step's metrics row of the attacked platform)."""
        assert self.clean_platform is not None
        key = (self.platform.version, self.clean_platform.version)
        if self._poisoning_cache is not None and self._poisoning_cache[0] == key:
            return dict(self._poisoning_cache[1])
        row: dict[str, float] = {
            "fake_profiles": float(sum(a.injected for a in self.shillers)),
        }
        attacked, clean = self.platform, self.clean_platform
        several = len(self.shillers) + len(self.item_owners) > 1
        genuine = np.arange(self.n_genuine)
        for index, attacker in enumerate(self.shillers):
            prefix = f"attacker{index}_" if several else ""
            values = dict.fromkeys(_target_columns(), math.nan)
            if attacker.targets is not None and attacked.trained and clean.trained:
                values = target_metrics(
                    self._view(attacked, genuine, attacker.targets),
                    self._view(clean, genuine, attacker.targets),
                )
            values["observed_success"] = attacker.observed_success
            row.update({prefix + k: v for k, v in values.items()})
        for index, owner in enumerate(self.item_owners):
            prefix = f"attacker{len(self.shillers) + index}_" if several else ""
            values = dict.fromkeys(_owned_columns(), math.nan)
            if owner.owned is not None and attacked.trained and clean.trained:
                segment, others = np.flatnonzero(owner.segment), np.flatnonzero(~owner.segment)
                for name, users in (("segment", segment), ("others", others)):
                    if len(users) == 0:
                        continue
                    now = target_metrics(self._view(attacked, users, owner.owned),
                                         self._view(clean, users, owner.owned))
                    for k in TARGET_KS:
                        values[f"owned_hr_{k}_{name}"] = now[f"target_hr_{k}"]
                        values[f"owned_hr_{k}_{name}_clean"] = now[f"target_hr_{k}_clean"]
                    values[f"owned_shift_{name}"] = now["prediction_shift"]
            values["perturbation_gain"] = owner.last_gain
            row.update({prefix + k: v for k, v in values.items()})
        row.update(self._collateral(measured))
        self._poisoning_cache = (key, dict(row))
        return row

    def _view(self, platform: PlatformAgent, users: np.ndarray, items: np.ndarray) -> TargetView:
        seen_user, seen_item = platform.seen_items()
        return target_view(platform.recommender.score, users, items, seen_user, seen_item,
                           self.world.n_items, self.device)

    def _collateral(self, measured: dict[str, Any]) -> dict[str, float]:
        """Genuine users' accuracy on the clean twin, and the change the attack caused (the
        attacked platform's accuracy is the one this step already measured)."""
        assert self.clean_platform is not None
        k = self.scenario.metrics.k
        row = {f"hr_{k}_clean": math.nan, f"hr_{k}_change": math.nan}
        clean = self.clean_platform
        if not (clean.trained and self.platform.trained):
            return row
        hits = self.measurer.ranking.evaluate(clean.recommender.score, *clean.seen_items()).hit
        row[f"hr_{k}_clean"] = float(np.nanmean(hits))
        row[f"hr_{k}_change"] = measured[f"hr_{k}"] - row[f"hr_{k}_clean"]
        if clean.recommender.predicts_ratings:
            errors = rating_errors(clean.recommender.predict, self.test, self.n_genuine)
            row["mae_clean"] = float(errors.abs_sum.sum() / max(errors.count.sum(), 1))
            row["mae_change"] = measured["mae"] - row["mae_clean"]
        return row

    def _attack(self, step: int) -> dict:
        """The inference attacker attacks whenever its view of users changed (a new model,
        or new disclosures under the ratings and recommendations threats)."""
        if not self.platform.trained or self.attacker is None:
            return {}
        data = self.platform.data
        fresh = self.attacker.is_stale(self.platform.version, data.revision)
        started = time.perf_counter()
        results = self.attacker.attack(
            self.platform.recommender, data.table, self.platform.version, data.revision
        )
        if fresh:
            best = {a: max(o.cv_auc for o in outs) for a, outs in results.items()}
            self._event(step, "attribute_inference", "attacker", float("nan"),
                        time.perf_counter() - started,
                        {"cv_auc": best, "threat": self.attacker.threat,
                         "cross_validated": self.attacker.cross_validated})
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
            attack_id=self.attacker.attacks if self.attacker is not None else -1,
            ranking_key=(self.platform.version, self.platform.data.rewrites),
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
        """Run the configured number of steps (`simulation.stop_after`, else all; or `steps`)."""
        for _ in range(steps if steps is not None else self.scenario.simulation.run_steps):
            self.step()


def _target_columns() -> list[str]:
    return [*(f"target_hr_{k}" for k in TARGET_KS),
            *(f"target_hr_{k}_clean" for k in TARGET_KS), "prediction_shift"]


def _owned_columns() -> list[str]:
    return [f"owned_hr_{k}_{name}{suffix}" for name in ("segment", "others")
            for k in TARGET_KS for suffix in ("", "_clean")] + [
        "owned_shift_segment", "owned_shift_others"]


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
    world = load_world(
        cfg.source, cfg.path, cfg.n_users, cfg.n_items, cfg.signal, seed,
        duplicates=cfg.duplicate_ratings,
        mean_ratings_per_user=cfg.mean_ratings_per_user,
        min_ratings_per_user=cfg.min_ratings_per_user,
    )
    if cfg.source == "movielens" and cfg.n_items is not None:
        if cfg.n_items > world.n_items:
            raise ScenarioError(
                f"world.n_items: the {world.name} world has {world.n_items} items, "
                f"got {cfg.n_items}"
            )
        world = keep_items(world, cfg.n_items, cfg.item_sample, seed)
    return world


def _sampled_users(n_users: int, share: float, seed: int) -> np.ndarray:
    """The users the agents table follows: everyone, or a fixed random share (sorted)."""
    if share >= 1.0:
        return np.arange(n_users)
    count = max(1, int(round(share * n_users)))
    rng = np.random.default_rng([seed, 7])
    return np.sort(rng.choice(n_users, size=count, replace=False))
