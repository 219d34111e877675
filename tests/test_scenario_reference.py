"""docs/scenario-reference.md is generated from the schema and kept current."""

from __future__ import annotations

from simulator.scenario.reference import DOC, reference
from simulator.scenario.schema import Scenario


def test_the_reference_is_current() -> None:
    assert DOC.read_text(encoding="utf-8") == reference(), (
        "docs/scenario-reference.md is stale: run python -m simulator.scenario.reference")


def test_every_setting_is_in_the_reference() -> None:
    text = reference()
    for section in ("world", "platform", "simulation", "metrics", "output"):
        for key in Scenario.model_fields[section].annotation.model_fields:
            assert f"| `{key}` |" in text or f"## `{section}.{key}`" in text, f"{section}.{key}"
    assert "## `platform.defenses.dp`" in text and "## `attackers.N (kind: shilling)`" in text
    assert "allowed" not in text and ">= 1, <= 100000" in text  # simulation.steps' range
