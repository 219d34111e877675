"""The base every scenario section builds on: strict sections, the bounds of the settings,
and what every defense's settings share.

Kept apart from the schema (`simulator.scenario.schema`) so that the modules declaring their own
settings (the defenses) can build on it without importing the whole schema.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, get_args, get_origin

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

ATTRIBUTES = ("gender", "age", "occupation")  # the MovieLens and synthetic worlds' attributes
ATTRIBUTE_NAME = r"[A-Za-z][A-Za-z0-9_]{0,39}"  # it names columns: leak_<name>_auc
# A user attribute a setting names: any attribute of the world (checked against the world
# when the model is built, `simulator.simulation.build`), MovieLens's by default.
AttributeName = Annotated[str, StringConstraints(pattern=f"^{ATTRIBUTE_NAME}$")]
# Upper bounds of the settings: far beyond any study, low enough to refuse a typo at once.
MAX_STEPS = 100_000
MAX_SEED = 2**32 - 1
MAX_USERS = 10_000_000
MAX_ITEMS = 1_000_000
MAX_WIDTH = 16_384
MAX_EPOCHS = 10_000
MAX_WEIGHT = 10_000.0
MAX_LR = 10.0
TYPE_NAME = r"[A-Za-z0-9][A-Za-z0-9 ._+-]{0,39}"  # printed in tables, legends and file names


class Section(BaseModel):
    """Base of every scenario section: unknown keys are errors, numbers are finite, and
    true/false is not a number."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_booleans_as_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, bool) and info.field_name is not None:
            leaves = _leaf_types(cls.model_fields[info.field_name].annotation)
            if bool not in leaves and leaves & {int, float}:
                raise ValueError("expected a number, not true/false")
        return value


def _leaf_types(annotation: Any) -> set[Any]:
    """The plain types an annotation is made of (int | None -> {int, NoneType})."""
    args = get_args(annotation)
    if not args:
        return {annotation}
    if get_origin(annotation) in (list, dict, tuple, set):
        return set()
    return set().union(*(_leaf_types(a) for a in args))


class DefenseSection(Section):
    """What every defense shares: a switch and the step from which it acts."""

    enabled: bool = True
    start_step: int = Field(
        0, ge=0, le=MAX_STEPS, description="first step at which the defense acts"
    )


def is_active(section: DefenseSection | None, step: int) -> bool:
    """Whether a defense section is configured, enabled and past its start step."""
    return section is not None and section.enabled and step >= section.start_step


@dataclass(frozen=True)
class Scheduled:
    """One scheduled item: the step it starts, its last step, what it is, and its key path."""

    step: int
    last: int
    what: str
    key: str
    needs_retrain: bool = False  # it only acts at a retrain at or after `step`
    why: str = "it acts at retrains"  # why it needs one

    @property
    def span(self) -> str:
        """'step S', or 'steps S-L' for an item that lasts several steps."""
        return f"step {self.step}" if self.last == self.step else f"steps {self.step}-{self.last}"


def distinct_entries(values: list[str]) -> list[str]:
    """A list setting's entries: at least one, none repeated (refused otherwise)."""
    if not values:
        raise ValueError("must list at least one entry")
    if len(set(values)) != len(values):
        raise ValueError("entries must not repeat")
    return values


def _is_attribute_name(item: Any) -> bool:
    return isinstance(item, StringConstraints) and item.pattern == f"^{ATTRIBUTE_NAME}$"


def names_attributes(annotation: Any, metadata: list[Any]) -> bool:
    """Whether a field's type (with its metadata) is `AttributeName`, a list of them, or
    either or None."""
    if any(_is_attribute_name(item) for item in metadata):
        return True
    if hasattr(annotation, "__metadata__") and any(
            _is_attribute_name(item) for item in annotation.__metadata__):
        return True
    return any(names_attributes(arg, []) for arg in get_args(annotation))


def attribute_settings(section: BaseModel, prefix: str) -> list[tuple[str, str]]:
    """(key path, name) of every user attribute that `section` names in its `AttributeName`
    settings (the model's build checks each against the world)."""
    found = []
    for key, field in type(section).model_fields.items():
        if names_attributes(field.annotation, field.metadata):
            value = getattr(section, key)
            for name in value if isinstance(value, list) else [value]:
                if isinstance(name, str):
                    found.append((f"{prefix}.{key}", name))
    return found
