"""The shipped scenarios: find them by name, list them, load any scenario file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from simulator.foundations.errors import ScenarioError, shown
from simulator.foundations.yaml_files import read_yaml
from simulator.scenario.changes import changed_settings
from simulator.scenario.loading import build_scenario
from simulator.scenario.memory import synthetic_size
from simulator.scenario.overrides import parse_override
from simulator.scenario.schema import Scenario

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
    try:
        if candidate.suffix in (".yaml", ".yml") or candidate.exists():
            if not candidate.is_file():
                name = str(candidate)  # quoted when it holds a character that does not print
                raise ScenarioError(f"{shown(name, 300, quote=not name.isprintable())}: "
                                    "scenario file not found")
            return candidate
    except (OSError, ValueError) as exc:  # a name too long for a file, a NUL, ...
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise ScenarioError(f"{shown(name_or_path)}: not a scenario file or shipped name "
                            f"({shown(str(reason), quote=False)})") from None
    shipped = list_scenarios()
    if name_or_path in shipped:
        return shipped[name_or_path]
    names = ", ".join(shipped) or "none"
    raise ScenarioError(f"unknown scenario {shown(name_or_path)} (shipped: {names}; or give a "
                        "path)")


def load_scenario(
    name_or_path: str | None = None,
    overrides: list[str] | None = None,
    values: dict[str, Any] | None = None,
) -> Scenario:
    """Read, override and validate a scenario; the default is the shipped quickstart."""
    path = find_scenario(name_or_path or DEFAULT_SCENARIO)
    data = read_yaml(path)
    data.setdefault("name", path.stem)
    scenario = build_scenario(data, str(path), overrides, values)
    if overrides or values:
        base = build_scenario(data, str(path))
        paths = [parse_override(text)[0] for text in overrides or []]
        paths += [key.split(".") for key in values or {}]
        changes = changed_settings(base.model_dump(mode="json"),
                                   scenario.model_dump(mode="json"), paths)
        if changes:
            scenario.made_from(base.name, tuple(changes))
    return scenario


RUN_TIME_CLASSES = ((1, "under a minute"), (10, "minutes"), (60, "under an hour"))


def describe_source(scenario: Scenario) -> str:
    """The world a scenario runs on, in a few words."""
    world = scenario.world
    if world.source == "synthetic":
        n_users, _, n_ratings = synthetic_size(scenario)
        return f"synthetic ({n_users:,} users, ~{n_ratings:,} ratings)"
    release = Path(str(world.path)).name
    if world.source == "files":
        return f"your tables ({release})"
    if world.source == "recbole":
        return f"RecBole atomic files ({release})"
    return {"ml-100k": "MovieLens 100K", "ml-1m-head": "MovieLens 1M (users 1-2999)",
            "ml-1m": "MovieLens 1M"}.get(release, f"MovieLens ({release})")


def run_time_class(scenario: Scenario) -> str:
    """The run-time class of the scenario's estimated time on 2 CPU cores (under a minute,
    minutes, under an hour, an hour or more): `simulator.scenario.run_time`."""
    from simulator.scenario.run_time import estimate_run_time

    minutes = estimate_run_time(scenario).seconds / 60
    return next((label for limit, label in RUN_TIME_CLASSES if minutes < limit),
                "an hour or more")
