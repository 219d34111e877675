"""Held-out probes: how well fresh classifiers trained on some users' embeddings predict an
attribute of the others (cross-fitted ROC-AUC), the way an attacker who knows half of the
users would.

Unlearning uses them to decide when to stop editing. Matching class statistics exactly on
the whole sample over-shoots: the edit then encodes the sample's own noise, the half an
attacker knows becomes the mirror image of the half it does not, and a fresh classifier
scores *below* chance (AUC 0.40 on ML-100K) - which an attacker can flip. The probes see
that, and the edit keeps the point where held-out users are at chance.

A probe is a classifier family: `logreg` and `mlp` are small torch models (a logistic
regression and a one-hidden-layer MLP on standardised embeddings with an L2 penalty), all
splits of both trained together in one batched full-batch fit (scikit-learn's MLP takes
seconds per fit, and an edit asks for dozens of checks); `xgboost` and `forest` are the
inference attacker's own classifiers (`simulator.attacks.inference.make_classifier`), so
the edit can be checked against the classifier that will attack it.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score

PROBE_STEPS = 150
PROBE_LR = 0.05
PROBE_HIDDEN = 64
PROBE_WEIGHT_DECAY = 1e-3
TORCH_FAMILIES = ("logreg", "mlp")
FAMILIES = ("logreg", "mlp", "xgboost", "forest")


def stratified_halves(codes: np.ndarray, repeats: int, seed: int) -> list[np.ndarray]:
    """Training masks: per repeat, a random stratified half of the users and its complement."""
    rng = np.random.default_rng(seed)
    masks = []
    for _ in range(repeats):
        half = np.zeros(len(codes), dtype=bool)
        for c in np.unique(codes):
            members = rng.permutation(np.flatnonzero(codes == c))
            half[members[: len(members) // 2]] = True
        masks += [half, ~half]
    return masks


def held_out_aucs(
    embeddings: torch.Tensor,
    codes: np.ndarray,
    seed: int,
    families: tuple[str, ...] = TORCH_FAMILIES,
    repeats: int = 2,
) -> dict[str, float]:
    """Each family's mean cross-fitted ROC-AUC (one-vs-rest macro for several classes): fresh
    probes each learn from a random stratified half of the users and predict the other half.

    `codes` are the attribute codes of the rows of `embeddings`. 0.5 is chance; below 0.5
    the held-out half is predicted inverted (a mirror image). NaN with fewer than 2 classes.
    """
    unknown = sorted(set(families) - set(FAMILIES))
    if unknown:
        raise ValueError(f"unknown probe families {unknown}; expected some of {FAMILIES}")
    x = embeddings.detach().float().cpu()
    y = np.asarray(codes, dtype=np.int64)
    classes = np.unique(y)
    if len(classes) < 2:
        return {family: math.nan for family in families}
    y = np.searchsorted(classes, y)
    masks = stratified_halves(y, repeats, seed)
    # The probes are tiny: one thread avoids thread hand-offs that cost more than the work.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        probas = _torch_probas([f for f in families if f in TORCH_FAMILIES], x, y, masks,
                               len(classes), seed)
    finally:
        torch.set_num_threads(threads)
    for family in families:
        if family not in TORCH_FAMILIES:
            probas[family] = _attacker_probas(family, x.numpy(), y, masks, seed)
    result = {}
    for family in families:
        aucs = [_macro_auc(y[~train], proba) for train, proba in zip(masks, probas[family],
                                                                      strict=True)]
        result[family] = float(np.nanmean(aucs)) if np.any(np.isfinite(aucs)) else math.nan
    return result


def _torch_probas(
    families: list[str], x: torch.Tensor, y: np.ndarray, masks: list[np.ndarray],
    n_classes: int, seed: int,
) -> dict[str, list[np.ndarray]]:
    """Held-out class probabilities of the torch families, one per training mask: every
    (family, split) probe is trained at once, each on its own standardised training rows
    (its loss term depends on its own parameters only, and Adam is element-wise, so this is
    the same as training them one after another)."""
    if not families:
        return {}
    # Each probe's training rows, padded to the longest split with zero-weight rows.
    width = max(int(mask.sum()) for mask in masks)
    rows = torch.zeros((len(masks), width), dtype=torch.long)
    weight = torch.zeros((len(masks), width))
    for s, mask in enumerate(masks):
        members = torch.as_tensor(np.flatnonzero(mask))
        rows[s, : len(members)], weight[s, : len(members)] = members, 1.0
    count = weight.sum(1, keepdim=True)
    train_x = x[rows]  # (S, width, d)
    mean = (weight.unsqueeze(2) * train_x).sum(1, keepdim=True) / count.unsqueeze(2)
    var = (weight.unsqueeze(2) * (train_x - mean) ** 2).sum(1) / (count - 1)
    std = var.sqrt().clamp_min(1e-8).unsqueeze(1)  # (S, 1, d)
    z = (train_x - mean) / std
    targets = torch.as_tensor(y)[rows]
    generator = torch.Generator().manual_seed(seed)
    layers = {family: _stacked_layers(family, len(masks), x.shape[1], n_classes, generator)
              for family in families}
    optimiser = torch.optim.Adam([p for ps in layers.values() for p in ps], lr=PROBE_LR,
                                 weight_decay=PROBE_WEIGHT_DECAY)
    with torch.enable_grad():
        for _ in range(PROBE_STEPS):
            optimiser.zero_grad(set_to_none=True)
            loss = torch.zeros(())
            for params in layers.values():
                logits = _forward(params, z)  # (S, width, K)
                each = F.cross_entropy(logits.transpose(1, 2), targets, reduction="none")
                loss = loss + ((each * weight).sum(1) / count.squeeze(1)).sum()
            loss.backward()
            optimiser.step()
    with torch.no_grad():
        out: dict[str, list[np.ndarray]] = {family: [] for family in families}
        for s, mask in enumerate(masks):
            test = (x[torch.as_tensor(~mask)] - mean[s]) / std[s]
            for family, params in layers.items():
                one = [p[s] for p in params]
                out[family].append(torch.softmax(_forward(one, test), -1).double().numpy())
    return out


def _stacked_layers(
    family: str, splits: int, d: int, n_classes: int, generator: torch.Generator,
) -> list[torch.Tensor]:
    """Weights and biases of `splits` probes of one family, initialised as torch.nn.Linear
    does (uniform in +-1/sqrt(fan_in))."""
    sizes = [(d, n_classes)] if family == "logreg" else [(d, PROBE_HIDDEN),
                                                         (PROBE_HIDDEN, n_classes)]
    params = []
    for fan_in, fan_out in sizes:
        bound = 1.0 / math.sqrt(fan_in)
        for shape in ((splits, fan_in, fan_out), (splits, 1, fan_out)):
            weights = (torch.rand(shape, generator=generator) * 2 - 1) * bound
            params.append(weights.requires_grad_(True))
    return params


def _forward(params: list[torch.Tensor], z: torch.Tensor) -> torch.Tensor:
    """Logits of stacked linear layers with ReLU between them."""
    h = z
    for layer in range(0, len(params), 2):
        if layer:
            h = torch.relu(h)
        h = (torch.baddbmm if h.dim() == 3 else torch.addmm)(params[layer + 1], h, params[layer])
    return h


def _attacker_probas(
    family: str, x: np.ndarray, y: np.ndarray, masks: list[np.ndarray], seed: int,
) -> list[np.ndarray]:
    """Held-out class probabilities of the inference attacker's own classifier."""
    from simulator.attacks.inference import make_classifier

    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for train in masks:
            model = make_classifier(family, seed).fit(x[train], y[train])
            proba = np.zeros((int((~train).sum()), int(y.max()) + 1))
            proba[:, model.classes_] = model.predict_proba(x[~train])
            out.append(proba)
    return out


def _macro_auc(y: np.ndarray, proba: np.ndarray) -> float:
    """Binary AUC, or the mean one-vs-rest AUC over classes with members on both sides."""
    if proba.shape[1] == 2:
        return float(roc_auc_score(y, proba[:, 1])) if len(np.unique(y)) == 2 else math.nan
    aucs = [roc_auc_score(y == c, proba[:, c]) for c in range(proba.shape[1])
            if 0 < np.sum(y == c) < len(y)]
    return float(np.mean(aucs)) if aucs else math.nan
