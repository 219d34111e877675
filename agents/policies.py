"""Disclosure policies: how users' budgets beta evolve, vectorised over all users.

`fixed` and `sensitivity_aware` keep every budget; the second changes which ratings are
disclosed (see `UserPopulation`). `privacy_calculus` moves each user's budget toward a target
that weighs perceived benefit (its own recommendation quality above the popularity baseline,
smoothed) against perceived risk (its type's concern times the salience of breaches it has
heard of, which fades):

    target_u = sigmoid(logit(beta0_u) + benefit_weight * benefit_u
                       - risk_weight * concern_u * salience_u)
    beta_u  <- beta_u + rate * (target_u - beta_u)

`social` adds a graph: breach news also travels along edges (each informed user tells each
neighbour with probability pass_news, one hop per step) and budgets move toward the
neighbours' mean by `influence`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import scipy.sparse as sp

from agents.social import assortativity, load_edge_list, make_graph, neighbour_mean, spread
from simulator.foundations.errors import ScenarioError
from simulator.foundations.random_streams import random_stream, stream_uniform
from simulator.scenario.schema import CalculusConfig, EventConfig, PopulationConfig, SocialConfig
from simulator.world.base import World

LOGIT_CLIP = 0.01  # baselines of 0 or 1 are taken as 0.01 / 0.99 so the logit is finite


@dataclass
class StepSignals:
    """What users perceive at the start of a step: per-user NDCG@k of the platform's model
    and of the popularity baseline at the previous step (NaN where unknown), and the
    breaches announced now."""

    quality: np.ndarray | None = None
    baseline: np.ndarray | None = None
    breaches: list[EventConfig] = field(default_factory=list)


class DisclosurePolicy(Protocol):
    """Updates every user's disclosure budget in place at the start of a step."""

    name: str

    def update(self, beta: np.ndarray, step: int, signals: StepSignals) -> None:
        """Adjust `beta` (one entry per user) before the step's disclosures are chosen."""

    def metrics(self, beta: np.ndarray) -> dict[str, float]:
        """Per-step columns describing the policy's state."""

    def retype(self, users: np.ndarray, beta0: float, concern: float) -> None:
        """Users changed inclination type."""


class FixedPolicy:
    """Each user keeps the budget of its inclination type (or its override) forever."""

    name = "fixed"

    def update(self, beta: np.ndarray, step: int, signals: StepSignals) -> None:
        """Budgets never change under the fixed policy."""
        return None

    def metrics(self, beta: np.ndarray) -> dict[str, float]:
        """Per-step columns describing the policy's state (none for fixed budgets)."""
        return {}

    def retype(self, users: np.ndarray, beta0: float, concern: float) -> None:
        """Users changed inclination type (the population already set their budget)."""


class SensitivityAwarePolicy(FixedPolicy):
    """Fixed budgets; the population discloses the least revealing ratings first."""

    name = "sensitivity_aware"


class PrivacyCalculusPolicy:
    """Budgets follow perceived benefit and risk (module docstring)."""

    name = "privacy_calculus"

    def __init__(
        self, config: CalculusConfig, *, beta0: np.ndarray, concern: np.ndarray, seed: int
    ) -> None:
        self.config = config
        clipped = np.clip(beta0, LOGIT_CLIP, 1.0 - LOGIT_CLIP)
        self.base_logit = np.log(clipped / (1.0 - clipped))
        self.concern = np.asarray(concern, dtype=np.float64)
        self.seed = seed
        n = len(beta0)
        self.benefit = np.zeros(n)
        self.salience = np.zeros(n)
        self.informed = np.zeros(n, dtype=bool)  # heard of a breach this step

    def update(self, beta: np.ndarray, step: int, signals: StepSignals) -> None:
        """Perceive, then move every budget toward its target."""
        cfg = self.config
        self._perceive_benefit(signals)
        self.salience *= 1.0 - cfg.forget
        self._relay(step)
        self.informed = np.zeros(len(beta), dtype=bool)
        for index, breach in enumerate(signals.breaches):
            heard = self._hears_directly(step, index, breach, len(beta))
            self.salience[heard] += breach.severity
            self.informed |= heard
        if signals.breaches:
            self._announced(signals.breaches)
        logit = (self.base_logit + cfg.benefit_weight * self.benefit
                 - cfg.risk_weight * self.concern * self.salience)
        target = 1.0 / (1.0 + np.exp(-logit))
        beta += cfg.rate * (target - beta)
        self._influence(beta)
        np.clip(beta, 0.0, 1.0, out=beta)

    def retype(self, users: np.ndarray, beta0: float, concern: float) -> None:
        """Users changed inclination type: their baseline and concern become the new type's."""
        clipped = min(max(beta0, LOGIT_CLIP), 1.0 - LOGIT_CLIP)
        self.base_logit[users] = np.log(clipped / (1.0 - clipped))
        self.concern[users] = concern

    def metrics(self, beta: np.ndarray) -> dict[str, float]:
        """Mean perceived benefit and breach salience, and the share who heard a breach now."""
        return {
            "perceived_benefit_mean": float(self.benefit.mean()),
            "breach_salience_mean": float(self.salience.mean()),
            "breach_informed_share": float(self.informed.mean()),
        }

    def _perceive_benefit(self, signals: StepSignals) -> None:
        if signals.quality is None or signals.baseline is None:
            return
        gain = signals.quality - signals.baseline
        known = np.isfinite(gain)
        memory = self.config.memory
        self.benefit[known] = memory * self.benefit[known] + (1.0 - memory) * gain[known]

    def _hears_directly(self, step: int, index: int, breach: EventConfig, n: int) -> np.ndarray:
        # Per-user streams: who hears the news does not depend on anyone else's state.
        draw = stream_uniform(self.seed, f"breach-{index}", np.arange(n), step)
        return draw < breach.reach

    def _relay(self, step: int) -> None:
        """Without a graph, news reaches only those who hear it directly."""

    def _announced(self, breaches: list[EventConfig]) -> None:
        """Without a graph, nothing to remember about who heard."""

    def _influence(self, beta: np.ndarray) -> None:
        """Without a graph, nobody is influenced by anyone."""


class SocialPolicy(PrivacyCalculusPolicy):
    """The privacy calculus on a social graph: news travels along edges and budgets move
    toward the neighbours' mean."""

    name = "social"

    def __init__(
        self, config: CalculusConfig, *, social: SocialConfig, adjacency: sp.csr_matrix,
        beta0: np.ndarray, concern: np.ndarray, seed: int,
    ) -> None:
        super().__init__(config, beta0=beta0, concern=concern, seed=seed)
        self.social = social
        self.adjacency = adjacency
        self.carrying = np.zeros(len(beta0), dtype=bool)  # heard last step, tells now
        self.heard = np.zeros(len(beta0), dtype=bool)  # has heard the latest breach
        self.severity = 0.0

    def _relay(self, step: int) -> None:
        """Last step's new hearers tell each neighbour with probability pass_news."""
        if not self.carrying.any():
            return
        rng = random_stream(self.seed, "breach_news_relay", step)
        told = spread(self.adjacency, self.carrying, rng, self.social.pass_news)
        fresh = told & ~self.heard
        self.salience[fresh] += self.severity
        self.heard |= fresh
        self.carrying = fresh

    def _announced(self, breaches: list[EventConfig]) -> None:
        """A new breach: its news starts over from those who heard it directly."""
        self.severity = max(b.severity for b in breaches)
        self.heard = self.informed.copy()
        self.carrying = self.informed.copy()

    def _influence(self, beta: np.ndarray) -> None:
        beta += self.social.influence * (neighbour_mean(self.adjacency, beta) - beta)

    def metrics(self, beta: np.ndarray) -> dict[str, float]:
        """The calculus columns, who has heard the latest breach, and how alike neighbours'
        budgets are (Pearson correlation across edges)."""
        return {
            **super().metrics(beta),
            "breach_heard_share": float(self.heard.mean()),
            "beta_assortativity": assortativity(self.adjacency, beta),
        }


POLICIES = ("fixed", "sensitivity_aware", "privacy_calculus", "social")


def make_policy(
    config: PopulationConfig, world: World, inclination: np.ndarray, beta0: np.ndarray,
    seed: int,
) -> DisclosurePolicy:
    """The configured policy; `beta0` are the users' starting budgets."""
    if config.policy == "fixed":
        return FixedPolicy()
    if config.policy == "sensitivity_aware":
        if config.sensitive_attribute not in world.attributes:
            raise ScenarioError(
                f"population.sensitive_attribute: the {world.name} world has no "
                f"{config.sensitive_attribute}"
            )
        return SensitivityAwarePolicy()
    concern = np.array([t.concern for t in config.types.values()])[inclination]
    if config.policy == "privacy_calculus":
        return PrivacyCalculusPolicy(config.calculus, beta0=beta0, concern=concern, seed=seed)
    return SocialPolicy(config.calculus, social=config.social,
                        adjacency=social_graph(config.social, world, seed),
                        beta0=beta0, concern=concern, seed=seed)


def social_graph(config: SocialConfig, world: World, seed: int) -> sp.csr_matrix:
    """The users' graph: generated with the world's users, or read from an edge list."""
    rng = random_stream(seed, "social_graph")
    try:
        if config.graph == "file":
            assert config.path is not None
            index = {int(uid): i for i, uid in enumerate(world.user_ids)}
            return load_edge_list(Path(config.path), world.n_users, index)
        attributes = None
        if config.graph == "homophilous":
            if config.homophily_attribute not in world.attributes:
                raise ScenarioError(
                    f"population.social.homophily_attribute: the {world.name} world has no "
                    f"{config.homophily_attribute}"
                )
            attributes = world.attributes[config.homophily_attribute]
        return make_graph(config.graph, world.n_users, rng, k=config.k, p=config.p, m=config.m,
                          attributes=attributes, homophily=config.homophily)
    except ValueError as exc:
        raise ScenarioError(f"population.social: {exc}") from None
