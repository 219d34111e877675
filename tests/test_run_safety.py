"""Run folders that run no code, have one writer, and say honestly how their run ended."""

from __future__ import annotations

import io
import json
import os
import pickle
import stat
import zipfile
from pathlib import Path

import pytest
import torch

from simulator.dashboard.discovery import discover
from simulator.experiments.catalog import load_scenario
from simulator.experiments.runner import resume_run, run_scenario
from simulator.foundations.errors import PrivsimError
from simulator.runs.run_lock import RunLock, run_status
from simulator.simulation.checkpoint import CHECKPOINT, LEGACY_CHECKPOINT
from simulator.simulation.model import PrivacyModel

TINY = [
    "world.n_users=120", "world.n_items=80", "world.mean_ratings_per_user=20",
    "simulation.steps=4", "simulation.device=cpu", "platform.first_epochs=3",
    "platform.epochs=1", "attackers.0.folds=3", "attackers.0.classifiers=[logreg]",
    "output.plots=false",
]


class _Payload:
    """What a hostile file would carry: unpickling it writes a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (Path.write_text, (self.marker, "ran"))


@pytest.fixture
def stopped_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A run interrupted at step 3 with a checkpoint of step 2."""
    original = PrivacyModel._apply_events

    def stop(self: PrivacyModel, step: int) -> None:
        if step == 3:
            raise KeyboardInterrupt
        original(self, step)

    monkeypatch.setattr(PrivacyModel, "_apply_events", stop)
    with pytest.raises(KeyboardInterrupt):
        run_scenario(load_scenario("quickstart", TINY), out=tmp_path / "run", progress=False,
                     checkpoint_every=2)
    monkeypatch.setattr(PrivacyModel, "_apply_events", original)
    return tmp_path / "run"


def _rewrite_member(path: Path, member: str, data: bytes) -> None:
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    members[member] = data
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)


def _state(path: Path) -> dict:
    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read("state.json"))


def test_checkpoint_is_private_and_results_follow_the_umask(stopped_run: Path) -> None:
    checkpoint = stopped_run / CHECKPOINT
    assert stat.S_IMODE(checkpoint.stat().st_mode) == 0o600
    mask = os.umask(0o022)
    os.umask(mask)
    result = resume_run(stopped_run, progress=False)
    assert stat.S_IMODE((result.path / "metrics.parquet").stat().st_mode) == 0o666 & ~mask
    assert not checkpoint.exists()


def test_a_pickled_checkpoint_is_never_loaded(stopped_run: Path, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    (stopped_run / CHECKPOINT).unlink()
    (stopped_run / LEGACY_CHECKPOINT).write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(PrivsimError, match="never loaded"):
        resume_run(stopped_run)
    assert not marker.exists()


def test_code_hidden_in_a_checkpoint_is_refused(stopped_run: Path, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    checkpoint = stopped_run / CHECKPOINT
    hostile = io.BytesIO()
    torch.save({"t0": _Payload(marker)}, hostile)
    _rewrite_member(checkpoint, "tensors.pt", hostile.getvalue())
    with pytest.raises(PrivsimError, match="checkpoint.zip"):
        resume_run(stopped_run)
    assert not marker.exists()
    manifest = json.loads((stopped_run / "manifest.json").read_text())
    assert manifest["status"] == "interrupted"  # the refusal changed nothing


@pytest.mark.parametrize("edit", ["foreign class", "another version", "garbage"])
def test_a_tampered_checkpoint_is_refused_in_one_line(stopped_run: Path, edit: str) -> None:
    checkpoint = stopped_run / CHECKPOINT
    state = _state(checkpoint)
    if edit == "foreign class":
        state["tree"]["model"]["$object"] = "os:system"
        match = "not a privsim class"
    elif edit == "another version":
        state["privsim"] = "0.0.1"
        match = "written by privsim 0.0.1"
    else:
        state["tree"]["model"] = {"$array": "nope"}
        match = "missing|restore"
    _rewrite_member(checkpoint, "state.json", json.dumps(state).encode())
    with pytest.raises(PrivsimError, match=match) as caught:
        resume_run(stopped_run)
    assert "\n" not in str(caught.value)


def test_a_checkpoint_of_another_scenario_is_refused(stopped_run: Path) -> None:
    config = stopped_run / "config.yaml"
    config.write_text(config.read_text().replace("seed: 0", "seed: 1"))
    with pytest.raises(PrivsimError, match="another scenario"):
        resume_run(stopped_run)
    (stopped_run / CHECKPOINT).write_bytes(b"not a zip")
    with pytest.raises(PrivsimError, match="not a readable privsim checkpoint"):
        resume_run(stopped_run)


def test_a_second_writer_is_refused_naming_the_first(stopped_run: Path) -> None:
    holder = RunLock(stopped_run).acquire()
    try:
        with pytest.raises(PrivsimError, match=rf"pid {os.getpid()} on "):
            resume_run(stopped_run)
        manifest = json.loads((stopped_run / "manifest.json").read_text())
        assert run_status(stopped_run, {**manifest, "status": "running"}) == "running"
    finally:
        holder.release()
    resume_run(stopped_run, progress=False)  # free again once the holder let go


def test_a_running_manifest_without_a_writer_is_shown_as_crashed(stopped_run: Path) -> None:
    manifest_path = stopped_run / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["status"] = "running"  # as a kill -9 leaves it
    manifest_path.write_text(json.dumps(manifest))
    assert run_status(stopped_run, manifest) == "crashed"
    catalog = discover(stopped_run.parent)
    assert catalog.unfinished == (("run", "crashed"),)
    result = resume_run(stopped_run, progress=False)
    assert result.manifest["resumed_after"] == "crashed"
    assert discover(stopped_run.parent).unfinished == ()


def test_an_unwritable_output_folder_is_refused_before_any_work(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    scenario = load_scenario("quickstart", TINY)
    with pytest.raises(PrivsimError, match="not a folder"):
        run_scenario(scenario, out=blocker / "run", progress=False)
    with pytest.raises(PrivsimError, match="not writable"):
        run_scenario(scenario, out=Path("/proc/privsim-run"), progress=False)
    if os.geteuid() != 0:  # root writes anywhere, so only a normal user can check modes
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(PrivsimError, match="not writable"):
            run_scenario(scenario, out=locked / "run", progress=False)
