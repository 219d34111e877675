"""Users: the whole population as one Mesa agent over vectorised state."""

from __future__ import annotations

from typing import TYPE_CHECKING

import mesa
import numpy as np

from agents.board import StepBoard
from agents.local_perturbation import perturb_with
from agents.policies import DisclosurePolicy, StepSignals
from simulator.foundations.errors import ScenarioError
from simulator.foundations.random_streams import stream_uniform
from simulator.scenario.schema import PopulationConfig
from simulator.world.base import Interactions

if TYPE_CHECKING:
    from simulator.world.base import World


class UserPopulation(mesa.Agent):
    """Every user's privacy state as arrays: one Mesa agent for the whole population.

    A population runs from thousands to millions of users; one Python object per user
    would make each step loop over them (and cost memory per user), while every decision
    here is the same arithmetic for all users. So the state is numpy arrays indexed by
    user, stepped in one vectorised update, and the population takes part in the model's
    phases as a single agent (`disclose`, then `observe` at the end of the step).
    """

    def __init__(
        self,
        model: mesa.Model,
        *,
        settings: PopulationConfig,
        train: Interactions,
        train_step: np.ndarray,
        inclination: np.ndarray,
        beta: np.ndarray,
        policy: DisclosurePolicy,
        seed: int,
        asks_unlearning: np.ndarray | None = None,
        disclosure_key: np.ndarray | None = None,
    ) -> None:
        super().__init__(model)
        n_users = len(inclination)
        self.n_users = n_users
        self.seed = seed
        self.asks_unlearning = (
            np.zeros(n_users, dtype=bool) if asks_unlearning is None
            else np.asarray(asks_unlearning, dtype=bool).copy()
        )
        self.perturbation = settings.perturbation
        self.type_names = list(settings.types)
        self.inclination = inclination.astype(np.int64)
        self.beta = beta.astype(np.float64)
        self.active = np.ones(n_users, dtype=bool)
        self.opted_out = np.zeros(n_users, dtype=bool)  # stopped disclosing
        self.deleted = np.zeros(n_users, dtype=bool)  # left and asked for deletion
        self.n_experienced = np.zeros(n_users, dtype=np.int64)
        self.n_disclosed = np.zeros(n_users, dtype=np.int64)
        self.policy = policy
        # What users perceived of the platform at the end of the last step: per-user NDCG@k
        # of its model and of the popularity baseline (None before any measurement).
        self.perceived_quality: np.ndarray | None = None
        self.perceived_baseline: np.ndarray | None = None
        self._train = train
        # One uniform key per training rating from the user's own stream: the ratings a
        # user discloses are those with the smallest keys among its new ones. A given
        # `disclosure_key` (e.g. how revealing each rating is) orders them instead, with the
        # stream breaking ties.
        if np.any(np.diff(train.user) < 0):
            raise ValueError("training ratings must be sorted by user")
        ordinal = np.arange(len(train)) - np.searchsorted(train.user, train.user)
        key = stream_uniform(seed, "disclosure", train.user, ordinal)
        if disclosure_key is not None:
            key = np.lexsort((key, np.asarray(disclosure_key, dtype=np.float64)))
            key = np.argsort(key).astype(np.float64)  # the rank of each rating in that order
        # Each step's ratings, ordered once by (user, key) so a step only has to count.
        order = np.lexsort((key, train.user, train_step))
        bounds = np.searchsorted(train_step[order], np.arange(int(train_step.max(initial=0)) + 2))
        self._step_rows = [order[bounds[s] : bounds[s + 1]] for s in range(len(bounds) - 1)]

    # --- phases (run by the model through Mesa's AgentSet) ----------------------------------

    def disclose(self, board: StepBoard) -> None:
        """Phase: users weigh what they perceived and the breaches announced, then disclose
        some of this step's ratings (`board.disclosed`)."""
        signals = StepSignals(self.perceived_quality, self.perceived_baseline, board.breaches)
        board.disclosed = self.experience(board.step, signals)

    def observe(self, board: StepBoard) -> None:
        """Phase: users take in this step's recommendation quality for their next decision."""
        self.perceived_quality = board.hits.ndcg if board.hits is not None else None
        self.perceived_baseline = board.popular.ndcg if board.popular is not None else None

    # --- the vectorised update --------------------------------------------------------------

    def experience(self, step: int, signals: StepSignals | None = None) -> Interactions:
        """Users experience this step's ratings and disclose ceil(beta * n) of all so far."""
        self.policy.update(self.beta, step, signals if signals is not None else StepSignals())
        rows = self._step_rows[step] if step < len(self._step_rows) else np.zeros(0, np.int64)
        rows = rows[self.active[self._train.user[rows]]]
        users = self._train.user[rows]
        new_counts = np.bincount(users, minlength=self.n_users)
        self.n_experienced += new_counts
        target = np.ceil(np.round(self.beta * self.n_experienced, 9)).astype(np.int64)
        quota = np.clip(target - self.n_disclosed, 0, new_counts)
        quota[self.opted_out] = 0
        # Rows are sorted by (user, key): a rating's rank within its user is its offset.
        first = np.searchsorted(users, users)
        rank = np.arange(len(rows)) - first
        chosen = rows[rank < quota[users]]
        self.n_disclosed += quota
        disclosed = self._train.subset(np.sort(chosen))
        noise = self.perturbation
        if noise is not None and noise.enabled and step >= noise.start_step:
            # Users perturb what they send; the platform never sees the true values.
            disclosed = perturb_with(disclosed, noise, self.seed)
        return disclosed

    def draw(self, purpose: str, share: float, eligible: np.ndarray) -> np.ndarray:
        """A share of the eligible users, each decided by its own stream (so who is drawn
        does not depend on anyone else's state)."""
        return eligible & (stream_uniform(self.seed, purpose, np.arange(self.n_users), 0) < share)

    def opt_out(self, users: np.ndarray) -> None:
        """These users stop disclosing; what they disclosed stays with the platform."""
        self.opted_out |= users

    def delete(self, users: np.ndarray) -> None:
        """These users leave: no more experiences or disclosures."""
        self.deleted |= users
        self.opted_out |= users
        self.active &= ~users

    def convert(self, users: np.ndarray, to_type: int, beta: float) -> None:
        """These users take on another inclination type and its budget."""
        self.inclination[users] = to_type
        self.beta[users] = beta

    def unlearning_requests(self) -> np.ndarray:
        """Active users who ask the platform to unlearn their attributes."""
        return self.asks_unlearning & self.active

    @property
    def disclosure_fraction(self) -> np.ndarray:
        """Share of experienced ratings each user has disclosed (NaN before any)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(
                self.n_experienced > 0, self.n_disclosed / np.maximum(self.n_experienced, 1), np.nan
            )

    def snapshot(self, users: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """A copy of the per-user state, one row per user (or per user in `users`)."""
        rows = np.arange(self.n_users) if users is None else users
        return {
            "user": rows.copy(),
            "inclination": self.inclination[rows],
            "beta": self.beta[rows],
            "active": self.active[rows],
            "n_experienced": self.n_experienced[rows],
            "n_disclosed": self.n_disclosed[rows],
            "asks_unlearning": self.asks_unlearning[rows],
            "opted_out": self.opted_out[rows],
            "deleted": self.deleted[rows],
        }


def draw_inclinations(
    n_users: int, shares: dict[str, float], rng: np.random.Generator
) -> np.ndarray:
    """Assign each user a type index with exactly round(share * n) users per type."""
    names = list(shares)
    counts = np.floor(np.array([shares[n] for n in names]) * n_users).astype(np.int64)
    remainders = np.array([shares[n] for n in names]) * n_users - counts
    for i in np.argsort(-remainders)[: n_users - counts.sum()]:
        counts[i] += 1
    types = np.repeat(np.arange(len(names)), counts)
    return rng.permutation(types)


def initial_betas(
    inclination: np.ndarray,
    type_betas: list[float],
    overrides: dict[int, float],
    world: World,
) -> np.ndarray:
    """Each user's starting budget: its type's beta, unless overridden by original user id."""
    beta = np.asarray(type_betas, dtype=np.float64)[inclination]
    if overrides:
        index_of = {int(uid): i for i, uid in enumerate(world.user_ids)}
        unknown = [uid for uid in overrides if uid not in index_of]
        if unknown:
            raise ScenarioError(f"population.beta_overrides: unknown user ids {unknown[:5]}")
        for uid, value in overrides.items():
            beta[index_of[uid]] = value
    return beta
