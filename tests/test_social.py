"""The social graph: generators, edge-list loading, neighbour means, spreading, assortativity."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from agents.social import (
    EdgeListError,
    adjacency_from_edges,
    assortativity,
    load_edge_list,
    make_graph,
    neighbour_mean,
    permutation_pvalue,
    read_edge_list,
    spread,
)


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _assert_simple_graph(adjacency: sp.csr_matrix, n_users: int) -> None:
    assert isinstance(adjacency, sp.csr_matrix)
    assert adjacency.shape == (n_users, n_users)
    assert np.all(adjacency.data == 1.0)
    assert (adjacency != adjacency.T).nnz == 0
    assert np.all(adjacency.diagonal() == 0)


def _degrees(adjacency: sp.csr_matrix) -> np.ndarray:
    return np.diff(adjacency.indptr)


def _path_graph() -> sp.csr_matrix:
    # 0 - 1 - 2 - 3, and 4 alone.
    return adjacency_from_edges(np.array([0, 1, 2]), np.array([1, 2, 3]), 5)


# --- generators -------------------------------------------------------------------------

def test_watts_strogatz_without_rewiring_is_a_k_regular_ring() -> None:
    adjacency = make_graph("watts_strogatz", 200, _rng(), k=6, p=0.0)
    _assert_simple_graph(adjacency, 200)
    assert np.all(_degrees(adjacency) == 6)
    assert adjacency[0, 1] == 1 and adjacency[0, 3] == 1 and adjacency[0, 199] == 1
    assert adjacency[0, 4] == 0


def test_watts_strogatz_with_rewiring_keeps_the_edge_count() -> None:
    adjacency = make_graph("watts_strogatz", 500, _rng(), k=10, p=0.3)
    _assert_simple_graph(adjacency, 500)
    assert adjacency.nnz == 500 * 10
    assert not np.all(_degrees(adjacency) == 10)


def test_barabasi_albert_has_m_times_n_minus_m_edges_and_a_heavy_tail() -> None:
    n, m = 1000, 3
    adjacency = make_graph("barabasi_albert", n, _rng(), m=m)
    _assert_simple_graph(adjacency, n)
    degrees = _degrees(adjacency)
    assert adjacency.nnz // 2 == m * (n - m)
    assert degrees.min() >= m
    assert degrees.max() > 10 * m


def test_homophilous_mixes_same_code_edges_as_asked() -> None:
    n, k, homophily = 2000, 10, 0.8
    attributes = np.repeat(np.arange(4), [800, 600, 400, 200])
    adjacency = make_graph("homophilous", n, _rng(), k=k, attributes=attributes,
                           homophily=homophily)
    _assert_simple_graph(adjacency, n)
    assert abs(_degrees(adjacency).mean() - k) < 0.05 * k
    upper = sp.triu(adjacency).tocoo()
    share_same = np.mean(attributes[upper.row] == attributes[upper.col])
    sizes = np.bincount(attributes)
    chance = np.mean((sizes[attributes] - 1) / (n - 1))
    assert share_same == pytest.approx(homophily + (1 - homophily) * chance, abs=0.02)


def test_homophilous_without_homophily_mixes_at_chance() -> None:
    n = 2000
    attributes = np.arange(n) % 2
    adjacency = make_graph("homophilous", n, _rng(3), k=8, attributes=attributes,
                           homophily=0.0)
    upper = sp.triu(adjacency).tocoo()
    assert np.mean(attributes[upper.row] == attributes[upper.col]) == pytest.approx(
        999 / 1999, abs=0.03)


def test_homophilous_user_alone_in_its_group_still_gets_neighbours() -> None:
    attributes = np.array([0] * 50 + [1])
    adjacency = make_graph("homophilous", 51, _rng(), k=4, attributes=attributes,
                           homophily=1.0)
    _assert_simple_graph(adjacency, 51)
    assert _degrees(adjacency)[50] >= 2
    upper = sp.triu(adjacency).tocoo()
    cross = attributes[upper.row] != attributes[upper.col]
    # Only the lone user's own draws may leave its group.
    assert np.all((upper.row[cross] == 50) | (upper.col[cross] == 50))


@pytest.mark.parametrize("kind, extra", [
    ("watts_strogatz", {"k": 4, "p": 0.2}),
    ("barabasi_albert", {"m": 2}),
    ("homophilous", {"k": 6, "attributes": np.arange(300) % 3}),
])
def test_generators_are_deterministic_for_a_seed(kind: str, extra: dict) -> None:
    first = make_graph(kind, 300, _rng(7), **extra)
    again = make_graph(kind, 300, _rng(7), **extra)
    other = make_graph(kind, 300, _rng(8), **extra)
    assert (first != again).nnz == 0
    assert (first != other).nnz > 0


@pytest.mark.parametrize("kind, n_users, extra, name", [
    ("small_world", 100, {}, "kind"),
    ("watts_strogatz", 0, {}, "n_users"),
    ("watts_strogatz", 100, {"k": 5}, "k"),
    ("watts_strogatz", 100, {"k": 0}, "k"),
    ("watts_strogatz", 10, {"k": 10}, "k"),
    ("watts_strogatz", 100, {"p": 1.5}, "p"),
    ("watts_strogatz", 100, {"p": -0.1}, "p"),
    ("barabasi_albert", 10, {"m": 10}, "m"),
    ("barabasi_albert", 10, {"m": 0}, "m"),
    ("homophilous", 20, {}, "attributes"),
    ("homophilous", 20, {"attributes": np.zeros(19, dtype=int)}, "attributes"),
    ("homophilous", 20, {"attributes": np.zeros(20)}, "attributes"),
    ("homophilous", 20, {"attributes": np.zeros(20, dtype=int), "homophily": 2.0},
     "homophily"),
    ("homophilous", 20, {"attributes": np.zeros(20, dtype=int), "k": 20}, "k"),
])
def test_make_graph_rejects_bad_arguments(kind: str, n_users: int, extra: dict,
                                          name: str) -> None:
    with pytest.raises(ValueError, match=f"^{name}:"):
        make_graph(kind, n_users, _rng(), **extra)


def test_make_graph_needs_a_generator() -> None:
    with pytest.raises(ValueError, match="^rng:"):
        make_graph("watts_strogatz", 100, 0)  # type: ignore[arg-type]


# --- edge lists -------------------------------------------------------------------------

def test_edge_list_with_comments_commas_duplicates_and_self_loops(tmp_path: Path) -> None:
    path = tmp_path / "edges.txt"
    path.write_text("# friends\n\n0 1\n1,2\n 2 ,  3  # trailing note\n1 0\n3\t3\n2 1\n")
    loaded = read_edge_list(path, 5)
    expected = _path_graph()
    _assert_simple_graph(loaded.adjacency, 5)
    assert (loaded.adjacency != expected).nnz == 0
    assert loaded.edges_read == 6
    assert loaded.self_loops_dropped == 1
    assert (load_edge_list(path, 5) != expected).nnz == 0


def test_edge_list_maps_original_ids(tmp_path: Path) -> None:
    path = tmp_path / "edges.csv"
    path.write_text("101,205\n205,330\n")
    index = {101: 2, 205: 0, 330: 1}
    adjacency = load_edge_list(path, 3, user_index=index)
    assert adjacency[2, 0] == 1 and adjacency[0, 2] == 1
    assert adjacency[0, 1] == 1 and adjacency[1, 0] == 1
    assert adjacency[1, 2] == 0
    assert adjacency.nnz == 4


def test_empty_edge_list_gives_no_edges(tmp_path: Path) -> None:
    path = tmp_path / "edges.txt"
    path.write_text("# nobody knows anybody\n")
    adjacency = load_edge_list(path, 4)
    assert adjacency.shape == (4, 4) and adjacency.nnz == 0


@pytest.mark.parametrize("text, index, problem", [
    ("0 1\n0 1 2\n", None, "expected two user ids, got 3"),
    ("0 1\n7\n", None, "expected two user ids, got 1"),
    ("0 1\n0 x\n", None, "integers"),
    ("0 1\n1.5 2\n", None, "integers"),
    ("0 1\n0 9\n", None, "unknown user 9"),
    ("0 1\n-1 2\n", None, "unknown user -1"),
    ("10 11\n10 12\n", {10: 0, 11: 1}, "unknown user 12"),
])
def test_edge_list_errors_name_file_and_line(tmp_path: Path, text: str,
                                             index: dict[int, int] | None,
                                             problem: str) -> None:
    path = tmp_path / "bad.txt"
    path.write_text("# header\n" + text)
    with pytest.raises(EdgeListError, match=problem) as caught:
        load_edge_list(path, 4, user_index=index)
    assert isinstance(caught.value, ValueError)
    assert str(caught.value).startswith(f"{path}:3:")
    assert caught.value.line == 3


def test_edge_list_rejects_out_of_range_user_index(tmp_path: Path) -> None:
    path = tmp_path / "edges.txt"
    path.write_text("1 2\n")
    with pytest.raises(ValueError, match="^user_index:"):
        load_edge_list(path, 2, user_index={1: 0, 2: 5})


def test_adjacency_from_edges_rejects_bad_edges() -> None:
    with pytest.raises(ValueError, match="^targets:"):
        adjacency_from_edges(np.array([0, 1]), np.array([1]), 3)
    with pytest.raises(ValueError, match="^sources:"):
        adjacency_from_edges(np.array([0, 3]), np.array([1, 2]), 3)


# --- neighbour mean ---------------------------------------------------------------------

def test_neighbour_mean_on_a_hand_made_graph() -> None:
    values = np.array([1.0, 2.0, 4.0, 8.0, 16.0])
    means = neighbour_mean(_path_graph(), values)
    np.testing.assert_allclose(means, [2.0, 2.5, 5.0, 4.0, 16.0])
    assert values[1] == 2.0


def test_neighbour_mean_rejects_mismatched_values() -> None:
    with pytest.raises(ValueError, match="^values:"):
        neighbour_mean(_path_graph(), np.zeros(4))
    with pytest.raises(ValueError, match="^values:"):
        neighbour_mean(_path_graph(), np.array([0.0, np.nan, 0.0, 0.0, 0.0]))
    with pytest.raises(ValueError, match="^adjacency:"):
        neighbour_mean(np.eye(5), np.zeros(5))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="^adjacency:"):
        neighbour_mean(sp.csr_matrix((5, 4)), np.zeros(5))


# --- spreading --------------------------------------------------------------------------

def test_spread_with_p_zero_informs_nobody_new() -> None:
    adjacency = make_graph("watts_strogatz", 300, _rng(), k=6, p=0.1)
    informed = np.zeros(300, dtype=bool)
    informed[:10] = True
    assert np.array_equal(spread(adjacency, informed, _rng(1), 0.0), informed)


def test_spread_with_p_one_informs_exactly_the_neighbours() -> None:
    adjacency = _path_graph()
    informed = np.array([False, True, False, False, False])
    result = spread(adjacency, informed, _rng(), 1.0)
    assert result.tolist() == [True, True, True, False, False]
    assert informed.tolist() == [False, True, False, False, False]
    assert spread(adjacency, result, _rng(), 1.0).tolist() == [True, True, True, True, False]


def test_spread_with_p_half_reaches_about_half_of_a_single_senders_neighbours() -> None:
    n = 3000
    adjacency = make_graph("watts_strogatz", n, _rng(), k=2, p=0.0)
    # Every third user informed: each uninformed user has exactly one informed neighbour.
    informed = np.arange(n) % 3 == 0
    result = spread(adjacency, informed, _rng(5), 0.5)
    assert np.all(result[informed])
    assert np.mean(result[~informed]) == pytest.approx(0.5, abs=0.04)


def test_spread_with_many_senders_matches_the_independent_pass_probability() -> None:
    n = 4000
    adjacency = make_graph("watts_strogatz", n, _rng(), k=10, p=0.2)
    informed = _rng(2).random(n) < 0.1
    result = spread(adjacency, informed, _rng(6), 0.3)
    senders = np.asarray(adjacency @ informed.astype(float)).ravel()
    reachable = ~informed & (senders > 0)
    expected = np.mean(1 - 0.7 ** senders[reachable])
    assert np.mean(result[reachable]) == pytest.approx(expected, abs=0.03)
    assert not np.any(result[~informed & (senders == 0)])


def test_spread_is_deterministic_for_a_seed() -> None:
    adjacency = make_graph("barabasi_albert", 500, _rng(), m=3)
    informed = np.zeros(500, dtype=bool)
    informed[:20] = True
    first = spread(adjacency, informed, _rng(9), 0.4)
    assert np.array_equal(first, spread(adjacency, informed, _rng(9), 0.4))
    assert not np.array_equal(first, spread(adjacency, informed, _rng(10), 0.4))


def test_spread_rejects_bad_arguments() -> None:
    adjacency = _path_graph()
    with pytest.raises(ValueError, match="^p_pass:"):
        spread(adjacency, np.zeros(5, dtype=bool), _rng(), 1.2)
    with pytest.raises(ValueError, match="^informed:"):
        spread(adjacency, np.zeros(5), _rng(), 0.5)
    with pytest.raises(ValueError, match="^informed:"):
        spread(adjacency, np.zeros(4, dtype=bool), _rng(), 0.5)


# --- assortativity ----------------------------------------------------------------------

def test_assortativity_is_the_pearson_correlation_across_edge_ends() -> None:
    adjacency = make_graph("barabasi_albert", 200, _rng(), m=2)
    values = _rng(4).random(200) + np.diff(adjacency.indptr) * 0.1
    coo = adjacency.tocoo()
    expected = np.corrcoef(values[coo.row], values[coo.col])[0, 1]
    assert assortativity(adjacency, values) == pytest.approx(expected, abs=1e-10)


def test_assortativity_near_zero_for_random_values_and_near_one_when_smoothed() -> None:
    n = 2000
    adjacency = make_graph("watts_strogatz", n, _rng(), k=10, p=0.05)
    values = _rng(1).random(n)
    assert abs(assortativity(adjacency, values)) < 0.06
    assert permutation_pvalue(adjacency, values, _rng(2)) > 0.05

    smoothed = values
    for _ in range(10):
        smoothed = neighbour_mean(adjacency, smoothed)
    assert assortativity(adjacency, smoothed) > 0.9
    assert permutation_pvalue(adjacency, smoothed, _rng(2)) == pytest.approx(1 / 201)


def test_permutation_pvalue_is_roughly_uniform_under_no_association() -> None:
    adjacency = make_graph("watts_strogatz", 400, _rng(), k=6, p=0.2)
    pvalues = [permutation_pvalue(adjacency, _rng(s).random(400), _rng(100 + s), 50)
               for s in range(40)]
    assert 0.3 < np.mean(pvalues) < 0.7
    assert min(pvalues) < 0.2 and max(pvalues) > 0.8


def test_permutation_pvalue_is_deterministic_and_batched_consistently(
        monkeypatch: pytest.MonkeyPatch) -> None:
    adjacency = make_graph("watts_strogatz", 300, _rng(), k=4, p=0.1)
    values = neighbour_mean(adjacency, _rng(1).random(300)) + _rng(2).random(300)
    whole = permutation_pvalue(adjacency, values, _rng(3), 60)
    assert whole == permutation_pvalue(adjacency, values, _rng(3), 60)
    monkeypatch.setattr("agents.social._PERMUTATION_CELLS", 300 * 7)
    # Batches draw rows of the same stream in order, so the answer is unchanged.
    assert permutation_pvalue(adjacency, values, _rng(3), 60) == whole


def test_assortativity_is_nan_without_edges_or_spread() -> None:
    assert np.isnan(assortativity(sp.csr_matrix((4, 4)), np.arange(4.0)))
    assert np.isnan(assortativity(_path_graph(), np.full(5, 0.3)))
    assert np.isnan(permutation_pvalue(_path_graph(), np.full(5, 0.3), _rng()))


def test_permutation_pvalue_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="^n_permutations:"):
        permutation_pvalue(_path_graph(), np.arange(5.0), _rng(), 0)
    with pytest.raises(ValueError, match="^values:"):
        permutation_pvalue(_path_graph(), np.arange(4.0), _rng())
    with pytest.raises(ValueError, match="^rng:"):
        permutation_pvalue(_path_graph(), np.arange(5.0), None)  # type: ignore[arg-type]
