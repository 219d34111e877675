"""The attackers a scenario can list, and what follows from their declarations.

Adding an attacker: write its module (settings and an `Attacker` subclass: see `protocol`)
and add its class to `ATTACKERS`. The `attackers` entries of a scenario, their reference,
the schedule check, the build and the combination matrix all follow from here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Union

from pydantic import Discriminator, Tag

from simulator.attacks.inference_attacker import InferenceAttacker
from simulator.attacks.item_owner import ItemOwner
from simulator.attacks.protocol import Attacker
from simulator.attacks.shilling_attacker import ShillingAttacker
from simulator.foundations import plugins
from simulator.foundations.plugins import installed
from simulator.foundations.settings import Section

# The order their `kind`s are listed in messages and the reference; a step runs them by
# phase (`protocol.PHASES`), and within a phase in the order the scenario lists them.
# Installed attackers (`simulator.foundations.plugins`) come after privsim's own.
ATTACKERS: tuple[type[Attacker], ...] = (
    InferenceAttacker, ShillingAttacker, ItemOwner,
    *(attacker for _, attacker in installed(plugins.ATTACKERS)),
)
BY_KIND: dict[str, type[Attacker]] = {a.kind: a for a in ATTACKERS}
ATTACKER_KINDS: tuple[str, ...] = tuple(BY_KIND)
ATTACKER_CLASSES: dict[str, type[Section]] = {a.kind: a.settings for a in ATTACKERS}
DEFAULT_KIND = "inference"  # an entry without `kind`


def _attacker_kind(value: Any) -> str:
    """The `kind` of an attacker entry (`DEFAULT_KIND` when not given)."""
    if isinstance(value, dict):
        return str(value.get("kind", DEFAULT_KIND))
    return str(getattr(value, "kind", DEFAULT_KIND))


if TYPE_CHECKING:
    AttackerConfig = Any
else:
    # One member per registered attacker, told apart by its `kind` tag.
    AttackerConfig = Annotated[
        Union[tuple(Annotated[a.settings, Tag(a.kind)] for a in ATTACKERS)],  # noqa: UP007
        Discriminator(_attacker_kind),
    ]


def attacker_class(settings: Any) -> type[Attacker]:
    """The attacker an `attackers` entry declares (by its `kind`)."""
    return BY_KIND[settings.kind]


def poisons(attackers: list[Any]) -> bool:
    """Whether any of a scenario's attackers changes the platform's data or model."""
    return any(attacker_class(a).poisons for a in attackers)
