"""Item side information for the latent-factor models: content features f_i mapped into the
factor space by a learned matrix W, so the item vector that scores use is v_i = q_i + f_i W."""

from __future__ import annotations

import numpy as np
import torch


class ItemFeatures:
    """Mixin of `FactorModel`: the features, W, and the item vectors v_i they give.

    The host provides `table` (users first, then items), `n_users`, `n_items`, `factors`
    and `device`, and calls `_reset_feature_weights()` when it draws fresh parameters.
    """

    table: torch.Tensor
    n_users: int
    n_items: int
    factors: int
    device: torch.device
    _features: torch.Tensor | None = None  # (n_items, f)
    _feature_weights: torch.Tensor | None = None  # W, (f, factors)

    @property
    def _items(self) -> torch.Tensor:
        return self.table[self.n_users :]

    def _reset_feature_weights(self) -> None:
        """W back to zero (cold starts; draws nothing from any generator)."""
        if self._features is not None:
            self._feature_weights = self._zero_weights(self._features.shape[1])

    def _zero_weights(self, n_features: int) -> torch.Tensor:
        return torch.zeros(n_features, self.factors, device=self.device)

    def set_item_features(self, features: np.ndarray | None) -> None:
        """Use content features (shape (n_items, f), finite) from now on: scores and
        `item_embeddings()` use v_i = q_i + f_i W at once, and fits learn W as well.

        W starts at zero (so setting features leaves the scores unchanged) and is kept when
        new features of the same width replace old ones; a different width starts a new W.
        Cold starts reset W to zero, warm starts keep it. None removes the features and W
        (items back to plain q_i)."""
        if features is None:
            self._features = None
            self._feature_weights = None
            return
        array = np.asarray(features)
        if (
            array.ndim != 2
            or array.shape[0] != self.n_items
            or array.shape[1] < 1
            or not np.issubdtype(array.dtype, np.number)
            or np.iscomplexobj(array)
        ):
            raise ValueError(
                f"item features must be a real array of shape (n_items={self.n_items}, f) with "
                f"f >= 1, got shape {array.shape} and dtype {array.dtype}"
            )
        with np.errstate(over="ignore"):  # too-large values become inf and are rejected below
            values = array.astype(np.float32)
        if not np.isfinite(values).all():
            raise ValueError("item features must be finite (also as float32)")
        width = values.shape[1]
        if self._feature_weights is None or self._feature_weights.shape[0] != width:
            self._feature_weights = self._zero_weights(width)
        self._features = torch.as_tensor(values, device=self.device)

    def item_features(self) -> np.ndarray | None:
        """The item features in use, shape (n_items, f), or None."""
        if self._features is None:
            return None
        return self._features.cpu().numpy().astype(np.float32, copy=True)

    def item_feature_weights(self) -> np.ndarray | None:
        """W, shape (f, factors), mapping features into the factor space; None without
        features."""
        if self._feature_weights is None:
            return None
        return self._feature_weights.cpu().numpy().astype(np.float32, copy=True)

    def _item_vectors(self) -> torch.Tensor:
        """v_i for every item, (n_items, factors): q_i, plus f_i W with features."""
        if self._features is None:
            return self._items
        assert self._feature_weights is not None
        return torch.addmm(self._items, self._features, self._feature_weights)

    def _item_rows(self, items: torch.Tensor) -> torch.Tensor:
        """v_i of the given items (item indices, not table rows)."""
        rows = self._items.index_select(0, items)
        if self._features is None:
            return rows
        assert self._feature_weights is not None
        return rows.addmm_(self._features.index_select(0, items), self._feature_weights)

    def _largest_row_norm(self) -> float:
        """The largest norm of a table row, of an item vector v_i and of a row of W."""
        norm = torch.linalg.vector_norm(self.table, dim=1).max()
        if self._feature_weights is not None:
            norms = [
                norm,
                torch.linalg.vector_norm(self._item_vectors(), dim=1).max(),
                torch.linalg.vector_norm(self._feature_weights, dim=1).max(),
            ]
            norm = torch.stack(norms).max()
        return float(norm)
