"""Dashboard: run discovery, seed bands, trade-off and group series, graph sampling, and the
Streamlit app itself (driven headless through streamlit's AppTest)."""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats
from threadpoolctl import threadpool_limits

from agents.social import make_graph
from simulator.dashboard import APP_PATH, charts, data, figures
from simulator.dashboard.discovery import (
    RunInfo,
    discover,
    resolve_outputs,
    variant_labels,
)
from simulator.experiments.catalog import load_scenario
from simulator.experiments.runner import run_scenario
from simulator.experiments.sweep import expand_points, load_sweep

TINY = [
    "world.n_users=200", "world.n_items=150", "world.mean_ratings_per_user=30",
    "simulation.steps=3", "simulation.device=cpu", "platform.retrain_every=1",
    "platform.first_epochs=5", "platform.epochs=2", "attackers.0.classifiers=[logreg]",
    "attackers.0.folds=3", "output.plots=false",
]
SWEEP = {"name": "tiny", "base": "quickstart", "set": TINY,
         "grid": {"world.signal": [0.0, 1.0]}, "seeds": [0, 1], "workers": 1}
GRAPH_RUN = "runs/quickstart-s0"


def write_tiny_runs(root: Path, sweep: bool = True) -> Path:
    """Two seeds of a tiny quickstart (the first with a social graph), a failed run and,
    with `sweep`, a 2-point x 2-seed sweep folder laid out as `privsim sweep` writes it."""
    # Tiny problems on a shared machine: BLAS threads only contend with each other.
    with threadpool_limits(limits=1):
        _write_tiny_runs(root, sweep)
    return root


def _write_tiny_runs(root: Path, sweep: bool) -> None:
    standalone = {}
    for seed in (0, 1):
        standalone[seed] = load_scenario("quickstart", [*TINY, f"simulation.seed={seed}"])
        run_scenario(standalone[seed], out=root / f"runs/quickstart-s{seed}", progress=False)
    graph_file = root / GRAPH_RUN / "graph.parquet"
    if not graph_file.exists():
        adjacency = make_graph("watts_strogatz", 200, np.random.default_rng(0), k=4).tocoo()
        upper = adjacency.row < adjacency.col
        pd.DataFrame({"source": adjacency.row[upper], "target": adjacency.col[upper]}
                     ).to_parquet(graph_file)
    failed = root / "runs/failed"
    failed.mkdir(parents=True)
    shutil.copy(root / "runs/quickstart-s0/metrics.parquet", failed / "metrics.parquet")
    (failed / "manifest.json").write_text(json.dumps({"status": "failed", "seed": 0}))
    if sweep:
        folder = root / "sweeps/tiny"
        folder.mkdir(parents=True)
        (folder / "sweep.yaml").write_text(yaml.safe_dump(SWEEP))
        rows = []
        for point in expand_points(load_sweep(folder / "sweep.yaml"), folder / "sweep.yaml"):
            if point.scenario == standalone[point.seed]:
                # The same resolved scenario and seed give the same run: reuse it.
                shutil.copytree(root / f"runs/quickstart-s{point.seed}", folder / point.label,
                                ignore=shutil.ignore_patterns("graph.parquet"))
            else:
                run_scenario(point.scenario, out=folder / point.label, progress=False)
            rows.append({"point": point.index, "seed": point.seed, "run_dir": point.label,
                         **{k: str(v) for k, v in point.params.items()},
                         "status": "completed", "error": None})
        pd.DataFrame(rows).to_parquet(folder / "points.parquet")


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_runs(tmp_path_factory.mktemp("outputs"))


def _info(label: str, variant: str, **fields: object) -> RunInfo:
    base = {"path": Path(label), "label": label, "scenario": "quickstart", "seed": 0,
            "variant": variant, "settings": ()}
    return RunInfo(**{**base, **fields})


# discovery ---------------------------------------------------------------------------------


def test_discover_lists_completed_runs_and_sweeps(outputs: Path) -> None:
    catalog = discover(outputs)
    sweep_runs = [f"sweeps/tiny/point-00{i}-seed-{i % 2}" for i in range(4)]
    assert [r.label for r in catalog.runs] == [
        "runs/quickstart-s0", "runs/quickstart-s1", *sweep_runs]
    assert [s.label for s in catalog.sweeps] == ["sweeps/tiny"]
    sweep = catalog.sweep("sweeps/tiny")
    assert (sweep.name, sweep.grid_keys, list(sweep.runs)) == ("tiny", ("world.signal",),
                                                              sweep_runs)
    assert [r.has_graph for r in catalog.runs] == [True] + [False] * 5
    assert [r.seed for r in catalog.runs] == [0, 1, 0, 1, 0, 1]
    point = catalog.run(sweep_runs[2])
    assert (point.sweep, point.point, point.params) == ("sweeps/tiny", 2,
                                                        (("world.signal", "1.0"),))
    with pytest.raises(ValueError, match="label"):
        catalog.run("runs/failed")
    with pytest.raises(ValueError, match="label"):
        catalog.sweep("nowhere")


def test_runs_differing_only_in_seed_share_a_variant(outputs: Path) -> None:
    runs = discover(outputs).runs
    variants = [r.variant for r in runs]
    assert variants[0] == variants[1]
    assert variants[2] == variants[3] != variants[4] == variants[5]
    assert len(set(variants)) == 3
    labels = variant_labels(runs)
    # Runs from a scenario and a sweep: the sweep's name leads its points' grid values.
    assert sorted(labels.values()) == ["quickstart", "sweeps/tiny: signal=0.0",
                                       "sweeps/tiny: signal=1.0"]
    points = [run for run in runs if run.sweep]
    assert sorted(variant_labels(points).values()) == ["signal=0.0", "signal=1.0"]


def test_discover_depth_missing_and_single_run_folders(outputs: Path, tmp_path: Path) -> None:
    assert discover(outputs, max_depth=1).runs == ()
    assert len(discover(outputs, max_depth=2).runs) == 2
    single = discover(outputs / GRAPH_RUN)
    assert [r.label for r in single.runs] == ["quickstart-s0"]
    empty = discover(tmp_path / "absent")
    assert (empty.runs, empty.sweeps) == ((), ())
    with pytest.raises(ValueError, match="max_depth"):
        discover(outputs, max_depth=-1)


def test_sweep_grid_comes_from_the_sweep_file(outputs: Path, tmp_path: Path) -> None:
    folder = tmp_path / "sweep"
    shutil.copytree(outputs / "sweeps/tiny", folder)
    points = pd.read_parquet(folder / "points.parquet")
    points.insert(2, "replication", [0, 1, 0, 1])
    points["attempts"] = 1
    points.to_parquet(folder / "points.parquet")
    runs = discover(tmp_path).runs
    assert [r.params for r in runs] == [(("world.signal", "0.0"),)] * 2 + [
        (("world.signal", "1.0"),)] * 2
    (folder / "sweep.yaml").write_text("not: [valid")  # unreadable: guess from the columns
    guessed = discover(tmp_path).runs[0].params
    assert guessed == (("world.signal", "0.0"), ("attempts", "1"))


def test_resolve_outputs_prefers_argv_then_environment() -> None:
    env = {"PRIVSIM_OUTPUTS": "/from/env"}
    assert resolve_outputs(["--outputs", "/from/argv"], env) == Path("/from/argv")
    assert resolve_outputs(["-x", "--outputs=/eq"], env) == Path("/eq")
    assert resolve_outputs(["tests/test_dashboard.py", "-q"], env) == Path("/from/env")
    assert resolve_outputs(["--out", "/abbreviated"], {}) == Path("outputs")
    assert resolve_outputs([], {}) == Path("outputs")


def test_variant_labels_name_runs_by_folder_and_sweep_points_by_grid_values() -> None:
    runs = [
        _info("runs/base-seed-0", "quickstart|1", settings=(("world.signal", "1.0"),)),
        _info("runs/base-seed-1", "quickstart|1", settings=(("world.signal", "1.0"),), seed=1),
        _info("runs/weak", "quickstart|2", settings=(("world.signal", "0.5"),)),
        _info("d", "s1|3", sweep="s1", params=(("k", "1"),)),
        _info("e", "s2|4", sweep="s2", params=(("k", "1"),)),
    ]
    runs = [replace(run, path=Path(run.label)) for run in runs]
    assert variant_labels(runs) == {
        "quickstart|1": "base", "quickstart|2": "weak", "s1|3": "s1: k=1", "s2|4": "s2: k=1",
    }
    from simulator.dashboard.discovery import folder_stem, variant_descriptions

    assert variant_descriptions(runs[:3]) == {"quickstart|1": "signal=1",
                                              "quickstart|2": "signal=0.5"}
    assert folder_stem(["with-seed-0", "with-seed-4"]) == "with"
    assert folder_stem(["quickstart+3-changes-20261207-150102"]) == "quickstart+3-changes"
    assert folder_stem(["quickstart-s0", "quickstart-s1"]) == "quickstart"
    assert folder_stem(["arm-a", "arm-b"]) == "arm"


def _settings(config: dict[str, object]) -> tuple[tuple[str, str], ...]:
    from simulator.dashboard.discovery import _flatten

    return tuple(sorted(_flatten(config).items()))


BASE = {"name": "fund-adv", "world": {"n_users": 1000, "signal": 1.0},
        "platform": {"model": "bpr", "lr": 0.01, "epochs": 5,
                     "defenses": {"adversarial": None, "dp": None}},
        "population": {"calculus": {"rate": 0.3}},
        "attackers": [{"kind": "inference", "epochs": 5}]}


def _variant(name: str, **changes: object) -> RunInfo:
    config = json.loads(json.dumps(BASE))
    for dotted, value in changes.items():
        *parents, leaf = dotted.split("__")
        node = config
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        node[leaf] = value
    return _info(name, f"fund-adv|{name}", scenario="fund-adv", settings=_settings(config))


def test_legends_of_one_scenario_name_only_what_differs() -> None:
    plain = _variant("plain")
    adversarial = _variant("adv", platform__defenses__adversarial={"lambda": 1.0,
                                                                    "start_step": 0})
    from simulator.dashboard.discovery import variant_descriptions

    assert variant_descriptions([plain, adversarial]) == {
        "fund-adv|plain": "no adversarial", "fund-adv|adv": "adversarial"}
    assert variant_labels([plain, adversarial]) == {  # by folder; the difference on hover
        "fund-adv|plain": "plain", "fund-adv|adv": "adv"}
    stronger = _variant("adv2", platform__defenses__adversarial={"lambda": 2.0,
                                                                 "start_step": 0},
                        platform__lr=0.05)
    assert variant_descriptions([plain, adversarial, stronger]) == {
        "fund-adv|plain": "no adversarial, lr=0.01",
        "fund-adv|adv": "adversarial (lambda=1), lr=0.01",
        "fund-adv|adv2": "adversarial (lambda=2), lr=0.05"}


def test_legend_names_are_the_shortest_unique_tails() -> None:
    a = _variant("a", platform__epochs=5, attackers__0__epochs=5, population__calculus__rate=0.3)
    b = _variant("b", platform__epochs=10, attackers__0__epochs=20,
                 population__calculus__rate=0.5)
    from simulator.dashboard.discovery import variant_descriptions

    assert variant_descriptions([a, b])["fund-adv|a"] == (
        "attackers[0].epochs=5, platform.epochs=5, rate=0.3")
    # Seen as a comparison with another scenario, the scenario name leads.
    other = _info("o", "other|1", scenario="other")
    assert variant_descriptions([a, other])["fund-adv|a"] == "fund-adv"
    assert variant_descriptions([a, b, other])["fund-adv|b"].startswith("fund-adv: ")


def test_long_legends_are_cut_and_stay_distinct() -> None:
    from simulator.dashboard.differences import shorten
    from simulator.dashboard.discovery import variant_descriptions

    a = _variant("a", platform__model="metamf", world__n_users=200, platform__lr=0.1,
                 attackers__0__epochs=7, world__signal=0.25)
    b = _variant("b", platform__model="metamf", world__n_users=200, platform__lr=0.1,
                 attackers__0__epochs=7, world__signal=0.5)
    c = _variant("c")
    long = "a-folder-name-far-longer-than-any-legend-has-room-for"
    a, b = replace(a, path=Path(f"{long}-a")), replace(b, path=Path(f"{long}-b"))
    labels = variant_labels([a, b, c])
    assert all(len(label) <= 40 for label in labels.values())
    assert len(set(labels.values())) == 3
    assert labels["fund-adv|a"].endswith("]")  # cut to the same text, then told apart
    full = variant_descriptions([a, b, c])
    assert full["fund-adv|a"] == "epochs=7, lr=0.1, model=metamf, n_users=200, signal=0.25"
    assert shorten("abcdef", 4) == "abc…" and shorten("abc", 4) == "abc"
    assert shorten("a=1, b=2, c=3", 12) == "a=1, +2 more"
    with pytest.raises(ValueError, match="limit"):
        shorten("abc", 1)


def test_sweep_legends_show_the_grid_values_that_differ() -> None:
    points = [_info(f"p{i}", f"s|{i}", sweep="s", scenario="q",
                    params=(("world.signal", signal), ("platform.model", "bpr")))
              for i, signal in enumerate(("0.0", "1.0"))]
    assert variant_labels(points) == {"s|0": "signal=0.0", "s|1": "signal=1.0"}
    assert variant_labels(points[:1]) == {"s|0": "signal=0.0, model=bpr"}


# data --------------------------------------------------------------------------------------


def test_seed_bands_give_mean_and_t_interval() -> None:
    frames = {
        "r1": pd.DataFrame({"step": [0, 1], "m": [1.0, 2.0]}),
        "r2": pd.DataFrame({"step": [0, 1], "m": [2.0, np.nan]}),
        "r3": pd.DataFrame({"step": [0, 1], "m": [4.0, 4.0]}),
        "r4": pd.DataFrame({"step": [0, 1], "m": [9.0, 9.0]}),
        "r5": pd.DataFrame({"step": [0, 1], "other": [0.0, 0.0]}),
    }
    variants = {"r1": "A", "r2": "A", "r3": "A", "r4": "B", "r5": "B"}
    bands = data.seed_bands(frames, variants, "m").set_index(["variant", "step"])
    values = np.array([1.0, 2.0, 4.0])
    half = stats.t.ppf(0.975, 2) * values.std(ddof=1) / np.sqrt(3)
    row = bands.loc[("A", 0)]
    assert (row["n"], row["mean"]) == (3, pytest.approx(values.mean()))
    assert (row["low"], row["high"]) == (pytest.approx(values.mean() - half),
                                         pytest.approx(values.mean() + half))
    assert bands.loc[("A", 1), "n"] == 2  # the NaN of r2 is left out
    assert bands.loc[("B", 0), "n"] == 1 and np.isnan(bands.loc[("B", 0), "low"])
    assert bands.loc[("B", 1), "mean"] == 9.0
    assert data.seed_bands(frames, variants, "absent").empty


def test_seed_bands_over_real_seeds(outputs: Path) -> None:
    runs = discover(outputs).runs[:2]
    frames = {r.label: pd.read_parquet(r.path / "metrics.parquet") for r in runs}
    bands = data.seed_bands(frames, {r.label: r.variant for r in runs}, "hr_10")
    expected = (frames[runs[0].label]["hr_10"] + frames[runs[1].label]["hr_10"]) / 2
    assert list(bands["n"]) == [2, 2, 2]
    np.testing.assert_allclose(bands["mean"], expected)
    assert (bands["low"] <= bands["mean"]).all() and (bands["high"] >= bands["mean"]).all()


def test_seed_bands_reject_bad_arguments() -> None:
    frames = {"r1": pd.DataFrame({"step": [0], "m": [1.0]})}
    with pytest.raises(ValueError, match="level"):
        data.seed_bands(frames, {"r1": "A"}, "m", level=1.0)
    with pytest.raises(ValueError, match="variants"):
        data.seed_bands(frames, {}, "m")


def test_tradeoff_points_use_the_last_measured_step(outputs: Path) -> None:
    frames = {
        "late": pd.DataFrame({"step": [0, 1, 2], "leak": [0.6, 0.7, np.nan],
                              "hr": [0.1, 0.2, 0.3]}),
        "never": pd.DataFrame({"step": [0], "leak": [np.nan], "hr": [0.5]}),
        "other": pd.DataFrame({"step": [0], "hr": [0.5]}),
    }
    points = data.tradeoff_points(frames, "leak", "hr")
    assert points.to_dict("records") == [{"run": "late", "step": 1, "leak": 0.7, "hr": 0.2}]
    with pytest.raises(ValueError, match="utility"):
        data.tradeoff_points(frames, "hr", "hr")
    runs = discover(outputs).runs
    real = data.tradeoff_points(
        {r.label: pd.read_parquet(r.path / "metrics.parquet") for r in runs},
        "leak_gender_auc", "hr_10")
    assert len(real) == 6 and set(real["step"]) == {2}
    assert real["leak_gender_auc"].between(0, 1).all()


def test_column_helpers_pick_outcomes(outputs: Path) -> None:
    metrics = pd.read_parquet(outputs / GRAPH_RUN / "metrics.parquet")
    columns = data.metric_columns(metrics)
    assert {"hr_10", "ndcg_10", "leak_gender_auc", "beta_mean"} <= set(columns)
    assert not {"step", "retrained", "model_version", "leak_gender_classifier",
                "seconds_training"} & set(columns)
    assert data.leak_auc_columns(metrics.columns) == ["leak_gender_auc", "leak_age_auc"]
    assert data.leak_auc_columns(["attacker1_leak_gender_auc", "leak_x_auc_chance"]) == [
        "attacker1_leak_gender_auc"]
    assert data.utility_columns(["hr_10", "pop_hr_10", "mae", "ndcg_20", "hr_10_clean"]) == [
        "hr_10", "mae", "ndcg_20"]


def test_group_series_pivots_one_kind(outputs: Path) -> None:
    groups = pd.read_parquet(outputs / GRAPH_RUN / "groups.parquet")
    assert {"all", "inclination", "involvement"} <= set(data.group_kinds(groups))
    series = data.group_series(groups, "inclination", "disclosure_mean")
    rows = groups[groups["group_kind"] == "inclination"]
    assert set(series.columns) == set(rows["group"].astype(str))
    assert list(series.index) == [0, 1, 2]
    one = rows[(rows["step"] == 1) & (rows["group"] == "unconcerned")]["disclosure_mean"]
    assert series.loc[1, "unconcerned"] == pytest.approx(float(one.iloc[0]))
    with pytest.raises(ValueError, match="kind"):
        data.group_series(groups, "nope", "hr_10")
    with pytest.raises(ValueError, match="metric"):
        data.group_series(groups, "inclination", "nope")


def test_sample_graph_keeps_neighbourhoods_under_the_cap() -> None:
    ring = np.arange(800)
    edges = pd.DataFrame({"source": ring, "target": (ring + 1) % 800})
    users = np.arange(850)  # 50 users without any edge
    nodes, pairs = data.sample_graph(edges, users, 100, np.random.default_rng(3))
    assert nodes.size == 100 and np.all(np.diff(nodes) > 0)
    original = {(int(a), int(b)) for a, b in zip(ring, (ring + 1) % 800, strict=True)}
    chosen = {tuple(sorted((int(nodes[a]), int(nodes[b])))) for a, b in pairs}
    assert chosen <= {tuple(sorted(e)) for e in original}
    # Breadth-first sampling of a ring yields long arcs; uniform sampling would keep ~12 edges.
    assert len(pairs) >= 90
    again, pairs_again = data.sample_graph(edges, users, 100, np.random.default_rng(3))
    assert np.array_equal(nodes, again) and np.array_equal(pairs, pairs_again)
    small_nodes, small_pairs = data.sample_graph(edges.head(5), np.arange(8), 100,
                                                 np.random.default_rng(0))
    assert small_nodes.tolist() == list(range(8)) and len(small_pairs) == 5


def test_sample_graph_rejects_bad_arguments() -> None:
    edges = pd.DataFrame({"source": [0], "target": [1]})
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="max_nodes"):
        data.sample_graph(edges, np.arange(2), 0, rng)
    with pytest.raises(ValueError, match="rng"):
        data.sample_graph(edges, np.arange(2), 5, 0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="edges"):
        data.sample_graph(pd.DataFrame({"u": [0]}), np.arange(2), 5, rng)


def test_spring_positions_are_reproducible() -> None:
    pairs = np.array([[0, 1], [1, 2], [2, 3]])
    first = data.spring_positions(5, pairs, np.random.default_rng(7))
    assert first.shape == (5, 2) and np.isfinite(first).all()
    np.testing.assert_array_equal(first, data.spring_positions(5, pairs,
                                                               np.random.default_rng(7)))
    assert not np.allclose(first, data.spring_positions(5, pairs, np.random.default_rng(8)))
    with pytest.raises(ValueError, match="n_nodes"):
        data.spring_positions(0, pairs, np.random.default_rng(0))


def test_betas_at_reads_one_step() -> None:
    agents = pd.DataFrame({"step": [0, 0, 1, 1], "user": [0, 1, 0, 1],
                           "beta": [0.2, 0.4, 0.3, 0.5]})
    np.testing.assert_array_equal(data.betas_at(agents, 1, np.array([1, 0, 9])),
                                  [0.5, 0.3, np.nan])
    with pytest.raises(ValueError, match="step"):
        data.betas_at(agents, 5, np.array([0]))


def test_graph_figure_checks_shapes() -> None:
    with pytest.raises(ValueError, match="positions"):
        figures.graph_figure(np.zeros((3, 2)), np.zeros((0, 2)), np.zeros(4), "t")


def _layers(chart: object) -> list[dict[str, object]]:
    spec = chart.to_dict()  # type: ignore[attr-defined]
    return list(spec["layer"])


def test_metric_chart_layers_bands_reference_and_timeline() -> None:
    bands = pd.DataFrame({"variant": ["A", "A", "B", "B"], "step": [0, 1, 0, 1],
                          "n": [3, 3, 1, 1], "mean": [0.1, 0.2, 0.3, 0.4],
                          "low": [0.0, 0.1, np.nan, np.nan], "high": [0.2, 0.3, np.nan, np.nan]})
    reference = pd.DataFrame({"variant": ["", ""], "step": [0, 1], "value": [0.5, 0.5]})
    marks = pd.DataFrame({"step": [1], "label": ["breach"], "variants": ["all"]})
    chart = charts.metric_chart(bands, "leak_gender_auc", {"A": "no adversarial"},
                                {"A": "no adversarial", "B": "adversarial"}, reference,
                                "chance", [0, 1], marks)
    kinds = [layer["mark"]["type"] for layer in _layers(chart)]
    assert kinds == ["rule", "rule", "text", "area", "line", "line"]
    line = _layers(chart)[4]["encoding"]
    assert line["color"]["legend"]["orient"] == "bottom"
    assert line["color"]["scale"]["domain"] == ["no adversarial", "B"]
    assert line["y"]["title"] == "gender AUC"
    assert chart.to_dict()["title"] == {"text": "gender AUC", "subtitle": "dashed: chance"}
    assert _layers(chart)[5]["mark"]["strokeDash"] == [5, 4]
    bare = charts.metric_chart(bands, "hr_10", {}, {}, reference.iloc[:0], "", [],
                               marks.iloc[:0])
    assert [layer["mark"]["type"] for layer in _layers(bare)] == ["area", "line"]


def test_every_chart_colours_the_page_domain_and_never_cuts_a_legend() -> None:
    """A chart that shows only some variants still colours over all of the page's, so a
    variant keeps its colour across charts; long labels get a legend column each."""
    bands = pd.DataFrame({"variant": ["B", "B"], "step": [0, 1], "n": [1, 1],
                          "mean": [0.3, 0.4], "low": [np.nan] * 2, "high": [np.nan] * 2})
    empty = pd.DataFrame(columns=["variant", "step", "value"])
    long = "a variant name far longer than any legend column would hold"
    chart = charts.metric_chart(bands, "hr_10", {}, {}, empty, "", [], empty.iloc[:0],
                                domain=[long, "B"])
    colour = _layers(chart)[-1]["encoding"]["color"]
    assert colour["scale"]["domain"] == [long, "B"]
    assert colour["legend"]["labelLimit"] == 0 and colour["legend"]["columns"] == 1
    points = pd.DataFrame({"run": ["r"], "variant": ["B"], "step": [1],
                           "leak_gender_auc": [0.6], "hr_10": [0.2]})
    dots = charts.tradeoff_chart(points, "leak_gender_auc", "hr_10", {}, {}, domain=[long, "B"])
    assert _layers(dots)[0]["encoding"]["color"]["scale"]["domain"] == [long, "B"]


def test_bands_stay_within_the_metrics_range() -> None:
    frames = {"r1": pd.DataFrame({"step": [0], "hr_10": [0.98]}),
              "r2": pd.DataFrame({"step": [0], "hr_10": [0.5]})}
    bands = data.seed_bands(frames, {"r1": "v", "r2": "v"}, "hr_10")
    assert bands["high"].iloc[0] == 1.0 and bands["low"].iloc[0] == 0.0
    summary = pd.DataFrame({"step": [0, 1], "metric": ["hr_10"] * 2, "n": [5, 5],
                            "mean_difference": [0.0, -0.5], "ci_low": [0.0, -1.4],
                            "ci_high": [0.0, 0.3]})
    difference, zero = data.difference_bands(summary, "hr_10")
    assert difference["low"].tolist() == [0.0, -1.0] and set(zero["value"]) == {0.0}
    assert set(difference["variant"]) == {data.DIFFERENCE}


def test_a_counterfactual_folder_is_a_source_with_arms_named_by_folder(
        outputs: Path, tmp_path: Path) -> None:
    from simulator.dashboard.discovery import discover

    root = tmp_path / "outputs"
    folder = root / "what-if"
    points = sorted((outputs / "sweeps/tiny").glob("point-*"))  # signal 0 then 1, seeds 0, 1
    for point, (arm, seed) in zip(points, (("without", 0), ("without", 1), ("with", 0),
                                           ("with", 1)), strict=True):
        shutil.copytree(point, folder / f"{arm}-seed-{seed}")
    (folder / "counterfactual.json").write_text(json.dumps(
        {"scenario": "quickstart + 1 change", "without": ["world.signal=0"], "seeds": [0, 1]}))
    pd.DataFrame({"step": [0], "metric": ["hr_10"], "n": [2], "mean_difference": [0.0],
                  "ci_low": [0.0], "ci_high": [0.0]}).to_parquet(
        folder / "counterfactual.parquet")
    catalog = discover(root)
    (found,) = catalog.counterfactuals
    assert found.title == "quickstart + 1 change" and found.without == ("world.signal=0",)
    arms = [catalog.run(label) for label in found.runs]
    assert len(arms) == 4 and len({arm.variant for arm in arms}) == 2  # seeds pooled
    assert sorted(variant_labels(arms).values()) == ["with", "without"]


def test_reference_bands_and_timeline_table() -> None:
    frames = {"r1": pd.DataFrame({"step": [0, 1], "hr_10": [0.2, 0.3], "pop_hr_10": [0.1, 0.1],
                                  "leak_gender_auc": [0.6, 0.7],
                                  "leak_gender_auc_chance": [0.5, 0.5]}),
              "r2": pd.DataFrame({"step": [0, 1], "hr_10": [0.2, 0.3], "pop_hr_10": [0.1, 0.3],
                                  "leak_gender_auc": [0.6, 0.7],
                                  "leak_gender_auc_chance": [0.5, 0.5]})}
    variants = {"r1": "A", "r2": "B"}
    shared, name = data.reference_bands(frames, variants, "leak_gender_auc")
    assert name == "chance" and list(shared["variant"]) == ["", ""]
    assert list(shared["value"]) == [0.5, 0.5]
    apart, name = data.reference_bands(frames, variants, "hr_10")
    assert name == "popularity" and list(apart["variant"]) == ["A", "A", "B", "B"]
    assert list(apart["value"]) == [0.1, 0.1, 0.1, 0.3]
    none, name = data.reference_bands(frames, variants, "leak_gender_auc_chance")
    assert none.empty and name == ""
    effect = {"r1": pd.DataFrame({"step": [0, 2], "hr_10_change": [0.0, -0.1]})}
    zero, name = data.reference_bands(effect, {"r1": "A"}, "hr_10_change")
    assert name == "without attack" and zero.to_dict("list") == {
        "variant": ["", ""], "step": [0, 2], "value": [0.0, 0.0]}
    retrains, marks = data.timeline_table({"A": ([0, 2], [(1, "breach"), (2, "x on")]),
                                           "B": ([0, 1], [(1, "breach")])})
    assert retrains == [0, 1, 2]
    assert marks.to_dict("records") == [{"step": 1, "label": "breach", "variants": "all"},
                                        {"step": 2, "label": "x on", "variants": "A"}]


def test_group_and_tradeoff_charts(outputs: Path) -> None:
    groups = pd.read_parquet(outputs / GRAPH_RUN / "groups.parquet")
    series = data.group_series(groups, "inclination", "leak_gender_auc")
    chance = data.group_chance(groups, "inclination", "leak_gender_auc")
    assert chance is not None and (chance == 0.5).all()
    assert data.group_chance(groups, "inclination", "hr_10") is None
    chart = charts.groups_chart(series, chance, "inclination", "leak_gender_auc", [0],
                                pd.DataFrame(columns=["step", "label", "variants"]))
    assert [layer["mark"]["type"] for layer in _layers(chart)] == ["rule", "line", "line"]
    assert _layers(chart)[1]["encoding"]["color"]["legend"]["title"] == "inclination"
    points = pd.DataFrame({"run": ["r"], "step": [2], "leak_gender_auc": [0.7],
                           "hr_10": [0.3], "variant": ["A"]})
    trade = charts.tradeoff_chart(points, "leak_gender_auc", "hr_10", {"A": "a"}, {})
    assert [layer["mark"]["type"] for layer in _layers(trade)] == ["point", "rule"]


# app ---------------------------------------------------------------------------------------


def _app(monkeypatch: pytest.MonkeyPatch, outputs: Path, via_argv: bool,
         **state: object):
    testing = pytest.importorskip("streamlit.testing.v1")
    if via_argv:
        monkeypatch.setattr(sys, "argv", [str(APP_PATH), "--outputs", str(outputs)])
        monkeypatch.delenv("PRIVSIM_OUTPUTS", raising=False)
    else:
        monkeypatch.setattr(sys, "argv", [str(APP_PATH)])
        monkeypatch.setenv("PRIVSIM_OUTPUTS", str(outputs))
    at = testing.AppTest.from_file(str(APP_PATH), default_timeout=60)
    for key, value in state.items():
        at.session_state[key] = value
    return at.run()


def _specs(at: object) -> list[dict[str, object]]:
    """The Vega-Lite specs of the page's charts."""
    return [json.loads(chart.proto.spec) for chart in at.get("vega_lite_chart")]  # type: ignore[attr-defined]


def test_app_renders_every_section(monkeypatch: pytest.MonkeyPatch, outputs: Path) -> None:
    at = _app(monkeypatch, outputs, via_argv=True)
    assert not at.exception
    assert at.title[0].value == "privsim dashboard"
    assert [h.value for h in at.header] == [
        "Metrics over time", "Privacy-utility trade-off", "Groups", "Social graph",
        "Runs", "Show"]
    assert at.sidebar.multiselect(key="runs").value == ["runs/quickstart-s0",
                                                        "runs/quickstart-s1"]
    assert at.sidebar.multiselect(key="metrics").value == ["hr_10", "leak_gender_auc"]
    assert at.sidebar.multiselect(key="group_kinds").value == ["inclination"]
    # two metrics, the trade-off and one group kind as charts; the graph as an image
    specs = _specs(at)
    assert [spec["title"]["text"] if isinstance(spec["title"], dict) else spec["title"]
            for spec in specs] == ["HR@10", "gender AUC", "each run at its last measured step",
                                   "HR@10 by inclination"]
    assert specs[1]["title"]["subtitle"] == "dashed: chance"
    assert len(at.image) == 1
    assert len(at.dataframe[0].value) == 2
    assert at.slider(key="graph_step").value == 2
    # a run whose platform recommends worse than the popularity list says so
    from simulator.analysis.baselines import below_popularity

    below = {label: below_popularity(pd.read_parquet(outputs / label / "metrics.parquet"))
             for label in ("runs/quickstart-s0", "runs/quickstart-s1")}
    assert [w.value for w in at.warning] == [f"{label}: platform below popularity: {line}"
                                             for label, line in below.items() if line]


def test_app_warns_of_a_run_below_the_popularity_list(monkeypatch: pytest.MonkeyPatch,
                                                     outputs: Path, tmp_path: Path) -> None:
    """The tiny runs rank above popularity; one whose popularity list did better is named
    (its popularity column raised past the platform's HR@10, as an MF platform gives)."""
    run = tmp_path / "runs/below"
    shutil.copytree(outputs / "runs/quickstart-s0", run)
    metrics = pd.read_parquet(run / "metrics.parquet")
    metrics["pop_hr_10"] = metrics["hr_10"] + 0.1
    metrics.to_parquet(run / "metrics.parquet")
    at = _app(monkeypatch, tmp_path, via_argv=True)
    assert not at.exception
    assert [w.value for w in at.warning] == [
        "runs/below: platform below popularity: HR@10 "
        f"{metrics['hr_10'].iloc[-1]:.3f} is below the popularity list's "
        f"{metrics['pop_hr_10'].iloc[-1]:.3f} by 0.100 at step {metrics['step'].iloc[-1]} "
        f"(below at {len(metrics)} of {len(metrics)} measured steps): a most-popular list "
        "recommends better than this platform"]


def test_app_rerenders_for_another_metric_and_step(monkeypatch: pytest.MonkeyPatch,
                                                   outputs: Path) -> None:
    at = _app(monkeypatch, outputs, via_argv=True)
    first = at.image[0].value
    at.sidebar.multiselect(key="metrics").set_value(["ndcg_10"]).run()
    assert not at.exception
    assert [spec["title"]["text"] for spec in _specs(at)[:1]] == ["NDCG@10"]
    assert len(_specs(at)) == 3
    at.slider(key="graph_step").set_value(0).run()
    assert not at.exception and at.image[0].value != first


def test_app_sweep_mode_selects_points(monkeypatch: pytest.MonkeyPatch, outputs: Path) -> None:
    at = _app(monkeypatch, outputs, via_argv=False, source="Sweep")
    assert not at.exception
    assert at.sidebar.radio(key="source").value == "Sweep"
    assert at.sidebar.selectbox(key="sweep").value == "sweeps/tiny"
    points = at.sidebar.multiselect(key="points:sweeps/tiny")
    assert points.options == ["signal=0.0", "signal=1.0"]
    assert len(at.dataframe[0].value) == 4
    assert "None of the selected runs has a social graph" in at.caption[-1].value
    points.set_value(points.value[:1]).run()
    assert not at.exception and len(at.dataframe[0].value) == 2


def test_app_explains_an_empty_outputs_folder_and_rescans(
    monkeypatch: pytest.MonkeyPatch, outputs: Path, tmp_path: Path
) -> None:
    at = _app(monkeypatch, tmp_path, via_argv=False)
    from simulator.dashboard.app import empty_message

    assert not at.exception and len(at.image) == 0 and not _specs(at)
    assert at.info[0].value == empty_message(tmp_path)
    assert "No completed runs found" in at.info[0].value
    assert "holds no completed run" in at.info[0].value
    shutil.copytree(outputs / "runs/quickstart-s1", tmp_path / "late-run")
    at.sidebar.button(key="rescan").click().run()
    assert not at.exception and not at.info.values
    assert at.sidebar.multiselect(key="runs").value == ["late-run"]
    assert len(_specs(at)) == 4 and len(at.image) == 0  # no social graph in this run
    absent = _app(monkeypatch, tmp_path / "absent", via_argv=True)
    assert "does not exist" in absent.info[0].value
