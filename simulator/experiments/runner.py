"""One run: build the model, step it, and write the run folder."""

from __future__ import annotations

import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from simulator.analysis.plots import plot_run
from simulator.attacks.inference import classifier_devices
from simulator.experiments.catalog import load_scenario
from simulator.foundations.device import resolve_device
from simulator.foundations.errors import PrivsimError
from simulator.foundations.threads import run_threads
from simulator.runs.agent_table import AgentTableSpill, agents_frame, read_agents
from simulator.runs.outputs import (
    check_writable,
    git_commit,
    new_run_dir,
    now_iso,
    privsim_version,
    read_manifest,
    versions,
    write_json,
    write_parquet,
    write_text,
)
from simulator.runs.run_lock import RunLock
from simulator.scenario.changes import folder_label
from simulator.scenario.loading import scenario_to_yaml
from simulator.scenario.schedule import scheduled_items
from simulator.scenario.schema import Scenario
from simulator.simulation.checkpoint import (
    CHECKPOINT,
    LEGACY_CHECKPOINT,
    load_checkpoint,
    save_checkpoint,
    scenario_digest,
)
from simulator.simulation.model import PrivacyModel, Records
from simulator.world import World

# Per-step phases summed into the manifest's timings (attack is part of measurement).
PHASES = ("seconds_agents", "seconds_training", "seconds_measurement", "seconds_attack")


@dataclass
class RunResult:
    """A finished run: its folder and its tables (the agents table is read on first use:
    with many users it is large)."""

    path: Path
    metrics: pd.DataFrame
    groups: pd.DataFrame
    events: pd.DataFrame
    manifest: dict[str, Any]

    @cached_property
    def agents(self) -> pd.DataFrame:
        """One row per user (or sampled user) and step."""
        return read_agents(self.path / "agents.parquet")


def check_out(out: Path | None) -> None:
    """Refuse an `--out` folder that already holds something: finished results are kept."""
    if out is not None and out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise PrivsimError(f"--out {out}: exists and is not an empty folder (results are kept)")


def prepare_run_dir(scenario: Scenario, out: Path | None) -> Path:
    """The folder a run writes to: `out` itself (new or empty), or a fresh timestamped one."""
    try:
        if out is None:
            label = folder_label(scenario.name, scenario.base, scenario.changes)
            return new_run_dir(Path(scenario.output.dir), label)
        check_out(out)
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PrivsimError(f"cannot create the run folder: {exc.strerror}: "
                           f"{exc.filename or out}") from None
    return out


def run_scenario(
    scenario: Scenario,
    out: str | Path | None = None,
    progress: bool | None = None,
    world: World | None = None,
    command: str | None = None,
    checkpoint_every: int | None = None,
) -> RunResult:
    """Run a validated scenario to the end and write its folder.

    The manifest says `running` while the run goes on, then `completed`, or `failed`
    with the error; tables are written atomically, so no file is ever half-written. With
    `checkpoint_every` K, the whole simulation state is saved to `checkpoint.zip` after every
    K steps, and `resume_run` continues a killed run from there. One process writes a run
    folder at a time: a second is refused, naming the first.
    """
    if checkpoint_every is not None and checkpoint_every < 1:
        raise PrivsimError(f"--checkpoint-every must be at least 1, got {checkpoint_every}")
    folder = Path(out) if out is not None else None
    with run_threads() as threads:
        return _run_new(scenario, folder, progress, world, command, checkpoint_every, threads)


def _run_new(
    scenario: Scenario, out: Path | None, progress: bool | None, world: World | None,
    command: str | None, checkpoint_every: int | None, threads: dict[str, Any],
) -> RunResult:
    device = resolve_device(scenario.simulation.device)
    check_out(out)
    check_writable(out if out is not None else Path(scenario.output.dir))
    started = time.perf_counter()
    # Build first: unreadable data or a bad setting stops here, before any folder exists.
    model = PrivacyModel(scenario, world=world)
    setup_seconds = time.perf_counter() - started
    run_dir = prepare_run_dir(scenario, out)
    lock = RunLock(run_dir).acquire()
    manifest: dict[str, Any] = {
        "scenario": scenario.name,
        "title": scenario.title,
        "changes": {"from": scenario.base, "settings": list(scenario.changes)}
        if scenario.changes else None,
        "status": "running",
        "seed": scenario.simulation.seed,
        "device": str(device),
        "started": now_iso(),
        "command": command,
        "versions": versions(),
        "provenance": {"privsim": privsim_version(), "git_commit": git_commit(),
                       "config_sha256": scenario_digest(scenario)},
        "world": model.world.describe(),
        "threads": threads,
    }
    if model.attacker is not None:
        # Where each classifier computes: on CUDA runs, the scikit-learn ones (and an
        # XGBoost built without CUDA) stay on the CPU, and the manifest says so.
        manifest["attacker_devices"] = classifier_devices(model.attacker.classifiers, device)
    if checkpoint_every is not None:
        manifest["checkpoint_every"] = checkpoint_every
    try:
        write_text(run_dir / "config.yaml", scenario_to_yaml(scenario))
        write_json(run_dir / "manifest.json", manifest)
    except BaseException:
        lock.release()
        raise
    return _finish(model, run_dir, manifest, progress, started, setup_seconds, lock)


def resume_run(run_dir: str | Path, progress: bool | None = None) -> RunResult:
    """Continue a run that stopped (killed, failed or interrupted) from its last checkpoint;
    the finished run has the same results as one that never stopped."""
    run_dir = Path(run_dir)
    manifest_path = run_dir / "manifest.json"
    if not manifest_path.is_file():
        raise PrivsimError(f"{run_dir}: not a run folder (no manifest.json)")
    with run_threads() as threads:
        return _resume(run_dir, progress, threads)


def _resume(run_dir: Path, progress: bool | None, threads: dict[str, Any]) -> RunResult:
    manifest_path = run_dir / "manifest.json"
    check_writable(run_dir)
    lock = RunLock(run_dir).acquire()
    try:
        try:
            manifest = read_manifest(run_dir)
        except (ValueError, OSError) as exc:
            raise PrivsimError(f"{manifest_path}: unreadable ({exc})") from None
        if not isinstance(manifest, dict):
            raise PrivsimError(f"{manifest_path}: not a run manifest")
        if manifest.get("status") == "completed":
            raise PrivsimError(f"{run_dir}: the run is already completed")
        if not (run_dir / CHECKPOINT).is_file():
            legacy = (run_dir / LEGACY_CHECKPOINT).is_file()
            raise PrivsimError(
                f"{run_dir}: {LEGACY_CHECKPOINT} is a pickle from an older privsim and is never "
                "loaded (it could run code); rerun the scenario" if legacy else
                f"{run_dir}: no {CHECKPOINT} to resume from (run with --checkpoint-every K)"
            )
        scenario = load_scenario(str(run_dir / "config.yaml"))
        model, saved = load_checkpoint(run_dir, scenario)
        previous = manifest.get("status")
        # We hold the lock, so a manifest still saying `running` lost its writer.
        manifest.update(status="running", resumed_from_step=model.step_index,
                        resumed_after="crashed" if previous == "running" else previous,
                        threads=threads)
        for key in ("error", "traceback", "finished"):
            manifest.pop(key, None)
        write_json(manifest_path, manifest)
    except BaseException:
        lock.release()
        raise
    started = time.perf_counter() - float(saved["elapsed"])
    return _finish(model, run_dir, manifest, progress, started, float(saved["setup_seconds"]),
                   lock)


def _finish(
    model: PrivacyModel, run_dir: Path, manifest: dict[str, Any], progress: bool | None,
    started: float, setup_seconds: float, lock: RunLock,
) -> RunResult:
    """Step the model to the end (checkpointing as asked), then write every output; frees
    the run folder's lock however it ends."""
    scenario = model.scenario
    every = manifest.get("checkpoint_every")
    spill = AgentTableSpill(run_dir, model.population.type_names)
    restore = _stop_on_sigterm()
    try:
        _step_all(model, scenario.simulation.run_steps, progress, run_dir, every, started,
                  setup_seconds, spill)
        spill.finish(run_dir / "agents.parquet", scenario.simulation.run_steps)
        tables = records_to_frames(model.records, model.population.type_names)
        graph = getattr(model.population.policy, "adjacency", None)
        if graph is not None:  # the social graph, for the dashboard
            upper = sp.triu(graph, k=1).tocoo()
            tables["graph"] = pd.DataFrame({"source": upper.row.astype(np.int64),
                                            "target": upper.col.astype(np.int64)})
        writing = time.perf_counter()
        write_tables(run_dir, tables)
        if scenario.output.plots:
            plot_run(tables["metrics"], tables["groups"], run_dir / "plots", scenario.metrics.k,
                     tables["events"], scheduled_items(scenario), scenario.simulation.steps)
        timings = _timings(tables["metrics"], setup_seconds, time.perf_counter() - started)
        timings["writing_seconds"] = time.perf_counter() - writing + spill.seconds
        timings["peak_memory_gib"] = peak_memory_gib()
        manifest.update(status="completed", finished=now_iso(), timings=timings)
        write_json(run_dir / "manifest.json", manifest)
        (run_dir / CHECKPOINT).unlink(missing_ok=True)
    except BaseException as exc:
        manifest.update(
            status="interrupted" if isinstance(exc, KeyboardInterrupt) else "failed",
            finished=now_iso(),
            error=f"{type(exc).__name__}: {exc}",
            traceback=traceback.format_exc(),
        )
        write_json(run_dir / "manifest.json", manifest)
        raise
    finally:
        restore()
        lock.release()
    return RunResult(run_dir, tables["metrics"], tables["groups"], tables["events"], manifest)


class Terminated(KeyboardInterrupt):
    """The process was asked to stop (SIGTERM: `kill`, `timeout`, SLURM, container stops)."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated("stopped by SIGTERM")


def _stop_on_sigterm() -> Callable[[], None]:
    """Make SIGTERM stop a run as Ctrl-C does (status `interrupted`, the last checkpoint
    kept); returns what puts the previous handler back. Only the main thread can."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = signal.signal(signal.SIGTERM, _raise_terminated)

    def restore() -> None:
        signal.signal(signal.SIGTERM, previous)

    return restore


def _step_all(
    model: PrivacyModel, steps: int, progress: bool | None, run_dir: Path,
    checkpoint_every: int | None, started: float, setup_seconds: float, spill: AgentTableSpill,
) -> None:
    """Step from wherever the model is to `steps`, spilling each step's agent rows to disk
    and saving a checkpoint every K steps."""
    show = sys.stderr.isatty() if progress is None else progress
    # Output that is not a terminal (a pipe, a log file, a batch job) gets a line per step.
    lines = progress is None and not sys.stderr.isatty()
    columns = (TextColumn("{task.description}", markup=False, style="bold"), BarColumn(),
               TextColumn("step {task.completed}/{task.total}"), TimeElapsedColumn())
    first, stepping = model.step_index, time.perf_counter()
    with Progress(*columns, disable=not show, transient=False) as bar:
        task = bar.add_task(model.scenario.name, total=steps, completed=model.step_index)
        while model.step_index < steps:
            model.step()
            spill.write(model.records.agents)
            model.records.agents.clear()
            bar.advance(task)
            if lines:
                _progress_line(model.scenario.title, model.step_index, steps,
                               model.step_index - first, time.perf_counter() - stepping)
            if checkpoint_every and model.step_index % checkpoint_every == 0 \
                    and model.step_index < steps:
                _save_checkpoint(model, run_dir, time.perf_counter() - started, setup_seconds)


def _progress_line(title: str, done: int, steps: int, stepped: int, seconds: float) -> None:
    """`title: step 3/20 done, 12 s elapsed, about 68 s left` on stderr (the time left
    from the mean time of the steps this process ran)."""
    left = seconds / stepped * (steps - done) if stepped else float("nan")
    print(f"{title}: step {done}/{steps} done, {seconds:.0f} s elapsed, about {left:.0f} s "
          "left", file=sys.stderr, flush=True)


def _save_checkpoint(model: PrivacyModel, run_dir: Path, elapsed: float, setup: float) -> None:
    """Save the whole simulation (world, agents, models, random states, records)."""
    save_checkpoint(model, run_dir, {"elapsed": elapsed, "setup_seconds": setup})


def records_to_frames(records: Records, type_names: list[str]) -> dict[str, pd.DataFrame]:
    """The recorded rows as the output tables (the agents table only where the records
    still hold it: a run spills it to disk step by step)."""
    tables = {}
    if records.agents:
        tables["agents"] = agents_frame(records.agents, type_names)
    events = pd.DataFrame(
        records.events, columns=["step", "kind", "agent", "value", "seconds", "detail"]
    )
    return {
        "metrics": pd.DataFrame(records.metrics),
        "groups": pd.DataFrame(records.groups),
        **tables,
        "events": events,
    }


def write_tables(run_dir: Path, tables: dict[str, pd.DataFrame]) -> None:
    """Write metrics, groups, agents and events as Parquet."""
    for name, frame in tables.items():
        write_parquet(run_dir / f"{name}.parquet", frame)


def _timings(metrics: pd.DataFrame, setup: float, total: float) -> dict[str, float]:
    timings = {"setup_seconds": setup, "total_seconds": total}
    for phase in PHASES:
        if phase in metrics:
            timings[phase.replace("seconds_", "") + "_seconds"] = float(metrics[phase].sum())
    return timings


def peak_memory_gib() -> float:
    """This process's peak resident memory so far, GiB (Linux reports KiB, macOS bytes)."""
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (2**30 if sys.platform == "darwin" else 2**20)
