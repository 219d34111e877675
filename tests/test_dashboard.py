"""Dashboard: run discovery, seed bands, trade-off and group series, graph sampling, and the
Streamlit app itself (driven headless through streamlit's AppTest)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats
from threadpoolctl import threadpool_limits

from simulator.core.social import make_graph
from simulator.dashboard import APP_PATH, data, figures
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
    assert sorted(labels.values()) == ["quickstart", "world.signal=0.0", "world.signal=1.0"]


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


def test_variant_labels_name_differing_settings_and_clashing_sweeps() -> None:
    runs = [
        _info("a", "quickstart|1", settings=(("world.signal", "1.0"), ("x", "1"))),
        _info("b", "quickstart|1", settings=(("world.signal", "1.0"), ("x", "1")), seed=1),
        _info("c", "quickstart|2", settings=(("world.signal", "0.5"), ("x", "1"))),
        _info("d", "s1|3", sweep="s1", params=(("k", "1"),)),
        _info("e", "s2|4", sweep="s2", params=(("k", "1"),)),
    ]
    assert variant_labels(runs) == {
        "quickstart|1": "quickstart (world.signal=1.0)",
        "quickstart|2": "quickstart (world.signal=0.5)",
        "s1|3": "s1: k=1", "s2|4": "s2: k=1",
    }


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


def test_figures_draw_bands_and_check_shapes() -> None:
    bands = pd.DataFrame({"variant": ["A", "A", "B", "B"], "step": [0, 1, 0, 1],
                          "n": [3, 3, 1, 1], "mean": [0.1, 0.2, 0.3, 0.4],
                          "low": [0.0, 0.1, np.nan, np.nan], "high": [0.2, 0.3, np.nan, np.nan]})
    axes = figures.metric_figure(bands, "m", {"A": "first"}).axes[0]
    assert [line.get_label() for line in axes.lines] == ["first (mean of 3 seeds)", "B"]
    assert len(axes.collections) == 1  # a band only for the variant with several seeds
    with pytest.raises(ValueError, match="series"):
        figures.groups_figure({}, "m", "run")
    with pytest.raises(ValueError, match="positions"):
        figures.graph_figure(np.zeros((3, 2)), np.zeros((0, 2)), np.zeros(4), "t")


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
    # two metrics, the trade-off, the groups and the graph
    assert len(at.image) == 5
    assert len(at.dataframe[0].value) == 2
    assert at.slider(key="graph_step").value == 2


def test_app_rerenders_for_another_metric_and_step(monkeypatch: pytest.MonkeyPatch,
                                                   outputs: Path) -> None:
    at = _app(monkeypatch, outputs, via_argv=True)
    first = at.image[0].value
    at.sidebar.multiselect(key="metrics").set_value(["ndcg_10"]).run()
    assert not at.exception
    assert len(at.image) == 4 and at.image[0].value != first
    at.slider(key="graph_step").set_value(0).run()
    assert not at.exception and len(at.image) == 4


def test_app_sweep_mode_selects_points(monkeypatch: pytest.MonkeyPatch, outputs: Path) -> None:
    at = _app(monkeypatch, outputs, via_argv=False, source="Sweep")
    assert not at.exception
    assert at.sidebar.radio(key="source").value == "Sweep"
    assert at.sidebar.selectbox(key="sweep").value == "sweeps/tiny"
    points = at.sidebar.multiselect(key="points:sweeps/tiny")
    assert points.options == ["world.signal=0.0", "world.signal=1.0"]
    assert len(at.dataframe[0].value) == 4
    assert "None of the selected runs has a social graph" in at.caption[-1].value
    points.set_value(points.value[:1]).run()
    assert not at.exception and len(at.dataframe[0].value) == 2


def test_app_explains_an_empty_outputs_folder_and_rescans(
    monkeypatch: pytest.MonkeyPatch, outputs: Path, tmp_path: Path
) -> None:
    at = _app(monkeypatch, tmp_path, via_argv=False)
    from simulator.dashboard.app import empty_message

    assert not at.exception and len(at.image) == 0
    assert at.info[0].value == empty_message(tmp_path)
    assert "No completed runs found" in at.info[0].value
    assert "holds no completed run" in at.info[0].value
    shutil.copytree(outputs / "runs/quickstart-s1", tmp_path / "late-run")
    at.sidebar.button(key="rescan").click().run()
    assert not at.exception and not at.info.values
    assert at.sidebar.multiselect(key="runs").value == ["late-run"]
    assert len(at.image) == 4  # no social graph in this run
    absent = _app(monkeypatch, tmp_path / "absent", via_argv=True)
    assert "does not exist" in absent.info[0].value
