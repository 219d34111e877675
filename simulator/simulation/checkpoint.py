"""Checkpoints that hold data only: one zip of a JSON tree, numpy arrays and torch tensors.

`checkpoint.zip` in a run folder holds the whole simulation state (every user's private
attributes among it), so it is written owner-only (0600), atomically (a kill while writing
leaves the previous one). Loading runs no code from the file: arrays are read with
`allow_pickle=False`, tensors with `weights_only=True`, and the state is set into a model
freshly built from the run's `config.yaml` (see `state_codec`). A checkpoint written by
another privsim version or for another scenario is refused.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from simulator.foundations.errors import PrivsimError
from simulator.runs.outputs import privsim_version
from simulator.runs.state_codec import CheckpointFormatError, Decoder, Encoder
from simulator.scenario.loading import scenario_to_yaml
from simulator.scenario.schema import Scenario

if TYPE_CHECKING:
    from simulator.simulation.model import PrivacyModel

CHECKPOINT = "checkpoint.zip"
LEGACY_CHECKPOINT = "checkpoint.pkl"
FORMAT = 2  # the layout of the saved state; a checkpoint of another layout is refused
MEMBERS = ("state.json", "arrays.npz", "tensors.pt")


def scenario_digest(scenario: Scenario) -> str:
    """SHA-256 of the resolved scenario: which scenario a checkpoint belongs to."""
    return hashlib.sha256(scenario_to_yaml(scenario).encode()).hexdigest()


def save_checkpoint(model: PrivacyModel, run_dir: Path, extra: dict[str, Any]) -> Path:
    """Write `run_dir/checkpoint.zip` (owner-only, atomically) with the model's state and
    `extra` (JSON values, e.g. elapsed time)."""
    encoder = Encoder()
    tree = {"world": encoder.encode(model.world, "world"),
            "model": encoder.encode(model, "model")}
    state = {"format": FORMAT, "privsim": privsim_version(), "step": model.step_index,
             "scenario_sha256": scenario_digest(model.scenario), "extra": extra, "tree": tree}
    arrays = io.BytesIO()
    # No object arrays reach here (the encoder refuses them); the loader does not unpickle.
    np.savez(arrays, allow_pickle=False, **encoder.arrays)
    tensors = io.BytesIO()
    torch.save(encoder.tensors, tensors)
    path = run_dir / CHECKPOINT
    partial = run_dir / (CHECKPOINT + ".partial")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as handle, \
                zipfile.ZipFile(handle, "w", zipfile.ZIP_STORED) as archive:
            archive.writestr("state.json", json.dumps(state, allow_nan=False))
            archive.writestr("arrays.npz", arrays.getvalue())
            archive.writestr("tensors.pt", tensors.getvalue())
        os.chmod(partial, 0o600)
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(run_dir: Path, scenario: Scenario) -> tuple[PrivacyModel, dict[str, Any]]:
    """The model saved in `run_dir/checkpoint.zip`, restored into one freshly built from
    `scenario`, and the checkpoint's extra values; refuses another version's or another
    scenario's checkpoint, and anything that is not a privsim checkpoint, in one line."""
    from simulator.simulation.model import PrivacyModel

    path = run_dir / CHECKPOINT
    state, arrays, tensors = _read(path)
    if state.get("format") != FORMAT or state.get("privsim") != privsim_version():
        raise PrivsimError(
            f"{path}: written by privsim {state.get('privsim')} (format "
            f"{state.get('format')}); this is privsim {privsim_version()}, which resumes only "
            "its own checkpoints (rerun the scenario)"
        )
    if state.get("scenario_sha256") != scenario_digest(scenario):
        raise PrivsimError(f"{path}: belongs to another scenario than {run_dir / 'config.yaml'}"
                           " (was the config edited?); refusing to resume")
    decoder = Decoder(arrays, tensors)
    try:
        tree = state["tree"]
        world = decoder.decode(tree["world"], None, "world")
        model = PrivacyModel(scenario, world=world)
        decoder.decode(tree["model"], model, "model")
    except CheckpointFormatError as exc:
        raise PrivsimError(f"{path}: {exc}") from None
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise PrivsimError(f"{path}: not a privsim checkpoint this version can restore "
                           f"({type(exc).__name__}: {exc})") from None
    if model.step_index != state.get("step"):
        raise PrivsimError(f"{path}: inconsistent step")
    return model, dict(state.get("extra") or {})


def _read(path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray], dict[str, torch.Tensor]]:
    """The three members, read without running code."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = sorted(archive.namelist())
            if names != sorted(MEMBERS):
                raise PrivsimError(f"{path}: not a privsim checkpoint (members {names})")
            size = path.stat().st_size
            if any(info.file_size > size for info in archive.infolist()):
                raise PrivsimError(f"{path}: not a privsim checkpoint (compressed members)")
            state = json.loads(archive.read("state.json"))
            with np.load(io.BytesIO(archive.read("arrays.npz")), allow_pickle=False) as found:
                arrays = {name: found[name] for name in found.files}
            tensors = torch.load(io.BytesIO(archive.read("tensors.pt")), weights_only=True,
                                 map_location="cpu")
    except PrivsimError:
        raise
    except (zipfile.BadZipFile, OSError, ValueError, RuntimeError, EOFError,
            UnicodeDecodeError) as exc:
        raise PrivsimError(f"{path}: not a readable privsim checkpoint "
                           f"({type(exc).__name__}: {exc})") from None
    except pickle.UnpicklingError as exc:  # torch's refusal of anything but tensors
        raise PrivsimError(f"{path}: refused ({type(exc).__name__}: {exc})") from None
    if not isinstance(state, dict) or not isinstance(tensors, dict) or not all(
            isinstance(t, torch.Tensor) for t in tensors.values()):
        raise PrivsimError(f"{path}: not a privsim checkpoint")
    return state, arrays, tensors
