"""What a scenario changed from the named scenario it was made from: the settings that its
overrides (`--set`, the API's `overrides`) gave other values than the named scenario's.

A run made that way names itself by them (its folder, summary, report and manifest), so that
it is never taken for the scenario it started from. Seeds, the device, output settings,
`--first`, and the name, description and report settings are not changes: they do not change
the experiment.
"""

from __future__ import annotations

from typing import Any

NOT_CHANGES = ("name", "description", "report", "output", "simulation.seed",
               "simulation.device", "simulation.stop_after")
# Settings whose default is resolved from others (the ranking from the platform model and
# its defenses): a change of those that changes them is listed as a change of its own.
FOLLOWING = ("platform.ranking",)
_MISSING = object()


def changed_settings(base: dict[str, Any], changed: dict[str, Any],
                     paths: list[list[str]]) -> tuple[str, ...]:
    """The override key paths (dotted, as written; `key+` as `key`) whose value in the
    resolved `changed` scenario differs from the resolved `base` (both `model_dump`s), in
    the order given, without those inside one already listed; then the `FOLLOWING` settings
    that the overrides changed through the settings they follow."""
    found: list[str] = []
    for path in paths:
        parts = [part.removesuffix("+") for part in path]
        dotted = ".".join(parts)
        if any(dotted == name or dotted.startswith(name + ".") for name in NOT_CHANGES):
            continue
        if any(dotted == seen or dotted.startswith(seen + ".") for seen in found):
            continue
        if _at(base, parts) != _at(changed, parts):
            found = [seen for seen in found if not seen.startswith(dotted + ".")]
            found.append(dotted)
    for dotted in FOLLOWING:  # resolved from other settings: changed when they changed it
        if not any(dotted == seen or dotted.startswith(seen + ".") for seen in found) \
                and _at(base, dotted.split(".")) != _at(changed, dotted.split(".")):
            found.append(dotted)
    return tuple(found)


def _at(data: Any, parts: list[str]) -> Any:
    for part in parts:
        if isinstance(data, dict) and part in data:
            data = data[part]
        elif isinstance(data, list) and part.isdecimal() and int(part) < len(data):
            data = data[int(part)]
        else:
            return _MISSING
    return data


def count_changes(changes: tuple[str, ...] | list[str]) -> str:
    """'1 change', '3 changes'."""
    return f"{len(changes)} change{'' if len(changes) == 1 else 's'}"


def run_title(name: str, base: str | None, changes: tuple[str, ...] | list[str]) -> str:
    """How a run names itself: its scenario's name, or `base + N changes` (with its own name
    first when it was given one)."""
    if base is None or not changes:
        return name
    made = f"{base} + {count_changes(changes)}"
    return made if name == base else f"{name} ({made})"


def folder_label(name: str, base: str | None, changes: tuple[str, ...] | list[str]) -> str:
    """The stem of a run's default folder: the name, or `base+N-changes`."""
    if base is None or not changes or name != base:
        return name
    return f"{base}+{count_changes(changes).replace(' ', '-')}"
