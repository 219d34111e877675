"""Checkpoints: a run killed at any point resumes and ends with the same results."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from simulator.analysis.compare import load_runs
from simulator.experiments.catalog import load_scenario
from simulator.experiments.runner import CHECKPOINT, resume_run, run_scenario
from simulator.foundations.errors import PrivsimError
from simulator.runs.run_lock import run_status
from simulator.simulation.model import PrivacyModel

pytestmark = pytest.mark.heavy  # long tests: started first (tests/conftest.py)

TINY = [
    "world.n_users=250", "world.n_items=150", "world.mean_ratings_per_user=30",
    "simulation.steps=6", "simulation.device=cpu", "platform.retrain_every=1",
    "platform.first_epochs=8", "platform.epochs=2", "attackers.0.folds=3",
    "attackers.0.classifiers=[logreg]", "output.plots=false",
]
SCENARIOS = {
    "bpr": [],
    "social-mf-shilling": [
        "platform.model=mf", "population.policy=social", "events=[{step: 2, reach: 0.3}]",
        "attackers=[{kind: inference, classifiers: [logreg], folds: 3}, "
        "{kind: shilling, adaptive: true, start_step: 1}]",
    ],
    "metamf-adversarial-late": [
        "platform.model=metamf", "population.policy=privacy_calculus",
        "platform.defenses.adversarial={attributes: [gender], start_step: 1}",
    ],
    # DP-SGD trains per example and the unlearning edit trains probes at each check: fewer
    # epochs, users and retrains (one every other step, the resumed step 4 among them) keep
    # these as thorough and a fraction as long.
    "mf-dp-unlearning": [
        "platform.model=mf", "platform.defenses.dp={noise_multiplier: 1.0}",
        "platform.first_epochs=2", "platform.epochs=1", "world.n_users=150",
        "platform.retrain_every=2", "platform.defenses.unlearning={attribute: gender}",
    ],
    "bpr-apr-detection-item-owner": [
        "platform.defenses.apr={epsilon: 0.5}", "platform.defenses.detection={}",
        "attackers=[{kind: inference, classifiers: [logreg, xgboost], folds: 3}, "
        "{kind: shilling, start_step: 1}, "
        "{kind: item_perturbation, n_items: 1, start_step: 2, steps: 3}]",
    ],
    "metamf-dp-adversarial-flipped-fakes": [
        "platform.model=metamf", "platform.metamf={hidden: 32, memory_dim: 16}",
        "platform.defenses.dp={noise_multiplier: 1.0}", "platform.first_epochs=2",
        "platform.epochs=1", "world.n_users=150", "platform.retrain_every=2",
        "platform.defenses.adversarial={attributes: [gender]}",
        "attackers=[{kind: inference, classifiers: [logreg], folds: 3}, "
        "{kind: shilling, start_step: 1, spread_steps: 3, declared_attributes: flipped}, "
        "{kind: item_perturbation, n_items: 1, start_step: 2, steps: 3}]",
    ],
}


def _tables(folder: Path) -> dict[str, pd.DataFrame]:
    tables = {name: pd.read_parquet(folder / f"{name}.parquet")
              for name in ("metrics", "groups", "agents", "events")}
    for name, table in tables.items():
        tables[name] = table.drop(columns=[c for c in table.columns
                                           if c.startswith("seconds") or c == "seconds"])
    return tables


def _assert_same(a: Path, b: Path) -> None:
    left, right = _tables(a), _tables(b)
    for name in left:
        pd.testing.assert_frame_equal(left[name], right[name], check_exact=True, obj=name)


@pytest.mark.parametrize("variant", list(SCENARIOS))
def test_an_interrupted_run_resumes_to_identical_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variant: str
) -> None:
    scenario = load_scenario("quickstart", [*TINY, *SCENARIOS[variant]])
    run_scenario(scenario, out=tmp_path / "whole", progress=False)
    original = PrivacyModel._apply_events

    def stop_at_four(self: PrivacyModel, step: int) -> None:
        if step == 4:  # as if the user pressed Ctrl-C during step 4
            raise KeyboardInterrupt
        original(self, step)

    monkeypatch.setattr(PrivacyModel, "_apply_events", stop_at_four)
    with pytest.raises(KeyboardInterrupt):
        run_scenario(scenario, out=tmp_path / "cut", progress=False, checkpoint_every=3)
    monkeypatch.setattr(PrivacyModel, "_apply_events", original)
    manifest = json.loads((tmp_path / "cut" / "manifest.json").read_text())
    assert manifest["status"] == "interrupted"
    assert not (tmp_path / "cut" / "metrics.parquet").exists()
    result = resume_run(tmp_path / "cut", progress=False)
    assert result.manifest["status"] == "completed" and result.manifest["resumed_from_step"] == 3
    assert not (tmp_path / "cut" / CHECKPOINT).exists()
    _assert_same(tmp_path / "whole", tmp_path / "cut")


LONG = [*TINY, "simulation.steps=12", "world.n_users=400"]


@pytest.fixture(scope="module")
def whole(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run of LONG that never stopped, which the stopped ones must end up equal to."""
    folder = tmp_path_factory.mktemp("long") / "whole"
    run_scenario(load_scenario("quickstart", LONG), out=folder, progress=False)
    return folder


def _run_until_first_checkpoint(tmp_path: Path, name: str) -> subprocess.Popen[str]:
    """The run of LONG as a `privsim run` process into `tmp_path/name`, returned once its
    first checkpoint exists."""
    command = [sys.executable, "-m", "simulator", "run", "quickstart", "--no-progress",
               "--checkpoint-every", "2", "--out", str(tmp_path / name)]
    for override in LONG:
        command += ["--set", override]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True)
    checkpoint = tmp_path / name / CHECKPOINT
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    if process.poll() is not None:
        pytest.fail("the run ended before its first checkpoint; make it longer")
    return process


def test_a_killed_process_resumes_to_identical_results(tmp_path: Path, whole: Path) -> None:
    process = _run_until_first_checkpoint(tmp_path, "killed")
    os.kill(process.pid, signal.SIGKILL)
    process.communicate()
    manifest = json.loads((tmp_path / "killed" / "manifest.json").read_text())
    assert manifest["status"] == "running"  # killed: nothing had a chance to record it
    assert run_status(tmp_path / "killed", manifest) == "crashed"  # but nobody holds it
    notes = load_runs([tmp_path / "killed"]).attrs["warnings"]
    assert any("status crashed" in note for note in notes)
    result = resume_run(tmp_path / "killed", progress=False)
    assert result.manifest["resumed_after"] == "crashed"
    _assert_same(whole, tmp_path / "killed")


def test_resume_refuses_what_it_cannot_resume(tmp_path: Path) -> None:
    # folders given as text, as a notebook would
    finished = run_scenario(load_scenario("quickstart", [*TINY, "simulation.steps=2"]),
                            out=str(tmp_path / "done"), progress=False, checkpoint_every=1)
    assert finished.path == tmp_path / "done"
    with pytest.raises(PrivsimError, match="already completed"):
        resume_run(str(finished.path))
    with pytest.raises(PrivsimError, match="not a run folder"):
        resume_run(tmp_path)
    with pytest.raises(PrivsimError, match="at least 1"):
        run_scenario(load_scenario("quickstart", TINY), out=tmp_path / "x", checkpoint_every=0)


def test_sigterm_stops_a_run_as_ctrl_c_does(tmp_path: Path, whole: Path) -> None:
    process = _run_until_first_checkpoint(tmp_path, "stopped")
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143
    assert "stopped by SIGTERM" in stderr and "Traceback" not in stderr
    manifest = json.loads((tmp_path / "stopped" / "manifest.json").read_text())
    assert manifest["status"] == "interrupted"
    assert "SIGTERM" in manifest["error"]
    resume_run(tmp_path / "stopped", progress=False)
    _assert_same(whole, tmp_path / "stopped")
