"""The measurement protocol: what a measurement is, what it reads and what it shares."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Protocol

import numpy as np
import torch

from agents.board import StepBoard
from simulator.metrics.errors_and_hits import RankingEvaluator
from simulator.metrics.groups import Group
from simulator.scenario.schema import Scenario
from simulator.world.base import Interactions, World

if TYPE_CHECKING:
    from agents import (
        CleanTwin,
        InferenceAttacker,
        ItemOwner,
        PlatformAgent,
        ShillingAttacker,
        UserPopulation,
    )

Columns = dict[str, object]
EVERYONE = ("all", "everyone")  # the key of the overall slice of grouped measurements


class ModelView(Protocol):
    """What measurements read of the model: the scenario, the world's held-out ratings and
    the agents (the platform and its clean twin, the population, the attackers)."""

    scenario: Scenario
    world: World
    device: torch.device
    train: Interactions
    train_step: np.ndarray
    test: Interactions
    n_genuine: int
    population: UserPopulation
    platform: PlatformAgent
    clean_platform: CleanTwin | None
    attacker: InferenceAttacker | None
    shillers: list[ShillingAttacker]
    item_owners: list[ItemOwner]


@dataclass
class Shared:
    """What several measurements use, built once per model: the ranking of the held-out test
    ratings, the fixed user groups and the mask of everyone."""

    ranking: RankingEvaluator
    groups: list[Group]
    everyone: np.ndarray


class Measurement(ABC):
    """One thing measured at every step (in the spirit of T-RECS's `Measurement`).

    `measure` returns the measurement's columns of the step's metrics row, after the step's
    phases have run; `board.columns` holds the columns measured before it (registry order).
    A `grouped` measurement also slices itself by user group (`group_columns`, one call per
    group row; `measure` then returns its slice over everyone). Measurements that must look
    at a particular moment use the hooks: `before_retrain` runs when a retrain is due, just
    before it; `after_retrain` right after a retrain and the attackers' reactions to it.
    Built as `cls(model, shared)` once the model's agents exist; state kept on the object
    (caches, the latest audit) is checkpointed with the model.
    """

    grouped: ClassVar[bool] = False

    def __init__(self, model: ModelView, shared: Shared) -> None:
        """Keep what the measurement needs of the built model (nothing by default)."""
        return None

    def before_retrain(self, model: ModelView, board: StepBoard) -> None:
        """When a retrain is due, before it (nothing by default)."""
        return None

    def after_retrain(self, model: ModelView, board: StepBoard) -> None:
        """Right after a retrain (nothing by default)."""
        return None

    @abstractmethod
    def measure(self, model: ModelView, board: StepBoard) -> Columns:
        """This step's columns of the metrics row."""

    def group_columns(
        self, model: ModelView, board: StepBoard, mask: np.ndarray,
        key: tuple[str, str] | None,
    ) -> Columns:
        """This step's columns for the users in `mask`; `key` names a fixed group (None: a
        group whose membership changes every step)."""
        return {}

    def groups_changed(self) -> None:
        """Users moved between fixed groups: drop anything cached per group."""
        return None


class GroupedMeasurement(Measurement):
    """A measurement sliced by user group: its columns of the metrics row are its slice over
    everyone (subclasses that do work first call `super().measure` at the end)."""

    grouped = True

    def __init__(self, model: ModelView, shared: Shared) -> None:
        self.everyone = shared.everyone

    def measure(self, model: ModelView, board: StepBoard) -> Columns:
        """The slice over everyone."""
        return self.group_columns(model, board, self.everyone, EVERYONE)
