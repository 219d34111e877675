"""`docs/scenario-reference.md`, generated from the scenario schema (field types, defaults,
ranges and descriptions), so the reference cannot drift from what is validated.

`python -m simulator.scenario.reference` rewrites the file; a test fails when it is stale.
"""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from simulator.attacks.registry import ATTACKER_CLASSES
from simulator.foundations.settings import AttributeName, _leaf_types, names_attributes
from simulator.scenario.messages import field_bounds
from simulator.scenario.schema import Scenario

DOC = Path(__file__).resolve().parents[2] / "docs" / "scenario-reference.md"
HEADER = """# Scenario reference

Every key a scenario file (or `--set`) accepts, generated from the schema by
`python -m simulator.scenario.reference`. Unknown keys are errors; numbers must be finite and
within the range given.
"""


def _type_name(annotation: Any) -> str:
    if annotation == AttributeName:
        return "attribute name"
    if typing.get_origin(annotation) is list and typing.get_args(annotation)[0] == AttributeName:
        return "list of attribute names"
    if typing.get_origin(annotation) is list and typing.get_origin(
            typing.get_args(annotation)[0]) is typing.Annotated:
        return "list of attackers (sections `attackers.N` below)"
    if typing.get_args(annotation) and AttributeName in typing.get_args(annotation):
        return " or ".join(_type_name(a) for a in typing.get_args(annotation))
    text = str(annotation) if typing.get_args(annotation) else getattr(
        annotation, "__name__", str(annotation))
    return (text.replace("typing.", "").replace("simulator.scenario.schema.", "")
            .replace("NoneType", "null").replace("|", "\\|"))


def _range(field: Any) -> str:
    return ", ".join(field_bounds(field))


def _default(field: Any) -> str:
    if field.default is PydanticUndefined:
        if field.default_factory is None:
            return "required"
        made = field.default_factory()
        return f"`{made}`" if made in ({}, []) or isinstance(made, list) and all(
            isinstance(v, str) for v in made) else "(see below)"
    value = field.default
    return "null" if value is None else f"`{value}`"


def _sections(model: type[BaseModel], prefix: str,
              found: list[tuple[str, type[BaseModel]]]) -> None:
    found.append((prefix, model))
    for name, field in model.model_fields.items():
        for leaf in _nested(field.annotation):
            key = f"{prefix}.{name}" if prefix else name
            if typing.get_origin(field.annotation) is dict:
                key += ".NAME"
            _sections(leaf, key, found)


def _nested(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    origin = typing.get_origin(annotation)
    if origin in (list, dict):
        return []  # lists and maps of sections are listed on their own
    return [leaf for leaf in _leaf_types(annotation)
            if isinstance(leaf, type) and issubclass(leaf, BaseModel)]


def _defense_note(prefix: str) -> str:
    """What a defense's declarations say about where it runs (from the defense registry)."""
    from simulator.defenses.registry import BY_KEY
    from simulator.recommenders.registry import models_with

    key = prefix.removeprefix("platform.defenses.")
    defense = BY_KEY.get(key) if prefix.startswith("platform.defenses.") else None
    if defense is None:
        return ""
    limits = [f"Models: {', '.join(models_with(defense.requires))}."]
    if not defense.with_item_features:
        limits.append("Not with `platform.item_features`.")
    return " " + " ".join(limits)


def _attacker_note(prefix: str) -> str:
    """What an attacker's declarations say: what it reads, when it acts, whether it poisons
    the platform (from the attacker registry)."""
    from simulator.attacks.registry import BY_KIND

    kind = prefix.removeprefix("attackers.N (kind: ").removesuffix(")")
    attacker = BY_KIND.get(kind) if prefix.startswith("attackers.N (kind: ") else None
    if attacker is None:
        return ""
    notes = [f"Reads: {', '.join(attacker.reads) or 'nothing'}.",
             f"Acts in the phases: {', '.join(attacker.phases)}."]
    if attacker.poisons:
        notes.append("It changes the platform, so a clean twin trains beside it.")
    if attacker.only_one:
        notes.append("At most one per scenario.")
    return " " + " ".join(notes)


def reference() -> str:
    """The whole reference as Markdown."""
    sections: list[tuple[str, type[BaseModel]]] = []
    _sections(Scenario, "", sections)
    from simulator.scenario.schema import EventConfig, InclinationType

    _sections(InclinationType, "population.types.NAME", sections)
    _sections(EventConfig, "events.N", sections)
    for kind, cls in ATTACKER_CLASSES.items():
        _sections(cls, f"attackers.N (kind: {kind})", sections)
    lines = [HEADER]
    seen: set[str] = set()
    for prefix, model in sections:
        if prefix in seen:
            continue
        seen.add(prefix)
        doc = " ".join((model.__doc__ or "").strip().split("\n\n")[0].split())
        doc += _defense_note(prefix) + _attacker_note(prefix)
        lines += [f"## `{prefix or '(top level)'}`", "", doc, "",
                  "| key | type | default | range | description |", "|---|---|---|---|---|"]
        for name, field in model.model_fields.items():
            if _nested(field.annotation) and not _leaf_types(field.annotation) - {
                    type(None), *_nested(field.annotation)}:
                continue  # a sub-section: it has its own table
            description = (field.description or "").replace("|", "\\|").replace("\n", " ")
            kind = ("attribute name" if field.annotation is str
                    and names_attributes(str, field.metadata) else _type_name(field.annotation))
            lines.append(f"| `{name}` | {kind} | {_default(field)} | "
                         f"{_range(field)} | {description} |")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    DOC.write_text(reference(), encoding="utf-8")
