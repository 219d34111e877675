"""The agents table is spilled to disk step by step, and can follow a sample of users."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from simulator.experiments.catalog import load_scenario
from simulator.experiments.runner import run_scenario
from simulator.foundations.errors import ScenarioError
from simulator.runs.agent_table import SPILL_FOLDER

TINY = [
    "world.n_users=200", "world.n_items=120", "world.mean_ratings_per_user=25",
    "simulation.steps=4", "simulation.device=cpu", "platform.first_epochs=3",
    "platform.epochs=1", "attackers=[]", "output.plots=false",
]


def test_a_run_writes_every_step_and_keeps_no_rows_in_memory(tmp_path: Path) -> None:
    result = run_scenario(load_scenario("quickstart", TINY), out=tmp_path / "run",
                          progress=False)
    agents = pd.read_parquet(tmp_path / "run" / "agents.parquet")
    assert len(agents) == 4 * 200
    assert agents.groupby("step")["user"].apply(list).map(len).tolist() == [200] * 4
    assert list(agents["inclination"].cat.categories) == [
        "unconcerned", "pragmatist", "fundamentalist"]
    assert not (tmp_path / "run" / SPILL_FOLDER).exists()
    pd.testing.assert_frame_equal(result.agents, agents)


def test_a_sampled_table_follows_the_same_users_every_step(tmp_path: Path) -> None:
    scenario = load_scenario("quickstart", [*TINY, "output.agents_sample=0.25"])
    run_scenario(scenario, out=tmp_path / "run", progress=False)
    agents = pd.read_parquet(tmp_path / "run" / "agents.parquet")
    users = agents.groupby("step")["user"].apply(tuple)
    assert users.map(len).tolist() == [50] * 4
    assert users.nunique() == 1
    full = run_scenario(load_scenario("quickstart", TINY), out=tmp_path / "full",
                        progress=False).agents
    # The sampled rows are the full table's rows of those users.
    chosen = full[full["user"].isin(users.iloc[0])].reset_index(drop=True)
    pd.testing.assert_frame_equal(agents, chosen)
    assert np.all(np.diff(users.iloc[0]) > 0)


def test_a_sample_share_outside_0_1_is_refused() -> None:
    with pytest.raises(ScenarioError, match="output.agents_sample"):
        load_scenario("quickstart", ["output.agents_sample=0"])
