"""L2-regularised logistic regression fitted for several row subsets at once, in torch.

The inference attacker cross-validates its classifiers at every fresh attack; fitting the
k fold models of a logistic regression one by one in scikit-learn costs up to seconds per
attribute (its multinomial L-BFGS on a few thousand users). Written by hand because no
library fits a batch of logistic regressions on shared features, or runs one on a GPU: here
the k fits are one L-BFGS problem on the features' device (their objectives are
independent, so the joint minimum is each fit's minimum).

Each fit b has its own rows (a 0/1 weight per row) and its own feature scaling, learned
on its rows as scikit-learn's pipeline would: standardisation for dense features, max-abs
scaling for sparse ones (which keeps zeros zero). The objective is scikit-learn's
``LogisticRegression(C=1)``: the summed log-loss plus half the squared weights, intercepts
unpenalised; binary labels use one logistic output, more classes the multinomial softmax.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from simulator.attacks.features import Features


@dataclass
class BatchedLogistic:
    """k fitted logistic regressions over the same classes: `scale`d weights and offsets."""

    weights: torch.Tensor  # (d, k * outputs): each fit's weights divided by its scale
    offsets: torch.Tensor  # (k, outputs)
    allowed: torch.Tensor  # (k, classes) bool: the classes each fit saw in training
    n_classes: int

    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        """(k, n, classes) class probabilities of every fit for the rows of `x`."""
        logits = _logits(x, self.weights, self.offsets)
        return _probabilities(logits, self.allowed, self.n_classes)


def as_tensor(features: Features, device: torch.device) -> torch.Tensor:
    """Dense float32 rows, or a sparse CSR tensor, on `device`."""
    if sp.issparse(features):
        csr = sp.csr_matrix(features, dtype=np.float32)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta"
            return torch.sparse_csr_tensor(
                torch.as_tensor(csr.indptr, dtype=torch.int64),
                torch.as_tensor(csr.indices, dtype=torch.int64),
                torch.as_tensor(csr.data), size=csr.shape, device=device,
            )
    return torch.as_tensor(np.ascontiguousarray(features, dtype=np.float32), device=device)


def fit_logistic(
    x: torch.Tensor, labels: np.ndarray, rows: np.ndarray, n_classes: int,
    tolerance: float = 1e-5, max_iter: int = 1000,
) -> BatchedLogistic:
    """Fit one regression per row of `rows` (k x n bool: which rows of `x` each fit uses).

    `labels` are codes 0..n_classes-1 for the n rows of `x`. A class absent from a fit's
    rows gets probability zero from that fit.
    """
    device = x.device
    mask = torch.as_tensor(rows, dtype=torch.float32, device=device)
    y = torch.as_tensor(labels, dtype=torch.int64, device=device)
    onehot = torch.nn.functional.one_hot(y, n_classes).float()
    allowed = (mask @ onehot) > 0  # (k, classes)
    # A fit whose rows hold one class has nothing to learn (it predicts that class); its
    # rows are left out, so its unbounded intercept cannot hold up the other fits.
    mask = mask * (allowed.sum(1, keepdim=True) > 1)
    counts = mask.sum(1).clamp_min(1.0)
    scale, mean = _scaling(x, mask, counts)
    k, d = mask.shape[0], x.shape[1]
    outputs = 1 if n_classes == 2 else n_classes
    # Parameters in the scaled space: the model of fit b is ((x - mean_b) / scale_b) @ W_b + c_b.
    w = torch.zeros(k, d, outputs, device=device, requires_grad=True)
    c = torch.zeros(k, outputs, device=device, requires_grad=True)
    optimiser = torch.optim.LBFGS(
        [w, c], lr=1.0, max_iter=max_iter, tolerance_grad=tolerance, tolerance_change=1e-9,
        history_size=20, line_search_fn="strong_wolfe",
    )
    target = y.float()

    def objective() -> torch.Tensor:
        optimiser.zero_grad()
        weights, offsets = _unscaled(w, c, scale, mean)
        logits = _logits(x, weights, offsets)  # (k, n, outputs)
        if outputs == 1:
            loss = torch.nn.functional.binary_cross_entropy_with_logits(
                logits[..., 0], target.expand(k, -1), reduction="none")
        else:
            logits = logits.masked_fill(~allowed[:, None, :], -torch.inf)
            loss = -torch.log_softmax(logits, 2).gather(2, y.expand(k, -1)[..., None])[..., 0]
        # Each fit's objective divided by its row count (as scikit-learn scales it), so one
        # gradient tolerance means the same for fits of every size.
        # Rows outside a fit may be of a class the fit never saw (infinite loss): drop them.
        loss = torch.where(mask > 0, loss, 0.0)
        total = (loss.sum(1) + 0.5 * (w**2).sum((1, 2))) / counts
        total = total.sum()
        total.backward()
        return total

    optimiser.step(objective)
    with torch.no_grad():
        weights, offsets = _unscaled(w, c, scale, mean)
    return BatchedLogistic(weights.detach(), offsets.detach(), allowed, n_classes)


def _scaling(
    x: torch.Tensor, mask: torch.Tensor, counts: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-fit column scale and centre: standardisation (dense) or max-abs (sparse)."""
    k, d = mask.shape[0], x.shape[1]
    if x.layout == torch.sparse_csr:
        coo = x.to_sparse_coo().coalesce()
        row, col = coo.indices()
        magnitude = coo.values().abs()
        scale = torch.zeros(k, d, device=x.device)
        # Max |x| over each fit's rows: rows outside the fit contribute zero.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "index_reduce is in beta"
            scale = scale.index_reduce_(1, col, mask[:, row] * magnitude, "amax")
        mean = torch.zeros(k, d, device=x.device)
    else:
        mean = (mask @ x) / counts[:, None]
        variance = (mask @ x**2) / counts[:, None] - mean**2
        scale = variance.clamp_min(0).sqrt()
    return torch.where(scale > 0, scale, torch.ones_like(scale)), mean


def _unscaled(
    w: torch.Tensor, c: torch.Tensor, scale: torch.Tensor, mean: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The same models on raw features: one (d, k * outputs) matrix and (k, outputs) offsets,
    so every fit's logits come from a single (dense or sparse) product with `x`."""
    k, d, outputs = w.shape
    raw = w / scale[..., None]
    offsets = c - torch.einsum("kd,kdo->ko", mean, raw)
    return raw.permute(1, 0, 2).reshape(d, k * outputs), offsets


def _logits(x: torch.Tensor, weights: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    k, outputs = offsets.shape
    product = x @ weights  # (n, k * outputs)
    return product.reshape(-1, k, outputs).permute(1, 0, 2) + offsets[:, None, :]


def _probabilities(logits: torch.Tensor, allowed: torch.Tensor, n_classes: int) -> torch.Tensor:
    if logits.shape[2] == 1:
        positive = torch.sigmoid(logits[..., 0])
        # A fit that saw one class only predicts that class.
        positive = torch.where(allowed[:, 1:], positive, 0.0)
        positive = torch.where(allowed[:, :1], positive, 1.0)
        return torch.stack([1 - positive, positive], 2)
    return torch.softmax(logits.masked_fill(~allowed[:, None, :], -torch.inf), 2)
