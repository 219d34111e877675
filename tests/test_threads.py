"""Threads: the cores a process may use (affinity, cgroup quotas), the budget a run holds
its libraries to, how idle OpenMP threads wait, and what the manifest says of it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from simulator.foundations.errors import PrivsimError
from simulator.foundations.threads import (
    THREADS_VARIABLE,
    available_cores,
    cgroup_cpu_limit,
    run_threads,
    thread_budget,
    threads_per_worker,
)


def _cgroup(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_a_cgroup_v2_quota_is_read_along_the_process_path(tmp_path: Path) -> None:
    root = _cgroup(tmp_path, {"cpu.max": "max 100000\n", "job/cpu.max": "150000 100000\n",
                              "job/step/cpu.max": "max 100000\n"})
    assert cgroup_cpu_limit(root, "0::/job/step\n") == 1.5  # the tightest on the path
    assert cgroup_cpu_limit(root, "0::/\n") is None  # "max": no quota
    assert cgroup_cpu_limit(tmp_path / "missing", "0::/job\n") is None


def test_a_cgroup_v1_quota_is_read_from_the_cpu_controller(tmp_path: Path) -> None:
    root = _cgroup(tmp_path, {"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n",
                              "cpu/slurm/cpu.cfs_quota_us": "300000\n",
                              "cpu/slurm/cpu.cfs_period_us": "100000\n"})
    assert cgroup_cpu_limit(root, "4:cpu,cpuacct:/slurm\n1:memory:/x\n") == 3.0
    assert cgroup_cpu_limit(root, "4:cpu,cpuacct:/\n") is None  # -1: no quota
    assert cgroup_cpu_limit(root, "garbage\n\n") is None


def test_the_quota_lowers_the_cores_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    monkeypatch.setattr("simulator.foundations.threads.cgroup_cpu_limit", lambda: 1.5)
    assert available_cores() == (2, "cgroup quota")
    monkeypatch.setattr("simulator.foundations.threads.cgroup_cpu_limit", lambda: 8.0)
    assert available_cores() == (4, "affinity")
    monkeypatch.setattr("simulator.foundations.threads.cgroup_cpu_limit", lambda: 0.2)
    assert available_cores() == (1, "cgroup quota")


def test_the_budget_comes_from_the_variable_or_the_cores(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("simulator.foundations.threads.available_cores", lambda: (4, "affinity"))
    monkeypatch.delenv(THREADS_VARIABLE, raising=False)
    assert thread_budget() == (4, "affinity")
    assert [threads_per_worker(w) for w in (1, 2, 3, 8)] == [4, 2, 1, 1]
    monkeypatch.setenv(THREADS_VARIABLE, "3")
    assert thread_budget() == (3, THREADS_VARIABLE)
    for bad in ("0", "two", "-1", "1.5", "٣"):
        monkeypatch.setenv(THREADS_VARIABLE, bad)
        with pytest.raises(PrivsimError, match=THREADS_VARIABLE):
            thread_budget()


def test_a_run_holds_the_libraries_to_the_budget_and_restores_them(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from threadpoolctl import threadpool_info

    before = torch.get_num_threads()
    monkeypatch.setenv(THREADS_VARIABLE, "1")
    with run_threads() as used:
        assert torch.get_num_threads() == 1
        assert all(pool["num_threads"] == 1 for pool in threadpool_info()
                   if pool["user_api"] == "blas")
    assert used["threads"] == used["torch_intra_op"] == used["xgboost"] == 1
    assert used["from"] == THREADS_VARIABLE and used["cores_available"] >= 1
    assert torch.get_num_threads() == before


def test_the_manifest_says_which_threads_a_run_used(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from simulator.experiments.catalog import load_scenario
    from simulator.experiments.runner import run_scenario

    monkeypatch.setenv(THREADS_VARIABLE, "1")
    scenario = load_scenario("quickstart", [
        "world.n_users=60", "world.n_items=40", "world.mean_ratings_per_user=10",
        "world.min_ratings_per_user=3", "simulation.steps=1", "attackers=[]",
        "output.plots=false"])
    result = run_scenario(scenario, out=tmp_path / "run", progress=False)
    written = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert written["threads"] == result.manifest["threads"]
    assert written["threads"]["threads"] == 1 and written["threads"]["from"] == THREADS_VARIABLE
    assert written["threads"]["omp_wait_policy"] in ("PASSIVE", os.environ.get(
        "OMP_WAIT_POLICY"), "unknown")


def _fresh(code: str, **env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"} | env
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=clean, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip()


def test_importing_simulator_first_makes_openmp_threads_wait_passively() -> None:
    check = ("import os, simulator; from simulator.foundations.threads import openmp_wait_policy; "
             "import torch; print(os.environ.get('OMP_WAIT_POLICY'), openmp_wait_policy())")
    assert _fresh(check) == "PASSIVE PASSIVE"
    assert _fresh(check, OMP_WAIT_POLICY="ACTIVE") == "ACTIVE ACTIVE"  # the user's choice
    late = ("import torch, os, simulator; from simulator.foundations.threads import "
            "openmp_wait_policy; print(os.environ.get('OMP_WAIT_POLICY'), openmp_wait_policy())")
    assert _fresh(late) == "None unknown"  # too late to change: said, not pretended


def test_sweep_workers_each_take_their_share_of_the_budget(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from simulator.experiments.sweep import run_sweep

    monkeypatch.setenv(THREADS_VARIABLE, "2")
    (tmp_path / "base.yaml").write_text(
        "name: tiny\nworld: {n_users: 60, n_items: 40, mean_ratings_per_user: 10, "
        "min_ratings_per_user: 3}\nattackers: []\nsimulation: {steps: 1}\n"
        "output: {plots: false}\n")
    (tmp_path / "sweep.yaml").write_text("name: tiny\nbase: base.yaml\nseeds: [0, 1]\n")
    folder = run_sweep(tmp_path / "sweep.yaml", out=tmp_path / "out", workers=2)
    manifests = [json.loads(path.read_text()) for path in folder.glob("*/manifest.json")]
    assert len(manifests) == 2
    assert all(m["threads"]["threads"] == 1 for m in manifests)
