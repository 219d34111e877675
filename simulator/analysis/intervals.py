"""Confidence intervals over seeds: the one t-interval every summary of repeated runs uses."""

from __future__ import annotations

import math

import numpy as np
from scipy import stats


def t_half_width(std: np.ndarray, n: np.ndarray, confidence: float = 0.95) -> np.ndarray:
    """Half-width of the two-sided t confidence interval of a mean, quantile x std / sqrt(n)
    with n - 1 degrees of freedom; NaN where n < 2 (one seed says nothing about spread)."""
    std = np.asarray(std, dtype=float)
    n = np.asarray(n, dtype=float)
    enough = n >= 2
    half = np.full(n.shape, np.nan)
    quantile = stats.t.ppf(0.5 + confidence / 2.0, n[enough] - 1.0)
    half[enough] = quantile * (std[enough] / np.sqrt(n[enough]))
    return half


def metric_range(metric: str) -> tuple[float, float]:
    """The values a metric can take, as the measurement that writes it declares them
    (`Column`): [0, 1] for rates, AUCs and shares, [-1, 1] for their changes, [0, inf) for
    errors and counts; unbounded for a column no measurement declares. Intervals are
    clipped to it."""
    from simulator.measurements.registry import REGISTRY  # loads the measurements (torch)

    column = REGISTRY.column(metric)
    return (column.low, column.high) if column is not None else (-math.inf, math.inf)
