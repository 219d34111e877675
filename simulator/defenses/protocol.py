"""What a platform defense is: its settings, what it needs of the model, and its hooks.

A defense is one class (one module) registered in `simulator.defenses.registry`. It declares

- `key`: its section under `platform.defenses` in a scenario, and `settings`, the pydantic
  class of that section (a `DefenseSection`, so it has `enabled` and `start_step`);
- `requires`: the model capabilities it needs (`simulator.recommenders.registry`); the
  scenario check refuses a model without them, so no hook has to test the model's class;
- `with_item_features`, `with_consumption`, `on_clean_twin` and `conflicts(...)`: how it
  combines with the rest of a scenario, checked before anything runs;
- `metric_names()`: the per-step columns it reports (NaN until it acts), and
  `summary_columns`: the patterns of those a run's summary shows whenever it is configured.

Each retrain calls the hooks of every configured defense, in registry order:
`prepare` (the training table), `configure` (the model's training hooks), `fit` (replace
the model's own training: at most one defense acts here), `after_fit` (edit the trained
model, read what the training did). A hook says whether the defense acted, and the retrain
lists the defenses that did.

Modules that declare a defense import heavy libraries inside the hooks, so validating a
scenario stays light.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from simulator.foundations.columns import Column
from simulator.foundations.settings import DefenseSection, is_active

if TYPE_CHECKING:
    from simulator.recommenders.base import Recommender, TrainingReport
    from simulator.world.base import Interactions


@dataclass
class DefenseContext:
    """What the platform tells its defenses about the world it trains on.

    `attributes` are every platform account's declared attribute codes (profile data given at
    sign-up: genuine users' true ones, then what each fake account declared, -1 until it
    signs up; fake accounts fill theirs in place as they join), `n_users` counts every
    platform account (fake ones after the `n_genuine` genuine ones),
    `requested_users()` says who has asked for unlearning (the user side can change it), and
    `attacker_classifiers` names, per attribute, the classifiers of the scenario's inference
    attackers that infer it (what a defense's own checks must stand up to).
    """

    attributes: dict[str, np.ndarray]
    n_classes: dict[str, int]
    n_users: int
    n_genuine: int
    seed: int
    requested_users: Callable[[], np.ndarray] | None = None
    attacker_classifiers: dict[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass
class Retrain:
    """One retrain as the hooks see it: its step, model, table (after `prepare`), the
    retrain's seed, the report once trained and the defenses that have acted so far."""

    step: int
    recommender: Recommender
    table: Interactions
    seed: int
    report: TrainingReport | None = None
    used: tuple[str, ...] = ()


class Defense:
    """Base of every platform defense: declarations with defaults, hooks that do nothing."""

    key: ClassVar[str]
    settings: ClassVar[type[DefenseSection]]
    requires: ClassVar[frozenset[str]] = frozenset()
    with_item_features: ClassVar[bool] = True
    # Whether it can train a model whose lists rank by a consumption task
    # (`platform.ranking.method: consumption`, which trains each rating twice).
    with_consumption: ClassVar[bool] = True
    on_clean_twin: ClassVar[bool] = True  # kept on the attack-free twin of the platform
    # Regular expressions of its columns that a run's summary shows (its own measure of
    # whether it worked), whatever the scenario's headline lists.
    summary_columns: ClassVar[tuple[str, ...]] = ()
    # Every column `metric_names` can return, with the values it can take (`{attribute}`
    # stands for an attribute's name); the outputs doc and the results table read these.
    columns: ClassVar[tuple[Column, ...]] = ()
    # Small settings that act within two steps on a tiny world: the combination matrix
    # (`tests/combinations.py`) runs the defense with them beside every model and attacker.
    example: ClassVar[dict[str, Any]] = {}

    def __init__(self, *, config: DefenseSection, context: DefenseContext) -> None:
        self.config = config
        self.context = context

    @classmethod
    def conflicts(cls, config: DefenseSection, others: dict[str, DefenseSection]) -> str | None:
        """Why `config` cannot run beside the other configured defenses, or None."""
        return None

    def active(self, step: int) -> bool:
        """Whether the defense is enabled and past its start step."""
        return is_active(self.config, step)

    def metric_names(self) -> list[str]:
        """The per-step columns this defense reports."""
        return []

    def prepare(self, retrain: Retrain) -> tuple[Interactions, dict[str, float]] | None:
        """The training table and metrics, when the defense changes what is trained on."""
        return None

    def configure(self, retrain: Retrain) -> bool:
        """Set (or, when inactive, clear) this defense's training hooks on the model;
        returns whether it acts on this retrain."""
        return False

    def fit(self, retrain: Retrain, epochs: int, warm_start: bool) -> TrainingReport | None:
        """Train the model in place of its own fit, or None to leave training alone."""
        return None

    def after_fit(self, retrain: Retrain) -> tuple[dict[str, float], bool]:
        """Metrics of the finished training, and whether the defense acted after it."""
        return {}, False

    def skip_reason(self, metrics: dict[str, float]) -> str:
        """Why the defense, active at a retrain, did not act on it, from that retrain's
        metrics (recorded as a `defense_skipped` event)."""
        return "it changed nothing at this retrain"
