"""A scenario from its raw mapping and `--set` overrides, and back to YAML."""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import ValidationError

from simulator.attacks.inference_attacker import InferenceAttackerConfig
from simulator.foundations.errors import ScenarioError, shown
from simulator.foundations.yaml_files import check_text, expand_env
from simulator.scenario.messages import format_validation_error, source_of
from simulator.scenario.overrides import APPEND, apply_override, parse_override
from simulator.scenario.schema import Scenario


def build_scenario(
    data: dict[str, Any],
    source: str,
    overrides: list[str] | None = None,
    values: dict[str, Any] | None = None,
) -> Scenario:
    """Validate a raw mapping plus `--set` overrides (text) and typed `values` into a Scenario."""
    data = _deep_copy(data)
    texts = list(overrides or [])
    pairs = [parse_override(text) for text in texts]
    written = {tuple(part.removesuffix(APPEND) for part in path): text
               for (path, _), text in zip(pairs, texts, strict=True)}
    written.update({tuple(key.split(".")): f"{key}={shown(value)}"
                    for key, value in (values or {}).items()})
    pairs += [(key.split("."), value) for key, value in (values or {}).items()]
    # The default attacker list must exist before an override can address its items.
    if any(path[0] == "attackers" and len(path) > 1 for path, _ in pairs):
        data.setdefault("attackers", [InferenceAttackerConfig().model_dump()])
    for path, value in pairs:
        apply_override(data, path, value)
    check_text(data, lambda location: source_of(location, source, written))
    world = data.get("world")
    if isinstance(world, dict) and isinstance(world.get("path"), str):
        world["path"] = expand_env(world["path"])
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(format_validation_error(source, exc, written)) from None


def _deep_copy(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _deep_copy(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_deep_copy(v) for v in data]
    return data


def scenario_to_yaml(scenario: Scenario) -> str:
    """The fully resolved scenario as YAML (what a run writes to config.yaml)."""
    return yaml.safe_dump(scenario.model_dump(mode="json"), sort_keys=False)
