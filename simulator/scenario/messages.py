"""Validation errors of a scenario as one readable message: each problem's source (the file,
or the `--set` that wrote its key), its key path, what was expected, the allowed range and a
close key name for a typo."""

from __future__ import annotations

import difflib
from typing import Annotated, Any, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from simulator.attacks.registry import ATTACKER_CLASSES, ATTACKER_KINDS
from simulator.foundations.errors import shown
from simulator.foundations.yaml_files import key_path
from simulator.scenario.schema import Scenario

RANGE_ERRORS = {"greater_than", "greater_than_equal", "less_than", "less_than_equal",
                "finite_number", "int_parsing", "float_parsing", "int_type", "float_type",
                "value_error"}


MAX_LISTED = 10  # validation problems listed in one message


def _model_at(location: tuple[int | str, ...]) -> tuple[type[BaseModel] | None, FieldInfo | None]:
    """The settings class that holds the last key of `location`, and that key's field (None
    where the path leaves the schema)."""
    annotation: Any = Scenario
    owner: type[BaseModel] | None = None
    field = None
    for part in location:
        annotation = _without_none(annotation)
        if get_origin(annotation) is Annotated:
            annotation = get_args(annotation)[0]
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            owner, field = annotation, annotation.model_fields.get(str(part))
            if field is None:
                return owner, None
            annotation = field.annotation
        elif get_origin(annotation) in (list, dict):
            annotation, owner, field = get_args(annotation)[-1], None, None
        elif part in ATTACKER_KINDS:
            annotation, owner, field = ATTACKER_CLASSES[str(part)], None, None
        else:
            return None, None
    return owner, field


def _allowed_range(location: tuple[int | str, ...]) -> str | None:
    """The range a numeric setting accepts ("> 0 and <= 10"), found from its key path."""
    _, field = _model_at(location)
    bounds = field_bounds(field) if field is not None else []
    return " and ".join(bounds) if bounds else None


def _suggestion(location: tuple[int | str, ...]) -> str:
    """ "; did you mean 'x'?" for a misspelt key, from the keys its section accepts."""
    owner, _ = _model_at(location)
    if owner is None or not location:
        return ""
    close = difflib.get_close_matches(str(location[-1]), list(owner.model_fields), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def field_bounds(field: FieldInfo) -> list[str]:
    """A setting's bounds as text (">= 1", "<= 100000"), from its schema."""
    symbols = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}
    return [f"{symbols[name]} {getattr(item, name)}" for item in field.metadata
            for name in symbols if hasattr(item, name)]


def _without_none(annotation: Any) -> Any:
    args = [a for a in get_args(annotation) if a is not type(None)]
    return args[0] if type(None) in get_args(annotation) and len(args) == 1 else annotation


def _problem(error: Any) -> tuple[tuple[int | str, ...], str]:
    """One validation error as (its key path, the message shown)."""
    # The attacker union adds its tag to the location (attackers.0.shilling.x): drop it.
    loc = tuple(p for i, p in enumerate(error["loc"])
                if not (i == 2 and error["loc"][0] == "attackers" and p in ATTACKER_KINDS))
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown key" + _suggestion(tuple(error["loc"]))
    elif error["type"] == "union_tag_invalid":
        message = (f"unknown kind {shown(error['ctx']['tag'])}; expected one of "
                   f"{', '.join(ATTACKER_KINDS)}")
    elif error["type"] != "missing" and not isinstance(error.get("input"), dict | list):
        message = f"{message} (got {shown(error['input'])})"
        if error["type"] in RANGE_ERRORS and (allowed := _allowed_range(error["loc"])):
            message = f"{message}; allowed: {allowed}"
    return loc, message


def source_of(loc: tuple[int | str, ...], source: str,
               overrides: dict[tuple[str, ...], str]) -> str:
    """Where a problem came from: the `--set` that wrote its key (or a section above it); for
    a check on a whole section, the file and the `--set`s inside that section; else the
    scenario file."""
    path = tuple(str(p) for p in loc)
    for length in range(len(path), 0, -1):
        text = overrides.get(path[:length])
        if text is not None:
            return f"--set {shown(text)}"
    inside = [shown(text) for key, text in overrides.items() if key[:len(path)] == path]
    if len(inside) > 3:
        inside = [*inside[:3], f"and {len(inside) - 3} more"]
    return f"{source} with --set {', '.join(inside)}" if inside else source


def format_validation_error(source: str, error: ValidationError,
                             overrides: dict[tuple[str, ...], str] | None = None) -> str:
    """Every problem (up to MAX_LISTED), each with its source (the file, or the `--set` that
    wrote the key), its key path and what was expected; one line for a single problem."""
    lines = []
    for found in error.errors()[:MAX_LISTED]:
        loc, message = _problem(found)
        location = key_path(loc)
        # Whole-scenario checks name their own keys.
        lines.append(f"{source_of(loc, source, overrides or {})}: "
                     f"{location + ': ' if location else ''}{message}")
    more = len(error.errors()) - len(lines)
    if len(lines) == 1:
        return lines[0]
    listed = "\n".join(f"  {line}" for line in lines)
    suffix = f"\n  (and {more} more)" if more else ""
    return f"{len(error.errors())} problems in the scenario:\n{listed}{suffix}"
