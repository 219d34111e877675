"""Comparing runs and sweeps: variant labels, summaries over seeds, Pareto fronts, figures."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from simulator.analysis.compare import (
    SUMMARY_COLUMNS,
    compare,
    grid_cells,
    heatmap_keys,
    load_runs,
    pareto_front,
    plot_grid_heatmap,
    plot_over_time,
    plot_tradeoff,
    summarise_runs,
    tradeoff_points,
)
from simulator.experiments.catalog import load_scenario
from simulator.experiments.runner import run_scenario
from simulator.experiments.sweep import run_sweep

TINY = ["world.n_users=200", "world.n_items=150", "world.mean_ratings_per_user=30",
        "simulation.steps=2", "simulation.device=cpu", "platform.retrain_every=1",
        "platform.first_epochs=5", "platform.epochs=2", "attackers.0.classifiers=[logreg]",
        "attackers.0.folds=3", "output.plots=false"]
LABELS = [f"world.signal={s}, platform.factors={f}" for s in ("0.0", "1.5") for f in (8, 16)]
METRICS = ["hr_10", "ndcg_10", "leak_gender_auc", "leak_age_auc"]


@pytest.fixture(scope="module")
def grid_sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("grid")
    spec = root / "grid.yaml"
    spec.write_text(
        f"name: grid\nbase: quickstart\nset: {json.dumps(TINY)}\n"
        "grid:\n  world.signal: [0.0, 1.5]\n  platform.factors: [8, 16]\n"
        "seeds: [0, 1]\nworkers: 1\n"
    )
    return run_sweep(spec, out=root / "sweep")


def _run(out: Path, *extra: str) -> Path:
    return run_scenario(load_scenario("quickstart", [*TINY, *extra]), out=out,
                        progress=False).path


@pytest.fixture(scope="module")
def single_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _run(tmp_path_factory.mktemp("single") / "run")


def _set_manifest(folder: Path, **changes: object) -> None:
    path = folder / "manifest.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def test_sweep_points_are_labelled_by_their_grid_values(grid_sweep: Path) -> None:
    table = load_runs([grid_sweep])
    assert list(table.columns[:5]) == ["variant", "seed", "source", "world.signal",
                                       "platform.factors"]
    assert list(pd.unique(table["variant"])) == LABELS
    assert (table.groupby("variant")["seed"].nunique() == 2).all()
    assert len(table) == 4 * 2 * 2  # variants x seeds x steps
    assert set(table["source"]) == {str(grid_sweep)}
    assert table.attrs["warnings"] == []
    assert heatmap_keys(table) == ("world.signal", "platform.factors")


def test_summary_matches_a_hand_computed_t_interval(grid_sweep: Path) -> None:
    results = pd.read_parquet(grid_sweep / "results.parquet")
    cell = results.loc[(results["world.signal"] == 1.5) & (results["platform.factors"] == 16)
                       & (results["step"] == 1), "ndcg_10"].to_numpy()
    assert len(cell) == 2 and cell[0] != cell[1]
    half = stats.t.ppf(0.975, df=1) * cell.std(ddof=1) / np.sqrt(2)
    summary = summarise_runs(load_runs([grid_sweep]), ["hr_10", "ndcg_10"])
    assert list(summary.columns) == SUMMARY_COLUMNS
    assert len(summary) == 4 * 2 * 2  # variants x steps x metrics
    row = summary[(summary["variant"] == LABELS[3]) & (summary["step"] == 1)
                  & (summary["metric"] == "ndcg_10")]
    assert len(row) == 1
    row = row.iloc[0]
    assert row["mean"] == pytest.approx(cell.mean())
    assert row["ci_low"] == pytest.approx(cell.mean() - half)
    assert row["ci_high"] == pytest.approx(cell.mean() + half)
    assert row["n"] == 2


def test_one_seed_gives_no_interval_and_bad_tables_raise() -> None:
    table = pd.DataFrame({"variant": ["a", "a", "b", "b", "b"], "seed": [0, 0, 0, 1, 2],
                          "step": [0, 1, 1, 1, 1], "x": [1.0, 2.0, 1.0, 2.0, 6.0],
                          "name": ["u"] * 5})
    summary = summarise_runs(table, ["x"]).set_index(["variant", "step"])
    assert summary.loc[("a", 0), "n"] == 1
    assert np.isnan(summary.loc[("a", 0), "ci_low"]) and np.isnan(summary.loc[("a", 0), "ci_high"])
    half = stats.t.ppf(0.975, df=2) * np.std([1.0, 2.0, 6.0], ddof=1) / np.sqrt(3)
    assert summary.loc[("b", 1), "mean"] == pytest.approx(3.0)
    assert summary.loc[("b", 1), "ci_high"] == pytest.approx(3.0 + half)
    with pytest.raises(ValueError, match=r"metrics: \['y'\]"):
        summarise_runs(table, ["x", "y"])
    with pytest.raises(ValueError, match="metrics: .*not numeric"):
        summarise_runs(table, ["name"])
    with pytest.raises(ValueError, match="metrics: name at least one"):
        summarise_runs(table, [])
    with pytest.raises(ValueError, match="repeats seed 0 at step 1"):
        summarise_runs(pd.concat([table, table.iloc[[1]]]), ["x"])


def test_compare_writes_tidy_tables_and_figures(grid_sweep: Path, tmp_path: Path) -> None:
    out = compare([grid_sweep], tmp_path / "cmp")
    csv = pd.read_csv(out / "compare.csv")
    assert list(csv.columns) == SUMMARY_COLUMNS
    assert list(pd.unique(csv["metric"])) == METRICS  # bpr: no mae
    assert list(pd.unique(csv["variant"])) == LABELS
    parquet = pd.read_parquet(out / "compare.parquet")
    pd.testing.assert_frame_equal(csv, parquet, check_dtype=False)
    stems = [f"over_time_{m}" for m in METRICS] + [
        "tradeoff_hr_10_vs_leak_gender_auc", "tradeoff_hr_10_vs_leak_age_auc",
        *(f"heatmap_{m}" for m in METRICS)]
    for stem in stems:
        for suffix in ("png", "pdf"):
            assert (out / f"{stem}.{suffix}").stat().st_size > 1000, stem


def test_runs_and_sweeps_mix_without_heatmaps(
    grid_sweep: Path, single_run: Path, tmp_path: Path
) -> None:
    table = load_runs([single_run, grid_sweep, single_run])  # a repeated folder counts once
    assert list(pd.unique(table["variant"])) == ["quickstart", *LABELS]
    run_rows = table[table["variant"] == "quickstart"]
    assert len(run_rows) == 2 and set(run_rows["source"]) == {str(single_run)}
    assert run_rows["world.signal"].isna().all()
    assert heatmap_keys(table) is None
    out = compare([single_run, grid_sweep], tmp_path / "mixed",
                  metrics=["hr_10", "leak_gender_auc"])
    csv = pd.read_csv(out / "compare.csv")
    assert set(csv["variant"]) == {"quickstart", *LABELS}
    assert set(csv["metric"]) == {"hr_10", "leak_gender_auc"}
    assert (out / "tradeoff_hr_10_vs_leak_gender_auc.pdf").stat().st_size > 1000
    assert not list(out.glob("heatmap_*"))


def test_runs_pool_as_seeds_only_when_configured_alike(single_run: Path, tmp_path: Path) -> None:
    other_seed = _run(tmp_path / "seed1", "simulation.seed=1")
    other_world = _run(tmp_path / "flat", "world.signal=0.0")
    pooled = load_runs([single_run, other_seed])
    assert set(pooled["variant"]) == {"quickstart"}
    assert set(pooled["seed"]) == {0, 1}
    assert (summarise_runs(pooled, ["hr_10"])["n"] == 2).all()
    apart = load_runs([single_run, other_world])
    assert list(pd.unique(apart["variant"])) == ["run", "flat"]


def test_two_sweeps_with_the_same_labels_stay_apart(grid_sweep: Path, tmp_path: Path) -> None:
    twin = shutil.copytree(grid_sweep, tmp_path / "twin")
    table = load_runs([grid_sweep, twin])
    assert set(table["variant"]) == {f"{label} ({name})" for label in LABELS
                                     for name in ("sweep", "twin")}
    assert len(summarise_runs(table, ["hr_10"])) == 8 * 2


def test_incomplete_runs_and_points_are_skipped_with_a_warning(
    grid_sweep: Path, single_run: Path, tmp_path: Path
) -> None:
    failed = shutil.copytree(single_run, tmp_path / "failed-run")
    _set_manifest(failed, status="failed", error="RuntimeError: boom")
    partial = shutil.copytree(grid_sweep, tmp_path / "partial")
    points = pd.read_parquet(partial / "points.parquet")
    points.loc[points["point"] == 0, ["status", "error"]] = ["failed", "ValueError: nope"]
    points.to_parquet(partial / "points.parquet")
    with pytest.warns(UserWarning) as caught:
        table = load_runs([failed, partial])
    notes = table.attrs["warnings"]
    assert [str(w.message) for w in caught] == notes and len(notes) == 2
    assert "failed-run: status failed (RuntimeError: boom)" in notes[0]
    assert "point-000-seed-0" in notes[1] and "ValueError: nope" in notes[1]
    assert "quickstart" not in set(table["variant"])
    assert set(table.loc[table["variant"] == LABELS[0], "seed"]) == {1}
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="holds a completed run"):
        compare([failed], tmp_path / "nothing")


def test_a_folder_that_is_neither_run_nor_sweep_raises(single_run: Path, tmp_path: Path) -> None:
    stray = tmp_path / "holiday-photos"
    stray.mkdir()
    (stray / "notes.txt").write_text("not a run")
    with pytest.raises(ValueError, match="holiday-photos is neither a run folder"):
        load_runs([single_run, stray])
    with pytest.raises(ValueError, match="missing-folder is neither"):
        compare([tmp_path / "missing-folder"], tmp_path / "out")
    with pytest.raises(ValueError, match="paths: give at least one"):
        load_runs([])


def test_pareto_front_marks_exactly_the_non_dominated_points() -> None:
    leakage = [0.50, 0.60, 0.70, 0.55, 0.50, 0.40, np.nan, 0.60]
    utility = [0.80, 0.90, 0.85, 0.70, 0.75, 0.60, 0.99, 0.90]
    # 2 is beaten by 1, 3 and 4 by 0; 7 ties 1 exactly; 6 has no leakage value.
    expected = [True, True, False, False, False, True, False, True]
    assert pareto_front(leakage, utility).tolist() == expected
    # For an error (lower is better) point 5 has both the least leakage and the least error.
    assert np.flatnonzero(pareto_front(leakage, utility, False)).tolist() == [5]
    rng = np.random.default_rng(0)
    x, y = rng.random(40), rng.random(40)
    brute = [not any(x[j] <= x[i] and y[j] >= y[i] and (x[j] < x[i] or y[j] > y[i])
                     for j in range(40)) for i in range(40)]
    assert pareto_front(x, y).tolist() == brute
    with pytest.raises(ValueError, match="leakage and utility"):
        pareto_front([0.1, 0.2], [0.3])


def test_tradeoff_uses_each_variants_last_step(tmp_path: Path) -> None:
    leakage = [0.50, 0.60, 0.70, 0.55]
    utility = [0.80, 0.90, 0.85, 0.70]
    rows = []
    for i, (leak, hr) in enumerate(zip(leakage, utility, strict=True)):
        rows.append({"variant": f"v{i}", "seed": 0, "step": 0, "hr_10": 1.0 - hr,
                     "mae": hr, "leak_gender_auc": leak})
        rows.append({"variant": f"v{i}", "seed": 0, "step": 1, "hr_10": hr, "mae": hr,
                     "leak_gender_auc": leak})
    summary = summarise_runs(pd.DataFrame(rows), ["hr_10", "mae", "leak_gender_auc"])
    points = tradeoff_points(summary, "hr_10", "leak_gender_auc").set_index("variant")
    assert points["pareto"].to_dict() == {"v0": True, "v1": True, "v2": False, "v3": False}
    assert points.loc["v2", "utility"] == pytest.approx(0.85)
    errors = tradeoff_points(summary, "mae", "leak_gender_auc").set_index("variant")
    assert errors["pareto"].to_dict() == {"v0": True, "v1": False, "v2": False, "v3": True}
    written = plot_tradeoff(summary, "hr_10", "leak_gender_auc", tmp_path / "tradeoff.png")
    assert [p.name for p in written] == ["tradeoff.png", "tradeoff.pdf"]
    assert all(p.stat().st_size > 1000 for p in written)
    with pytest.raises(ValueError, match="utility: 'ndcg_10'"):
        plot_tradeoff(summary, "ndcg_10", "leak_gender_auc", tmp_path / "x.png")
    with pytest.raises(ValueError, match="metric: 'rmse'"):
        plot_over_time(summary, "rmse", tmp_path / "y.png")


def test_grid_heatmap_rejects_unknown_keys(grid_sweep: Path, tmp_path: Path) -> None:
    table = load_runs([grid_sweep])
    written = plot_grid_heatmap(table, "world.signal", "platform.factors", "hr_10",
                                tmp_path / "heat", formats=("png",))
    assert [p.name for p in written] == ["heat.png"] and written[0].stat().st_size > 1000
    with pytest.raises(ValueError, match="y_key: 'platform.lr'"):
        plot_grid_heatmap(table, "world.signal", "platform.lr", "hr_10", tmp_path / "h.png")


def test_compare_draws_the_metrics_it_is_told(grid_sweep: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from simulator.cli import app

    out = tmp_path / "chosen"
    done = CliRunner().invoke(app, ["compare", str(grid_sweep), "--out", str(out),
                                    "--metric", "disclosure_mean", "--metric", "hr_10"])
    assert done.exit_code == 0, done.output
    assert list(pd.unique(pd.read_csv(out / "compare.csv")["metric"])) == ["disclosure_mean",
                                                                           "hr_10"]
    assert (out / "over_time_disclosure_mean.png").is_file()
    refused = CliRunner().invoke(app, ["compare", str(grid_sweep), "--out", str(out),
                                       "--metric", "nope"], terminal_width=1000)
    assert refused.exit_code == 2
    assert "the runs have no metric nope; they have " in refused.output
    assert "hr_10" in refused.output and "world.signal" not in refused.output


def test_null_and_mapping_grid_values_get_short_labels_and_their_own_cells(
    tmp_path: Path,
) -> None:
    """A grid over a defense switched off (`null`) and on (a mapping) and an attacker list:
    every value is a short label, keeps its own heatmap cell, in the sweep file's order."""
    spec = tmp_path / "grid.yaml"
    spec.write_text(
        f"name: onoff\nbase: quickstart\nset: {json.dumps([*TINY, 'simulation.steps=1'])}\n"
        "grid:\n  platform.defenses.unlearning: [null, {attribute: gender, steps: 5}]\n"
        "  attackers: [[{kind: inference, classifiers: [logreg], folds: 3}]]\n"
        "seeds: [0]\nworkers: 1\n")
    table = load_runs([run_sweep(spec, out=tmp_path / "sweep")])
    key = "platform.defenses.unlearning"
    assert list(table[key].cat.categories) == ["none", "attribute=gender, steps=5"]
    assert set(table["attackers"]) == {"inference"}
    assert list(pd.unique(table["variant"])) == [
        f"{key}=none, attackers=inference", f"{key}=attribute=gender, steps=5, "
        "attackers=inference"]
    cells = grid_cells(table, key, "attackers", "hr_10")
    assert list(cells.columns) == ["none", "attribute=gender, steps=5"]
    assert cells.notna().all().all()
    written = compare([tmp_path / "sweep"], tmp_path / "cmp", ["hr_10", "leak_gender_auc"])
    assert (written / "heatmap_hr_10.png").is_file()
    assert (written / "tradeoff_hr_10_vs_leak_gender_auc.png").is_file()


def test_tradeoff_intervals_stay_within_the_metrics_range() -> None:
    from simulator.analysis.compare import _clipped
    from simulator.analysis.intervals import metric_range

    assert metric_range("hr_10") == (0.0, 1.0) and metric_range("leak_gender_auc") == (0, 1)
    assert metric_range("hr_10_change") == (-1.0, 1.0) and metric_range("mae")[0] == 0.0
    points = pd.DataFrame({"utility": [0.9], "ci_low_utility": [0.4],
                           "ci_high_utility": [1.4]})
    low, high = _clipped(points, "utility", metric_range("target_hr_10"))
    assert low.tolist() == [0.4] and high.tolist() == [1.0]
