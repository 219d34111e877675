"""Matplotlib figures of the dashboard (plain `Figure` objects, no pyplot state)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

_WIDTH = 6.4
_HEIGHT = 3.6


def metric_figure(bands: pd.DataFrame, metric: str, labels: Mapping[str, str]) -> Figure:
    """`metric` over steps, one line per variant, shaded where several seeds give a band."""
    figure = Figure(figsize=(_WIDTH, _HEIGHT), layout="constrained")
    axes = figure.subplots()
    for variant, rows in bands.groupby("variant", sort=False):
        rows = rows.sort_values("step")
        runs = int(rows["n"].max())
        name = labels.get(str(variant), str(variant))
        name = f"{name} (mean of {runs} seeds)" if runs > 1 else name
        (line,) = axes.plot(rows["step"], rows["mean"], marker="o", markersize=3, label=name)
        if rows["low"].notna().any():
            axes.fill_between(rows["step"], rows["low"], rows["high"], alpha=0.2,
                              color=line.get_color(), linewidth=0)
    axes.set_xlabel("step")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_ylabel(metric)
    axes.set_title(metric)
    if len(axes.lines):
        axes.legend(fontsize="small")
    else:
        axes.text(0.5, 0.5, "no values", ha="center", va="center", transform=axes.transAxes)
    return figure


def tradeoff_figure(
    points: pd.DataFrame, privacy: str, utility: str, labels: Mapping[str, str]
) -> Figure:
    """One marker per run: leakage (x) against utility (y), coloured by variant.

    `points` has the columns of `data.tradeoff_points` plus `variant`.
    """
    figure = Figure(figsize=(_WIDTH, _HEIGHT + 0.6), layout="constrained")
    axes = figure.subplots()
    for variant, rows in points.groupby("variant", sort=False):
        axes.scatter(rows[privacy], rows[utility], s=36,
                     label=labels.get(str(variant), str(variant)))
    if privacy.endswith("_auc"):
        axes.axvline(0.5, color="grey", linestyle="--", linewidth=1, label="chance (AUC 0.5)")
    axes.set_xlabel(f"{privacy} (lower leaks less)")
    better = "lower" if utility in ("mae", "rmse") else "higher"
    axes.set_ylabel(f"{utility} ({better} is better)")
    axes.set_title("privacy-utility trade-off at the last measured step")
    if len(points):
        axes.legend(fontsize="small")
    return figure


def groups_figure(series: Mapping[str, pd.DataFrame], metric: str, run: str) -> Figure:
    """One panel per group kind: `metric` of every group over steps."""
    if not series:
        raise ValueError("series: expected at least one group kind")
    figure = Figure(figsize=(min(max(4.2 * len(series), _WIDTH), 16.0), _HEIGHT),
                    layout="constrained")
    panels = np.atleast_1d(figure.subplots(1, len(series), sharey=True))
    for axes, (kind, table) in zip(panels, series.items(), strict=True):
        for group in table.columns:
            axes.plot(table.index, table[group], marker="o", markersize=3, label=str(group))
        axes.set_title(kind)
        axes.set_xlabel("step")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.legend(fontsize="x-small")
    panels[0].set_ylabel(metric)
    figure.suptitle(f"{metric} by group: {run}", fontsize="medium")
    return figure


def graph_figure(
    positions: np.ndarray, edges: np.ndarray, betas: np.ndarray, title: str
) -> Figure:
    """The social graph: edges as grey lines, users coloured by their disclosure budget."""
    if positions.shape != (betas.size, 2):
        raise ValueError(f"positions: expected shape ({betas.size}, 2), got {positions.shape}")
    figure = Figure(figsize=(7.0, 6.0), layout="constrained")
    axes = figure.subplots()
    if len(edges):
        segments = positions[np.asarray(edges, dtype=np.int64)]
        axes.add_collection(LineCollection(list(segments), colors="0.7", linewidths=0.4, zorder=1))
    # Users without a budget at this step (no agents row) are drawn grey.
    cmap = colormaps["viridis"].with_extremes(bad="lightgrey")
    dots = axes.scatter(positions[:, 0], positions[:, 1], c=betas, cmap=cmap, vmin=0.0,
                        vmax=1.0, s=14, edgecolors="none", zorder=2, plotnonfinite=True)
    figure.colorbar(dots, ax=axes, label="beta (disclosure budget)")
    axes.set_title(title, fontsize="medium")
    axes.set_axis_off()
    axes.autoscale_view()
    return figure
