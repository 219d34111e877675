"""The shipped scenarios: find them by name, list them, load any scenario file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from simulator.core.config import Scenario, build_scenario, read_yaml
from simulator.core.errors import ScenarioError

DEFAULT_SCENARIO = "quickstart"


def scenario_dirs() -> list[Path]:
    """Folders holding shipped scenarios: the source tree's, then an installed copy."""
    package = Path(__file__).resolve().parents[1]  # simulator/
    return [d for d in (package.parent / "scenarios", package / "scenarios") if d.is_dir()]


def list_scenarios() -> dict[str, Path]:
    """Shipped scenario names and their files."""
    found: dict[str, Path] = {}
    for folder in scenario_dirs():
        for path in sorted(folder.glob("*.yaml")):
            found.setdefault(path.stem, path)
    return found


def find_scenario(name_or_path: str) -> Path:
    """A scenario file given as a path, or the shipped scenario of that name."""
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml") or candidate.exists():
        if not candidate.is_file():
            raise ScenarioError(f"{candidate}: scenario file not found")
        return candidate
    shipped = list_scenarios()
    if name_or_path in shipped:
        return shipped[name_or_path]
    names = ", ".join(shipped) or "none"
    raise ScenarioError(f"unknown scenario '{name_or_path}' (shipped: {names}; or give a path)")


def load_scenario(
    name_or_path: str | None = None,
    overrides: list[str] | None = None,
    values: dict[str, Any] | None = None,
) -> Scenario:
    """Read, override and validate a scenario; the default is the shipped quickstart."""
    path = find_scenario(name_or_path or DEFAULT_SCENARIO)
    data = read_yaml(path)
    data.setdefault("name", path.stem)
    return build_scenario(data, str(path), overrides, values)
