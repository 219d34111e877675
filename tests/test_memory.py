"""A world that will not fit in memory is refused before anything is generated or written."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from simulator.cli import app
from simulator.experiments.catalog import load_scenario
from simulator.experiments.runner import run_scenario
from simulator.foundations.errors import ScenarioError
from simulator.scenario import memory
from simulator.scenario.memory import estimate_memory, synthetic_size


def test_a_world_too_large_is_refused_before_the_run_folder_exists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(memory, "available_host_bytes", lambda: 2 * memory.GIB)
    scenario = load_scenario("quickstart", ["world.n_users=200000", "world.n_items=5000"])
    with pytest.raises(ScenarioError, match=r"200,000 users.*lower world.n_users"):
        run_scenario(scenario, out=tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_the_estimate_grows_with_users_ratings_and_factors() -> None:
    small = load_scenario("quickstart")
    size = synthetic_size(small)
    assert size == (1000, 800, 60_000)
    base = estimate_memory(small, *size).host_bytes
    more_ratings = estimate_memory(small, 1000, 800, 600_000).host_bytes
    more_factors = estimate_memory(load_scenario("quickstart", ["platform.factors=256"]),
                                   *size).host_bytes
    assert base < more_ratings and base < more_factors
    # The ML-1M-size benchmark world measured 0.85 GiB at its peak.
    ml1m = load_scenario("quickstart", ["world.n_users=6040", "world.n_items=3700",
                                        "world.mean_ratings_per_user=165", "platform.factors=64"])
    assert 0.6 < estimate_memory(ml1m, *synthetic_size(ml1m)).host_bytes / memory.GIB < 1.2


def test_validate_prints_the_estimate_and_refuses_what_cannot_fit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(memory, "available_host_bytes", lambda: 2 * memory.GIB)
    runner = CliRunner()
    ok = runner.invoke(app, ["validate", "quickstart"])
    expected = estimate_memory(load_scenario("quickstart"), 1000, 800, 60_000).host_bytes
    assert ok.exit_code == 0
    assert f"memory: about {expected / memory.GIB:.1f} GiB (60,000 ratings)" in ok.output
    refused = runner.invoke(app, ["validate", "quickstart", "--set", "world.n_users=200000"])
    assert refused.exit_code == 2
    assert "lower world.n_users or world.mean_ratings_per_user" in refused.output
