"""Confidence intervals over seeds: the one t-interval every summary of repeated runs uses."""

from __future__ import annotations

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
