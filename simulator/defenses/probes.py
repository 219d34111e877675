"""Held-out probes: how well fresh classifiers trained on some users' embeddings predict an
attribute of the others (cross-fitted ROC-AUC), the way an attacker who knows half of the
users would.

Unlearning uses them to decide when to stop editing. Matching class statistics exactly on
the whole sample over-shoots: the edit then encodes the sample's own noise, the half an
attacker knows becomes the mirror image of the half it does not, and a fresh classifier
scores *below* chance (AUC 0.40 on ML-100K) - which an attacker can flip. The probes see
that, and the edit keeps the point where held-out users are at chance.

The probes are small torch models trained full-batch (scikit-learn's MLP would take seconds
per fit, and the edit asks for a few dozen fits): a logistic regression and a one-hidden-
layer MLP, both on standardised embeddings with an L2 penalty.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score
from torch import nn

PROBE_STEPS = 150
PROBE_LR = 0.05
PROBE_HIDDEN = 64
PROBE_WEIGHT_DECAY = 1e-3


def _probe(kind: str, d: int, n_classes: int, generator: torch.Generator) -> nn.Module:
    torch_seed = int(torch.randint(1 << 31, (1,), generator=generator))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(torch_seed)
        if kind == "logreg":
            return nn.Linear(d, n_classes)
        return nn.Sequential(nn.Linear(d, PROBE_HIDDEN), nn.ReLU(),
                             nn.Linear(PROBE_HIDDEN, n_classes))


def _fit_predict(
    kind: str, x_train: torch.Tensor, y_train: torch.Tensor, x_test: torch.Tensor,
    n_classes: int, generator: torch.Generator,
) -> np.ndarray:
    """Class probabilities for x_test from a probe trained on (x_train, y_train)."""
    mean, std = x_train.mean(0), x_train.std(0).clamp_min(1e-8)
    net = _probe(kind, x_train.shape[1], n_classes, generator)
    optimiser = torch.optim.Adam(net.parameters(), lr=PROBE_LR, weight_decay=PROBE_WEIGHT_DECAY)
    train = (x_train - mean) / std
    with torch.enable_grad():
        for _ in range(PROBE_STEPS):
            optimiser.zero_grad(set_to_none=True)
            F.cross_entropy(net(train), y_train).backward()
            optimiser.step()
    with torch.no_grad():
        return torch.softmax(net((x_test - mean) / std), 1).double().numpy()


def held_out_auc(
    embeddings: torch.Tensor,
    codes: np.ndarray,
    seed: int,
    kinds: tuple[str, ...] = ("logreg", "mlp"),
    repeats: int = 2,
) -> float:
    """Mean cross-fitted ROC-AUC (one-vs-rest macro for several classes) of fresh probes
    that each learn from a random stratified half of the users and predict the other half.

    `codes` are the attribute codes (0..K-1) of the rows of `embeddings` (CPU tensor). 0.5 is
    chance; below 0.5 the held-out half is predicted inverted (a mirror image).
    """
    # The probes are tiny: one thread avoids thread hand-offs that cost more than the work.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _held_out_auc(embeddings, codes, seed, kinds, repeats)
    finally:
        torch.set_num_threads(threads)


def _held_out_auc(
    embeddings: torch.Tensor, codes: np.ndarray, seed: int, kinds: tuple[str, ...],
    repeats: int,
) -> float:
    x = embeddings.detach().float().cpu()
    y = np.asarray(codes, dtype=np.int64)
    classes = np.unique(y)
    if len(classes) < 2:
        return float("nan")
    y = np.searchsorted(classes, y)
    n_classes = len(classes)
    rng = np.random.default_rng(seed)
    generator = torch.Generator().manual_seed(seed)
    scores = []
    for _ in range(repeats):
        half = np.zeros(len(y), dtype=bool)
        for c in range(n_classes):
            members = rng.permutation(np.flatnonzero(y == c))
            half[members[: len(members) // 2]] = True
        for train in (half, ~half):
            test = ~train
            y_train = torch.as_tensor(y[train])
            for kind in kinds:
                proba = _fit_predict(kind, x[train], y_train, x[test], n_classes, generator)
                scores.append(_macro_auc(y[test], proba))
    return float(np.nanmean(scores)) if np.any(np.isfinite(scores)) else float("nan")


def _macro_auc(y: np.ndarray, proba: np.ndarray) -> float:
    """Binary AUC, or the mean one-vs-rest AUC over classes with members on both sides."""
    if proba.shape[1] == 2:
        return float(roc_auc_score(y, proba[:, 1])) if len(np.unique(y)) == 2 else float("nan")
    aucs = [roc_auc_score(y == c, proba[:, c]) for c in range(proba.shape[1])
            if 0 < np.sum(y == c) < len(y)]
    return float(np.mean(aucs)) if aucs else float("nan")
