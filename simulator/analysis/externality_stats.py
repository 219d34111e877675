"""Externalities of one group's disclosure change on every group, from paired runs.

Each seed gives a baseline run and a run in which only group G's disclosure policy changed,
both driven by the same random numbers. The externality on group H is H's metric in the
changed run minus the same metric in the baseline run, paired by seed; this module turns
those paired differences into per-group means with t-based confidence intervals, a
changed-group by affected-group matrix, and a heatmap of it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.colors import TwoSlopeNorm

from simulator.analysis.figures import save, subplots
from simulator.analysis.intervals import t_half_width

KEYS = ["group_kind", "group"]
DIFFERENCE_COLUMNS = ["seed", "group_kind", "group", "metric", "baseline", "changed",
                      "difference"]
SUMMARY_COLUMNS = ["group_kind", "group", "metric", "n", "mean_difference", "std", "stderr",
                   "ci_low", "ci_high", "excludes_zero", "mean_baseline", "mean_changed"]


def _rows_at_step(
    table: pd.DataFrame, step: int | None, metrics: list[str], label: str
) -> pd.DataFrame:
    """The long (group_kind, group, metric, value) rows of one run at `step` (None: its last)."""
    missing = [c for c in ["step", *KEYS, *metrics] if c not in table.columns]
    if missing:
        raise ValueError(f"{label} lacks the columns {missing}")
    if table.empty:
        raise ValueError(f"{label} has no rows")
    chosen = table["step"].max() if step is None else step
    rows = table.loc[table["step"] == chosen, [*KEYS, *metrics]]
    if rows.empty:
        raise ValueError(f"step must be a step of every table; {label} has no rows at {chosen}")
    repeated = rows.duplicated(KEYS)
    if repeated.any():
        pairs = sorted(set(map(tuple, rows.loc[repeated, KEYS].to_numpy().tolist())))
        raise ValueError(f"{label} repeats the groups {pairs} at step {chosen}")
    long = rows.melt(id_vars=KEYS, value_vars=metrics, var_name="metric", value_name="value")
    long["value"] = long["value"].astype(float)
    return long


def paired_differences(
    baseline: dict[int, pd.DataFrame],
    changed: dict[int, pd.DataFrame],
    metrics: list[str],
    step: int | None = None,
) -> pd.DataFrame:
    """One row per (seed, group_kind, group, metric): the baseline and changed values of the
    group table at `step` (default: each table's last step) and their difference
    (changed - baseline). A group present in only one of the two runs gets NaN."""
    only_baseline = sorted(set(baseline) - set(changed))
    only_changed = sorted(set(changed) - set(baseline))
    if only_baseline or only_changed:
        raise ValueError(
            "baseline and changed must hold the same seeds; missing from changed: "
            f"{only_baseline}, missing from baseline: {only_changed}"
        )
    if not baseline:
        raise ValueError("baseline and changed must hold at least one seed")
    if not metrics:
        raise ValueError("metrics must name at least one metric column")
    if len(set(metrics)) != len(metrics):
        raise ValueError(f"metrics must not repeat a column, got {metrics}")
    keys = [*KEYS, "metric"]
    parts = []
    for seed in sorted(baseline):
        before = _rows_at_step(baseline[seed], step, metrics, f"baseline[{seed}]")
        after = _rows_at_step(changed[seed], step, metrics, f"changed[{seed}]")
        before_values = before.set_index(keys)["value"]
        after_values = after.set_index(keys)["value"]
        # An outer merge would sort the groups; keep the tables' own order instead.
        index = before_values.index.append(
            after_values.index.difference(before_values.index, sort=False))
        pair = pd.DataFrame({"baseline": before_values.reindex(index),
                             "changed": after_values.reindex(index)}).reset_index()
        pair.insert(0, "seed", seed)
        parts.append(pair)
    frame = pd.concat(parts, ignore_index=True)
    frame["difference"] = frame["changed"] - frame["baseline"]
    return frame[DIFFERENCE_COLUMNS]


def summarise(differences: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Per (group_kind, group, metric): n seeds with a finite difference, their mean
    difference, std, standard error, t confidence interval (NaN when n < 2) and whether it
    excludes zero, and the mean baseline and changed values over those same seeds."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence}")
    missing = [c for c in DIFFERENCE_COLUMNS if c not in differences.columns]
    if missing:
        raise ValueError(f"differences lacks the columns {missing}")
    finite = np.isfinite(differences["difference"].to_numpy(dtype=float))
    # Means of baseline and changed over the seeds that count, so that they differ by exactly
    # the mean difference.
    values = pd.DataFrame({
        "difference": differences["difference"].where(finite),
        "baseline": differences["baseline"].where(finite),
        "changed": differences["changed"].where(finite),
    })
    grouped = values.groupby([differences[c] for c in [*KEYS, "metric"]], sort=False,
                             dropna=False)
    table = grouped.agg(
        n=("difference", "count"),
        mean_difference=("difference", "mean"),
        std=("difference", "std"),
        mean_baseline=("baseline", "mean"),
        mean_changed=("changed", "mean"),
    ).reset_index()
    n = table["n"].to_numpy()
    enough = n >= 2
    stderr = np.where(enough, table["std"].to_numpy() / np.sqrt(np.maximum(n, 1)), np.nan)
    half = t_half_width(table["std"].to_numpy(), n, confidence)
    table["std"] = np.where(enough, table["std"], np.nan)
    table["stderr"] = stderr
    table["ci_low"] = table["mean_difference"] - half
    table["ci_high"] = table["mean_difference"] + half
    table["excludes_zero"] = ((table["ci_low"] > 0) | (table["ci_high"] < 0)).astype(bool)
    return table[SUMMARY_COLUMNS]


def externality_matrix(
    summaries: dict[str, pd.DataFrame], metric: str, group_kind: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Mean difference of `metric` and whether its interval excludes zero: one row per
    changed group (the keys of `summaries`, in order), one column per affected group of
    `group_kind` (in order of first appearance). Pairs absent from a summary are NaN / False."""
    if not summaries:
        raise ValueError("summaries must hold at least one changed group")
    rows = {}
    for changed_group, summary in summaries.items():
        missing = [c for c in SUMMARY_COLUMNS if c not in summary.columns]
        if missing:
            raise ValueError(f"summaries[{changed_group!r}] lacks the columns {missing}")
        part = summary[(summary["metric"] == metric) & (summary["group_kind"] == group_kind)]
        if part["group"].duplicated().any():
            raise ValueError(
                f"summaries[{changed_group!r}] repeats groups of kind {group_kind!r} "
                f"for {metric!r}"
            )
        rows[changed_group] = part.set_index("group")
    affected = list(dict.fromkeys(g for part in rows.values() for g in part.index))
    if not affected:
        raise ValueError(
            f"no summary holds metric {metric!r} for groups of kind {group_kind!r}"
        )
    index = pd.Index(list(summaries), name="changed")
    columns = pd.Index(affected, name="affected")
    matrix = pd.DataFrame(
        [rows[g]["mean_difference"].reindex(affected).to_numpy(dtype=float) for g in index],
        index=index, columns=columns,
    )
    significant = pd.DataFrame(
        [rows[g]["excludes_zero"].reindex(affected).fillna(False).to_numpy(dtype=bool)
         for g in index],
        index=index, columns=columns,
    )
    return matrix, significant


def plot_externality_heatmap(
    matrix: pd.DataFrame, significant: pd.DataFrame, path: Path, title: str
) -> Path:
    """Heatmap of an externality matrix on a diverging scale centred at 0, each cell
    annotated with its value; cells whose interval excludes zero are bold with an asterisk.
    Saved as a PNG at `path`."""
    if matrix.empty:
        raise ValueError("matrix must hold at least one cell")
    if not (significant.index.equals(matrix.index)
            and significant.columns.equals(matrix.columns)):
        raise ValueError("significant must have the same rows and columns as matrix")
    values = matrix.to_numpy(dtype=float)
    marked = significant.fillna(False).to_numpy(dtype=bool)
    largest = np.nanmax(np.abs(values)) if np.isfinite(values).any() else 0.0
    limit = largest if largest > 0 else 1.0
    decimals = max(0, 2 - int(np.floor(np.log10(limit))))
    n_rows, n_columns = values.shape
    fig, axis = subplots(figsize=(2.0 + 1.6 * n_columns, 1.6 + 0.7 * n_rows))
    colours = colormaps["RdBu_r"].with_extremes(bad="lightgrey")
    image = axis.imshow(np.ma.masked_invalid(values), cmap=colours, aspect="auto",
                        norm=TwoSlopeNorm(vcenter=0.0, vmin=-limit, vmax=limit))
    for (row, column), value in np.ndenumerate(values):
        if not np.isfinite(value):
            axis.text(column, row, "n/a", ha="center", va="center", color="dimgrey")
            continue
        star = marked[row, column]
        # Same decimals in every cell, three significant digits at the largest magnitude, so
        # that float noise around zero reads as zero; adding 0.0 turns -0.0 into 0.0.
        text = f"{round(value, decimals) + 0.0:+.{decimals}f}{'*' if star else ''}"
        axis.text(column, row, text, ha="center",
                  va="center", fontweight="bold" if star else "normal",
                  color="white" if abs(value) > 0.6 * limit else "black")
    axis.set_xticks(range(n_columns), [f"affected: {g}" for g in matrix.columns],
                    rotation=30, ha="right")
    axis.set_yticks(range(n_rows), [f"disclosure changed: {g}" for g in matrix.index])
    axis.set_xlabel("* bold: confidence interval excludes 0")
    axis.set_title(title)
    fig.colorbar(image, ax=axis, label="changed - baseline")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save(fig, path)
    return path
