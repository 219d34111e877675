"""Faults while a run writes: what is finished is never lost, nothing is left half-written,
and the manifest says how the run ended."""

from __future__ import annotations

import errno
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import simulator.experiments.runner as runner_module
from simulator.experiments.catalog import load_scenario
from simulator.experiments.runner import resume_run, run_scenario
from simulator.simulation.checkpoint import CHECKPOINT
from simulator.simulation.model import PrivacyModel
from tests.test_run_safety import TINY

pytestmark = pytest.mark.heavy  # long tests: started first (tests/conftest.py)


def _manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def test_a_full_disk_while_writing_results_keeps_the_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = run_scenario(load_scenario("quickstart", TINY), out=tmp_path / "whole",
                         progress=False)
    original = runner_module.write_parquet
    calls = {"n": 0}

    def full_disk(path: Path, frame: pd.DataFrame) -> None:
        calls["n"] += 1
        if calls["n"] == 2:  # the second table: the first one is already written
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        original(path, frame)

    monkeypatch.setattr(runner_module, "write_parquet", full_disk)
    with pytest.raises(OSError, match="No space"):
        run_scenario(load_scenario("quickstart", TINY), out=tmp_path / "full",
                     progress=False, checkpoint_every=1)
    monkeypatch.setattr(runner_module, "write_parquet", original)
    manifest = _manifest(tmp_path / "full")
    assert manifest["status"] == "failed" and "No space" in manifest["error"]
    assert not list((tmp_path / "full").glob(".*.tmp"))  # no half-written table
    assert (tmp_path / "full" / CHECKPOINT).is_file()  # the simulation is not lost
    resumed = resume_run(tmp_path / "full", progress=False)
    pd.testing.assert_frame_equal(
        resumed.metrics.filter(regex="^(?!seconds)"), whole.metrics.filter(regex="^(?!seconds)"))


def test_a_crash_while_checkpointing_keeps_the_previous_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = runner_module.save_checkpoint
    saves = {"n": 0}

    def crash_on_second(model: PrivacyModel, run_dir: Path, extra: dict) -> Path:
        saves["n"] += 1
        if saves["n"] == 2:
            partial = run_dir / (CHECKPOINT + ".partial")
            partial.write_bytes(b"half")  # as if killed mid-write
            raise KeyboardInterrupt
        return original(model, run_dir, extra)

    monkeypatch.setattr(runner_module, "save_checkpoint", crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        run_scenario(load_scenario("quickstart", TINY), out=tmp_path / "run", progress=False,
                     checkpoint_every=1)
    monkeypatch.setattr(runner_module, "save_checkpoint", original)
    assert _manifest(tmp_path / "run")["status"] == "interrupted"
    result = resume_run(tmp_path / "run", progress=False)
    assert result.manifest["resumed_from_step"] == 1  # the first, intact checkpoint
    assert result.manifest["status"] == "completed"
    assert not (tmp_path / "run" / (CHECKPOINT + ".partial")).exists()


def test_two_runs_into_one_folder_one_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "shared"
    command = [sys.executable, "-m", "simulator", "run", "quickstart", "--no-progress",
               "--out", str(out)]
    for override in TINY:
        command += ["--set", override]
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    second = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    outcomes = [(p.wait(timeout=300), p.communicate()[1]) for p in (first, second)]
    codes = sorted(code for code, _ in outcomes)
    assert codes == [0, 2], outcomes
    refused = next(err for code, err in outcomes if code == 2)
    assert "another privsim process" in refused or "not an empty folder" in refused
    assert "Traceback" not in refused
    assert _manifest(out)["status"] == "completed"
    assert len(pd.read_parquet(out / "metrics.parquet")) == 4
