"""The whole loop: model, runner outputs, determinism and leakage on null worlds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from simulator.experiments.catalog import load_scenario
from simulator.experiments.runner import run_scenario
from simulator.simulation.model import PrivacyModel

SMALL = [
    "world.n_users=400", "world.n_items=300", "world.mean_ratings_per_user=40",
    "simulation.steps=4", "simulation.device=cpu", "platform.retrain_every=2",
    "platform.first_epochs=15", "platform.epochs=3", "attackers.0.folds=3",
]


def small(*extra: str):
    """A small quickstart variant that runs in a few seconds (without figures, which only
    `bpr_run` checks)."""
    return load_scenario("quickstart", [*SMALL, "output.plots=false", *extra])


@pytest.fixture(scope="module")
def bpr_run(tmp_path_factory: pytest.TempPathFactory):
    return run_scenario(small("output.plots=true"), out=tmp_path_factory.mktemp("run") / "bpr",
                        progress=False)


def test_run_writes_every_output_file(bpr_run) -> None:
    path = bpr_run.path
    for name in ("config.yaml", "manifest.json", "metrics.parquet", "groups.parquet",
                 "agents.parquet", "events.parquet"):
        assert (path / name).is_file(), name
    for plot in ("accuracy.png", "leakage.png", "disclosure.png", "disparity.png"):
        assert (path / "plots" / plot).stat().st_size > 1000
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["status"] == "completed"
    assert manifest["seed"] == 0 and manifest["device"] == "cpu"
    assert {"torch", "mesa", "numpy"} <= set(manifest["versions"])
    assert manifest["timings"]["total_seconds"] > 0
    assert "steps: 4" in (path / "config.yaml").read_text()


def test_metrics_are_finite_and_complete(bpr_run) -> None:
    metrics = pd.read_parquet(bpr_run.path / "metrics.parquet")
    assert metrics["step"].tolist() == [0, 1, 2, 3]
    required = ["disclosure_mean", "hr_10", "ndcg_10", "pop_hr_10", "leak_gender_auc",
                "leak_gender_bacc", "leak_age_auc", "leak_age_bacc", "leak_gender_majority",
                "leak_age_bacc_chance"]
    assert np.isfinite(metrics[required].to_numpy(dtype=float)).all()
    numeric = metrics.select_dtypes("number")
    assert np.isfinite(numeric.to_numpy(dtype=float)).all()
    assert metrics["retrained"].tolist() == [True, False, True, False]
    assert "mae" not in metrics  # BPR predicts no ratings


def test_groups_agents_and_events_tables(bpr_run) -> None:
    groups = pd.read_parquet(bpr_run.path / "groups.parquet")
    kinds = set(zip(groups["group_kind"], groups["group"], strict=True))
    assert {("inclination", "fundamentalist"), ("involvement", "Low"), ("involvement", "High"),
            ("gender", "F"), ("age", "25-34"), ("all", "all")} <= kinds
    by_type = groups[(groups.group_kind == "inclination") & (groups.step == 3)].set_index("group")
    # Each type discloses about its beta (ceil rounding lifts small budgets a little).
    assert by_type.loc["unconcerned", "disclosure_mean"] == pytest.approx(1.0)
    assert by_type.loc["pragmatist", "disclosure_mean"] == pytest.approx(0.6, abs=0.05)
    assert by_type.loc["fundamentalist", "disclosure_mean"] == pytest.approx(0.2, abs=0.08)
    buckets = groups[(groups.group_kind == "disclosure") & (groups.step == 3)].set_index("group")
    assert buckets["n_users"].sum() == 400
    assert buckets.loc["all", "disclosure_mean"] == pytest.approx(1.0)
    agents = pd.read_parquet(bpr_run.path / "agents.parquet")
    assert len(agents) == 4 * 400
    assert set(agents.columns) >= {"step", "user", "inclination", "beta", "n_disclosed",
                                   "n_experienced", "active"}
    events = pd.read_parquet(bpr_run.path / "events.parquet")
    assert events[events.kind == "retrain"]["step"].tolist() == [0, 2]
    detail = json.loads(events[events.kind == "retrain"]["detail"].iloc[1])
    assert detail["warm_start"] is True and detail["epochs"] == 3


def test_same_seed_same_numbers(tmp_path: Path, bpr_run) -> None:
    again = run_scenario(small(), out=tmp_path / "again", progress=False)
    timing = [c for c in bpr_run.metrics if c.startswith("seconds_")]
    pd.testing.assert_frame_equal(bpr_run.metrics.drop(columns=timing),
                                  again.metrics.drop(columns=timing))
    pd.testing.assert_frame_equal(bpr_run.groups, again.groups)
    pd.testing.assert_frame_equal(bpr_run.agents, again.agents)


def test_another_seed_other_numbers(tmp_path: Path, bpr_run) -> None:
    other = run_scenario(small("simulation.seed=1"), out=tmp_path / "other", progress=False)
    assert not np.allclose(other.metrics["hr_10"], bpr_run.metrics["hr_10"])


def test_mf_platform_reports_rating_errors(tmp_path: Path) -> None:
    result = run_scenario(small("platform.model=mf"), out=tmp_path / "mf", progress=False)
    metrics = result.metrics
    assert np.isfinite(metrics[["mae", "rmse", "hr_10"]].to_numpy()).all()
    assert (metrics["mae"] < 1.2).all()
    assert (metrics["rmse"] >= metrics["mae"]).all()


def _final_gender_auc(signal: float, seed: int) -> float:
    scenario = load_scenario("quickstart", [
        "world.n_users=1000", "world.n_items=400", "world.mean_ratings_per_user=40",
        f"world.signal={signal}", f"simulation.seed={seed}", "simulation.steps=1",
        "simulation.device=cpu", "platform.first_epochs=25", "attackers.0.attributes=[gender]",
        "attackers.0.classifiers=[logreg]", "attackers.0.folds=3",
        "population.types={all: {share: 1.0, beta: 1.0}}",
    ])
    model = PrivacyModel(scenario)
    model.run()
    return float(model.records.metrics[-1]["leak_gender_auc"])


def test_leakage_above_chance_with_signal_and_at_chance_without() -> None:
    with_signal = _final_gender_auc(2.0, seed=0)
    null = [_final_gender_auc(0.0, seed=s) for s in (0, 1, 2)]
    assert with_signal > 0.62
    assert abs(np.mean(null) - 0.5) < 0.04
    assert max(abs(a - 0.5) for a in null) < 0.07


def test_bpr_beats_most_popular(tmp_path: Path) -> None:
    scenario = load_scenario("quickstart", [
        "simulation.steps=3", "simulation.device=cpu", "platform.first_epochs=40",
        "platform.epochs=10", "attackers=[]",
    ])
    metrics = run_scenario(scenario, out=tmp_path / "pop", progress=False).metrics
    last = metrics.iloc[-1]
    assert last["hr_10"] > last["pop_hr_10"] + 0.05
    assert last["ndcg_10"] > last["pop_ndcg_10"]
    assert not any(c.startswith("leak_") for c in metrics.columns)


def test_failed_run_is_marked_failed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(self, step: int) -> None:
        raise RuntimeError("boom at step")

    monkeypatch.setattr("agents.platform.PlatformAgent.retrain", explode)
    with pytest.raises(RuntimeError, match="boom"):
        run_scenario(small(), out=tmp_path / "failing", progress=False)
    manifest = json.loads((tmp_path / "failing" / "manifest.json").read_text())
    assert manifest["status"] == "failed"
    assert "boom at step" in manifest["error"]
    assert not (tmp_path / "failing" / "metrics.parquet").exists()
    assert not list((tmp_path / "failing").glob(".*.tmp"))


def test_out_folder_with_results_is_never_overwritten(bpr_run) -> None:
    from simulator.foundations.errors import PrivsimError

    with pytest.raises(PrivsimError, match="not an empty folder"):
        run_scenario(small(), out=bpr_run.path, progress=False)
    assert json.loads((bpr_run.path / "manifest.json").read_text())["status"] == "completed"


@pytest.mark.parametrize("model", ["metamf", "nometamf"])
def test_metamf_platforms_run_in_the_simulation(tmp_path: Path, model: str) -> None:
    # A tiny world has few batches per epoch: from the default small user init (and, for
    # NoMetaMF, a frozen output bias) a few epochs barely leave the starting point, so this
    # uses the reference init and a larger lr.
    scenario = small(f"platform.model={model}", "platform.metamf.hidden=32",
                     "platform.metamf.memory_dim=16", "platform.metamf.user_init_std=1.0",
                     "platform.lr=0.01", "platform.first_epochs=3",
                     "platform.epochs=1", "attackers.0.classifiers=[logreg]")
    metrics = run_scenario(scenario, out=tmp_path / model, progress=False).metrics
    assert np.isfinite(metrics[["mae", "rmse", "hr_10", "leak_gender_auc"]].to_numpy()).all()
    assert metrics["mae"].iloc[-1] < metrics["mae"].iloc[0]  # the warm retrain keeps learning
