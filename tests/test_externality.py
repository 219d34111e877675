"""Paired counterfactual runs: common random numbers really pair them."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from simulator.experiments.externality import plan_runs, run_externality
from simulator.foundations.errors import ScenarioError

pytestmark = pytest.mark.heavy  # long tests: started first (tests/conftest.py)

TINY = [
    "world.n_users=300", "world.n_items=200", "world.mean_ratings_per_user=30",
    "simulation.steps=3", "simulation.device=cpu", "platform.retrain_every=1",
    "platform.first_epochs=8", "platform.epochs=2", "attackers.0.folds=3",
    "attackers.0.classifiers=[logreg]", "output.plots=false", "metrics.group_share=0.2",
    "population.types={everyone: {share: 1.0, beta: 1.0}}",
]


def _table(folder: Path) -> pd.DataFrame:
    return pd.read_csv(folder / "externality.csv")


def test_an_unchanged_policy_gives_exactly_zero_difference(tmp_path: Path) -> None:
    plan = plan_runs("quickstart", ["involvement:High"], 1.0, [0, 1], TINY)
    table = _table(run_externality(plan, out=tmp_path / "same"))
    finite = table[table["n"] > 0]
    assert len(finite) > 10
    assert (finite["mean_difference"] == 0).all()
    paired = finite[finite["n"] >= 2]
    assert len(paired) > 10 and (paired["ci_low"] == 0).all() and (paired["ci_high"] == 0).all()


def test_withholding_changes_the_group_and_is_measured_for_everyone(tmp_path: Path) -> None:
    plan = plan_runs("quickstart", ["involvement:High", "involvement:Low"], 0.0, [0, 1, 2], TINY)
    folder = run_externality(plan, out=tmp_path / "out")
    table = _table(folder).set_index(["changed_group", "group_kind", "group", "metric"])
    own = table.loc[("involvement:High", "involvement", "High", "disclosure_mean")]
    assert own["mean_difference"] == pytest.approx(-1.0) and own["excludes_zero"]
    other = table.loc[("involvement:High", "involvement", "Low", "disclosure_mean")]
    assert other["mean_difference"] == 0.0  # nobody else's disclosure moved
    matrix = pd.read_csv(folder / "matrix_hr_10.csv", index_col=0)
    assert list(matrix.index) == ["involvement:High", "involvement:Low"]
    assert list(matrix.columns) == ["Low", "Med", "High"]
    assert (folder / "plots" / "externality_hr_10.png").stat().st_size > 1000


def test_bad_groups_are_named() -> None:
    with pytest.raises(ScenarioError, match="unknown group involvement:Huge"):
        plan_runs("quickstart", ["involvement:Huge"], 0.0, [0], TINY)
    with pytest.raises(ScenarioError, match="must be kind:name"):
        plan_runs("quickstart", ["High"], 0.0, [0], TINY)
    with pytest.raises(ScenarioError, match="share one kind"):
        plan_runs("quickstart", ["involvement:High", "gender:F"], 0.0, [0], TINY)
