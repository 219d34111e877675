"""Paired-difference statistics of disclosure externalities, on synthetic group tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from simulator.analysis.externality_stats import (
    externality_matrix,
    paired_differences,
    plot_externality_heatmap,
    summarise,
)

SEEDS = [0, 1, 2, 3, 4]
STEPS = [0, 1, 2]
GROUPS = [("all", "everyone"), ("involvement", "Low"), ("involvement", "Med"),
          ("involvement", "High")]
METRICS = ["hr_10", "mae"]
SHIFT = -0.05


def group_table(rng: np.random.Generator, steps: list[int] = STEPS) -> pd.DataFrame:
    """One run's per-step, per-group table with random metric values."""
    rows = [
        {"step": step, "group_kind": kind, "group": name, "n_users": 40,
         "hr_10": rng.uniform(0.1, 0.4), "mae": rng.uniform(0.7, 0.9)}
        for step in steps for kind, name in GROUPS
    ]
    return pd.DataFrame(rows)


def planted_runs() -> tuple[dict[int, pd.DataFrame], dict[int, pd.DataFrame], dict]:
    """Baseline and changed runs where, at the last step only, Low's hr_10 shifts by SHIFT
    plus small noise and Med's hr_10 moves by demeaned noise; everything else is equal."""
    rng = np.random.default_rng(7)
    low_noise = rng.normal(0.0, 0.005, len(SEEDS))
    med_noise = rng.normal(0.0, 0.02, len(SEEDS))
    med_noise -= med_noise.mean()
    baseline, changed = {}, {}
    for i, seed in enumerate(SEEDS):
        base = group_table(np.random.default_rng(100 + seed))
        after = base.copy()
        last = after["step"] == STEPS[-1]
        after.loc[last & (after["group"] == "Low"), "hr_10"] += SHIFT + low_noise[i]
        after.loc[last & (after["group"] == "Med"), "hr_10"] += med_noise[i]
        baseline[seed], changed[seed] = base, after
    return baseline, changed, {"low": SHIFT + low_noise, "med": med_noise}


def row(summary: pd.DataFrame, group: str, metric: str) -> pd.Series:
    hit = summary[(summary["group"] == group) & (summary["metric"] == metric)]
    assert len(hit) == 1
    return hit.iloc[0]


def test_paired_differences_is_tidy_and_pairs_by_seed() -> None:
    baseline, changed, planted = planted_runs()
    frame = paired_differences(baseline, changed, METRICS)
    assert list(frame.columns) == ["seed", "group_kind", "group", "metric", "baseline",
                                   "changed", "difference"]
    assert len(frame) == len(SEEDS) * len(GROUPS) * len(METRICS)
    assert not frame.duplicated(["seed", "group_kind", "group", "metric"]).any()
    low = frame[(frame["group"] == "Low") & (frame["metric"] == "hr_10")].sort_values("seed")
    np.testing.assert_allclose(low["difference"], planted["low"], atol=1e-12)
    np.testing.assert_allclose(low["difference"], low["changed"] - low["baseline"])
    untouched = frame[frame["group"].isin(["High", "everyone"]) | (frame["metric"] == "mae")]
    assert (untouched["difference"] == 0.0).all()


def test_planted_effect_excludes_zero_with_right_sign_and_mean() -> None:
    baseline, changed, planted = planted_runs()
    summary = summarise(paired_differences(baseline, changed, METRICS))
    low = row(summary, "Low", "hr_10")
    assert low["n"] == len(SEEDS)
    assert low["mean_difference"] == pytest.approx(planted["low"].mean(), abs=1e-12)
    assert low["mean_difference"] < 0
    assert low["ci_low"] < low["mean_difference"] < low["ci_high"] < 0
    assert bool(low["excludes_zero"])
    assert low["mean_changed"] - low["mean_baseline"] == pytest.approx(low["mean_difference"])


def test_noise_control_group_includes_zero() -> None:
    baseline, changed, planted = planted_runs()
    summary = summarise(paired_differences(baseline, changed, METRICS))
    med = row(summary, "Med", "hr_10")
    assert med["std"] == pytest.approx(planted["med"].std(ddof=1))
    assert med["ci_low"] < 0 < med["ci_high"]
    assert not bool(med["excludes_zero"])


def test_identical_runs_give_zero_differences_and_zero_width_intervals() -> None:
    tables = {seed: group_table(np.random.default_rng(seed)) for seed in SEEDS[:3]}
    copies = {seed: table.copy() for seed, table in tables.items()}
    differences = paired_differences(tables, copies, METRICS)
    assert (differences["difference"] == 0.0).all()
    summary = summarise(differences)
    for column in ["mean_difference", "std", "stderr", "ci_low", "ci_high"]:
        assert (summary[column] == 0.0).all(), column
    assert not summary["excludes_zero"].any()
    assert (summary["n"] == 3).all()


def test_default_step_is_the_last_and_step_selects() -> None:
    baseline, changed, _ = planted_runs()
    last = paired_differences(baseline, changed, ["hr_10"])
    assert (last["difference"][last["group"] == "Low"] != 0.0).all()
    first = paired_differences(baseline, changed, ["hr_10"], step=0)
    assert (first["difference"] == 0.0).all()
    assert last.equals(paired_differences(baseline, changed, ["hr_10"], step=STEPS[-1]))


def test_default_step_is_each_tables_own_last_step() -> None:
    base = group_table(np.random.default_rng(1), steps=[0, 1])
    longer = group_table(np.random.default_rng(2), steps=[0, 1, 2, 3])
    frame = paired_differences({5: base}, {5: longer}, ["mae"])
    expected = longer.loc[longer["step"] == 3, "mae"].to_numpy()
    np.testing.assert_allclose(frame["changed"], expected)
    np.testing.assert_allclose(frame["baseline"], base.loc[base["step"] == 1, "mae"])


def test_mismatched_seeds_raise_naming_them() -> None:
    table = group_table(np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"missing from changed: \[2\].*baseline: \[9\]"):
        paired_differences({1: table, 2: table}, {1: table, 9: table}, METRICS)


def test_bad_arguments_raise() -> None:
    table = group_table(np.random.default_rng(0))
    with pytest.raises(ValueError, match="no rows at 7"):
        paired_differences({1: table}, {1: table}, METRICS, step=7)
    with pytest.raises(ValueError, match="lacks the columns"):
        paired_differences({1: table}, {1: table}, ["leak_gender_auc"])
    with pytest.raises(ValueError, match="metrics"):
        paired_differences({1: table}, {1: table}, [])
    with pytest.raises(ValueError, match="repeats the groups"):
        paired_differences({1: pd.concat([table, table])}, {1: table}, METRICS)
    with pytest.raises(ValueError, match="confidence"):
        summarise(paired_differences({1: table}, {1: table}, METRICS), confidence=1.0)


def test_nan_metrics_are_skipped() -> None:
    baseline, changed, planted = planted_runs()
    changed = {seed: table.copy() for seed, table in changed.items()}
    changed[3].loc[changed[3]["group"] == "Low", "hr_10"] = np.nan
    for table in [*baseline.values(), *changed.values()]:
        table.loc[table["group"] == "High", "mae"] = np.nan
    summary = summarise(paired_differences(baseline, changed, METRICS))
    low = row(summary, "Low", "hr_10")
    kept = np.delete(planted["low"], SEEDS.index(3))
    assert low["n"] == len(SEEDS) - 1
    assert low["mean_difference"] == pytest.approx(kept.mean(), abs=1e-12)
    assert low["mean_changed"] - low["mean_baseline"] == pytest.approx(kept.mean())
    high = row(summary, "High", "mae")
    assert high["n"] == 0
    assert np.isnan(high["mean_difference"]) and np.isnan(high["ci_low"])
    assert not bool(high["excludes_zero"])


def differences_of(values: list[float], group: str = "Low") -> pd.DataFrame:
    return pd.DataFrame({
        "seed": range(len(values)), "group_kind": "involvement", "group": group,
        "metric": "hr_10", "baseline": 0.5, "changed": [0.5 + v for v in values],
        "difference": values,
    })


def test_t_interval_matches_scipy() -> None:
    values = [0.1, 0.3, 0.2, 0.5]
    summary = summarise(differences_of(values), confidence=0.9).iloc[0]
    sample = np.array(values)
    stderr = sample.std(ddof=1) / np.sqrt(len(sample))
    low, high = stats.t.interval(0.9, df=len(sample) - 1, loc=sample.mean(), scale=stderr)
    assert summary["stderr"] == pytest.approx(stderr)
    assert summary["ci_low"] == pytest.approx(low)
    assert summary["ci_high"] == pytest.approx(high)
    assert bool(summary["excludes_zero"])
    wider = summarise(differences_of(values), confidence=0.99).iloc[0]
    assert wider["ci_low"] < low < high < wider["ci_high"]


def test_single_seed_has_no_interval() -> None:
    summary = summarise(differences_of([0.2])).iloc[0]
    assert summary["n"] == 1 and summary["mean_difference"] == pytest.approx(0.2)
    assert np.isnan(summary["std"]) and np.isnan(summary["ci_low"])
    assert np.isnan(summary["ci_high"]) and not bool(summary["excludes_zero"])


def summaries_by_changed_group() -> dict[str, pd.DataFrame]:
    baseline, changed, _ = planted_runs()
    planted = summarise(paired_differences(baseline, changed, METRICS))
    # A second changed group affecting only High, by a constant shift on every seed.
    shifted = {seed: table.copy() for seed, table in baseline.items()}
    for table in shifted.values():
        table.loc[table["group"] == "High", "hr_10"] += 0.1
    return {"Low": planted, "High": summarise(paired_differences(baseline, shifted, METRICS))}


def test_externality_matrix_shape_and_orientation() -> None:
    summaries = summaries_by_changed_group()
    matrix, significant = externality_matrix(summaries, "hr_10", "involvement")
    assert matrix.shape == significant.shape == (2, 3)
    assert list(matrix.index) == ["Low", "High"]
    assert list(matrix.columns) == ["Low", "Med", "High"]
    assert significant.dtypes.eq(bool).all()
    assert matrix.loc["Low", "Low"] == pytest.approx(row(summaries["Low"], "Low", "hr_10")
                                                     ["mean_difference"])
    assert matrix.loc["High", "High"] == pytest.approx(0.1)
    assert matrix.loc["High", "Low"] == 0.0
    assert significant.loc["Low", "Low"] and significant.loc["High", "High"]
    assert not significant.loc["Low", "Med"] and not significant.loc["High", "Low"]
    reversed_order = externality_matrix(dict(reversed(summaries.items())), "hr_10",
                                        "involvement")[0]
    assert list(reversed_order.index) == ["High", "Low"]
    with pytest.raises(ValueError, match="leak_gender_auc"):
        externality_matrix(summaries, "leak_gender_auc", "involvement")
    with pytest.raises(ValueError, match="at least one"):
        externality_matrix({}, "hr_10", "involvement")


def test_heatmap_is_written(tmp_path) -> None:
    matrix, significant = externality_matrix(summaries_by_changed_group(), "hr_10",
                                             "involvement")
    path = plot_externality_heatmap(matrix, significant, tmp_path / "plots" / "ext.png",
                                    "HR@10 externality")
    assert path == tmp_path / "plots" / "ext.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 1000
    with pytest.raises(ValueError, match="same rows and columns"):
        plot_externality_heatmap(matrix, significant.iloc[:, :2], tmp_path / "x.png", "x")


def test_group_in_one_run_only_is_nan_and_order_is_kept() -> None:
    base = group_table(np.random.default_rng(1))
    after = base[base["group"] != "Med"]
    frame = paired_differences({0: base}, {0: after}, ["hr_10"])
    assert list(frame["group"]) == ["everyone", "Low", "Med", "High"]
    med = frame[frame["group"] == "Med"].iloc[0]
    assert np.isnan(med["changed"]) and np.isnan(med["difference"])
    assert row(summarise(frame), "Med", "hr_10")["n"] == 0
