"""Attribute inference from what an attacker sees of users: cross-validated classifiers.

The attacker trains on the users whose attributes it knows and predicts everyone
else's; stratified k-fold over the known users (fixed seed) gives its own estimate of
each classifier's strength, which it uses to pick the one it trusts. Features are a dense
array (user embeddings) or a scipy CSR matrix (recommendation lists, disclosed ratings);
every classifier takes both.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from sklearn.base import ClassifierMixin, clone
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MaxAbsScaler, StandardScaler
from xgboost import XGBClassifier

from simulator.attacks.features import Features
from simulator.metrics.leakage import macro_ovr_auc

CLASSIFIERS = ("logreg", "xgboost", "mlp", "forest")


def make_classifier(name: str, seed: int, sparse: bool = False) -> ClassifierMixin:
    """A fresh, unfitted classifier of that name, for dense or sparse (CSR) input.

    All four read CSR directly, so sparse features need no dense reduction. Sparse input
    is scaled by MaxAbsScaler, which keeps zeros zero (centring would densify the matrix)
    and leaves multi-hot columns at 0/1. A random forest on the raw item columns was also
    faster and no weaker than one on a 64-component TruncatedSVD of them (sparse columns
    offer a few split points each; dense SVD columns offer one per user).
    """
    scaler = MaxAbsScaler() if sparse else StandardScaler()
    if name == "logreg":
        return make_pipeline(scaler, LogisticRegression(C=1.0, max_iter=1000))
    if name == "xgboost":
        # 64 histogram bins instead of 256: 3-4x faster on a few thousand users, same AUC.
        # One thread: on tables this small, OpenMP threads gain little and stall badly
        # whenever another process holds a core.
        return XGBClassifier(
            n_estimators=80, max_depth=3, learning_rate=0.15, subsample=0.8, max_bin=64,
            tree_method="hist", n_jobs=1, random_state=seed, verbosity=0,
        )
    if name == "mlp":
        return make_pipeline(scaler, MLPClassifier(
            hidden_layer_sizes=(100,), alpha=1.0, max_iter=300, early_stopping=False,
            random_state=seed,
        ))
    if name == "forest":
        # Trees need no scaling.
        return RandomForestClassifier(n_estimators=200, n_jobs=1, random_state=seed)
    raise ValueError(f"unknown classifier '{name}'; choose one of {list(CLASSIFIERS)}")


@dataclass
class AttackOutcome:
    """One classifier's result for one attribute."""

    classifier: str
    cv_auc: float  # attacker's own cross-validated estimate on the users it knows
    proba: np.ndarray  # (n_users, n_classes) predicted class probabilities for every user


def _fit_predict(
    model: ClassifierMixin, x_train: Features, y_train: np.ndarray, x: Features,
    n_classes: int,
) -> np.ndarray:
    """Fit on (x_train, y_train) and return probabilities over all n_classes codes."""
    present = np.unique(y_train)
    proba = np.zeros((x.shape[0], n_classes))
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


def _as_features(features: Features) -> Features:
    """float32 CSR for sparse input, a contiguous float32 array otherwise."""
    if sp.issparse(features):
        return sp.csr_matrix(features, dtype=np.float32)
    return np.ascontiguousarray(features, dtype=np.float32)


def infer_attribute(
    features: Features,
    labels: np.ndarray,
    known: np.ndarray,
    n_classes: int,
    classifiers: list[str],
    folds: int,
    seed: int,
) -> list[AttackOutcome]:
    """Train each classifier on the known users; predict every user's attribute.

    `features` has one row per user: a dense array or a scipy sparse matrix.
    """
    x = _as_features(features)
    x_known, y_known = x[known], labels[known]
    n_splits = int(min(folds, np.bincount(y_known).max(initial=0)))
    outcomes = []
    for name in classifiers:
        model = make_classifier(name, seed, sp.issparse(x))
        cv_auc = float("nan")
        if n_splits >= 2 and len(np.unique(y_known)) >= 2:
            out_of_fold = np.zeros((len(y_known), n_classes))
            splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                splits = list(splitter.split(np.zeros(len(y_known)), y_known))
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
