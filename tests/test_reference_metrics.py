"""Every shipped scenario, on small settings, still gives the metrics recorded before the
simulator was restructured (`tests/reference_metrics.json`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.reference_metrics import REFERENCE, metrics_of, small_scenario

RECORDED = json.loads(REFERENCE.read_text(encoding="utf-8"))


def test_every_shipped_scenario_has_a_reference() -> None:
    from simulator.experiments.catalog import list_scenarios

    assert sorted(RECORDED) == sorted(list_scenarios())


@pytest.mark.parametrize("name", sorted(RECORDED))
def test_metrics_match_the_reference(name: str) -> None:
    world = small_scenario(name).world
    if world.source == "movielens" and not Path(str(world.path)).is_dir():
        pytest.skip(f"MovieLens data folder {world.path} not found")
    found = metrics_of(name)
    expected = RECORDED[name]
    assert sorted(found) == sorted(expected), set(found) ^ set(expected)
    for column, values in expected.items():
        assert np.allclose(found[column], values, rtol=1e-6, atol=1e-9, equal_nan=True), (
            column, found[column], values)
