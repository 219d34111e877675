"""Attribute inference from what an attacker sees of users: cross-validated classifiers.

The attacker trains on the users whose attributes it knows and predicts everyone
else's. Stratified k-fold over the known users (fixed seed) fits k models per classifier:
their out-of-fold predictions give the attacker's own estimate of the classifier's
strength (which it uses to pick the one it trusts) and the known users' predictions; the
mean of the k models predicts everyone else (a cross-validation ensemble: as strong as one
refit on all known users, and it saves that fit). Features are a dense array (user
embeddings) or a scipy CSR matrix (recommendation lists, disclosed ratings); every
classifier takes both.

Logistic regression runs in torch on the simulation's device, all k folds in one fit
(`simulator.attacks.logistic`); XGBoost runs on CUDA when its build has CUDA, with early
stopping on a slice of each fold's training users; the MLP and random forest are
scikit-learn's and run on the CPU. `classifier_devices` says where each one runs.
"""

from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.base import ClassifierMixin
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MaxAbsScaler, StandardScaler
from threadpoolctl import threadpool_limits

from simulator.attacks.features import Features
from simulator.attacks.logistic import as_tensor, fit_logistic
from simulator.metrics.classification import macro_ovr_auc

CLASSIFIERS = ("logreg", "xgboost", "mlp", "forest")


# Predictions for everyone are made this many users at a time (bounds memory at 1M users).
PREDICT_CHUNK = 65536
# Share of each fold's training users held back to stop XGBoost's boosting.
STOPPING_SHARE = 0.15


def make_classifier(
    name: str, seed: int, sparse: bool = False, device: torch.device | None = None
) -> ClassifierMixin:
    """A fresh, unfitted scikit-learn-API classifier of that name, for dense or sparse input.

    (The attacker itself fits `logreg` in torch, batched over folds; this scikit-learn
    pipeline is its reference, with the same objective.)

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
        from xgboost import XGBClassifier

        # 64 histogram bins instead of 256: 3-4x faster on a few thousand users, same AUC.
        # As many threads as torch may use (a sweep gives each worker its share of the
        # cores). Up to 60 rounds at rate 0.3, stopped early on held-back users (see
        # `_fit_predict`): on embeddings of ML-100K, ML-1M and synthetic worlds, as strong
        # as 80 fixed rounds at 0.15 (benchmarks/bench_attacker.py) in a third of the time.
        return XGBClassifier(
            n_estimators=60, max_depth=3, learning_rate=0.3, subsample=0.8, max_bin=64,
            tree_method="hist", n_jobs=torch.get_num_threads(), random_state=seed,
            verbosity=0,
            device="cuda" if _xgboost_on_cuda(device) else "cpu",
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
    # (n_users, n_classes) class probabilities for every user (see `infer_attribute`)
    proba: np.ndarray
    rounds: int | None = None  # XGBoost: boosting rounds chosen by early stopping


def classifier_devices(classifiers: list[str], device: torch.device) -> dict[str, str]:
    """Where each classifier computes when the simulation runs on `device`."""
    where = {}
    for name in classifiers:
        if name == "logreg":
            where[name] = device.type
        elif name == "xgboost":
            where[name] = "cuda" if _xgboost_on_cuda(device) else (
                "cpu" if device.type == "cpu" else "cpu (this xgboost build has no CUDA)")
        else:
            where[name] = "cpu (scikit-learn)"
    return where


def _xgboost_on_cuda(device: torch.device | None) -> bool:
    if device is None or device.type != "cuda":
        return False
    import xgboost

    return bool(xgboost.build_info().get("USE_CUDA"))


def _as_features(features: Features) -> Features:
    """float32 CSR for sparse input, a contiguous float32 array otherwise."""
    if sp.issparse(features):
        return sp.csr_matrix(features, dtype=np.float32)
    return np.ascontiguousarray(features, dtype=np.float32)


def _fold_splits(codes: np.ndarray, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified k-fold over the known users; empty when there are too few to split."""
    n_splits = int(min(folds, np.bincount(codes).max(initial=0)))
    if n_splits < 2 or len(np.unique(codes)) < 2:
        return []
    splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # classes with fewer members than folds
        return list(splitter.split(np.zeros(len(codes)), codes))


def infer_attribute(
    features: Features,
    labels: np.ndarray,
    known: np.ndarray,
    n_classes: int,
    classifiers: list[str],
    folds: int,
    seed: int,
    device: torch.device | None = None,
    refit: bool = False,
    selected: list[AttackOutcome] | None = None,
) -> list[AttackOutcome]:
    """Train each classifier on the known users; predict every user's attribute.

    `features` has one row per user: a dense array or a scipy sparse matrix. Logistic
    regression computes on `device` (CPU when None). By default every classifier is
    cross-validated and predicts with the mean of its fold models (known users get their
    out-of-fold predictions). With `refit`, the cross-validation only estimates and tunes
    (XGBoost's rounds: the median of the folds' early stops), and one fit on all known
    users predicts. With `selected` (an earlier call's outcomes, same classifiers) nothing
    is cross-validated: each classifier is refitted on all known users with the rounds
    chosen then, and keeps that call's cross-validated AUC (so the attacker's choice).
    """
    device = device or torch.device("cpu")
    x = _as_features(features)
    known_rows = np.flatnonzero(known)
    present = np.unique(labels[known])
    codes = np.searchsorted(present, labels[known])  # contiguous 0..K-1 for the classifiers
    splits = _fold_splits(codes, folds, seed) if len(present) > 1 and selected is None else []
    every = [(np.arange(len(codes)), np.arange(0))]
    outcomes = []
    for index, name in enumerate(classifiers):
        proba = np.zeros((x.shape[0], n_classes))
        cv_auc, rounds = float("nan"), None
        if selected is not None:
            cv_auc, rounds = selected[index].cv_auc, selected[index].rounds
        if len(present) == 1:
            proba[:, present[0]] = 1.0
        elif splits:
            fitted, out_of_fold, stops = _cross_fit(name, x, known_rows, codes, splits, seed,
                                                    device)
            cv_auc = macro_ovr_auc(codes, out_of_fold)
            rounds = int(np.median(stops)) if stops else None
            if refit:
                fitted, _, _ = _cross_fit(name, x, known_rows, codes, every, seed, device,
                                          rounds)
            else:
                fitted[known_rows] = out_of_fold
            proba[:, present] = fitted
        else:
            fitted, _, _ = _cross_fit(name, x, known_rows, codes, every, seed, device, rounds)
            proba[:, present] = fitted
        outcomes.append(AttackOutcome(name, cv_auc, proba, rounds))
    return outcomes


def _cross_fit(
    name: str, x: Features, known_rows: np.ndarray, codes: np.ndarray,
    splits: list[tuple[np.ndarray, np.ndarray]], seed: int, device: torch.device,
    rounds: int | None = None,
) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """One model per split: the mean of their probabilities for every user, each known
    user's probabilities from the model that did not train on it (out of fold), and
    XGBoost's early-stopped round counts (fixed `rounds` instead: no early stopping)."""
    n_present = int(codes.max()) + 1
    mean = np.zeros((x.shape[0], n_present))
    out_of_fold = np.zeros((len(codes), n_present))
    if name == "logreg":
        rows = np.zeros((len(splits), len(codes)), dtype=bool)
        for fold, (train, _) in enumerate(splits):
            rows[fold, train] = True
        x_all = as_tensor(x, device)
        model = fit_logistic(_rows_of(x_all, known_rows, x), codes, rows, n_present)
        for start in range(0, x.shape[0], PREDICT_CHUNK):
            chunk = _rows_of(x_all, np.arange(start, min(start + PREDICT_CHUNK, x.shape[0])), x)
            with torch.no_grad():
                mean[start : start + chunk.shape[0]] = (
                    model.predict_proba(chunk).mean(0).double().cpu().numpy())
        with torch.no_grad():
            for fold, (_, held_out) in enumerate(splits):
                chunk = _rows_of(x_all, known_rows[held_out], x)
                out_of_fold[held_out] = model.predict_proba(chunk)[fold].double().cpu().numpy()
        return mean, out_of_fold, []
    x_known = x[known_rows]
    # XGBoost predicts from one matrix of every user, built once for all folds.
    everyone = _xgboost_matrix(x) if name == "xgboost" else x

    def fit_fold(split: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, int | None]:
        train, _ = split
        return _fit_predict(name, seed, device, x_known[train], codes[train], everyone,
                            n_present, rounds, 1 if parallel else None)

    # The folds run side by side, one thread each, where the threads allow: independent fits
    # keep every core busy with no hand-offs between threads, so a core lost to another
    # program slows them in proportion, where threads that wait on each other inside one
    # small fit lose far more. Results are summed in fold order, as one at a time would.
    parallel = device.type == "cpu" and len(splits) > 1 and torch.get_num_threads() > 1
    # Warnings are silenced here, once: `catch_warnings` in each thread would race on the
    # process-wide filters.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if parallel:
            with ThreadPoolExecutor(min(torch.get_num_threads(), len(splits))) as pool, \
                    threadpool_limits(limits=1, user_api="blas"):
                results = list(pool.map(fit_fold, splits))
        else:
            results = [fit_fold(split) for split in splits]
    stops = []
    for (_, held_out), (fold_proba, stop) in zip(splits, results, strict=True):
        mean += fold_proba / len(splits)
        out_of_fold[held_out] = fold_proba[known_rows[held_out]]
        if stop is not None:
            stops.append(stop)
    return mean, out_of_fold, stops


def _rows_of(x_all: torch.Tensor, rows: np.ndarray, x: Features) -> torch.Tensor:
    """Those rows of the feature tensor (sparse tensors are sliced through scipy)."""
    if x_all.layout == torch.sparse_csr:
        return as_tensor(x[rows], x_all.device)
    return x_all[torch.as_tensor(rows, device=x_all.device)]


def _xgboost_matrix(x: Features) -> object:
    import xgboost

    return xgboost.DMatrix(x)


def _fit_predict(
    name: str, seed: int, device: torch.device, x_train: Features, y_train: np.ndarray,
    x: Any, n_classes: int, rounds: int | None = None, threads: int | None = None,
) -> tuple[np.ndarray, int | None]:
    """Fit on (x_train, y_train); probabilities over all n_classes codes for the rows of `x`
    (features, or for XGBoost an `xgboost.DMatrix` of them), and XGBoost's rounds (early
    stopped, or the given `rounds`). `threads` caps XGBoost's (default: PyTorch's count)."""
    present = np.unique(y_train)
    n_rows = x.num_row() if name == "xgboost" else x.shape[0]
    proba = np.zeros((n_rows, n_classes))
    if len(present) == 1:
        proba[:, present[0]] = 1.0
        return proba, None
    # Classifiers need contiguous labels: map the codes seen in training to 0..k-1.
    remap = np.searchsorted(present, y_train)
    model = make_classifier(name, seed, sp.issparse(x), device)
    if name == "xgboost" and threads is not None:
        model.set_params(n_jobs=threads)
    fit_options = {}
    if name == "xgboost" and rounds is not None:
        model.set_params(n_estimators=rounds)
    elif name == "xgboost":
        stop = _stopping_rows(remap, seed)
        if stop.any():
            model.set_params(early_stopping_rounds=5)
            fit_options = {"eval_set": [(x_train[stop], remap[stop])], "verbose": False}
            x_train, remap = x_train[~stop], remap[~stop]
    fitted = model.fit(x_train, remap, **fit_options)  # warnings silenced by the caller
    if name == "xgboost":
        proba[:, present] = _xgboost_proba(fitted, x)
        best = getattr(fitted, "best_iteration", None)
        return proba, (best + 1 if best is not None else fitted.n_estimators)
    proba[:, present] = np.concatenate([
        fitted.predict_proba(x[start : start + PREDICT_CHUNK])
        for start in range(0, x.shape[0], PREDICT_CHUNK)
    ])
    return proba, None


def _xgboost_proba(fitted: ClassifierMixin, matrix: object) -> np.ndarray:
    """Class probabilities from a fitted XGBClassifier's booster (up to its best round when
    it stopped early), as `predict_proba` gives them, without rebuilding the matrix."""
    booster = fitted.get_booster()
    best = getattr(fitted, "best_iteration", None)
    rounds = (0, best + 1) if best is not None else (0, 0)
    raw = booster.predict(matrix, iteration_range=rounds)
    return np.column_stack([1 - raw, raw]) if raw.ndim == 1 else raw


def _stopping_rows(codes: np.ndarray, seed: int) -> np.ndarray:
    """About `STOPPING_SHARE` of each class's rows, never all of one class: the users that
    decide when boosting stops."""
    rng = np.random.default_rng(seed)
    stop = np.zeros(len(codes), dtype=bool)
    for code in np.unique(codes):
        members = rng.permutation(np.flatnonzero(codes == code))
        stop[members[: int(STOPPING_SHARE * len(members))]] = True
    return stop


def pick_best(outcomes: list[AttackOutcome]) -> AttackOutcome:
    """The classifier the attacker trusts most: highest cross-validated AUC."""
    return max(outcomes, key=lambda o: -np.inf if np.isnan(o.cv_auc) else o.cv_auc)
