"""Series the dashboard shows, computed from run tables: seed bands, trade-off points, group
series, and a sampled, laid-out social graph."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

import networkx as nx
import numpy as np
import pandas as pd
import scipy.sparse as sp

from simulator.analysis.headlines import reference_columns, zero_without_attack
from simulator.analysis.intervals import metric_range, t_half_width

# Identifiers and timings rather than outcomes; never offered as metrics.
_NOT_METRICS = {"step", "model_version", "point", "seed", "user"}
_LEAK_AUC = re.compile(r"(attacker\d+_)?leak_[A-Za-z0-9]+_auc")
_UTILITY = re.compile(r"(hr|ndcg)_\d+|mae|rmse")


def metric_columns(frame: pd.DataFrame) -> list[str]:
    """Numeric outcome columns of a metrics or groups table, in table order."""
    return [
        column for column in frame.columns
        if column not in _NOT_METRICS and not column.startswith("seconds_")
        and pd.api.types.is_numeric_dtype(frame[column])
        and not pd.api.types.is_bool_dtype(frame[column])
    ]


def leak_auc_columns(columns: Iterable[str]) -> list[str]:
    """The `leak_<attr>_auc` columns (the attacker's chosen classifier) among `columns`."""
    return [c for c in columns if _LEAK_AUC.fullmatch(c)]


def utility_columns(columns: Iterable[str]) -> list[str]:
    """Accuracy columns (`hr_<k>`, `ndcg_<k>`, `mae`, `rmse`) among `columns`."""
    return [c for c in columns if _UTILITY.fullmatch(c)]


def seed_bands(
    frames: Mapping[str, pd.DataFrame], variants: Mapping[str, str], metric: str,
    level: float = 0.95,
) -> pd.DataFrame:
    """Mean of `metric` per variant and step over its runs, with a t-based `level` interval.

    `frames` maps a run label to its metrics table, `variants` a run label to its variant.
    Columns: variant, step, n (runs with a value), mean, low, high; low and high are NaN
    where fewer than two runs have a value, and never leave the metric's range (a hit rate
    stays within [0, 1]).
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level: expected a confidence level in (0, 1), got {level!r}")
    missing = sorted(set(frames) - set(variants))
    if missing:
        raise ValueError(f"variants: expected a variant for every run, missing {missing}")
    parts = [
        pd.DataFrame({"variant": variants[label], "step": frame["step"].to_numpy(),
                      "value": frame[metric].to_numpy(dtype=float)})
        for label, frame in frames.items() if metric in frame.columns
    ]
    columns = ["variant", "step", "n", "mean", "low", "high"]
    if not parts:
        return pd.DataFrame(columns=columns)
    stacked = pd.concat(parts, ignore_index=True).dropna(subset=["value"])
    summary = (stacked.groupby(["variant", "step"], sort=True)["value"]
               .agg(n="count", mean="mean", std="std").reset_index())
    half = t_half_width(summary["std"].to_numpy(), summary["n"].to_numpy(), level)
    low, high = metric_range(metric)
    summary["low"] = (summary["mean"] - half).clip(low, high)
    summary["high"] = (summary["mean"] + half).clip(low, high)
    summary["n"] = summary["n"].astype(int)
    return summary[columns]


def reference_bands(
    frames: Mapping[str, pd.DataFrame], variants: Mapping[str, str], metric: str
) -> tuple[pd.DataFrame, str]:
    """What `metric` is read against (its chance level, the popularity baseline or the run
    without attack; `headlines.reference_columns`), as the mean per variant and step over
    its runs (0 for an attack's effect, `headlines.zero_without_attack`), and the
    reference's name. Columns: variant, step, value; empty, with name "",
    where the runs have none. A reference every variant shares is given once, as variant
    "" (chance levels usually are)."""
    columns = ["variant", "step", "value"]
    for column, name in reference_columns(metric):
        bands = seed_bands(frames, variants, column)
        if bands.empty:
            continue
        table = bands.rename(columns={"mean": "value"})[columns]
        spread = table.groupby("step")["value"].agg(["min", "max", "count"])
        shared = (spread["max"] - spread["min"]).abs().max() < 1e-12
        if shared and (spread["count"] == table["variant"].nunique()).all():
            single = spread["min"].rename("value").reset_index()
            return single.assign(variant="")[columns], name
        return table.reset_index(drop=True), name
    if zero_without_attack(metric):
        steps = seed_bands(frames, variants, metric)["step"].unique()
        return pd.DataFrame({"variant": "", "step": np.sort(steps), "value": 0.0}), \
            "without attack"
    return pd.DataFrame(columns=columns), ""


DIFFERENCE = "with − without"


def difference_bands(summary: pd.DataFrame, metric: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One metric of a counterfactual's summary (`counterfactual.parquet`) as `seed_bands`
    gives a variant (its mean difference and interval per step, variant `DIFFERENCE`), and
    the zero line as a shared reference (the columns of `reference_bands`)."""
    rows = summary[summary["metric"] == metric].sort_values("step")
    low, high = metric_range(metric)
    span = high - low  # a difference of two values in [low, high] lies within +-span
    bands = pd.DataFrame({"variant": DIFFERENCE, "step": rows["step"].to_numpy(),
                          "n": rows["n"].to_numpy(), "mean": rows["mean_difference"].to_numpy(),
                          "low": rows["ci_low"].clip(-span, span).to_numpy(),
                          "high": rows["ci_high"].clip(-span, span).to_numpy()})
    zero = pd.DataFrame({"variant": "", "step": bands["step"], "value": 0.0})
    return bands, zero


def timeline_table(
    timelines: Mapping[str, tuple[list[int], list[tuple[int, str]]]],
) -> tuple[list[int], pd.DataFrame]:
    """The retrain steps of any variant, and one row per mark (step, label) with the
    variants it happened in ("all" when in every one): the timeline layer of a comparison.

    `timelines` maps a variant's label to its `timeline.timeline_marks`.
    """
    retrains = sorted({step for steps, _ in timelines.values() for step in steps})
    where: dict[tuple[int, str], list[str]] = {}
    for variant, (_, marks) in timelines.items():
        for mark in marks:
            where.setdefault(mark, []).append(variant)
    rows = [{"step": step, "label": label,
             "variants": "all" if len(names) == len(timelines) > 1 else ", ".join(names)}
            for (step, label), names in sorted(where.items())]
    return retrains, pd.DataFrame(rows, columns=["step", "label", "variants"])


def tradeoff_points(
    frames: Mapping[str, pd.DataFrame], privacy: str, utility: str
) -> pd.DataFrame:
    """One row per run: its last step at which both `privacy` and `utility` have a value.

    Columns: run, step, and the two metrics. Runs without such a step are left out.
    """
    if privacy == utility:
        raise ValueError(f"utility: expected a metric other than privacy ({privacy!r})")
    rows = []
    for label, frame in frames.items():
        if privacy not in frame.columns or utility not in frame.columns:
            continue
        valid = frame.dropna(subset=[privacy, utility])
        if valid.empty:
            continue
        last = valid.iloc[valid["step"].argmax()]
        rows.append({"run": label, "step": int(last["step"]),
                     privacy: float(last[privacy]), utility: float(last[utility])})
    return pd.DataFrame(rows, columns=["run", "step", privacy, utility])


def group_kinds(groups: pd.DataFrame) -> list[str]:
    """The group kinds of a groups table, in table order."""
    return [str(kind) for kind in pd.unique(groups["group_kind"])]


def group_series(groups: pd.DataFrame, kind: str, metric: str) -> pd.DataFrame:
    """`metric` of every group of `kind` over time: index step, one column per group."""
    if metric not in groups.columns:
        raise ValueError(f"metric: expected a column of the groups table, got {metric!r}")
    rows = groups[groups["group_kind"] == kind]
    if rows.empty:
        raise ValueError(f"kind: expected one of {group_kinds(groups)}, got {kind!r}")
    order = [str(g) for g in pd.unique(rows["group"])]
    table = rows.assign(group=rows["group"].astype(str)).pivot(
        index="step", columns="group", values=metric)
    return table[order].sort_index()


def group_chance(groups: pd.DataFrame, kind: str, metric: str) -> pd.Series | None:
    """The chance level of `metric` for the groups of `kind` per step (their mean of
    `<metric>_chance`), or None where the table has none."""
    column = f"{metric}_chance"
    if column not in groups.columns:
        return None
    rows = groups[groups["group_kind"] == kind]
    return rows.groupby("step")[column].mean().sort_index()


def sample_graph(
    edges: pd.DataFrame, users: np.ndarray, max_nodes: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """At most `max_nodes` users and the edges among them.

    Users are taken breadth-first from random starting users, so that neighbourhoods stay
    whole instead of thinning out as under uniform sampling. Returns the chosen user ids
    (sorted) and the edges as an (m, 2) array of positions into them (each edge once).
    """
    if isinstance(max_nodes, bool) or not isinstance(max_nodes, int | np.integer) \
            or max_nodes < 1:
        raise ValueError(f"max_nodes: expected a positive integer, got {max_nodes!r}")
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng: expected a numpy Generator, got {type(rng).__name__}")
    missing = {"source", "target"} - set(edges.columns)
    if missing:
        raise ValueError(f"edges: expected columns source and target, missing {sorted(missing)}")
    sources = edges["source"].to_numpy(dtype=np.int64)
    targets = edges["target"].to_numpy(dtype=np.int64)
    every = np.union1d(np.asarray(users, dtype=np.int64), np.concatenate([sources, targets]))
    ends = np.searchsorted(every, np.concatenate([sources, targets]))
    if every.size <= max_nodes:
        chosen = np.arange(every.size)
    else:
        chosen = _snowball(_adjacency(ends, every.size), max_nodes, rng)
    keep = np.zeros(every.size, dtype=bool)
    keep[chosen] = True
    position = np.cumsum(keep) - 1
    a, b = ends[: sources.size], ends[sources.size:]
    inside = keep[a] & keep[b] & (a != b)
    pairs = np.sort(np.column_stack([position[a[inside]], position[b[inside]]]), axis=1)
    pairs = np.unique(pairs, axis=0) if pairs.size else pairs.reshape(0, 2)
    return every[keep], pairs.astype(np.int64)


def spring_positions(
    n_nodes: int, edges: np.ndarray, rng: np.random.Generator, iterations: int = 50
) -> np.ndarray:
    """Spring-layout coordinates, shape (n_nodes, 2); the start positions come from `rng`."""
    if n_nodes < 1:
        raise ValueError(f"n_nodes: expected a positive integer, got {n_nodes!r}")
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng: expected a numpy Generator, got {type(rng).__name__}")
    graph: nx.Graph[int] = nx.Graph()
    graph.add_nodes_from(range(n_nodes))
    graph.add_edges_from(map(tuple, np.asarray(edges, dtype=np.int64).tolist()))
    start = rng.random((n_nodes, 2))
    # With every node placed, networkx draws no random numbers of its own.
    layout = nx.spring_layout(graph, pos={i: start[i] for i in range(n_nodes)},
                              iterations=iterations)
    return np.array([layout[i] for i in range(n_nodes)], dtype=float)


def betas_at(agents: pd.DataFrame, step: int, users: np.ndarray) -> np.ndarray:
    """Each of `users`' disclosure budget at `step` (NaN for a user without a row)."""
    steps = agents["step"].to_numpy()
    if step not in set(steps.tolist()):
        raise ValueError(f"step: expected one of the agents table's steps "
                         f"{int(steps.min())}..{int(steps.max())}, got {step!r}")
    rows = agents[steps == step]
    beta = pd.Series(rows["beta"].to_numpy(dtype=float), index=rows["user"].to_numpy())
    return beta.reindex(np.asarray(users)).to_numpy(dtype=float)


def _adjacency(ends: np.ndarray, n_nodes: int) -> sp.csr_matrix:
    half = ends.size // 2
    rows = np.concatenate([ends[:half], ends[half:]])
    cols = np.concatenate([ends[half:], ends[:half]])
    return sp.csr_matrix((np.ones(rows.size), (rows, cols)), shape=(n_nodes, n_nodes))


def _snowball(adjacency: sp.csr_matrix, budget: int, rng: np.random.Generator) -> np.ndarray:
    """Breadth-first sample of `budget` nodes, restarting at a random unvisited node."""
    visited = np.zeros(adjacency.shape[0], dtype=bool)
    taken = 0
    frontier: np.ndarray = np.empty(0, dtype=np.int64)
    while taken < budget:
        if frontier.size == 0:
            frontier = np.array([rng.choice(np.flatnonzero(~visited))])
        room = budget - taken
        if frontier.size > room:
            frontier = rng.choice(frontier, size=room, replace=False)
        visited[frontier] = True
        taken += frontier.size
        neighbours = np.unique(adjacency[frontier].indices)
        frontier = neighbours[~visited[neighbours]]
    return np.flatnonzero(visited)
