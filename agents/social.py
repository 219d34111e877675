"""The users' social graph: generation, loading, and per-step operations on it.

A graph is a binary symmetric scipy CSR adjacency without self-loops (n_users x n_users).
networkx is used only to generate graphs; every per-step operation (neighbour means, news
spreading, assortativity) works on the CSR arrays and is vectorised over users.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import networkx as nx
import numpy as np
import scipy.sparse as sp

from simulator.foundations.errors import DataFormatError

GRAPH_KINDS = ("watts_strogatz", "barabasi_albert", "homophilous")

# Columns of permuted values scored at once, bounded so that n_users * columns stays small.
_PERMUTATION_CELLS = 1 << 22

_SEPARATOR = re.compile(r"\s*,\s*|\s+")


class EdgeListError(DataFormatError, ValueError):
    """An edge-list file is malformed; the message names the file and line."""


@dataclass(frozen=True)
class EdgeListFile:
    """An edge list as read: its adjacency, the edge lines read and the self-loops dropped."""

    adjacency: sp.csr_matrix
    edges_read: int
    self_loops_dropped: int


def adjacency_from_edges(sources: np.ndarray, targets: np.ndarray, n_users: int) -> sp.csr_matrix:
    """Binary symmetric CSR adjacency of the given edges, self-loops and duplicates dropped."""
    n_users = _check_n_users(n_users)
    sources = np.asarray(sources, dtype=np.int64).ravel()
    targets = np.asarray(targets, dtype=np.int64).ravel()
    if sources.shape != targets.shape:
        raise ValueError(f"targets: expected {sources.size} entries like sources, "
                         f"got {targets.size}")
    for name, ends in (("sources", sources), ("targets", targets)):
        if ends.size and (ends.min() < 0 or ends.max() >= n_users):
            raise ValueError(f"{name}: expected user indices in [0, {n_users}), "
                             f"got values in [{ends.min()}, {ends.max()}]")
    keep = sources != targets
    rows = np.concatenate([sources[keep], targets[keep]])
    cols = np.concatenate([targets[keep], sources[keep]])
    adjacency = sp.csr_matrix((np.ones(rows.size), (rows, cols)), shape=(n_users, n_users))
    adjacency.sum_duplicates()
    adjacency.sort_indices()
    adjacency.data[:] = 1.0
    return adjacency


def make_graph(
    kind: str,
    n_users: int,
    rng: np.random.Generator,
    *,
    k: int = 10,
    p: float = 0.1,
    m: int = 5,
    attributes: np.ndarray | None = None,
    homophily: float = 0.8,
) -> sp.csr_matrix:
    """Generate a social graph of `kind` (see GRAPH_KINDS) over `n_users` users.

    watts_strogatz: ring of `k` nearest neighbours, each edge rewired with probability `p`.
    barabasi_albert: preferential attachment, `m` edges per new user.
    homophilous: about `k` neighbours per user; each of the n*k/2 drawn edges joins a user
    to one with the same attribute code with probability `homophily`, else to any user.
    """
    n_users = _check_n_users(n_users)
    rng = _check_rng(rng)
    if kind == "watts_strogatz":
        if not _is_int(k) or k <= 0 or k % 2 or k >= n_users:
            raise ValueError(f"k: expected a positive even integer below n_users={n_users}, "
                             f"got {k!r}")
        p = _check_probability("p", p)
        graph = nx.watts_strogatz_graph(n_users, int(k), p, seed=_nx_seed(rng))
    elif kind == "barabasi_albert":
        if not _is_int(m) or m < 1 or m >= n_users:
            raise ValueError(f"m: expected an integer in [1, {n_users}), got {m!r}")
        graph = nx.barabasi_albert_graph(n_users, int(m), seed=_nx_seed(rng))
    elif kind == "homophilous":
        if attributes is None:
            raise ValueError("attributes: required for kind='homophilous' (one integer code "
                             "per user)")
        if not _is_int(k) or k < 1 or k >= n_users:
            raise ValueError(f"k: expected an integer in [1, {n_users}), got {k!r}")
        homophily = _check_probability("homophily", homophily)
        return _homophilous(_check_attributes(attributes, n_users), int(k), homophily, rng)
    else:
        raise ValueError(f"kind: expected one of {', '.join(GRAPH_KINDS)}, got {kind!r}")
    edges = np.array(graph.edges(), dtype=np.int64).reshape(-1, 2)
    return adjacency_from_edges(edges[:, 0], edges[:, 1], n_users)


def read_edge_list(
    path: Path, n_users: int, user_index: dict[int, int] | None = None
) -> EdgeListFile:
    """Read an edge list: one "u v" pair per line, separated by whitespace or a comma.

    '#' starts a comment; blank lines are skipped. Ids are mapped through `user_index`
    (original id -> 0-based index) when given, else taken as 0-based indices. Self-loops
    are dropped and counted; edges are symmetrised and deduplicated.
    """
    path = Path(path)
    n_users = _check_n_users(n_users)
    if user_index is not None:
        bad = [i for i in user_index.values() if not _is_int(i) or not 0 <= i < n_users]
        if bad:
            raise ValueError(f"user_index: expected indices in [0, {n_users}), got {bad[0]!r}")
    sources: list[int] = []
    targets: list[int] = []
    with path.open(encoding="utf-8") as handle:
        for number, raw in enumerate(handle, start=1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            fields = _SEPARATOR.split(line)
            if len(fields) != 2:
                raise EdgeListError(path, number, f"expected two user ids, got {len(fields)} "
                                    f"fields in {line!r}")
            try:
                ids = [int(field) for field in fields]
            except ValueError:
                raise EdgeListError(path, number, f"user ids must be integers, got "
                                    f"{line!r}") from None
            ends = [_index_of(user, user_index, n_users, path, number) for user in ids]
            sources.append(ends[0])
            targets.append(ends[1])
    source_array = np.array(sources, dtype=np.int64)
    target_array = np.array(targets, dtype=np.int64)
    return EdgeListFile(
        adjacency=adjacency_from_edges(source_array, target_array, n_users),
        edges_read=len(sources),
        self_loops_dropped=int(np.count_nonzero(source_array == target_array)),
    )


def load_edge_list(
    path: Path, n_users: int, user_index: dict[int, int] | None = None
) -> sp.csr_matrix:
    """The adjacency of an edge-list file (see read_edge_list for the format)."""
    return read_edge_list(path, n_users, user_index).adjacency


def neighbour_mean(adjacency: sp.csr_matrix, values: np.ndarray) -> np.ndarray:
    """Mean of each user's neighbours' values; users without neighbours keep their own."""
    adjacency = _check_adjacency(adjacency)
    values = _check_values(values, adjacency.shape[0])
    degree = np.asarray(adjacency.sum(axis=1)).ravel()
    totals = adjacency @ values
    has = degree > 0
    out = values.copy()
    out[has] = totals[has] / degree[has]
    return out


def spread(
    adjacency: sp.csr_matrix, informed: np.ndarray, rng: np.random.Generator, p_pass: float
) -> np.ndarray:
    """One step of news spreading: every informed user passes the news to each neighbour
    independently with probability `p_pass`. Returns `informed | newly_informed`.

    One uniform draw is taken per stored (directed) adjacency entry on every call, so the
    stream consumed does not depend on who is informed. For the classic independent
    cascade, where each user tries only once, pass just the users informed last step.
    """
    adjacency = _check_adjacency(adjacency)
    rng = _check_rng(rng)
    p_pass = _check_probability("p_pass", p_pass)
    informed = np.asarray(informed)
    if informed.dtype != np.bool_ or informed.shape != (adjacency.shape[0],):
        raise ValueError(f"informed: expected a boolean mask of shape ({adjacency.shape[0]},), "
                         f"got dtype {informed.dtype} shape {informed.shape}")
    draws = rng.random(adjacency.nnz)
    senders = np.repeat(informed, np.diff(adjacency.indptr))
    passed = senders & (draws < p_pass)
    result = informed.copy()
    result[adjacency.indices[passed]] = True
    return result


def assortativity(adjacency: sp.csr_matrix, values: np.ndarray) -> float:
    """Pearson correlation of `values` at the two ends of every edge, both directions.

    Near 0 when neighbours' values are unrelated, near 1 when neighbours are alike. NaN
    when the graph has no edges or the values do not vary across edge ends.
    """
    adjacency = _check_adjacency(adjacency)
    values = _check_values(values, adjacency.shape[0])
    return float(_edge_correlation(_symmetric(adjacency), values[:, None])[0])


def permutation_pvalue(
    adjacency: sp.csr_matrix,
    values: np.ndarray,
    rng: np.random.Generator,
    n_permutations: int = 200,
) -> float:
    """Permutation test of assortativity: the share of labellings, the observed one
    included, whose assortativity is at least the observed, among the observed and
    `n_permutations` random permutations of `values` over users. NaN when undefined.
    """
    adjacency = _check_adjacency(adjacency)
    values = _check_values(values, adjacency.shape[0])
    rng = _check_rng(rng)
    if not _is_int(n_permutations) or n_permutations < 1:
        raise ValueError(f"n_permutations: expected a positive integer, got {n_permutations!r}")
    weights = _symmetric(adjacency)
    observed = _edge_correlation(weights, values[:, None])[0]
    if np.isnan(observed):
        return float("nan")
    n_users = values.size
    batch = max(1, _PERMUTATION_CELLS // max(n_users, 1))
    at_least = 0
    for start in range(0, int(n_permutations), batch):
        size = min(batch, int(n_permutations) - start)
        shuffled = rng.permuted(np.broadcast_to(values, (size, n_users)), axis=1)
        scores = _edge_correlation(weights, shuffled.T)
        # A tolerance so that a permutation equal in value to the observed counts as a tie.
        at_least += int(np.count_nonzero(scores >= observed - 1e-12))
    return (1 + at_least) / (1 + int(n_permutations))


def _edge_correlation(weights: sp.csr_matrix, columns: np.ndarray) -> np.ndarray:
    """Edge-end Pearson correlation of each column of values, from a symmetric weight
    matrix: both ends share the degree-weighted marginal, so only E[xy] needs the edges."""
    total = weights.sum()
    if total == 0:
        return np.full(columns.shape[1], np.nan)
    degree = np.asarray(weights.sum(axis=1)).ravel()
    mean = degree @ columns / total
    second = degree @ (columns * columns) / total
    variance = second - mean * mean
    cross = np.sum(columns * (weights @ columns), axis=0) / total
    with np.errstate(invalid="ignore", divide="ignore"):
        correlation = (cross - mean * mean) / variance
    # Relative to the second moment: what is left of a constant after rounding is not spread.
    correlation[variance <= 1e-12 * second] = np.nan
    return np.clip(correlation, -1.0, 1.0)


def _symmetric(adjacency: sp.csr_matrix) -> sp.csr_matrix:
    """Weights counting each stored entry in both directions."""
    return (adjacency + adjacency.T).tocsr()


def _homophilous(
    attributes: np.ndarray, k: int, homophily: float, rng: np.random.Generator
) -> sp.csr_matrix:
    n_users = attributes.size
    n_edges = int(round(n_users * k / 2))
    sources = np.arange(n_edges, dtype=np.int64) % n_users
    same = rng.random(n_edges) < homophily
    # Uniform over the other users: draw from n-1 slots and skip the source's own.
    uniform = rng.integers(0, n_users - 1, size=n_edges)
    targets = uniform + (uniform >= sources)

    order = np.argsort(attributes, kind="stable")
    rank = np.empty(n_users, dtype=np.int64)
    rank[order] = np.arange(n_users)
    codes, first, sizes = np.unique(attributes[order], return_index=True, return_counts=True)
    group = np.searchsorted(codes, attributes)
    start, size = first[group], sizes[group]
    peers = size[sources] - 1
    within = rng.integers(0, np.maximum(peers, 1))
    # A user alone in its group has no same-code peer and falls back to the uniform draw.
    chosen = same & (peers > 0)
    src = sources[chosen]
    slot = within[chosen]
    slot = slot + (slot >= rank[src] - start[src])
    targets[chosen] = order[start[src] + slot]
    return adjacency_from_edges(sources, targets, n_users)


def _index_of(
    user: int, user_index: dict[int, int] | None, n_users: int, path: Path, line: int
) -> int:
    if user_index is not None:
        if user not in user_index:
            raise EdgeListError(path, line, f"unknown user {user} (not in user_index)")
        return int(user_index[user])
    if not 0 <= user < n_users:
        raise EdgeListError(path, line, f"unknown user {user} (expected an index in "
                            f"[0, {n_users}))")
    return user


def _check_adjacency(adjacency: sp.csr_matrix) -> sp.csr_matrix:
    if not sp.issparse(adjacency) or adjacency.ndim != 2 \
            or adjacency.shape[0] != adjacency.shape[1]:
        raise ValueError(f"adjacency: expected a square scipy sparse matrix, got "
                         f"{type(adjacency).__name__} of shape {getattr(adjacency, 'shape', None)}")
    return sp.csr_matrix(adjacency)


def _check_values(values: np.ndarray, n_users: int) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.shape != (n_users,):
        raise ValueError(f"values: expected shape ({n_users},), got {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError("values: expected finite numbers")
    return array


def _check_attributes(attributes: np.ndarray, n_users: int) -> np.ndarray:
    array = np.asarray(attributes)
    if array.shape != (n_users,) or not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"attributes: expected {n_users} integer codes, got dtype "
                         f"{array.dtype} shape {array.shape}")
    return array.astype(np.int64)


def _check_n_users(n_users: int) -> int:
    if not _is_int(n_users) or n_users < 1:
        raise ValueError(f"n_users: expected a positive integer, got {n_users!r}")
    return int(n_users)


def _check_probability(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)) \
            or not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{name}: expected a probability in [0, 1], got {value!r}")
    return float(value)


def _check_rng(rng: np.random.Generator) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng: expected a numpy Generator, got {type(rng).__name__}")
    return rng


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _nx_seed(rng: np.random.Generator) -> int:
    return int(rng.integers(0, 2**31 - 1))
