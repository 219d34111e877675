"""The measurement protocol: what a measurement is, what it reads and what it shares."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Protocol

import numpy as np
import torch

from agents.board import StepBoard
from simulator.foundations.columns import Column
from simulator.foundations.settings import Section
from simulator.metrics.errors_and_hits import RankingEvaluator
from simulator.metrics.groups import Group
from simulator.scenario.schema import Scenario
from simulator.world.base import Interactions, World

if TYPE_CHECKING:
    from agents import CleanTwin, PlatformAgent, UserPopulation
    from simulator.attacks.inference_attacker import InferenceAttacker
    from simulator.attacks.item_owner import ItemOwner
    from simulator.attacks.protocol import Attacker
    from simulator.attacks.shilling_attacker import ShillingAttacker

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
    attackers: list[Attacker]  # in the order the scenario lists them
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
    # The columns it writes (in the metrics row, and for grouped measurements in each group
    # row), and the measurements whose columns it reads from `board.columns` (the registry
    # runs those first). A measurement with settings declares their class: they are read
    # from `metrics.settings.<its name>` in the scenario (`self.settings` once built).
    columns: ClassVar[tuple[Column, ...]] = ()
    reads: ClassVar[tuple[str, ...]] = ()
    settings: ClassVar[type[Section] | None] = None
    config: Section | None = None  # its settings, set by the registry when it is built

    def __init__(self, model: ModelView, shared: Shared) -> None:
        """Keep what the measurement needs of the built model (nothing by default)."""
        return None

    @classmethod
    def applies(cls, scenario: Scenario) -> bool:
        """Whether `scenario` gets this measurement when it is installed from outside
        (`simulator.foundations.plugins`; privsim's own say so in the registry): always."""
        return True

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
