"""Streamlit dashboard over run and sweep folders.

    streamlit run simulator/dashboard/app.py -- --outputs DIR

The outputs folder comes from `--outputs` after `--`, else $PRIVSIM_OUTPUTS, else `outputs`.
The charts are Altair (Vega-Lite) specs drawn by Streamlit's own front end, and the social
graph a matplotlib figure rendered on the server, so the page needs no network access.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st
import yaml

from simulator.analysis.baselines import below_popularity
from simulator.analysis.timeline import run_schedule, timeline_marks
from simulator.dashboard import charts, data, figures
from simulator.dashboard.discovery import (
    Catalog,
    CounterfactualInfo,
    RunInfo,
    discover,
    resolve_outputs,
    variant_descriptions,
    variant_labels,
)

Timeline = tuple[list[int], list[tuple[int, str]]]

DEFAULT_METRICS = ("hr_10", "leak_gender_auc", "mae")
DEFAULT_GROUP_KINDS = ("inclination",)
DEFAULT_RUNS = 4
GRAPH_NODES = 500
GRAPH_SEED = 0
BAND_LEVEL = 0.95


@st.cache_data(ttl=30, show_spinner=False)
def _catalog(root: str) -> Catalog:
    return discover(Path(root))


@st.cache_data(show_spinner=False, max_entries=256)
def _table(path: str, mtime_ns: int) -> pd.DataFrame:
    return pd.read_parquet(path)


@st.cache_data(show_spinner="Laying out the social graph...", max_entries=16)
def _graph_layout(
    graph_path: str, graph_mtime: int, agents_path: str, agents_mtime: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Sampled users, their edges, spring-layout positions (the same for every step) and the
    number of users in the whole graph."""
    edges = _table(graph_path, graph_mtime)
    users = _table(agents_path, agents_mtime)["user"].unique()
    total = np.union1d(users, edges[["source", "target"]].to_numpy().ravel()).size
    rng = np.random.default_rng(GRAPH_SEED)
    nodes, pairs = data.sample_graph(edges, users, GRAPH_NODES, rng)
    return nodes, pairs, data.spring_positions(nodes.size, pairs, rng), total


@st.cache_data(show_spinner=False, max_entries=256)
def _run_timeline(folder: str, mtime_ns: int) -> Timeline:
    """A run's retrain steps and marks (events, defense starts), from its events table and
    its config's schedule."""
    path = Path(folder)
    events = pd.read_parquet(path / "events.parquet") \
        if (path / "events.parquet").is_file() else None
    try:
        config = yaml.safe_load((path / "config.yaml").read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        config = None
    schedule = run_schedule(config, str(path / "config.yaml"))[0] \
        if isinstance(config, dict) else None
    return timeline_marks(events, schedule)


def _timeline_of(run: RunInfo) -> Timeline:
    events = run.path / "events.parquet"
    stamp = events.stat().st_mtime_ns if events.is_file() else 0
    return _run_timeline(str(run.path), stamp)


def _variant_timelines(runs: list[RunInfo], labels: dict[str, str]
                       ) -> tuple[list[int], pd.DataFrame]:
    """The timeline layer of a comparison: each variant's marks (over its seeds)."""
    per_variant: dict[str, Timeline] = {}
    for run in runs:
        retrains, marks = _timeline_of(run)
        label = labels.get(run.variant, run.variant)
        known = per_variant.get(label, ([], []))
        per_variant[label] = (sorted({*known[0], *retrains}), sorted({*known[1], *marks}))
    return data.timeline_table(per_variant)


def _chart(container: Any, chart: Any) -> None:
    container.altair_chart(chart, width="stretch")


def _load(run: RunInfo, name: str) -> pd.DataFrame | None:
    path = run.path / f"{name}.parquet"
    if not path.is_file():
        return None
    return _table(str(path), path.stat().st_mtime_ns)


def _multiselect(container: Any, label: str, options: Sequence[Any], default: Sequence[Any],
                 key: str, **kwargs: Any) -> list[Any]:
    """A multiselect that keeps the user's choice while it stays among the options."""
    if key in st.session_state:
        st.session_state[key] = [v for v in st.session_state[key] if v in options]
        return container.multiselect(label, list(options), key=key, **kwargs)
    return container.multiselect(label, list(options), default=list(default), key=key,
                                 **kwargs)


def _selectbox(container: Any, label: str, options: Sequence[Any], key: str,
               preferred: Sequence[Any] = (), **kwargs: Any) -> Any:
    """A selectbox that starts at the first preferred option present."""
    if key in st.session_state and st.session_state[key] not in options:
        del st.session_state[key]
    if key in st.session_state:
        return container.selectbox(label, list(options), key=key, **kwargs)
    index = next((list(options).index(p) for p in preferred if p in options), 0)
    return container.selectbox(label, list(options), index=index, key=key, **kwargs)


def _ordered_union(lists: Sequence[Sequence[str]]) -> list[str]:
    seen: dict[str, None] = {}
    for items in lists:
        seen.update(dict.fromkeys(items))
    return list(seen)


def _choose_runs(catalog: Catalog) -> tuple[list[RunInfo], CounterfactualInfo | None]:
    """Sidebar: runs picked one by one, a sweep and some of its points, or a counterfactual
    (its arms' runs, and the counterfactual itself)."""
    sidebar = st.sidebar
    sidebar.header("Runs")
    source = "Runs"
    sources = ["Runs", *(["Sweep"] if catalog.sweeps else []),
               *(["Counterfactual"] if catalog.counterfactuals else [])]
    if len(sources) > 1:
        source = sidebar.radio("Source", sources, key="source", horizontal=True)
    if source == "Counterfactual":
        found = catalog.counterfactual(_selectbox(
            sidebar, "Counterfactual", [c.label for c in catalog.counterfactuals],
            key="counterfactual"))
        return [catalog.run(label) for label in found.runs], found
    if source == "Sweep":
        sweep = catalog.sweep(_selectbox(sidebar, "Sweep", [s.label for s in catalog.sweeps],
                                         key="sweep"))
        members = [catalog.run(label) for label in sweep.runs]
        labels = variant_labels(members)
        # One selection per sweep, so switching sweeps does not empty it.
        points = _multiselect(sidebar, "Points", list(labels), list(labels),
                              key=f"points:{sweep.label}", format_func=labels.get)
        return [run for run in members if run.variant in points], None
    standalone = [run.label for run in catalog.runs if run.sweep is None]
    default = (standalone or [run.label for run in catalog.runs])[:DEFAULT_RUNS]
    chosen = _multiselect(sidebar, "Runs", [run.label for run in catalog.runs], default,
                          key="runs")
    return [catalog.run(label) for label in chosen], None


def _domain(runs: list[RunInfo], labels: dict[str, str]) -> list[str]:
    """Every variant's label in the order of the chosen runs: one colour each on the page."""
    return list(dict.fromkeys(labels.get(run.variant, run.variant) for run in runs))


def _metrics_over_time(runs: list[RunInfo], frames: dict[str, pd.DataFrame],
                       metrics: list[str], labels: dict[str, str],
                       descriptions: dict[str, str]) -> None:
    st.header("Metrics over time")
    st.caption(f"One line per variant (runs that differ only in their seed); with several "
               f"seeds the line is their mean and the band its {BAND_LEVEL:.0%} t-interval. "
               f"Dashed lines are what a metric is read against; vertical marks are retrains "
               f"(light) and events and defense starts (labelled). Hover for values.")
    if not metrics:
        st.info("Pick at least one metric in the sidebar.")
        return
    variants = {run.label: run.variant for run in runs}
    retrains, marks = _variant_timelines(runs, labels)
    columns = st.columns(2)
    for position, metric in enumerate(metrics):
        bands = data.seed_bands(frames, variants, metric, BAND_LEVEL)
        reference, name = data.reference_bands(frames, variants, metric)
        _chart(columns[position % 2], charts.metric_chart(
            bands, metric, labels, descriptions, reference, name, retrains, marks,
            _domain(runs, labels)))


def _counterfactual_difference(info: CounterfactualInfo, runs: list[RunInfo],
                               metrics: list[str], labels: dict[str, str]) -> None:
    """The paired difference of the two arms over time, per chosen metric, from the
    counterfactual's own summary (`counterfactual.parquet`)."""
    st.header("Difference: with minus without")
    st.caption(f"{info.title}; the counterfactual arm sets {', '.join(info.without)}. The "
               f"line is the mean over seeds of each seed's difference (both arms of a seed "
               f"share its random numbers), the band its {BAND_LEVEL:.0%} t-interval; dashed: "
               f"no difference.")
    path = info.path / "counterfactual.parquet"
    summary = _table(str(path), path.stat().st_mtime_ns)
    shown = [metric for metric in metrics if metric in set(summary["metric"])]
    if not shown:
        st.info("Pick a metric both arms measured.")
        return
    retrains, marks = _variant_timelines(runs, labels)
    columns = st.columns(2)
    for position, metric in enumerate(shown):
        bands, zero = data.difference_bands(summary, metric)
        _chart(columns[position % 2], charts.metric_chart(
            bands, metric, {}, {}, zero, "no difference", retrains, marks))


def _tradeoff(runs: list[RunInfo], frames: dict[str, pd.DataFrame],
              labels: dict[str, str], descriptions: dict[str, str]) -> None:
    st.header("Privacy-utility trade-off")
    available = _ordered_union([list(frame.columns) for frame in frames.values()])
    leaks = data.leak_auc_columns(available)
    utilities = data.utility_columns(available)
    if not leaks or not utilities:
        st.info("The selected runs have no leakage (leak_*_auc) or accuracy metric to plot.")
        return
    left, right = st.columns(2)
    privacy = _selectbox(left, "Leakage metric", leaks, key="privacy")
    utility = _selectbox(right, "Utility metric", utilities, key="utility",
                         preferred=("hr_10", "mae"))
    points = data.tradeoff_points(frames, privacy, utility)
    variants = {run.label: run.variant for run in runs}
    points["variant"] = points["run"].map(variants)
    plot, table = st.columns(2)
    _chart(plot, charts.tradeoff_chart(points, privacy, utility, labels, descriptions,
                                       _domain(runs, labels)))
    table.dataframe(points.assign(variant=points["variant"].map(labels)), hide_index=True)


def _groups(runs: list[RunInfo], kinds: list[str]) -> None:
    st.header("Groups")
    if not kinds:
        st.info("Pick at least one group kind in the sidebar.")
        return
    with_groups = [(run, frame) for run in runs if (frame := _load(run, "groups")) is not None]
    if not with_groups:
        st.info("None of the selected runs has a groups table.")
        return
    left, right = st.columns(2)
    label = _selectbox(left, "Run", [run.label for run, _ in with_groups], key="group_run")
    run, groups = next((run, frame) for run, frame in with_groups if run.label == label)
    present = [kind for kind in kinds if kind in data.group_kinds(groups)]
    metrics = [m for m in data.metric_columns(groups) if m != "n_users"
               and not m.endswith("_chance")]
    if not present or not metrics:
        st.info(f"Run {label} has no metric for the chosen group kinds.")
        return
    metric = _selectbox(right, "Group metric", metrics, key="group_metric",
                        preferred=DEFAULT_METRICS)
    retrains, marks = data.timeline_table({label: _timeline_of(run)})
    columns = st.columns(2)
    for position, kind in enumerate(present):
        _chart(columns[position % 2], charts.groups_chart(
            data.group_series(groups, kind, metric), data.group_chance(groups, kind, metric),
            kind, metric, retrains, marks))


def _social_graph(runs: list[RunInfo]) -> None:
    st.header("Social graph")
    with_graph = [run for run in runs if run.has_graph and (run.path / "agents.parquet").is_file()]
    if not with_graph:
        st.caption("None of the selected runs has a social graph (graph.parquet, written by "
                   "runs with the social disclosure policy) and an agents table.")
        return
    label = _selectbox(st, "Run", [run.label for run in with_graph], key="graph_run")
    run = next(r for r in with_graph if r.label == label)
    graph_path, agents_path = run.path / "graph.parquet", run.path / "agents.parquet"
    nodes, pairs, positions, total = _graph_layout(
        str(graph_path), graph_path.stat().st_mtime_ns,
        str(agents_path), agents_path.stat().st_mtime_ns)
    agents = _load(run, "agents")
    assert agents is not None, "with_graph holds only runs with an agents table"
    steps = sorted(int(s) for s in agents["step"].unique())
    if len(steps) > 1:
        step = st.slider("Step", steps[0], steps[-1], steps[-1], key="graph_step")
    else:
        step = steps[0]
    betas = data.betas_at(agents, step, nodes)
    shown = f"{nodes.size} of {total} users" if nodes.size < total else f"{total} users"
    plot, note = st.columns(2)
    plot.pyplot(figures.graph_figure(positions, pairs, betas,
                                     f"{label}: step {step}, {shown}, {len(pairs)} edges"))
    note.caption(f"Users coloured by their disclosure budget at the chosen step. Graphs of "
                 f"more than {GRAPH_NODES} users are sampled breadth-first from random "
                 f"users (seed {GRAPH_SEED}); the layout stays fixed across steps.")


def empty_message(root: Path) -> str:
    """What to tell the user when `root` holds no completed run."""
    where = "does not exist" if not root.is_dir() else "holds no completed run"
    return (f"No completed runs found: the outputs folder `{root}` {where}. Run a scenario "
            f"(`privsim run quickstart`) or a sweep, or point the dashboard at another folder "
            f"(`--outputs DIR` or $PRIVSIM_OUTPUTS).")


def main(argv: Sequence[str] | None = None) -> None:
    """Render the dashboard for the outputs folder named by argv or the environment."""
    st.set_page_config(page_title="privsim dashboard", layout="wide")
    st.title("privsim dashboard")
    root = resolve_outputs(sys.argv[1:] if argv is None else argv, os.environ)
    if st.sidebar.button("Rescan outputs folder", key="rescan"):
        _catalog.clear()
    catalog = _catalog(str(root))
    if catalog.unfinished:
        st.caption("Not completed, so not shown: " + ", ".join(
            f"{label} ({status})" for label, status in catalog.unfinished))
    if not catalog.runs:
        st.info(empty_message(root))
        return
    st.caption(f"{root}: {len(catalog.runs)} completed runs, {len(catalog.sweeps)} sweeps")
    runs, chosen_counterfactual = _choose_runs(catalog)
    if not runs:
        st.info("Pick at least one run in the sidebar.")
        return
    frames = {run.label: frame for run in runs
              if (frame := _load(run, "metrics")) is not None}
    for label, frame in frames.items():
        if (below := below_popularity(frame)) is not None:
            st.warning(f"{label}: platform below popularity: {below}")
    labels = variant_labels(runs)
    descriptions = variant_descriptions(runs)
    scenarios = {run.sweep or run.scenario for run in runs}
    if len(scenarios) == 1 and len(labels) > 1:
        st.caption(f"Every selected run is of {scenarios.pop()}: legends name each variant "
                   f"by its folder (sweep points by their grid values); hover a line for how "
                   f"its settings differ from the others'.")
    st.sidebar.header("Show")
    options = _ordered_union([data.metric_columns(frame) for frame in frames.values()])
    metrics = _multiselect(st.sidebar, "Metrics", options,
                           [m for m in DEFAULT_METRICS if m in options][:2] or options[:1],
                           key="metrics")
    kinds_found = _ordered_union([data.group_kinds(g) for g in
                                  (_load(run, "groups") for run in runs) if g is not None])
    kinds = _multiselect(st.sidebar, "Group kinds", kinds_found,
                         [k for k in DEFAULT_GROUP_KINDS if k in kinds_found]
                         or kinds_found[:1], key="group_kinds")
    _metrics_over_time(runs, frames, metrics, labels, descriptions)
    if chosen_counterfactual is not None:
        _counterfactual_difference(chosen_counterfactual, runs, metrics, labels)
    _tradeoff(runs, frames, labels, descriptions)
    _groups(runs, kinds)
    _social_graph(runs)


if __name__ == "__main__":
    main()
