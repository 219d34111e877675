"""What an attacker declares, and what it is given when a model builds it.

An attacker is one class (`Attacker`) holding both its declaration (class attributes read by
the scenario schema, the reference, the schedule and the build) and its behaviour (one
method per phase it acts in, given the step's board). A Mesa agent (`agents.attacker`) runs
it in the model's attacker phases; the registry (`simulator.attacks.registry`) lists them.

Attackers are declared here, below the scenario schema, so that validating a scenario reads
their settings without loading torch or scikit-learn: heavy libraries are imported inside
the methods that use them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import numpy as np

from simulator.foundations.settings import Scheduled, Section
from simulator.world.base import World

# The model's attacker phases, in the order a step runs them (`PrivacyModel.step`):
# - "inject": after the platforms took in the users' disclosures, before a retrain: add
#   ratings through the attacker's own accounts (`board.platform.ingest`);
# - "pick_items": then, choose what to act on from what is public (`board.public`);
# - "perturb": only right after a platform retrain: change the freshly trained model;
# - "probe": then, look at the new model the way any user can;
# - "infer": after every retrain of the step (clean twin included): attack the model;
#   an inference attacker leaves its outcome on `board.attacks` for the measurements.
PHASES = ("inject", "pick_items", "perturb", "probe", "infer")


class Board(Protocol):
    """What an attacker reads from and writes to the step's board (`agents.board.StepBoard`)."""

    step: int
    public: Any  # the genuine users' disclosed ratings (Interactions)
    platform: Any  # the platform agent: data, recommender, version, ingest
    attacks: Any  # inference outcomes, by attribute

    def event(self, kind: str, actor: str, value: float, seconds: float,
              detail: dict[str, Any]) -> None:
        """Log an event row (the run's events table)."""


@dataclass(kw_only=True)
class AttackerContext:
    """What the build hands an attacker: its place in the scenario and the world it acts in.

    `first_slot` is the first free platform account (fake accounts go after the genuine
    users); `accounts` the attributes every platform account declared at sign-up, shared by
    all attackers (an attacker fills its own slots); `implicit` whether the platform model
    learns from interactions only (BPR), not rating values."""

    index: int
    label: str
    world: World
    seed: int
    n_genuine: int
    first_slot: int
    implicit: bool
    device: Any  # torch.device
    accounts: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def where(self) -> str:
        """The attacker's key path in the scenario (`attackers.N`)."""
        return f"attackers.{self.index}"


class Attacker:
    """Base of every attacker: declarations as class attributes, then one method per phase.

    Declarations:
    - `kind`: its `kind` in a scenario's `attackers` list; `title`: what text calls it;
      `settings`: its pydantic settings
      (a `Section` with `kind: Literal[<kind>]`);
    - `label_prefix`: how the events table and the columns name it, numbered per kind
      (shilling0, shilling1; the instance's `label`);
    - `poisons`: it changes the platform's training data or model, so the model trains an
      attack-free clean twin beside the platform to measure what it changed;
    - `only_one`: a scenario may list at most one of its kind;
    - `with_consumption`: it can act on a rating model whose lists rank by a consumption task
      (`platform.ranking`); without, such scenarios rank by score by default;
    - `reads`: what it sees (documentation, shown in the reference): `public ratings`,
      `the model`, `recommendations`, `attributes`;
    - `phases`: the model phases (`PHASES`) it acts in, each a method of the same name
      taking the step's board;
    - `n_slots`: the platform accounts it needs (fake profiles), known once built.
    """

    kind: ClassVar[str]
    title: ClassVar[str]  # what it is called in text, with its article ("an item owner")
    settings: ClassVar[type[Section]]
    label_prefix: ClassVar[str]
    poisons: ClassVar[bool] = False
    only_one: ClassVar[bool] = False
    with_consumption: ClassVar[bool] = True
    reads: ClassVar[tuple[str, ...]] = ()
    phases: ClassVar[tuple[str, ...]] = ()
    # Small settings that act within two steps on a tiny world: the combination matrix
    # (`tests/combinations.py`) runs the attacker with them beside every model and defense.
    example: ClassVar[dict[str, Any]] = {}

    def __init__(self, *, settings: Any, context: AttackerContext) -> None:
        self.config = settings
        self.label = context.label  # names the attacker in the events table and columns
        self.n_slots = 0

    @classmethod
    def scheduled(cls, settings: Any, index: int) -> list[Scheduled]:
        """What it schedules (for the schedule check and `privsim validate`): by default the
        step it starts at, when its settings have a `start_step`."""
        start = getattr(settings, "start_step", None)
        if start is None:
            return []
        return [Scheduled(start, start, cls.kind.replace("_", " ") + " attacker",
                          f"attackers.{index}.start_step", cls.poisons)]

    @classmethod
    def describe(cls, settings: Any, index: int) -> list[str]:
        """Extra lines for the printed schedule (empty by default)."""
        return []

    @classmethod
    def platform_problem(cls, settings: Any, platform: Any) -> str | None:
        """Why this attacker cannot act on the scenario's platform (`PlatformConfig`), or
        None; checked when a scenario is validated."""
        return None
