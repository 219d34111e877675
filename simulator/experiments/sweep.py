"""Sweeps: a base scenario, a grid of overrides and seeds, one run folder per point.

Seeds. Either `seeds: [...]` (every grid point runs with each seed) or `replications: R`:
each (grid point, replication) gets its own seed spawned from `root_seed` by numpy's
`SeedSequence`, in the order grid point, then replication, so a sweep is reproducible from
one number. `points.parquet` records every point's seed.

Resuming. Running the same sweep again into the same folder (`out`) reuses every point whose
run completed and reruns the others (failed, interrupted, never started; a half-written
folder is cleared first). The folder keeps the sweep file it was made by (`sweep.yaml`); a
sweep whose points differ (base, set, grid, seeds, replications, root_seed), or a completed
point whose scenario differs from what the sweep now asks for, is refused.

Executors. `local` runs points in a pool of spawned processes on this machine, each limited
to its share of the cores for torch. `dask` submits the same work through dask.distributed:
to a LocalCluster of `workers` single-threaded processes, or to a running cluster whose
scheduler address is given. A point whose process dies is retried (locally: alone in a fresh
process; on dask: on another worker, up to `distributed.scheduler.allowed-failures` deaths)
and recorded as failed if it dies again; the other points go on, and a rerun completes it.

On a SLURM cluster (dask-jobqueue), start the cluster next to the sweep and pass its
scheduler address; workers need this project's Python environment, must see the sweep folder
and the data at the same paths (a shared file system) and start in the same working directory
(SLURM jobs start where they were submitted). There each point runs torch on one thread, so
give workers one thread per core:

    from pathlib import Path
    from dask_jobqueue import SLURMCluster
    from simulator.experiments.sweep import run_sweep

    cluster = SLURMCluster(cores=8, processes=8, memory="32GB", walltime="04:00:00")
    cluster.scale(jobs=4)  # 32 workers, one point each at a time
    run_sweep(Path("scenarios/sweeps/privacy-budget-ml100k.yaml"),
              out=Path("outputs/sweeps/budget-ml100k"),
              executor="dask", scheduler=cluster.scheduler_address)

Rerunning the same call after a job ends (walltime, preemption) finishes what is missing.
"""

from __future__ import annotations

import itertools
import math
import os
import shutil
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, as_completed, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from simulator.analysis.attack_protocol import write_protocol_study
from simulator.analysis.attack_study import write_attack_study
from simulator.analysis.budget import write_budget_study
from simulator.experiments.catalog import load_scenario
from simulator.experiments.workers import adopt, caller_state, worker_context
from simulator.foundations.errors import PrivsimError, ScenarioError, shown
from simulator.foundations.threads import THREADS_VARIABLE, available_cores, threads_per_worker
from simulator.foundations.yaml_files import load_model_file
from simulator.runs.outputs import (
    new_run_dir,
    now_iso,
    read_manifest,
    write_json,
    write_parquet,
    write_text,
)
from simulator.scenario.loading import scenario_to_yaml
from simulator.scenario.schema import Scenario

EXECUTORS = ("local", "dask")
# The sweep fields that decide which points run and how; the others (name, report, workers)
# may change between a sweep and its resumption.
POINT_FIELDS = ("base", "set", "grid", "seeds", "replications", "root_seed")


MAX_SWEEP_POINTS = 5_000  # runs in one sweep


class SweepSpec(BaseModel):
    """A sweep file."""

    model_config = ConfigDict(extra="forbid")

    name: str = "sweep"
    base: str = Field("quickstart", description="shipped scenario name or scenario file")
    set: list[str] = Field(default_factory=list, description="overrides applied to every point")
    grid: dict[str, list[Any]] = Field(default_factory=dict, description="key.path -> values")
    seeds: list[int] | None = Field(
        None, min_length=1, description="explicit seeds, each run at every grid point ([0])"
    )
    replications: int | None = Field(
        None, ge=1, description="runs per grid point, seeds spawned from root_seed"
    )
    root_seed: int = Field(0, ge=0, description="with replications: the seed all seeds come from")
    report: list[Literal["privacy_budget", "attack_success", "attack_protocol"]] = Field(
        default_factory=list, description="studies computed from the combined tables"
    )
    workers: int = Field(default_factory=lambda: min(2, available_cores()[0]), ge=1)

    @field_validator("grid")
    @classmethod
    def _non_empty_values(cls, grid: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for key, values in grid.items():
            if not values:
                raise ValueError(f"{key}: give at least one value")
        return grid

    @model_validator(mode="after")
    def _one_seed_source(self) -> SweepSpec:
        if self.seeds is not None and self.replications is not None:
            raise ValueError(
                "seeds and replications exclude each other: give explicit seeds, or a number "
                "of replications whose seeds are spawned from root_seed"
            )
        if self.seeds is None and self.replications is None:
            self.seeds = [0]
        return self

    @model_validator(mode="after")
    def _not_too_many_runs(self) -> SweepSpec:
        """Refused before its points are expanded and validated one by one (a few
        milliseconds each): a grid of 40 keys or a million replications would exhaust the
        machine before the first run."""
        runs = self.replications if self.replications is not None else len(self.seeds or [0])
        points = math.prod(len(values) for values in self.grid.values()) * runs
        if points > MAX_SWEEP_POINTS:
            grid = " x ".join(str(len(values)) for values in self.grid.values()) or "1"
            each = "replications" if self.replications is not None else "seeds"
            raise ValueError(
                f"{shown(f'{points:,}', 40, quote=False)} runs (grid {shown(grid, 60, quote=False)}"
                f", {shown(f'{runs:,}', 40, quote=False)} {each} each); a sweep is limited to "
                f"{MAX_SWEEP_POINTS:,} runs (split it into several)")
        return self


@dataclass
class SweepPoint:
    """One run of a sweep."""

    index: int
    params: dict[str, Any]
    seed: int
    scenario: Scenario
    replication: int | None = None

    @property
    def label(self) -> str:
        """Folder name of this point's run."""
        return f"point-{self.index:03d}-seed-{self.seed}"


def load_sweep(path: Path) -> SweepSpec:
    """Read and validate a sweep file."""
    return load_model_file(SweepSpec, path)


def spawn_seeds(root_seed: int, count: int) -> list[int]:
    """`count` seeds spawned from `root_seed` by numpy's SeedSequence, in spawn order.

    Each is a 32-bit non-negative int: every consumer of the run seed accepts it
    (scikit-learn's random_state must be below 2**32).
    """
    if root_seed < 0:
        raise ValueError(f"root_seed: expected a non-negative int, got {root_seed}")
    children = np.random.SeedSequence(root_seed).spawn(count)
    return [int(child.generate_state(1, dtype=np.uint32)[0]) for child in children]


def expand_points(spec: SweepSpec, sweep_file: Path) -> list[SweepPoint]:
    """Every (grid point, seed) as a validated scenario; any invalid point fails them all."""
    base = spec.base
    relative = sweep_file.parent / base
    if base.endswith((".yaml", ".yml")) and relative.is_file():
        base = str(relative)
    keys = list(spec.grid)
    combos = list(itertools.product(*(spec.grid[k] for k in keys))) if keys else [()]
    runs: list[list[tuple[int | None, int]]]  # (replication, seed) of each combination
    if spec.replications is not None:
        spawned = spawn_seeds(spec.root_seed, len(combos) * spec.replications)
        runs = [list(enumerate(spawned[g * spec.replications:(g + 1) * spec.replications]))
                for g in range(len(combos))]
    else:
        runs = [[(None, seed) for seed in spec.seeds or [0]] for _ in combos]
    points: list[SweepPoint] = []
    for combo, seeds in zip(combos, runs, strict=True):
        params = dict(zip(keys, combo, strict=True))
        for replication, seed in seeds:
            try:
                scenario = load_scenario(base, spec.set, {**params, "simulation.seed": seed})
            except ScenarioError as exc:
                raise ScenarioError(f"sweep point {params} seed {seed}: {exc}") from None
            points.append(SweepPoint(len(points), params, seed, scenario, replication))
    return points


def point_completed(run_dir: Path) -> bool:
    """Whether a point's run folder holds a run that finished (manifest status completed)."""
    try:
        return read_manifest(run_dir).get("status") == "completed"
    except (OSError, ValueError):
        return False


def _status(status: str, error: str | None = None) -> dict[str, Any]:
    return {"status": status, "error": error}


def _failure(exc: BaseException) -> dict[str, Any]:
    return _status("failed", f"{type(exc).__name__}: {exc}")


def point_payload(scenario: Scenario) -> dict[str, Any]:
    """What a worker process needs to rebuild `scenario` as it was made: its settings, and
    the named scenario and the settings the overrides changed (`Scenario.made_from`, which
    its settings alone do not carry), so that the point's run says what it changed."""
    return {"settings": scenario.model_dump(mode="json"), "base": scenario.base,
            "changes": list(scenario.changes)}


def scenario_of(payload: dict[str, Any]) -> Scenario:
    """The scenario a `point_payload` describes."""
    scenario = Scenario.model_validate(payload["settings"])
    if payload["base"] is not None and payload["changes"]:
        scenario.made_from(payload["base"], tuple(payload["changes"]))
    return scenario


def _run_point(payload: dict[str, Any], out: str, threads: int,
               caller: dict[str, Any] | None = None) -> dict[str, Any]:
    """Worker: run one point in its own process; never raises, reports its status.
    `caller` is the working folder and environment of the process that started the sweep
    (`workers.caller_state`), for workers on this machine.

    What an earlier attempt left is cleared first, unless that attempt completed (its
    process died after finishing the run), so a retried point never sees a stale folder.
    """
    from simulator.experiments.runner import run_scenario
    from simulator.foundations.allocator import keep_freed_memory

    adopt(caller)
    keep_freed_memory()  # a worker process of privsim's own: tuned as the CLI is
    os.environ[THREADS_VARIABLE] = str(threads)  # its share of the cores, for every run here
    folder = Path(out)
    if point_completed(folder):
        return _status("completed")
    shutil.rmtree(folder, ignore_errors=True)
    try:
        run_scenario(scenario_of(payload), out=folder, progress=False)
        return _status("completed")
    except Exception as exc:  # a failed point is recorded, the sweep goes on
        return _failure(exc)


def run_labelled(jobs: dict[str, Scenario], folder: Path, workers: int) -> dict[str, str]:
    """Run each scenario into `folder/<label>` as a sweep point (`_run_point`: worker
    processes sharing the cores, a completed folder kept), `workers` at a time; returns the
    error of each run that failed, by label."""
    n_workers = max(1, min(workers, len(jobs)))
    threads = threads_per_worker(n_workers)
    caller = caller_state()
    with ProcessPoolExecutor(n_workers, mp_context=worker_context()) as pool:
        futures = {label: pool.submit(_run_point, point_payload(scenario),
                                      str(folder / label), threads, caller)
                   for label, scenario in jobs.items()}
        results = {label: future.result() for label, future in futures.items()}
    return {label: result["error"] for label, result in results.items()
            if result["status"] != "completed"}


def run_sweep(
    sweep_file: Path,
    out: Path | None = None,
    workers: int | None = None,
    *,
    executor: str = "local",
    scheduler: str | None = None,
    report: Callable[[str], None] | None = None,
) -> Path:
    """Run every point of a sweep not yet completed in `out`; returns the sweep folder.
    `report` is given a line when the points start and one per finished point.

    Each point writes its own run folder; `points.parquet` lists points with their seed and
    status and `results.parquet` stacks every completed point's metrics with its parameters.
    `executor` is `local` (a process pool of `workers`) or `dask` (a LocalCluster of
    `workers`, or the dask cluster at the `scheduler` address, whose size then rules).
    Rerun with the same `out` to resume: completed points are reused, the others rerun.
    """
    if executor not in EXECUTORS:
        raise ValueError(f"executor: expected one of {', '.join(EXECUTORS)}, got {executor!r}")
    if scheduler is not None and executor != "dask":
        raise ValueError(f"scheduler: an address needs executor 'dask', not {executor!r}")
    if workers is not None and workers < 1:
        raise PrivsimError(f"--workers: expected at least 1, got {workers}")
    spec = load_sweep(sweep_file)
    points = expand_points(spec, sweep_file)
    folder = out or new_run_dir(Path("outputs") / "sweeps", spec.name)
    _claim_folder(folder, spec)
    statuses = {p.index: _status("completed") for p in points if _reusable(folder, p)}
    reused = len(statuses)
    todo = [p for p in points if p.index not in statuses]
    n_workers = max(1, min(workers or spec.workers, len(todo)))
    # On a remote cluster each worker process takes one point at a time on one core.
    threads = 1 if scheduler else threads_per_worker(n_workers)
    jobs = [_Job(p.index, point_payload(p.scenario), str((folder / p.label).resolve()))
            for p in todo]
    started = now_iso()
    say = report or (lambda line: None)
    say(f"{folder}: {len(jobs)} of {len(points)} points to run ({reused} already done), "
        f"{n_workers} at a time")
    if jobs:
        results = (_local_results(jobs, n_workers, threads) if executor == "local"
                   else _dask_results(jobs, n_workers, threads, scheduler))
        clock = time.perf_counter()
        for done, (index, status) in enumerate(results, start=1):
            statuses[index] = status
            error = f": {status['error']}" if status["error"] else ""
            say(f"[{done}/{len(jobs)}] {points[index].label} {status['status']}{error} "
                f"({time.perf_counter() - clock:.0f} s elapsed)")
    tables = _write_sweep_tables(folder, points, statuses)
    if "privacy_budget" in spec.report and "groups" in tables:
        metrics, groups = tables["metrics"], tables["groups"]
        if spec.replications is not None:
            # Points pair up by replication: each has its own seed, so the study's `seed`
            # (what it pairs a budget with full disclosure by) is the replication.
            metrics, groups = (t.assign(seed=t["replication"]) for t in (metrics, groups))
        write_budget_study(folder, metrics, groups)
    if "attack_success" in spec.report and "metrics" in tables:
        write_attack_study(folder, tables["metrics"])
    if "attack_protocol" in spec.report and "metrics" in tables:
        write_protocol_study(folder, tables["metrics"])
    write_json(folder / "manifest.json", {
        "sweep": spec.name, "executor": executor, "started": started, "finished": now_iso(),
        "points": len(points), "reused": reused,
        "failed": sum(s["status"] != "completed" for s in statuses.values()),
    })
    return folder


def _claim_folder(folder: Path, spec: SweepSpec) -> None:
    """Make `folder` this sweep's: new or empty, or made by a sweep with the same points."""
    record = folder / "sweep.yaml"
    if record.is_file():
        previous = load_sweep(record)
        differ = [f"{key} was {getattr(previous, key)!r}, now {getattr(spec, key)!r}"
                  for key in POINT_FIELDS
                  if _differences(getattr(previous, key), getattr(spec, key))]
        if differ:
            raise ScenarioError(
                f"{folder}: holds a different sweep ({'; '.join(differ)}); "
                "give a new folder to run this one"
            )
    elif folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise ScenarioError(f"{folder}: exists, is not empty and holds no sweep.yaml")
    folder.mkdir(parents=True, exist_ok=True)
    # Python mode keeps .inf and .nan (JSON mode would write them as null).
    write_text(record, yaml.safe_dump(spec.model_dump(), sort_keys=False))


def _reusable(folder: Path, point: SweepPoint) -> bool:
    """Whether the point completed in an earlier run of this sweep; refuses a completed run
    of another scenario (e.g. the base scenario file changed since)."""
    run_dir = folder / point.label
    if not point_completed(run_dir):
        return False
    recorded = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))
    expected = yaml.safe_load(scenario_to_yaml(point.scenario))
    differ = _differences(recorded, expected)
    if differ:
        raise ScenarioError(
            f"{run_dir}: completed with another scenario ({', '.join(differ[:5])} differ"
            f"{' and more' if len(differ) > 5 else ''}); give a new folder to run this sweep"
        )
    return True


def _differences(a: Any, b: Any, prefix: str = "") -> list[str]:
    """Dotted key paths at which two parsed YAML documents differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [found for key in sorted(set(a) | set(b), key=str)
                for found in _differences(a.get(key), b.get(key), f"{prefix}{key}.")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [found for index, (x, y) in enumerate(zip(a, b, strict=True))
                for found in _differences(x, y, f"{prefix}{index}.")]
    both_nan = isinstance(a, float) and isinstance(b, float) and a != a and b != b
    return [] if a == b or both_nan else [prefix.rstrip(".") or "(top level)"]


@dataclass(frozen=True)
class _Job:
    """A point as sent to a worker: its index, scenario (`point_payload`) and absolute
    folder."""

    index: int
    payload: dict[str, Any]
    out: str


def _local_results(
    jobs: list[_Job], workers: int, threads: int
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Run jobs in worker processes (`workers.worker_context`), `workers` at a time; yield
    (index, status) as they end.

    A dying process breaks the whole pool and every job then in flight: those jobs rerun one
    at a time in a fresh pool, and one that kills its process alone is recorded as failed.
    """
    queue = deque(jobs)
    alone: deque[_Job] = deque()
    running: dict[Future[dict[str, Any]], tuple[_Job, bool]] = {}
    pool: ProcessPoolExecutor | None = None
    caller = caller_state()
    try:
        while queue or alone or running:
            if pool is None:
                pool = ProcessPoolExecutor(workers, mp_context=worker_context())
            if alone and not running:
                job = alone.popleft()
                running[pool.submit(_run_point, job.payload, job.out, threads,
                                    caller)] = (job, True)
            while not alone and queue and len(running) < workers:
                job = queue.popleft()
                running[pool.submit(_run_point, job.payload, job.out, threads,
                                    caller)] = (job, False)
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            broken = any(isinstance(f.exception(), BrokenProcessPool) for f in done)
            if broken:
                done, _ = wait(running)  # the broken pool ends every future it holds
            for future in done:
                job, was_alone = running.pop(future)
                error = future.exception()
                if isinstance(error, BrokenProcessPool) and not was_alone:
                    alone.append(job)
                else:
                    yield job.index, future.result() if error is None else _failure(error)
            if broken:
                pool.shutdown(wait=True)
                pool = None
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


def _dask_results(
    jobs: list[_Job], workers: int, threads: int, scheduler: str | None
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Run jobs on a dask cluster (a LocalCluster started here, or the one at `scheduler`)
    through its concurrent.futures executor; yield (index, status) as they end."""
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError as exc:
        raise ScenarioError(
            "executor 'dask' needs dask.distributed: pip install 'dask[distributed]'"
        ) from exc
    with ExitStack() as stack:
        if scheduler is None:
            cluster = stack.enter_context(LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True, memory_limit=0,
                dashboard_address=None,
            ))
            client = stack.enter_context(Client(cluster))
        else:
            client = stack.enter_context(Client(scheduler))
        executor = client.get_executor(pure=False)
        futures = {executor.submit(_run_point, job.payload, job.out, threads): job
                   for job in jobs}
        for future in as_completed(futures):
            error = future.exception()  # KilledWorker once dask gives up retrying
            yield futures[future].index, future.result() if error is None else _failure(error)


def _write_sweep_tables(
    folder: Path, points: list[SweepPoint], statuses: dict[int, dict[str, Any]]
) -> dict[str, pd.DataFrame]:
    """Write points.parquet, and results.parquet / groups.parquet stacking completed points.

    With replications, a `replication` column follows `seed` in every table.
    """
    rows = []
    frames: dict[str, list[pd.DataFrame]] = {"metrics": [], "groups": []}
    for point in points:
        status = statuses[point.index]
        ids: dict[str, Any] = {"point": point.index, "seed": point.seed}
        if point.replication is not None:
            ids["replication"] = point.replication
        rows.append({**ids, "run_dir": point.label,
                     **{k: str(v) for k, v in point.params.items()}, **status})
        if status["status"] == "completed":
            for name, parts in frames.items():
                table = pd.read_parquet(folder / point.label / f"{name}.parquet")
                for position, (key, value) in enumerate(ids.items()):
                    table.insert(position, key, value)
                for position, (key, value) in enumerate(point.params.items()):
                    table.insert(len(ids) + position, key, _cell(value))
                parts.append(table)
    write_parquet(folder / "points.parquet", pd.DataFrame(rows))
    stacked = {name: pd.concat(parts, ignore_index=True) for name, parts in frames.items() if parts}
    if "metrics" in stacked:
        write_parquet(folder / "results.parquet", stacked["metrics"])
    if "groups" in stacked:
        write_parquet(folder / "groups.parquet", stacked["groups"])
    return stacked


def _cell(value: Any) -> Any:
    """A grid value as one table cell: lists and mappings (e.g. a list of items) as YAML."""
    if isinstance(value, list | dict):
        return yaml.safe_dump(value, default_flow_style=True).strip()
    return value
