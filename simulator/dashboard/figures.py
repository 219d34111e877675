"""The dashboard's social-graph figure, drawn by matplotlib (a plain `Figure`, no pyplot
state): the laid-out graph is sent as one image rather than as a spec listing every edge."""

from __future__ import annotations

import numpy as np
from matplotlib import colormaps
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure

_WIDTH = 6.4
_HEIGHT = 3.6


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
