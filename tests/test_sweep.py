"""Sweeps: failed points, resuming, seeds spawned from a root seed, the dask executor and
points whose worker process dies."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from simulator.experiments.sweep import expand_points, load_sweep, run_sweep, spawn_seeds
from simulator.foundations.errors import PrivsimError, ScenarioError
from simulator.world import generate_synthetic

pytestmark = pytest.mark.heavy  # long tests: started first (tests/conftest.py)

BASE = """name: tiny
world: {n_users: 120, n_items: 80, mean_ratings_per_user: 25, split: random}
platform: {model: mf, first_epochs: 5, epochs: 2, retrain_every: 1, factors: 8}
attackers: []
simulation: {steps: 1, device: cpu}
output: {plots: false}
"""


def _sweep(tmp_path: Path, body: str, name: str = "sweep.yaml") -> Path:
    (tmp_path / "base.yaml").write_text(BASE)
    path = tmp_path / name
    path.write_text(f"name: tiny\nbase: base.yaml\n{body}")
    return path


def _write_ml1m(folder: Path) -> None:
    """A small ML-1M folder holding a synthetic world's ratings."""
    world = generate_synthetic(n_users=120, n_items=80, mean_ratings_per_user=25, seed=3)
    r = world.ratings
    users = [f"{u + 1}::{'FM'[u % 2]}::25::{u % 21}::00000" for u in range(world.n_users)]
    movies = [f"{i + 1}::Movie {i + 1} (1995)::Drama" for i in range(world.n_items)]
    ratings = [f"{u + 1}::{i + 1}::{int(round(x))}::{t}"
               for u, i, x, t in zip(r.user, r.item, r.rating, r.timestamp, strict=True)]
    for name, lines in (("users.dat", users), ("movies.dat", movies), ("ratings.dat", ratings)):
        (folder / name).write_text("\n".join(lines) + "\n", encoding="latin-1")


def _points(folder: Path) -> pd.DataFrame:
    return pd.read_parquet(folder / "points.parquet")


def _manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def test_failed_point_is_recorded_and_a_rerun_resumes(tmp_path: Path) -> None:
    data = tmp_path / "ml"
    data.mkdir()  # exists, so the scenario validates; holds no rating file, so runs fail
    sweep = _sweep(tmp_path, f"set: ['world.path={data}']\n"
                             "grid:\n  world.source: [synthetic, movielens]\n"
                             "seeds: [0, 1]\nworkers: 2\n")
    out = tmp_path / "out"
    run_sweep(sweep, out=out)
    points = _points(out)
    failed = points[points["world.source"] == "movielens"]
    assert (failed["status"] == "failed").all() and len(failed) == 2
    assert failed["error"].str.startswith("DataFormatError:").all()
    assert failed["error"].str.contains("no MovieLens rating file").all()
    done = points[points["status"] == "completed"]
    assert done["world.source"].tolist() == ["synthetic", "synthetic"]
    assert sorted(pd.read_parquet(out / "results.parquet")["point"].unique()) == [0, 1]
    assert _manifest(out)["failed"] == 2
    before = {label: ((out / label / "manifest.json").read_bytes(),
                      (out / label / "manifest.json").stat().st_mtime_ns)
              for label in done["run_dir"]}

    _write_ml1m(data)  # the failed points can now run
    run_sweep(sweep, out=out)
    points = _points(out)
    assert (points["status"] == "completed").all()
    assert points["error"].isna().all()
    for label, (text, mtime) in before.items():
        manifest = out / label / "manifest.json"
        assert manifest.read_bytes() == text and manifest.stat().st_mtime_ns == mtime
    results = pd.read_parquet(out / "results.parquet")
    assert sorted(results["point"].unique()) == [0, 1, 2, 3]
    for label, source in zip(points["run_dir"], points["world.source"], strict=True):
        changes = _manifest(out / label)["changes"] or {}  # a point's run names its changes
        assert ("world.source" in changes.get("settings", [])) == (source == "movielens")
        assert changes.get("from", "tiny") == "tiny"
    assert set(results["world.source"]) == {"synthetic", "movielens"}
    assert _manifest(out)["reused"] == 2 and _manifest(out)["failed"] == 0

    run_sweep(sweep, out=out)  # nothing left to run
    assert _manifest(out)["reused"] == 4
    pd.testing.assert_frame_equal(pd.read_parquet(out / "results.parquet"), results)

    sweep.write_text(sweep.read_text().replace("seeds: [0, 1]", "seeds: [0, 2]"))
    with pytest.raises(ScenarioError, match=r"different sweep \(seeds was \[0, 1\], now \[0, 2\]"):
        run_sweep(sweep, out=out)
    sweep.write_text(sweep.read_text().replace("seeds: [0, 2]", "seeds: [0, 1]"))
    (tmp_path / "base.yaml").write_text(BASE.replace("factors: 8", "factors: 9"))
    with pytest.raises(ScenarioError, match=r"completed with another scenario \(platform.factors"):
        run_sweep(sweep, out=out)


def test_a_folder_that_is_not_a_sweep_is_refused(tmp_path: Path) -> None:
    sweep = _sweep(tmp_path, "seeds: [0]\n")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("kept")
    with pytest.raises(ScenarioError, match="holds no sweep.yaml"):
        run_sweep(sweep, out=tmp_path / "other")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"executor": "ray"}, "executor: expected one of local, dask"),
    ({"scheduler": "tcp://127.0.0.1:8786"}, "scheduler: an address needs executor 'dask'"),
    ({"workers": 0}, "workers: expected at least 1"),
])
def test_bad_run_arguments_are_named(tmp_path: Path, kwargs: dict, message: str) -> None:
    with pytest.raises((ValueError, PrivsimError), match=message):
        run_sweep(_sweep(tmp_path, ""), out=tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()


def test_replications_spawn_distinct_seeds_from_the_root_seed(tmp_path: Path) -> None:
    sweep = _sweep(tmp_path, "grid:\n  world.signal: [0.0, 1.0]\nreplications: 3\nroot_seed: 11\n")
    points = expand_points(load_sweep(sweep), sweep)
    children = np.random.SeedSequence(11).spawn(6)
    expected = [int(c.generate_state(1, dtype=np.uint32)[0]) for c in children]
    assert [p.seed for p in points] == expected == spawn_seeds(11, 6)
    assert len(set(expected)) == 6
    assert [(p.params["world.signal"], p.replication) for p in points] == [
        (0.0, 0), (0.0, 1), (0.0, 2), (1.0, 0), (1.0, 1), (1.0, 2)]
    assert [p.scenario.simulation.seed for p in points] == expected
    again = expand_points(load_sweep(sweep), sweep)
    assert [p.seed for p in again] == expected
    assert not set(spawn_seeds(12, 6)) & set(expected)
    with pytest.raises(ValueError, match="root_seed"):
        spawn_seeds(-1, 2)


@pytest.mark.parametrize(("body", "message"), [
    ("seeds: [0]\nreplications: 2\n", r"\(top level\): seeds and replications exclude"),
    ("replications: 0\n", "replications: Input should be greater than or equal to 1"),
    ("seeds: []\n", "seeds: List should have at least 1 item"),
])
def test_bad_seed_settings_are_named(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        load_sweep(_sweep(tmp_path, body))


def test_seeds_default_to_zero(tmp_path: Path) -> None:
    spec = load_sweep(_sweep(tmp_path, ""))
    assert spec.seeds == [0] and spec.replications is None


def test_dask_local_cluster_gives_the_local_pool_results(tmp_path: Path) -> None:
    sweep = _sweep(tmp_path, "set: ['population.types={everyone: {share: 1.0, beta: 1.0}}']\n"
                             "grid:\n  population.types.everyone.beta: [1.0, 0.5]\n"
                             "replications: 2\nroot_seed: 5\nreport: [privacy_budget]\n"
                             "workers: 2\n")
    local = run_sweep(sweep, out=tmp_path / "local")
    dask = run_sweep(sweep, out=tmp_path / "dask", executor="dask")
    assert _manifest(dask)["executor"] == "dask"
    pd.testing.assert_frame_equal(_points(local), _points(dask))
    points = _points(dask)
    assert (points["status"] == "completed").all()
    assert points["seed"].tolist() == spawn_seeds(5, 4)
    assert points["replication"].tolist() == [0, 1, 0, 1]
    tables = [pd.read_parquet(folder / "results.parquet") for folder in (local, dask)]
    numeric = [c for c in tables[0].select_dtypes("number") if not c.startswith("seconds_")]
    assert {"point", "seed", "replication", "population.types.everyone.beta", "mae",
            "ndcg_10"} <= set(numeric)
    pd.testing.assert_frame_equal(tables[0][numeric], tables[1][numeric])
    # The budget study pairs each budget with full disclosure by replication.
    budget = pd.read_csv(dask / "budget.csv")
    everyone = budget[budget["group"] == "all"].set_index("beta")
    assert everyone["seeds"].tolist() == [2, 2]
    assert everyone.loc[1.0, "dmae"] == pytest.approx(1.0)
    assert np.isfinite(everyone.loc[0.5, "dmae"]) and everyone.loc[0.5, "dmae"] != 1.0


def test_dask_runs_on_a_given_scheduler_and_leaves_it_running(tmp_path: Path) -> None:
    from dask.distributed import Client, LocalCluster

    sweep = _sweep(tmp_path, "seeds: [4]\n")
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster:
        folder = run_sweep(sweep, out=tmp_path / "out", executor="dask",
                           scheduler=cluster.scheduler_address)
        with Client(cluster) as client:
            assert client.submit(sum, [1, 2]).result() == 3
    assert _points(folder)["status"].tolist() == ["completed"]
    assert len(pd.read_parquet(folder / "results.parquet")) == 1


class _Killer(threading.Thread):
    """Kills every pool process each time the watched point's run starts afresh."""

    def __init__(self, manifest: Path) -> None:
        super().__init__(daemon=True)
        self.manifest = manifest
        self.stop = threading.Event()
        self.kills = 0

    def run(self) -> None:
        killed = None
        while not self.stop.wait(0.02):
            try:
                seen = self.manifest.stat()
                running = json.loads(self.manifest.read_text())["status"] == "running"
            except (OSError, ValueError, KeyError):
                continue
            if running and (seen.st_ino, seen.st_mtime_ns) != killed:
                for child in multiprocessing.active_children():
                    os.kill(child.pid, signal.SIGKILL)
                killed = (seen.st_ino, seen.st_mtime_ns)
                self.kills += 1


def test_a_point_whose_worker_dies_is_failed_and_the_others_complete(tmp_path: Path) -> None:
    # The middle point runs long enough (20 retrains) to be killed while it runs.
    sweep = _sweep(tmp_path, "grid:\n  simulation.steps: [1, 20, 2]\nseeds: [0]\nworkers: 2\n")
    (tmp_path / "base.yaml").write_text(BASE.replace("epochs: 2", "epochs: 20"))
    out = tmp_path / "out"
    killer = _Killer(out / "point-001-seed-0" / "manifest.json")
    killer.start()
    try:
        run_sweep(sweep, out=out)
    finally:
        killer.stop.set()
        killer.join()
    assert killer.kills == 2  # its first run, then its rerun alone
    points = _points(out)
    assert points["status"].tolist() == ["completed", "failed", "completed"]
    assert points["error"][1].startswith("BrokenProcessPool: A process in the process pool")
    assert sorted(pd.read_parquet(out / "results.parquet")["point"].unique()) == [0, 2]

    run_sweep(sweep, out=out)
    assert _points(out)["status"].tolist() == ["completed"] * 3
    assert _manifest(out)["reused"] == 2
    assert len(pd.read_parquet(out / "results.parquet").query("point == 1")) == 20


def test_the_console_and_exit_status_say_how_many_points_failed(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from simulator.cli import app

    data = tmp_path / "ml"
    data.mkdir()  # no rating file: the movielens points fail
    sweep = _sweep(tmp_path, f"set: ['world.path={data}']\n"
                             "grid:\n  world.source: [synthetic, movielens]\nworkers: 1\n")
    result = CliRunner().invoke(app, ["sweep", str(sweep), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "1 of 2 points failed" in result.output and "Traceback" not in result.output


def test_a_grid_with_non_finite_values_resumes(tmp_path: Path) -> None:
    # Any .inf or .nan goes through the sweep record and back unchanged.
    sweep = _sweep(tmp_path, "grid:\n  platform.lr: [.inf, 0.01]\n")
    spec = load_sweep(sweep)
    assert spec.grid["platform.lr"][0] == float("inf")
    out = tmp_path / "out"
    out.mkdir()
    from simulator.experiments.sweep import _claim_folder

    _claim_folder(out, spec)
    _claim_folder(out, spec)  # the recorded sweep is the same sweep
    assert load_sweep(out / "sweep.yaml").grid["platform.lr"][0] == float("inf")
    nan_spec = load_sweep(_sweep(tmp_path, "grid:\n  platform.lr: [.nan]\n", "nan.yaml"))
    (tmp_path / "nan-out").mkdir()
    _claim_folder(tmp_path / "nan-out", nan_spec)
    _claim_folder(tmp_path / "nan-out", nan_spec)


@pytest.mark.parametrize("name", ["../../../escaped", "/abs/path", "..", "a b/c"])
def test_a_sweep_name_cannot_leave_the_output_folder(tmp_path: Path, name: str) -> None:
    from simulator.runs.outputs import new_run_dir

    folder = new_run_dir(tmp_path / "sweeps", name)
    assert folder.parent == tmp_path / "sweeps" and folder.is_dir()
    assert not folder.name.startswith(".")


def test_workers_run_in_the_callers_folder_and_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Workers fork from a server that keeps the folder and environment it started with;
    each point still resolves relative paths and reads variables as the caller does now."""
    first, second = tmp_path / "first", tmp_path / "second"
    for folder in (first, second):
        folder.mkdir()
    monkeypatch.chdir(first)
    run_sweep(_sweep(first, "seeds: [0]\n"), out=first / "out")  # the server starts here
    (second / "ml").mkdir()
    _write_ml1m(second / "ml")
    monkeypatch.chdir(second)
    monkeypatch.setenv("PRIVSIM_SWEEP_MARK", "second")
    sweep = _sweep(second, "set: ['world.source=movielens', 'world.path=ml']\nseeds: [0]\n")
    out = run_sweep(sweep, out=second / "out")
    assert _points(out)["status"].tolist() == ["completed"], _points(out)["error"].tolist()
    from simulator.experiments.workers import caller_state, worker_context

    with worker_context().Pool(1) as pool:  # the variable as the caller set it
        assert pool.apply(_caller_mark, (caller_state(),)) == ("second", str(second))


def _caller_mark(state: dict) -> tuple[str | None, str]:
    from simulator.experiments.workers import adopt

    adopt(state)
    return os.environ.get("PRIVSIM_SWEEP_MARK"), os.getcwd()
