"""Leakage scores of an attribute-inference attack, always next to chance and majority."""

from __future__ import annotations

import numpy as np


def binary_auc(positive: np.ndarray, score: np.ndarray) -> float:
    """ROC-AUC by the Mann-Whitney rank statistic (ties count one half).

    Same value as sklearn's roc_auc_score, without its input checks, which cost ~8 ms a
    call when leakage is scored for dozens of groups every step.
    """
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = _average_ranks(np.asarray(score))
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _average_ranks(score: np.ndarray) -> np.ndarray:
    """1-based ranks, tied values sharing their average rank (scipy's rankdata 'average').

    By hand because scipy's input handling costs more than the ranking on these sizes,
    and leakage is scored for every group and class at every step.
    """
    order = np.argsort(score, kind="stable")
    ordered = score[order]
    starts_group = np.r_[True, ordered[1:] != ordered[:-1]]
    group = np.cumsum(starts_group) - 1
    starts = np.flatnonzero(starts_group)
    ends = np.r_[starts[1:], len(score)]
    ranks = np.empty(len(score))
    ranks[order] = ((starts + 1 + ends) / 2.0)[group]
    return ranks


def macro_ovr_auc(y_true: np.ndarray, proba: np.ndarray) -> float:
    """ROC-AUC, one-vs-rest and macro-averaged over the classes present (binary: plain AUC).

    Classes absent from `y_true` (or present alone) have no AUC and are left out; NaN if
    no class can be scored.
    """
    classes = np.unique(y_true)
    if len(classes) < 2:
        return float("nan")
    if proba.shape[1] == 2:
        return binary_auc(y_true == 1, proba[:, 1])
    scores = [binary_auc(y_true == c, proba[:, c]) for c in classes]
    return float(np.mean(scores))


def balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean recall over the classes present in `y_true` (chance = 1 / their number)."""
    classes = np.unique(y_true)
    if len(classes) == 0:
        return float("nan")
    return float(np.mean([np.mean(y_pred[y_true == c] == c) for c in classes]))


def leakage_scores(y_true: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """AUC, balanced accuracy and accuracy of predictions, with chance and majority rates.

    `proba` has one column per class code of the attribute.
    """
    if len(y_true) == 0:
        nan = float("nan")
        return {"auc": nan, "bacc": nan, "acc": nan, "majority": nan, "bacc_chance": nan}
    y_pred = np.argmax(proba, axis=1)
    counts = np.bincount(y_true)
    present = int(np.count_nonzero(counts))
    return {
        "auc": macro_ovr_auc(y_true, proba),
        "bacc": balanced_accuracy(y_true, y_pred),
        "acc": float(np.mean(y_pred == y_true)),
        "majority": float(counts.max() / len(y_true)),
        "bacc_chance": 1.0 / present,
    }
