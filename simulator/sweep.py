"""Sweeps: a base scenario, a grid of overrides and seeds, run in a local process pool."""

from __future__ import annotations

import itertools
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from simulator.attack_study import write_attack_study
from simulator.budget import write_budget_study
from simulator.catalog import load_scenario
from simulator.config import Scenario, read_yaml
from simulator.errors import ScenarioError
from simulator.outputs import new_run_dir, now_iso, write_json, write_parquet, write_text


class SweepSpec(BaseModel):
    """A sweep file."""

    model_config = ConfigDict(extra="forbid")

    name: str = "sweep"
    base: str = Field("quickstart", description="shipped scenario name or scenario file")
    set: list[str] = Field(default_factory=list, description="overrides applied to every point")
    grid: dict[str, list[Any]] = Field(default_factory=dict, description="key.path -> values")
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    report: list[Literal["privacy_budget", "attack_success"]] = Field(
        default_factory=list, description="studies computed from the combined tables"
    )
    workers: int = Field(default_factory=lambda: min(2, os.cpu_count() or 1), ge=1)

    @field_validator("grid")
    @classmethod
    def _non_empty_values(cls, grid: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for key, values in grid.items():
            if not values:
                raise ValueError(f"{key}: give at least one value")
        return grid


@dataclass
class SweepPoint:
    """One run of a sweep."""

    index: int
    params: dict[str, Any]
    seed: int
    scenario: Scenario

    @property
    def label(self) -> str:
        """Folder name of this point's run."""
        return f"point-{self.index:03d}-seed-{self.seed}"


def load_sweep(path: Path) -> SweepSpec:
    """Read and validate a sweep file."""
    try:
        return SweepSpec.model_validate(read_yaml(path))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        message = "unknown key" if first["type"] == "extra_forbidden" else first["msg"]
        raise ScenarioError(f"{path}: {where}: {message}") from None


def expand_points(spec: SweepSpec, sweep_file: Path) -> list[SweepPoint]:
    """Every (grid point, seed) as a validated scenario; any invalid point fails them all."""
    base = spec.base
    relative = sweep_file.parent / base
    if base.endswith((".yaml", ".yml")) and relative.is_file():
        base = str(relative)
    keys = list(spec.grid)
    points = []
    combos = itertools.product(*(spec.grid[k] for k in keys)) if keys else [()]
    for combo in combos:
        params = dict(zip(keys, combo, strict=True))
        for seed in spec.seeds:
            try:
                scenario = load_scenario(
                    base, spec.set, {**params, "simulation.seed": seed}
                )
            except ScenarioError as exc:
                raise ScenarioError(f"sweep point {params} seed {seed}: {exc}") from None
            points.append(SweepPoint(len(points), params, seed, scenario))
    return points


def _run_point(scenario_data: dict[str, Any], out: str, threads: int) -> dict[str, Any]:
    """Worker: run one point in its own process; never raises, reports its status."""
    import torch

    from simulator.runner import run_scenario

    torch.set_num_threads(threads)
    try:
        scenario = Scenario.model_validate(scenario_data)
        run_scenario(scenario, out=Path(out), progress=False)
        return {"status": "completed", "error": None}
    except Exception as exc:  # a failed point is recorded, the sweep goes on
        return {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}


def run_sweep(sweep_file: Path, out: Path | None = None, workers: int | None = None) -> Path:
    """Run every point of a sweep; returns the sweep folder.

    Each point writes its own run folder; `points.parquet` lists points with their status
    and `results.parquet` stacks every completed point's metrics with its parameters.
    """
    spec = load_sweep(sweep_file)
    points = expand_points(spec, sweep_file)
    folder = out or new_run_dir(Path("outputs") / "sweeps", spec.name)
    folder.mkdir(parents=True, exist_ok=True)
    write_text(folder / "sweep.yaml", yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False))
    n_workers = max(1, min(workers or spec.workers, len(points)))
    threads = max(1, (os.cpu_count() or 1) // n_workers)
    statuses: dict[int, dict[str, Any]] = {}
    started = now_iso()
    with ProcessPoolExecutor(n_workers, mp_context=get_context("spawn")) as pool:
        futures = {
            pool.submit(_run_point, p.scenario.model_dump(mode="json"),
                        str(folder / p.label), threads): p
            for p in points
        }
        for future in as_completed(futures):
            statuses[futures[future].index] = future.result()
    tables = _write_sweep_tables(folder, points, statuses)
    if "privacy_budget" in spec.report and "groups" in tables:
        write_budget_study(folder, tables["metrics"], tables["groups"])
    if "attack_success" in spec.report and "metrics" in tables:
        write_attack_study(folder, tables["metrics"])
    write_json(folder / "manifest.json", {
        "sweep": spec.name, "started": started, "finished": now_iso(), "points": len(points),
        "failed": sum(s["status"] != "completed" for s in statuses.values()),
    })
    return folder


def _write_sweep_tables(
    folder: Path, points: list[SweepPoint], statuses: dict[int, dict[str, Any]]
) -> dict[str, pd.DataFrame]:
    """Write points.parquet, and results.parquet / groups.parquet stacking completed points."""
    rows = []
    frames: dict[str, list[pd.DataFrame]] = {"metrics": [], "groups": []}
    for point in points:
        status = statuses[point.index]
        rows.append({"point": point.index, "seed": point.seed, "run_dir": point.label,
                     **{k: str(v) for k, v in point.params.items()}, **status})
        if status["status"] == "completed":
            for name, parts in frames.items():
                table = pd.read_parquet(folder / point.label / f"{name}.parquet")
                table.insert(0, "seed", point.seed)
                table.insert(0, "point", point.index)
                for position, (key, value) in enumerate(point.params.items()):
                    table.insert(2 + position, key, _cell(value))
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
