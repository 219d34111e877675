"""White-box access to each MetaMF item's own parameters (the `item_parameters` capability).

In MetaMF an item has no free embedding: user u's row for item i is e_ui = l_ui R(u) with
l_ui = W_L[i] h_e(u) + b_L[i], and the only parameters that belong to item i alone are its m
weight rows and m biases of the L generator, stored as row i of `MetaMFNet.item_rows`
(width rank * hidden + rank: the weights row-major, then the biases). Everything else is
shared by all items. An attacker who owns item i can therefore change exactly that row;
`score_item_parameters` gives the predictions as a differentiable function of it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from simulator.recommenders.metamf import MetaMFNet


class MetaMFItemParameters:
    """Mixin for MetaMF models (which hold their network as `self.net`): read, write and
    score from each item's own row of the L generator."""

    net: MetaMFNet
    n_items: int

    def _item_index(self, items: np.ndarray) -> torch.Tensor:
        """`items` as a checked int64 index on the table's device (1-D, distinct, in range)."""
        arr = np.asarray(items)
        if arr.ndim != 1 or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
            raise ValueError(f"items must be a 1-D array of item indices, got {arr!r}")
        if arr.size and (arr.min() < 0 or arr.max() >= self.n_items):
            raise ValueError(f"items must lie in [0, {self.n_items}), got {arr!r}")
        if np.unique(arr).size != arr.size:
            raise ValueError("items must not repeat an item")
        return torch.as_tensor(arr.astype(np.int64), device=self.net.item_rows.device)

    def item_parameters(self, items: np.ndarray) -> np.ndarray:
        """Copies of the items' own parameter rows, (len(items), rank * hidden + rank)."""
        rows = self.net.item_rows.detach().index_select(0, self._item_index(items))
        return rows.cpu().numpy().astype(np.float32, copy=True)

    @torch.no_grad()
    def set_item_parameters(self, items: np.ndarray, rows: np.ndarray) -> None:
        """Overwrite the items' own parameter rows; every other parameter is kept."""
        index = self._item_index(items)
        table = self.net.item_rows
        array = np.asarray(rows, dtype=np.float32)
        shape = (len(index), table.shape[1])
        if array.shape != shape:
            raise ValueError(f"item parameter rows must have shape {shape}, got {array.shape}")
        if not np.isfinite(array).all():
            raise ValueError("item parameter rows must be finite")
        table.index_copy_(0, index, torch.as_tensor(array, device=table.device))

    def score_item_parameters(self, users: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """Unclipped predictions of `users` for k items whose own rows are `rows` (k, width),
        shape (len(users), k), differentiable with respect to `rows`.

        Computed as `MetaMFNet.score_all`: each user is generated once, then
        L = h_e W_L^T + b_L from `rows`, E = L R(u) and the user's RP layers. With the items'
        current rows it equals the model's own predictions before clipping.
        """
        net = self.net
        table = net.item_rows
        users = torch.as_tensor(users, dtype=torch.int64, device=table.device)
        rows = rows.to(device=table.device, dtype=table.dtype)
        if rows.ndim != 2 or rows.shape[1] != table.shape[1]:
            raise ValueError(
                f"rows must have shape (k, {table.shape[1]}), got {tuple(rows.shape)}"
            )
        g = net.generate(users)
        cut = net.rank * net.hidden
        weights, biases = rows[:, :cut], rows[:, cut:]  # (k, rank * hidden), (k, rank)
        flat = g.h_e @ weights.reshape(-1, net.hidden).t() + biases.reshape(-1)
        left = flat.view(len(users), len(rows), net.rank)  # L(u) for the k items
        e = torch.bmm(left, g.right)  # (U, k, item_dim)
        z = F.relu(torch.bmm(e, g.w1) + g.b1.unsqueeze(1))
        return torch.bmm(z, g.w2).squeeze(2) + g.b2
