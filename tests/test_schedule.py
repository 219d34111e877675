"""Schedules that cannot happen are refused; --first K runs the start of an intact schedule."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from simulator.cli import app
from simulator.experiments.catalog import load_scenario
from simulator.foundations.errors import ScenarioError
from tests.test_simulation import SMALL

runner = CliRunner()


def test_shortened_breach_shock_is_refused_in_one_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "simulator", "validate", "breach-shock",
         "--set", "simulation.steps=5"],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
    )
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1
    assert "events.0 (breach (severity 3, reach 0.5) at step 15)" in lines[0]
    assert "simulation.steps=5" in lines[0] and "--first" in lines[0]


@pytest.mark.parametrize(("sets", "named"), [
    (["platform.defenses.dp={noise_multiplier: 1.0, start_step: 4}", "platform.model=mf"],
     "platform.defenses.dp.start_step (dp defense at step 4)"),
    (["attackers=[{kind: shilling, start_step: 2, spread_steps: 3}]"],
     "attackers.0.start_step + spread_steps - 1 = 4 (average push attack at steps 2-4)"),
    (["events=[{step: 3, kind: deletion, share: 0.1}]", "platform.retrain_every=2"],
     "events.0 (deletion (0.1 of all users) at step 3, after the last retrain at step 2"),
    (["events=[{step: 1, kind: breach}, {step: 9, kind: opt_out}]",
      "platform.defenses.unlearning={start_step: 7}"],
     "platform.defenses.unlearning.start_step (unlearning defense at step 7); events.1 "
     "(opt_out (1 of all users) at step 9)"),
])
def test_every_item_past_the_end_is_named(sets: list[str], named: str) -> None:
    with pytest.raises(ScenarioError, match=r"simulation.steps=4 ends at step 3") as caught:
        load_scenario("quickstart", [*SMALL, *sets])
    assert named in str(caught.value)


def test_validate_prints_the_schedule() -> None:
    result = runner.invoke(app, ["validate", "deletion-wave"])
    assert result.exit_code == 0, result.output
    assert "retrains (bpr, lists by score, every 2): 0, 2, 4, 6, ..., 18" in result.output
    assert "step 10: deletion (0.3 of pragmatist, fundamentalist) [events.0]" in result.output
    assert "inference attacker (embedding, gender, age): after every retrain" in result.output


def test_first_k_steps_run_the_unchanged_schedule(tmp_path: Path) -> None:
    """--first 3 of a 4-step run gives the full run's first 3 rows, its breach included."""
    sets = [*SMALL, "population.policy=privacy_calculus", "events=[{step: 2, kind: breach}]",
            "output.plots=false"]
    args = [arg for item in sets for arg in ("--set", item)]
    full, quick = tmp_path / "full", tmp_path / "quick"
    assert runner.invoke(app, ["run", "--out", str(full), *args]).exit_code == 0
    result = runner.invoke(app, ["run", "--out", str(quick), "--first", "3", *args])
    assert result.exit_code == 0, result.output
    short = pd.read_parquet(quick / "metrics.parquet")
    whole = pd.read_parquet(full / "metrics.parquet")
    assert len(short) == 3 and len(whole) == 4
    timing = [c for c in short if c.startswith("seconds_")]
    pd.testing.assert_frame_equal(short.drop(columns=timing),
                                  whole.drop(columns=timing).iloc[:3])
    events = pd.read_parquet(quick / "events.parquet")
    assert (events["kind"] == "breach").sum() == 1
    config = (quick / "config.yaml").read_text()
    assert "stop_after: 3" in config and "steps: 4" in config
    assert json.loads((quick / "manifest.json").read_text())["status"] == "completed"
    with pytest.raises(ScenarioError, match="stop_after=5 is past the last step"):
        load_scenario("quickstart", [*SMALL, "simulation.stop_after=5"])
