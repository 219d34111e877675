"""Confidence intervals over seeds: the one t-interval every summary of repeated runs uses."""

from __future__ import annotations

import re

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
    """The values a metric can take: [0, 1] for rates, AUCs and shares, [-1, 1] for their
    changes, [0, inf) for errors, unbounded otherwise (intervals are clipped to it)."""
    if re.search(r"(_change|prediction_shift)$", metric):
        return (-1.0, 1.0) if not metric.startswith(("mae", "rmse")) else (-np.inf, np.inf)
    if re.fullmatch(r"(mae|rmse)(_.*)?", metric):
        return (0.0, np.inf)
    if re.search(r"(auc|bacc|acc|hr_\d+|ndcg_\d+|majority|disclosure_mean|beta_mean|share)",
                 metric):
        return (0.0, 1.0)
    return (-np.inf, np.inf)
