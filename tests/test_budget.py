"""The privacy-budget protocol: budget sampling, the dMAE table and its sweep report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from simulator.analysis.budget import budget_table
from simulator.experiments.catalog import load_scenario
from simulator.experiments.sweep import run_sweep
from simulator.simulation.model import PrivacyModel

TINY = ["world.n_users=300", "world.n_items=200", "world.mean_ratings_per_user=40",
        "world.split=random", "simulation.steps=1", "simulation.device=cpu", "attackers=[]",
        "platform.model=mf", "platform.first_epochs=20"]


def _budget_model(beta: float) -> PrivacyModel:
    scenario = load_scenario("quickstart", [
        *TINY, f"population.types={{everyone: {{share: 1.0, beta: {beta}}}}}",
    ])
    model = PrivacyModel(scenario)
    model.run()
    return model


@pytest.mark.parametrize("beta", [1.0, 0.7, 0.3, 0.1])
def test_budget_keeps_ceil_beta_n_and_never_touches_test(beta: float) -> None:
    model = _budget_model(beta)
    held = model.platform.data.table
    per_user = np.bincount(held.user, minlength=model.world.n_users)
    n_train = np.bincount(model.train.user, minlength=model.world.n_users)
    assert np.array_equal(per_user, np.ceil(np.round(beta * n_train, 9)).astype(int))
    test_pairs = set(zip(model.test.user.tolist(), model.test.item.tolist(), strict=True))
    assert not test_pairs & set(zip(held.user.tolist(), held.item.tolist(), strict=True))
    full_test = _budget_model(1.0).test
    assert np.array_equal(model.test.item, full_test.item)  # the test set is never cut


def test_budget_table_relative_to_full_disclosure() -> None:
    rows = []
    metrics = []
    for point, (model, beta, mae) in enumerate(
        [("a", 1.0, 0.70), ("a", 0.5, 0.77), ("b", 1.0, 0.80), ("b", 0.5, 1.00)]
    ):
        metrics.append({"point": point, "step": 0, "beta_mean": beta})
        for kind, group, factor in (("all", "all", 1.0), ("involvement", "Low", 1.1),
                                    ("involvement", "High", 0.9), ("gender", "F", 1.0)):
            rows.append({"point": point, "seed": 0, "platform.model": model, "step": 0,
                         "group_kind": kind, "group": group, "mae": mae * factor})
    table = budget_table(pd.DataFrame(metrics), pd.DataFrame(rows))
    assert set(table["group"]) == {"all", "Low", "High"}
    indexed = table.set_index(["model", "group", "beta"])
    assert indexed.loc[("a", "all", 1.0), "dmae"] == pytest.approx(1.0)
    assert indexed.loc[("a", "all", 0.5), "dmae"] == pytest.approx(1.1)
    assert indexed.loc[("b", "High", 0.5), "dmae"] == pytest.approx(1.25)


def test_budget_sweep_writes_table_and_plot(tmp_path: Path) -> None:
    sweep = tmp_path / "budget.yaml"
    sweep.write_text(
        "name: budget\nbase: quickstart\nreport: [privacy_budget]\n"
        f"set: {json.dumps([*TINY, 'population.types={everyone: {share: 1.0, beta: 1.0}}'])}\n"
        "grid:\n  population.types.everyone.beta: [1.0, 0.5, 0.1]\nseeds: [0]\nworkers: 2\n"
    )
    folder = run_sweep(sweep, out=tmp_path / "out")
    table = pd.read_csv(folder / "budget.csv")
    assert (folder / "plots" / "budget_dmae.png").stat().st_size > 1000
    everyone = table[table["group"] == "all"].set_index("beta")
    assert everyone.loc[1.0, "dmae"] == pytest.approx(1.0)
    assert everyone.loc[0.1, "dmae"] > 1.0  # a tenth of the ratings costs accuracy
    assert set(table["group"]) == {"all", "Low", "Med", "High"}
