"""The user-item graph of LightGCN: its symmetric-normalised adjacency and the propagation
through it.

Written by hand because torch's sparse autograd keeps a transposed copy of the matrix per call
and PyG or DGL would be a large dependency for one sparse product: the adjacency is symmetric,
so the backward pass of A @ X is A @ G with the same compressed-row matrix.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch

from simulator.world.base import Interactions


def normalised_adjacency(
    data: Interactions, n_users: int, n_items: int, device: torch.device
) -> torch.Tensor:
    """D^-1/2 A D^-1/2 of the bipartite graph over users (rows 0..n_users-1) then items, as a
    compressed-row float32 tensor. Every distinct (user, item) pair is one edge of weight 1,
    whatever its rating and however often it occurs; isolated nodes have empty rows."""
    keys = np.unique(np.asarray(data.user, np.int64) * n_items + np.asarray(data.item, np.int64))
    user, item = keys // n_items, keys % n_items + n_users
    n = n_users + n_items
    degree = np.bincount(np.concatenate([user, item]), minlength=n).astype(np.float64)
    scale = np.zeros(n)
    np.divide(1.0, np.sqrt(degree), out=scale, where=degree > 0)
    rows = np.concatenate([user, item])
    cols = np.concatenate([item, user])
    weights = (scale[rows] * scale[cols]).astype(np.float32)
    order = np.lexsort((cols, rows))
    rows, cols, weights = rows[order], cols[order], weights[order]
    crow = np.zeros(n + 1, np.int64)
    np.cumsum(np.bincount(rows, minlength=n), out=crow[1:])
    with warnings.catch_warnings():  # "sparse CSR support is in beta": products are all we use
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(
            torch.from_numpy(crow), torch.from_numpy(cols), torch.from_numpy(weights),
            size=(n, n), device=device, check_invariants=False,
        )


class _SymmetricProduct(torch.autograd.Function):
    """A @ X for a symmetric sparse A: the gradient of X is A @ G."""

    @staticmethod
    def forward(ctx: Any, adjacency: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        ctx.adjacency = adjacency
        return adjacency @ x

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[None, torch.Tensor]:
        return None, ctx.adjacency @ grad


def propagate(adjacency: torch.Tensor, ego: torch.Tensor, layers: int) -> torch.Tensor:
    """The mean of E_0 = ego and E_k = A E_(k-1) for k = 1..layers (LightGCN's final
    embeddings), differentiable in `ego`."""
    total = ego
    layer = ego
    for _ in range(layers):
        layer = _SymmetricProduct.apply(adjacency, layer)
        total = total + layer
    return total / (layers + 1)
