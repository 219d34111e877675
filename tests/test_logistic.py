"""The attacker's batched torch logistic regression fits what scikit-learn fits."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MaxAbsScaler, StandardScaler

from simulator.attacks.logistic import as_tensor, fit_logistic


def _data(n_classes: int, sparse: bool, seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_classes, size=600)
    if sparse:
        p = np.full((600, 40), 0.1)
        p[:, :10] += 0.3 * (labels[:, None] % 2)
        x = sp.csr_matrix((rng.random((600, 40)) < p) * rng.integers(1, 6, (600, 40)),
                          dtype=np.float32)
    else:
        x = rng.normal(size=(600, 12)).astype(np.float32) * rng.uniform(0.1, 5, 12)
        x[:, 0] += labels
        x[:, 1] -= 0.5 * labels
    return x, labels


@pytest.mark.parametrize("n_classes", [2, 5])
@pytest.mark.parametrize("sparse", [False, True])
def test_each_fit_matches_scikit_learn_on_its_rows(n_classes: int, sparse: bool) -> None:
    x, labels = _data(n_classes, sparse)
    rng = np.random.default_rng(1)
    rows = np.stack([rng.random(600) < share for share in (0.5, 0.8, 1.0)])
    model = fit_logistic(as_tensor(x, torch.device("cpu")), labels, rows, n_classes)
    proba = model.predict_proba(as_tensor(x, torch.device("cpu"))).numpy()
    assert proba.shape == (3, 600, n_classes)
    for fit, chosen in enumerate(rows):
        scaler = MaxAbsScaler() if sparse else StandardScaler()
        reference = make_pipeline(scaler, LogisticRegression(C=1.0, max_iter=5000, tol=1e-8))
        expected = reference.fit(x[chosen], labels[chosen]).predict_proba(x)
        np.testing.assert_allclose(proba[fit], expected, atol=2e-3)


def test_a_class_missing_from_a_fit_gets_probability_zero() -> None:
    x, labels = _data(4, sparse=False)
    rows = np.ones((2, 600), dtype=bool)
    rows[0, labels == 3] = False
    model = fit_logistic(as_tensor(x, torch.device("cpu")), labels, rows, 4)
    proba = model.predict_proba(as_tensor(x, torch.device("cpu"))).numpy()
    assert np.all(proba[0, :, 3] == 0)
    assert np.all(proba[1, :, 3] > 0)
    np.testing.assert_allclose(proba.sum(2), 1.0, atol=1e-5)


def test_a_binary_fit_of_one_class_predicts_that_class() -> None:
    x, labels = _data(2, sparse=False)
    rows = np.stack([labels == 1, np.ones(600, dtype=bool)])
    model = fit_logistic(as_tensor(x, torch.device("cpu")), labels, rows, 2)
    proba = model.predict_proba(as_tensor(x, torch.device("cpu"))).numpy()
    assert np.all(proba[0, :, 1] == 1)
    assert 0.3 < proba[1, :, 1].mean() < 0.7
