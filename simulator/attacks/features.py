"""What an attribute-inference attacker sees of each user, one builder per threat model.

- ``embedding``: the platform's user vectors (dense, users x d), a platform-side threat;
- ``recommendations``: each user's top-k list as the platform would show it, i.e. ranked
  over the items the user has not disclosed (sparse multi-hot, users x items);
- ``ratings``: the ratings each user disclosed to the platform, BlurMe-style (sparse rating
  values, users x items; users who disclosed nothing have an empty row).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from simulator.recommenders.base import Recommender
from simulator.world.base import Interactions

THREATS = ("embedding", "recommendations", "ratings")

Features = np.ndarray | sp.csr_matrix


def embedding_features(recommender: Recommender) -> np.ndarray:
    """The user representations of the trained model, (n_users, d) float32."""
    return np.ascontiguousarray(recommender.user_embeddings(), dtype=np.float32)


def _user_item_matrix(
    table: Interactions, values: np.ndarray, n_users: int, n_items: int
) -> sp.csr_matrix:
    """A CSR users x items matrix; a (user, item) pair listed twice keeps its latest value."""
    key = table.user.astype(np.int64) * n_items + table.item
    # np.unique keeps the first occurrence, so look from the end to keep the latest.
    _, last = np.unique(key[::-1], return_index=True)
    keep = len(key) - 1 - last
    matrix = sp.csr_matrix(
        (values[keep].astype(np.float32), (table.user[keep], table.item[keep])),
        shape=(n_users, n_items),
    )
    matrix.sort_indices()
    return matrix


def rating_features(disclosed: Interactions, n_users: int, n_items: int) -> sp.csr_matrix:
    """The disclosed rating values as a sparse users x items matrix (0 = not disclosed)."""
    return _user_item_matrix(disclosed, disclosed.rating, n_users, n_items)


def recommendation_features(
    recommender: Recommender, disclosed: Interactions, k: int, chunk: int = 1024
) -> sp.csr_matrix:
    """Each user's top-k items among those it has not disclosed, as a multi-hot CSR matrix.

    A user with fewer than k undisclosed items gets all of them.
    """
    n_users, n_items = recommender.n_users, recommender.n_items
    seen = _user_item_matrix(disclosed, np.ones(len(disclosed)), n_users, n_items)
    k = min(k, n_items)
    rows, cols = [], []
    for start in range(0, n_users, chunk):
        stop = min(start + chunk, n_users)
        block = seen[start:stop].tocoo()
        users = torch.arange(start, stop, device=recommender.device)
        with torch.no_grad():
            scores = recommender.score(users).float()
            scores[torch.as_tensor(block.row, dtype=torch.int64, device=scores.device),
                   torch.as_tensor(block.col, dtype=torch.int64, device=scores.device)] = -torch.inf
            values, top = torch.topk(scores, k, dim=1)
        shown = torch.isfinite(values).cpu().numpy()
        rows.append(np.repeat(np.arange(start, stop), k)[shown.ravel()])
        cols.append(top.cpu().numpy()[shown])
    row, col = np.concatenate(rows), np.concatenate(cols)
    matrix = sp.csr_matrix(
        (np.ones(len(row), dtype=np.float32), (row, col)), shape=(n_users, n_items)
    )
    matrix.sort_indices()
    return matrix


def build_features(
    threat: str, recommender: Recommender, disclosed: Interactions, top_k: int
) -> Features:
    """The attacker's view of every user under `threat` (one of THREATS)."""
    if threat == "embedding":
        return embedding_features(recommender)
    if threat == "recommendations":
        return recommendation_features(recommender, disclosed, top_k)
    if threat == "ratings":
        return rating_features(disclosed, recommender.n_users, recommender.n_items)
    raise ValueError(f"unknown threat model '{threat}'; choose one of {list(THREATS)}")
