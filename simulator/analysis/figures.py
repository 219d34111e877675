"""Figures without global state: matplotlib's object API (no pyplot, no backend choice, no
rcParams change), so importing or calling privsim leaves a notebook's plotting as it was."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure
from matplotlib.text import Text


class ShownFigure(Figure):
    """A figure a notebook shows by itself (as PNG), without pyplot's inline backend."""

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        for text in self.findobj(Text):
            text.set_parse_math(False)
        self.savefig(buffer, format="png", dpi=100)
        return buffer.getvalue()


def subplots(*grid: int, figsize: tuple[float, float] | None = None,
             figure_class: type[Figure] = Figure, **options: Any) -> tuple[Figure, Any]:
    """A new figure and its axes, as `pyplot.subplots` gives them."""
    figure = figure_class(figsize=figsize)
    return figure, figure.subplots(*grid, **options)


def save(figure: Figure, path: Path, dpi: int = 120) -> Path:
    """Write `figure` (format from the suffix), with every text shown as written: a "$" in a
    user's type or scenario name is never read as TeX."""
    for text in figure.findobj(Text):
        text.set_parse_math(False)
    figure.savefig(path, dpi=dpi)
    return path
