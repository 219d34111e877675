"""Compare runs and sweeps: stack their metrics, summarise them over seeds, plot the contrasts.

Every input is a run folder or a sweep folder. Their metrics rows are stacked under a
`variant` label (a sweep point's grid values, or a run's scenario name), summarised per
variant and step over seeds with t-based 95% intervals, and drawn over time, as a
utility-leakage trade-off with its Pareto front, and, for a two-parameter grid, as heatmaps.
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from simulator.analysis.figures import save, subplots
from simulator.analysis.intervals import metric_range, t_half_width
from simulator.analysis.labels import metric_label, value_label
from simulator.foundations.errors import shown
from simulator.runs.outputs import read_manifest, write_parquet, write_text
from simulator.runs.run_lock import run_status

ID_COLUMNS = ["variant", "seed", "source"]
SUMMARY_COLUMNS = ["variant", "step", "metric", "mean", "ci_low", "ci_high", "n"]
POINT_COLUMNS = ("point", "seed", "run_dir", "status", "error")
FORMATS = ("png", "pdf")
CONFIDENCE = 0.95
# Settings that do not change what a run computes: runs differing only in them are seeds
# of one variant.
RUN_ONLY_SETTINGS = (("simulation", "seed"), ("simulation", "device"), ("output",))
LOWER_IS_BETTER = ("mae", "rmse")
UTILITY = re.compile(r"^(?:hr_\d+|ndcg_\d+|mae|rmse)$")
LEAKAGE = re.compile(r"^leak_[a-z]+_(?:auc|bacc)$")
DEFAULT_LEAKAGE = re.compile(r"^leak_[a-z]+_auc$")


def folder_kind(path: Path) -> str:
    """'sweep' for a sweep folder (sweep.yaml), 'run' for a run folder (config.yaml and
    manifest.json); anything else raises ValueError naming the folder."""
    path = Path(path)
    if (path / "sweep.yaml").is_file():
        return "sweep"
    if (path / "config.yaml").is_file() and (path / "manifest.json").is_file():
        return "run"
    raise ValueError(
        f"paths: {path} is neither a run folder (config.yaml and manifest.json) "
        "nor a sweep folder (sweep.yaml)"
    )


def _read_sweep(folder: Path) -> tuple[pd.DataFrame, list[str], dict[str, Any]]:
    """A sweep's completed points' metrics rows labelled by their grid values."""
    spec = yaml.safe_load((folder / "sweep.yaml").read_text(encoding="utf-8")) or {}
    name = str(spec.get("name", folder.name))
    points_file = folder / "points.parquet"
    if not points_file.is_file():
        note = f"{folder}: the sweep has not finished (no points.parquet); skipped"
        return pd.DataFrame(), [note], {"path": str(folder), "kind": "sweep", "grid_keys": []}
    points = pd.read_parquet(points_file)
    keys = [k for k in spec.get("grid") or {} if k in points.columns]
    if not keys:
        keys = [c for c in points.columns if c not in POINT_COLUMNS]
    info = {"path": str(folder), "kind": "sweep", "name": name, "grid_keys": keys}
    notes = [
        f"{folder / str(row['run_dir'])}: status {row['status']}"
        + (f" ({row['error']})" if isinstance(row["error"], str) and row["error"] else "")
        + "; skipped"
        for _, row in points[points["status"] != "completed"].iterrows()
    ]
    values = _grid_value_labels(spec.get("grid") or {}, points, keys)
    labels = {
        int(row["point"]): ", ".join(f"{k}={values[k][str(row[k])]}" for k in keys)
        or name for _, row in points.iterrows()
    }
    results_file = folder / "results.parquet"
    if not results_file.is_file():
        return pd.DataFrame(), notes, info
    rows = pd.read_parquet(results_file)
    completed = points.loc[points["status"] == "completed", "point"]
    rows = rows[rows["point"].isin(completed)].reset_index(drop=True)
    rows.insert(0, "variant", rows["point"].map(labels))
    rows.insert(1, "source", str(folder))
    by_point = points.set_index("point")
    for key in keys:  # grid values as their labels, in the sweep file's order
        label_of = {point: values[key][str(value)] for point, value in by_point[key].items()}
        rows[key] = pd.Categorical(rows["point"].map(label_of),
                                   categories=list(dict.fromkeys(values[key].values())))
    return rows.drop(columns="point"), notes, info


def _grid_value_labels(grid: dict[str, Any], points: pd.DataFrame, keys: list[str]
                       ) -> dict[str, dict[str, str]]:
    """Per grid key, each value as points.parquet stores it -> its short label (`null`,
    mappings and lists included), kept distinct: values whose labels clash are numbered."""
    found: dict[str, dict[str, str]] = {}
    for key in keys:
        declared = grid.get(key) if isinstance(grid.get(key), list) else None
        stored = [str(v) for v in pd.unique(points[key].astype(str))]
        raw = {str(v): v for v in declared} if declared is not None else {}
        order = [str(v) for v in declared] if declared is not None else stored
        order += [v for v in stored if v not in order]
        labels = {text: value_label(raw.get(text, text)) for text in order}
        counts = pd.Series(list(labels.values())).value_counts()
        seen: dict[str, int] = {}
        for text, label in labels.items():
            if counts[label] > 1:
                seen[label] = seen.get(label, 0) + 1
                labels[text] = f"{label} #{seen[label]}"
        found[key] = labels
    return found


def _run_config_key(folder: Path) -> str:
    """The resolved scenario without the settings that do not change what a run computes."""
    config = yaml.safe_load((folder / "config.yaml").read_text(encoding="utf-8")) or {}
    for path in RUN_ONLY_SETTINGS:
        section = config
        for key in path[:-1]:
            section = section.get(key, {}) if isinstance(section, dict) else {}
        if isinstance(section, dict):
            section.pop(path[-1], None)
    return json.dumps(config, sort_keys=True, default=str)


def _read_run(folder: Path) -> tuple[pd.DataFrame, list[str], dict[str, Any]]:
    """A completed run's metrics rows (no label yet), or a note saying why it was skipped."""
    manifest = read_manifest(folder)
    info = {"path": str(folder), "kind": "run", "grid_keys": [],
            "name": str(manifest.get("scenario", folder.name))}
    status = run_status(folder, manifest)
    if status != "completed":
        error = manifest.get("error")
        note = f"{folder}: status {status}" + (f" ({error})" if error else "") + "; skipped"
        return pd.DataFrame(), [note], info
    metrics_file = folder / "metrics.parquet"
    if not metrics_file.is_file():
        return pd.DataFrame(), [f"{folder}: completed but has no metrics.parquet; skipped"], info
    rows = pd.read_parquet(metrics_file)
    rows.insert(0, "seed", manifest.get("seed"))
    rows.insert(1, "source", str(folder))
    info["config_key"] = _run_config_key(folder)
    return rows, [], info


def _label_runs(runs: list[tuple[pd.DataFrame, dict[str, Any]]]) -> list[tuple[str, bool]]:
    """One (variant label, pooled) per run: runs sharing a scenario name and configuration
    (seed aside), with distinct seeds, pool under the scenario name; others keep their folder
    name."""
    groups: dict[str, list[int]] = {}
    for position, (_, info) in enumerate(runs):
        groups.setdefault(info["name"], []).append(position)
    labels = [(Path(info["path"]).name, False) for _, info in runs]
    for name, members in groups.items():
        configs = {runs[i][1]["config_key"] for i in members}
        seeds = [runs[i][0]["seed"].iloc[0] if len(runs[i][0]) else None for i in members]
        if len(configs) == 1 and len(set(seeds)) == len(seeds):
            for i in members:
                labels[i] = (name, True)
    return labels


def _disambiguate(parts: list[pd.DataFrame], origins: list[tuple[str, str]]) -> None:
    """A label used by two different origins (identity, display name) -- a sweep, a pool of
    runs, a run -- gets the origin's name appended, so distinct experiments never pool."""
    owners: dict[str, set[str]] = {}
    names = dict(origins)
    for frame, (identity, _) in zip(parts, origins, strict=True):
        for label in pd.unique(frame["variant"]):
            owners.setdefault(label, set()).add(identity)
    for frame, (identity, name) in zip(parts, origins, strict=True):
        for label in pd.unique(frame["variant"]):
            rivals = [names[o] for o in owners[label]]
            if len(rivals) > 1:
                # Two folders of one name (in different places) are told apart by full path.
                suffix = name if rivals.count(name) == 1 else identity
                frame.loc[frame["variant"] == label, "variant"] = f"{label} ({suffix})"


def load_runs(paths: Sequence[Path]) -> pd.DataFrame:
    """Every completed run's metrics rows, with `variant`, `seed` and `source` columns first
    (then any grid keys). Sweep points are labelled "key=value, ..."; single runs by their
    scenario name (runs of one configuration pool as its seeds) or else their folder name.
    Incomplete runs are skipped with a warning; `attrs["warnings"]` lists them and
    `attrs["sources"]` describes each input (path, kind, grid_keys)."""
    if not paths:
        raise ValueError("paths: give at least one run or sweep folder")
    unique: list[Path] = []
    for path in map(Path, paths):
        if path.resolve() not in {p.resolve() for p in unique}:
            unique.append(path)
    kinds = [folder_kind(path) for path in unique]
    notes: list[str] = []
    sources: list[dict[str, Any]] = []
    loaded: list[tuple[pd.DataFrame, dict[str, Any]]] = []
    for path, kind in zip(unique, kinds, strict=True):
        frame, found, info = (_read_sweep if kind == "sweep" else _read_run)(path)
        notes.extend(found)
        if not frame.empty:
            loaded.append((frame, info))
        sources.append(info)
    runs = [item for item in loaded if item[1]["kind"] == "run"]
    run_labels = dict(zip((id(f) for f, _ in runs), _label_runs(runs), strict=True))
    parts: list[pd.DataFrame] = []
    origins: list[tuple[str, str]] = []
    for frame, info in loaded:
        name = Path(info["path"]).name
        if info["kind"] == "run":
            label, pooled = run_labels[id(frame)]
            frame.insert(0, "variant", label)
            origins.append((f"runs of {label}", label) if pooled else (info["path"], name))
        else:
            origins.append((info["path"], name))
        parts.append(frame)
    for info in sources:
        info.pop("config_key", None)
    for note in notes:
        warnings.warn(note, stacklevel=2)
    if not parts:
        table = pd.DataFrame(columns=[*ID_COLUMNS, "step"])
    else:
        _disambiguate(parts, origins)
        table = pd.concat(parts, ignore_index=True, sort=False)
        keys = list(dict.fromkeys(k for s in sources for k in s["grid_keys"] if k in table))
        rest = [c for c in table.columns if c not in ID_COLUMNS and c not in keys]
        table = table[[*ID_COLUMNS, *keys, *rest]]
    table.attrs["warnings"] = notes
    table.attrs["sources"] = sources
    return table


def summarise_runs(table: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    """Per variant, step and metric: the mean over seeds, the t-based 95% interval (NaN with
    fewer than two values) and n, the number of seeds with a value; tidy (SUMMARY_COLUMNS)."""
    metrics = list(metrics)
    if not metrics:
        raise ValueError("metrics: name at least one metric column")
    needed = [c for c in ("variant", "seed", "step") if c not in table.columns]
    if needed:
        raise ValueError(f"table: lacks the columns {needed}")
    missing = [m for m in metrics if m not in table.columns]
    if missing:
        raise ValueError(f"metrics: {missing} are not columns of the table")
    not_numeric = [m for m in metrics if not pd.api.types.is_numeric_dtype(table[m])]
    if not_numeric:
        raise ValueError(f"metrics: {not_numeric} are not numeric columns")
    repeated = table.duplicated(["variant", "seed", "step"])
    if repeated.any():
        first = table.loc[repeated, ["variant", "seed", "step"]].iloc[0].tolist()
        raise ValueError(f"table: variant {first[0]!r} repeats seed {first[1]} at step {first[2]}")
    long = table.melt(id_vars=["variant", "step"], value_vars=metrics, var_name="metric",
                      value_name="value")
    long["value"] = long["value"].astype(float)
    summary = (long.groupby(["variant", "step", "metric"], sort=False)["value"]
               .agg(mean="mean", std="std", n="count").reset_index())
    half = t_half_width(summary["std"].to_numpy(), summary["n"].to_numpy(), CONFIDENCE)
    summary["ci_low"] = summary["mean"] - half
    summary["ci_high"] = summary["mean"] + half
    variant_order = {v: i for i, v in enumerate(pd.unique(table["variant"]))}
    metric_order = {m: i for i, m in enumerate(metrics)}
    summary = summary.assign(_v=summary["variant"].map(variant_order),
                             _m=summary["metric"].map(metric_order))
    summary = summary.sort_values(["_v", "_m", "step"], kind="stable")
    return summary[SUMMARY_COLUMNS].reset_index(drop=True)


def at_last_step(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of a table or summary at each variant's last step."""
    last = frame.groupby("variant", sort=False)["step"].transform("max")
    return frame[frame["step"] == last].reset_index(drop=True)


def default_metrics(table: pd.DataFrame) -> list[str]:
    """The accuracy (hr_k, ndcg_k, mae) and leakage (leak_<attr>_auc) columns that hold
    at least one value."""
    present = [c for c in table.columns
               if pd.api.types.is_numeric_dtype(table[c]) and table[c].notna().any()]
    utility = ([c for c in present if re.fullmatch(r"hr_\d+", c)]
               + [c for c in present if re.fullmatch(r"ndcg_\d+", c)]
               + [c for c in present if c == "mae"])
    return utility + [c for c in present if DEFAULT_LEAKAGE.fullmatch(c)]


def higher_is_better(metric: str) -> bool:
    """Whether a larger value of an accuracy metric is better (not for rating errors)."""
    return metric not in LOWER_IS_BETTER


def pareto_front(
    leakage: Sequence[float] | np.ndarray | pd.Series,
    utility: Sequence[float] | np.ndarray | pd.Series,
    higher_utility_is_better: bool = True,
) -> np.ndarray:
    """Mask of the points no other point dominates (leakage as low or lower and utility as
    good or better, strictly better in one); points with a NaN are never on the front."""
    x = np.asarray(leakage, dtype=float)
    y = np.asarray(utility, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"leakage and utility must be 1-D of one length, got {x.shape}, "
                         f"{y.shape}")
    if not higher_utility_is_better:
        y = -y
    valid = np.isfinite(x) & np.isfinite(y)
    # [i, j]: does point j dominate point i?
    no_worse = (x[None, :] <= x[:, None]) & (y[None, :] >= y[:, None])
    better = (x[None, :] < x[:, None]) | (y[None, :] > y[:, None])
    dominated = (no_worse & better & valid[None, :]).any(axis=1)
    return valid & ~dominated


def tradeoff_points(
    summary: pd.DataFrame, utility: str, leakage: str, higher: bool | None = None
) -> pd.DataFrame:
    """One row per variant at its last step: leakage and utility means and intervals, and
    `pareto` (on the front). `higher` defaults to higher_is_better(utility)."""
    for argument, metric in (("utility", utility), ("leakage", leakage)):
        if metric not in set(summary["metric"]):
            raise ValueError(f"{argument}: {metric!r} is not a metric of the summary")
    last = at_last_step(summary)
    columns = ["mean", "ci_low", "ci_high"]
    pairs = last.loc[last["metric"] == leakage, ["variant", *columns]].merge(
        last.loc[last["metric"] == utility, ["variant", *columns]],
        on="variant", how="inner", suffixes=("_leakage", "_utility"))
    points = pairs.rename(columns={"mean_leakage": "leakage", "mean_utility": "utility"})
    higher = higher_is_better(utility) if higher is None else higher
    points["pareto"] = pareto_front(points["leakage"], points["utility"], higher)
    return points


def _targets(path: Path, formats: Sequence[str]) -> list[Path]:
    """`path` once per format: its suffix (if it is one of the formats) replaced."""
    path = Path(path)
    base = path.with_suffix("") if path.suffix.lstrip(".").lower() in formats else path
    return [base.parent / f"{base.name}.{fmt}" for fmt in formats]


def _save(fig: Figure, path: Path, formats: Sequence[str], layout: bool = True) -> list[Path]:
    if not formats:
        raise ValueError("formats: name at least one image format, e.g. ('png', 'pdf')")
    if layout:
        fig.tight_layout()
    written = _targets(path, formats)
    written[0].parent.mkdir(parents=True, exist_ok=True)
    for target in written:
        save(fig, target)
    return written


def _metric_rows(summary: pd.DataFrame, metric: str, argument: str = "metric") -> pd.DataFrame:
    rows = summary[summary["metric"] == metric]
    if rows.empty:
        raise ValueError(f"{argument}: {metric!r} is not a metric of the summary")
    return rows


def plot_over_time(
    summary: pd.DataFrame, metric: str, path: Path, formats: Sequence[str] = FORMATS
) -> list[Path]:
    """`metric` over steps, one line per variant with its 95% band; written to `path` in
    each format (suffix replaced). Returns the files written."""
    rows = _metric_rows(summary, metric)
    fig, axis = subplots(figsize=(7, 4.2))
    for variant, part in rows.groupby("variant", sort=False):
        part = part.sort_values("step")
        line = axis.plot(part["step"], part["mean"], marker="o", markersize=3,
                         label=str(variant))[0]
        axis.fill_between(part["step"], part["ci_low"].astype(float),
                          part["ci_high"].astype(float), color=line.get_color(), alpha=0.2,
                          linewidth=0)
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.set(xlabel="step", ylabel=metric,
             title=f"{metric} (mean over seeds, {CONFIDENCE:.0%} interval)")
    axis.legend(fontsize="small")
    return _save(fig, path, formats)


def plot_tradeoff(
    summary_last_step: pd.DataFrame,
    utility: str,
    leakage: str,
    path: Path,
    higher: bool | None = None,
    formats: Sequence[str] = FORMATS,
) -> list[Path]:
    """One point per variant (x leakage, y utility, with 95% intervals clipped to each
    metric's range) at its last step; the Pareto front (lower leakage, better utility) is
    marked and drawn as a staircase. Points carry numbers and the key below the plot names
    them, so long variant names neither overlap nor squeeze the plot."""
    points = tradeoff_points(summary_last_step, utility, leakage, higher)
    higher = higher_is_better(utility) if higher is None else higher
    n = len(points)
    fig, axis = subplots(figsize=(7.5, 5.0 + 0.2 * n))
    x, y = points["leakage"].to_numpy(float), points["utility"].to_numpy(float)
    x_low, x_high = _clipped(points, "leakage", metric_range(leakage))
    y_low, y_high = _clipped(points, "utility", metric_range(utility))
    xerr = np.nan_to_num(np.vstack([x - x_low, x_high - x]))
    yerr = np.nan_to_num(np.vstack([y - y_low, y_high - y]))
    axis.errorbar(x, y, xerr=xerr, yerr=yerr, fmt="none", ecolor="grey", alpha=0.6)
    front = points["pareto"].to_numpy(bool)
    axis.scatter(x[~front], y[~front], color="tab:blue", label="dominated", zorder=3)
    axis.scatter(x[front], y[front], color="tab:red", marker="*", s=160, label="Pareto front",
                 zorder=4)
    order = np.argsort(x[front], kind="stable")
    axis.step(x[front][order], y[front][order], where="post", color="tab:red",
              linestyle="--", linewidth=1)
    for number, (px, py) in enumerate(zip(x, y, strict=True), start=1):
        axis.annotate(str(number), (px, py), textcoords="offset points", xytext=(5, 4),
                      fontsize="small", fontweight="bold")
    axis.set(xlabel=f"{metric_label(leakage)} (lower is better)",
             ylabel=f"{metric_label(utility)} ({'higher' if higher else 'lower'} is better)")
    axis.set_title(f"{metric_label(utility)} against {metric_label(leakage)}\n"
                   f"at the last step, {CONFIDENCE:.0%} intervals", fontsize="medium")
    axis.legend(fontsize="small")
    key = "\n".join(f"{number}: {variant}" for number, variant
                     in enumerate(points["variant"].astype(str), start=1))
    fig.text(0.02, 0.01, key, fontsize="small", va="bottom", ha="left", wrap=True)
    fig.tight_layout(rect=(0.0, (0.1 + 0.2 * n) / (5.0 + 0.2 * n), 1.0, 1.0))
    return _save(fig, path, formats, layout=False)


def _clipped(points: pd.DataFrame, part: str, bounds: tuple[float, float]
             ) -> tuple[np.ndarray, np.ndarray]:
    """The interval of one axis, within the metric's range (the mean where it is NaN)."""
    mean = points[part].to_numpy(float)
    low = np.where(np.isnan(points[f"ci_low_{part}"].to_numpy(float)), mean,
                   points[f"ci_low_{part}"].to_numpy(float))
    high = np.where(np.isnan(points[f"ci_high_{part}"].to_numpy(float)), mean,
                    points[f"ci_high_{part}"].to_numpy(float))
    return np.clip(low, *bounds), np.clip(high, *bounds)


def _ordered(values: Any) -> list[Any]:
    """Grid values in numeric order where they are numbers, else in text order."""
    def key(value: Any) -> tuple[int, float, str]:
        try:
            return (0, float(value), "")
        except (TypeError, ValueError):
            return (1, 0.0, str(value))
    series = pd.Series(values)
    if isinstance(series.dtype, pd.CategoricalDtype):  # a sweep's grid: its file's order
        present = set(series.dropna())
        return [v for v in series.cat.categories if v in present]
    return sorted(pd.unique(series.dropna()), key=key)


def plot_grid_heatmap(
    table_last_step: pd.DataFrame,
    x_key: str,
    y_key: str,
    metric: str,
    path: Path,
    formats: Sequence[str] = FORMATS,
) -> list[Path]:
    """Mean of `metric` over seeds for every (y_key, x_key) cell of a two-parameter grid, at
    each variant's last step, as an annotated heatmap."""
    for argument, column in (("x_key", x_key), ("y_key", y_key), ("metric", metric)):
        if column not in table_last_step.columns:
            raise ValueError(f"{argument}: {column!r} is not a column of the table")
    cells = grid_cells(table_last_step, x_key, y_key, metric)
    values = cells.to_numpy(dtype=float)
    x_labels = [value_label(v) for v in cells.columns]
    y_labels = [value_label(v) for v in cells.index]
    # Wide enough for its title and its column labels; rows tall enough for theirs.
    width = max(5.5, 0.09 * max(map(len, x_labels), default=4) * values.shape[1]
                + 0.08 * max(map(len, y_labels), default=4) + 3)
    fig, axis = subplots(figsize=(width, 0.9 * values.shape[0] + 2.2))
    image = axis.imshow(values, cmap="viridis", aspect="auto")
    axis.set_xticks(range(values.shape[1]), x_labels)
    axis.set_yticks(range(values.shape[0]), y_labels)
    finite = values[np.isfinite(values)]
    middle = (finite.min() + finite.max()) / 2 if finite.size else 0.0
    for (i, j), value in np.ndenumerate(values):
        if np.isfinite(value):
            axis.text(j, i, f"{value:.3g}", ha="center", va="center", fontsize="small",
                      color="white" if value < middle else "black")
    axis.set(xlabel=x_key, ylabel=y_key)
    axis.set_title(f"{metric_label(metric)}\nat the last step, mean over seeds",
                   fontsize="medium")
    fig.colorbar(image, ax=axis, label=metric_label(metric))
    return _save(fig, path, formats)


def grid_cells(table: pd.DataFrame, x_key: str, y_key: str, metric: str) -> pd.DataFrame:
    """The heatmap's cells: mean of `metric` over seeds at each variant's last step, one row
    per `y_key` value and one column per `x_key` value, in the grid's order."""
    rows = table
    if {"variant", "step"} <= set(rows.columns):
        rows = at_last_step(rows)
    cells = rows.groupby([y_key, x_key], observed=True)[metric].mean().unstack(x_key)
    return cells.reindex(index=_ordered(rows[y_key]), columns=_ordered(rows[x_key]))


def heatmap_keys(table: pd.DataFrame) -> tuple[str, str] | None:
    """The two grid keys when the table comes from one sweep with exactly two, else None."""
    sources = table.attrs.get("sources", [])
    if len(sources) == 1 and sources[0]["kind"] == "sweep":
        keys = [k for k in sources[0]["grid_keys"] if k in table.columns]
        if len(keys) == 2:
            return keys[0], keys[1]
    return None


def _file_name(*parts: str) -> str:
    return "_".join(re.sub(r"[^A-Za-z0-9_-]+", "_", part) for part in parts)


def write_figures(
    table: pd.DataFrame,
    summary: pd.DataFrame,
    folder: Path,
    metrics: Sequence[str],
    grid: tuple[str, str] | None = None,
    formats: Sequence[str] = FORMATS,
) -> list[Path]:
    """Every comparison figure into `folder`: each metric over time, the first accuracy metric
    against each leakage metric, and with `grid` (x_key, y_key) a heatmap per metric."""
    written: list[Path] = []
    for metric in metrics:
        written += plot_over_time(summary, metric, folder / _file_name("over_time", metric),
                                  formats)
    utility = next((m for m in metrics if UTILITY.fullmatch(m)), None)
    if utility is not None:
        for leakage in (m for m in metrics if LEAKAGE.fullmatch(m)):
            path = folder / _file_name("tradeoff", utility, "vs", leakage)
            written += plot_tradeoff(summary, utility, leakage, path, formats=formats)
    if grid is not None:
        last = at_last_step(table)
        for metric in metrics:
            written += plot_grid_heatmap(last, grid[0], grid[1], metric,
                                         folder / _file_name("heatmap", metric), formats)
    return written


def compare(paths: Sequence[Path], out: Path, metrics: Sequence[str] | None = None) -> Path:
    """Compare runs and sweeps: writes compare.csv / compare.parquet (tidy summary over seeds)
    and the figures (PNG and PDF) into `out`; returns `out`. The default metrics are the
    accuracy and leakage columns present; heatmaps only for one sweep with two grid keys."""
    table = load_runs(paths)
    if table.empty:
        raise ValueError(f"paths: none of {[str(p) for p in paths]} holds a completed run")
    chosen = list(metrics) if metrics is not None else default_metrics(table)
    missing = [m for m in chosen if m not in table.columns
               or not pd.api.types.is_numeric_dtype(table[m])]
    if missing:
        numeric = [c for c in table.columns if pd.api.types.is_numeric_dtype(table[c])
                   and "." not in c and c not in ("step", "seed", "point", "replication")
                   and not c.startswith("seconds")]  # grid keys are dotted paths
        raise ValueError(shown(f"metrics: the runs have no metric {', '.join(missing)}; "
                               f"they have {', '.join(numeric)}", 1_000, quote=False))
    if not chosen:
        raise ValueError("metrics: the runs hold none of the default metrics (hr_<k>, "
                         "ndcg_<k>, mae, leak_<attr>_auc); name the columns to compare")
    summary = summarise_runs(table, chosen)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "compare.csv", summary.to_csv(index=False))
    write_parquet(out / "compare.parquet", summary)
    write_figures(table, summary, out, chosen, heatmap_keys(table))
    return out
