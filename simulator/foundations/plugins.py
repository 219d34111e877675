"""Components installed from outside privsim: Python entry points.

A package adds a defense, an attacker or a measurement without editing privsim by naming
its class under one of these entry-point groups (in its `pyproject.toml`):

    [project.entry-points."privsim.defenses"]
    toy = "my_package.toy_defense:ToyDefense"

The registries list them after privsim's own, in the order of their entry-point names.
This loads installed code (never data), as importing a package does.
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points
from typing import Any

from simulator.foundations.errors import PrivsimError

DEFENSES = "privsim.defenses"
ATTACKERS = "privsim.attackers"
MEASUREMENTS = "privsim.measurements"


@cache
def installed(group: str) -> tuple[tuple[str, Any], ...]:
    """The (name, loaded object) of every entry point in `group`, by name."""
    found = []
    for point in sorted(entry_points(group=group), key=lambda p: p.name):
        try:
            found.append((point.name, point.load()))
        except Exception as exc:  # any failure of someone else's package, named
            raise PrivsimError(f"entry point {point.name!r} of {group} ({point.value}) "
                               f"cannot be loaded: {type(exc).__name__}: {exc}") from exc
    return tuple(found)
