"""Attribute inference from user representations: cross-validated classifiers.

The attacker trains on the users whose attributes it knows and predicts everyone
else's; stratified k-fold over the known users (fixed seed) gives its own estimate of
each classifier's strength, which it uses to pick the one it trusts.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from sklearn.base import ClassifierMixin, clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from xgboost import XGBClassifier

from simulator.metrics.leakage import macro_ovr_auc

CLASSIFIERS = ("logreg", "xgboost")


def make_classifier(name: str, seed: int) -> ClassifierMixin:
    """A fresh, unfitted classifier of that name."""
    if name == "logreg":
        return make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000))
    if name == "xgboost":
        # 64 histogram bins instead of 256: 3-4x faster on a few thousand users, same AUC.
        # One thread: on tables this small, OpenMP threads gain little and stall badly
        # whenever another process holds a core.
        return XGBClassifier(
            n_estimators=80, max_depth=3, learning_rate=0.15, subsample=0.8, max_bin=64,
            tree_method="hist", n_jobs=1, random_state=seed, verbosity=0,
        )
    raise ValueError(f"unknown classifier '{name}'; choose one of {list(CLASSIFIERS)}")


@dataclass
class AttackOutcome:
    """One classifier's result for one attribute."""

    classifier: str
    cv_auc: float  # attacker's own cross-validated estimate on the users it knows
    proba: np.ndarray  # (n_users, n_classes) predicted class probabilities for every user


def _fit_predict(
    model: ClassifierMixin, x_train: np.ndarray, y_train: np.ndarray, x: np.ndarray,
    n_classes: int,
) -> np.ndarray:
    """Fit on (x_train, y_train) and return probabilities over all n_classes codes."""
    present = np.unique(y_train)
    proba = np.zeros((len(x), n_classes))
    if len(present) == 1:
        proba[:, present[0]] = 1.0
        return proba
    # Classifiers need contiguous labels: map the codes seen in training to 0..k-1.
    remap = np.searchsorted(present, y_train)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitted = clone(model).fit(x_train, remap)
    proba[:, present] = fitted.predict_proba(x)
    return proba


def infer_attribute(
    embeddings: np.ndarray,
    labels: np.ndarray,
    known: np.ndarray,
    n_classes: int,
    classifiers: list[str],
    folds: int,
    seed: int,
) -> list[AttackOutcome]:
    """Train each classifier on the known users; predict every user's attribute."""
    x = np.ascontiguousarray(embeddings, dtype=np.float32)
    x_known, y_known = x[known], labels[known]
    n_splits = int(min(folds, np.bincount(y_known).max(initial=0)))
    outcomes = []
    for name in classifiers:
        model = make_classifier(name, seed)
        cv_auc = float("nan")
        if n_splits >= 2 and len(np.unique(y_known)) >= 2:
            out_of_fold = np.zeros((len(y_known), n_classes))
            splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                splits = list(splitter.split(x_known, y_known))
            for train_idx, val_idx in splits:
                out_of_fold[val_idx] = _fit_predict(
                    model, x_known[train_idx], y_known[train_idx], x_known[val_idx], n_classes
                )
            cv_auc = macro_ovr_auc(y_known, out_of_fold)
        proba = _fit_predict(model, x_known, y_known, x, n_classes)
        outcomes.append(AttackOutcome(name, cv_auc, proba))
    return outcomes


def pick_best(outcomes: list[AttackOutcome]) -> AttackOutcome:
    """The classifier the attacker trusts most: highest cross-validated AUC."""
    return max(outcomes, key=lambda o: -np.inf if np.isnan(o.cv_auc) else o.cv_auc)
