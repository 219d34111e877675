"""Find completed runs and sweeps under an outputs folder, and name their variants.

A run folder holds `manifest.json` and `metrics.parquet`; only runs whose manifest says
`completed` are listed (the others are named with their status: `crashed` when the manifest
says `running` but no process holds the folder). A sweep folder holds `sweep.yaml` and
`points.parquet`, and one run folder per point. Runs that differ only in their seed share a
variant: for sweep points the same grid values, for other runs the same resolved scenario
apart from the seed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd
import yaml

from simulator.dashboard.differences import (
    MAX_LABEL,
    describe_differences,
    short_key_names,
    shorten,
    unflatten,
)
from simulator.runs.run_lock import run_status

DEFAULT_OUTPUTS = "outputs"
OUTPUTS_ENV = "PRIVSIM_OUTPUTS"
MAX_DEPTH = 4
# Settings that do not change what a run computes, so runs differing only here share a variant.
_NEUTRAL_SETTINGS = ("simulation.seed", "description", "output.")
_POINT_COLUMNS = {"point", "seed", "replication", "run_dir", "status", "error"}
_SKIPPED_DIRS = {"plots", "test-artifacts", "__pycache__"}


@dataclass(frozen=True)
class RunInfo:
    """A completed run folder."""

    path: Path
    label: str
    scenario: str
    seed: int | None
    variant: str
    settings: tuple[tuple[str, str], ...]
    sweep: str | None = None
    point: int | None = None
    params: tuple[tuple[str, str], ...] = ()
    has_graph: bool = False


@dataclass(frozen=True)
class SweepInfo:
    """A sweep folder and the labels of its completed point runs."""

    path: Path
    label: str
    name: str
    grid_keys: tuple[str, ...]
    runs: tuple[str, ...]


@dataclass(frozen=True)
class CounterfactualInfo:
    """A counterfactual folder (`privsim counterfactual`): its title, the settings its
    counterfactual arm changes, and the labels of its completed arm runs."""

    path: Path
    label: str
    title: str
    without: tuple[str, ...]
    runs: tuple[str, ...]


@dataclass(frozen=True)
class Catalog:
    """Everything found under one outputs folder."""

    root: Path
    runs: tuple[RunInfo, ...]
    sweeps: tuple[SweepInfo, ...]
    unfinished: tuple[tuple[str, str], ...] = ()  # (label, status) of runs not completed
    counterfactuals: tuple[CounterfactualInfo, ...] = ()

    def counterfactual(self, label: str) -> CounterfactualInfo:
        """The counterfactual with this label."""
        return _by_label(self.counterfactuals, label, "counterfactuals")

    def run(self, label: str) -> RunInfo:
        """The run with this label."""
        return _by_label(self.runs, label, "runs")

    def sweep(self, label: str) -> SweepInfo:
        """The sweep with this label."""
        return _by_label(self.sweeps, label, "sweeps")


Found = TypeVar("Found", RunInfo, SweepInfo, CounterfactualInfo)


def _by_label(found: Sequence[Found], label: str, kind: str) -> Found:
    for info in found:
        if info.label == label:
            return info
    raise ValueError(f"label: expected one of the discovered {kind}, got {label!r}")


def resolve_outputs(argv: Sequence[str], environ: Mapping[str, str]) -> Path:
    """The outputs folder: `--outputs DIR` in argv, else $PRIVSIM_OUTPUTS, else `outputs`."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--outputs", default=None)
    known, _ = parser.parse_known_args(list(argv))
    chosen = known.outputs or environ.get(OUTPUTS_ENV) or DEFAULT_OUTPUTS
    return Path(chosen).expanduser()


def discover(root: Path, max_depth: int = MAX_DEPTH) -> Catalog:
    """Completed runs and sweeps under `root`, searched at most `max_depth` folders deep."""
    if max_depth < 0:
        raise ValueError(f"max_depth: expected a non-negative integer, got {max_depth!r}")
    root = Path(root)
    run_dirs: list[Path] = []
    sweep_dirs: list[Path] = []
    if root.is_dir():
        _walk(root, 0, max_depth, run_dirs, sweep_dirs)
    points = {}
    for sweep_dir in sweep_dirs:
        points.update(_sweep_points(sweep_dir, _label(root, sweep_dir)))
    runs = []
    unfinished = []
    for run_dir in run_dirs:
        info = _run_info(root, run_dir, points.get(run_dir.resolve()))
        if info is not None:
            runs.append(info)
        else:
            manifest = _read_json(run_dir / "manifest.json")
            status = run_status(run_dir, manifest) if manifest is not None else "unreadable"
            unfinished.append((_label(root, run_dir), status))
    sweeps = []
    for sweep_dir in sweep_dirs:
        label = _label(root, sweep_dir)
        members = tuple(r.label for r in runs if r.sweep == label)
        sweeps.append(SweepInfo(sweep_dir, label, _sweep_name(sweep_dir),
                                _grid_keys(sweep_dir), members))
    counterfactuals = []
    for folder in sorted({run_dir.parent for run_dir in run_dirs}):
        spec = _read_json(folder / "counterfactual.json")
        if spec is None or not (folder / "counterfactual.parquet").is_file():
            continue
        label = _label(root, folder)
        members = tuple(r.label for r in runs if r.path.parent == folder)
        counterfactuals.append(CounterfactualInfo(
            folder, label, str(spec.get("scenario", folder.name)),
            tuple(str(item) for item in spec.get("without") or []), members))
    return Catalog(root, tuple(runs), tuple(sweeps), tuple(unfinished),
                   tuple(counterfactuals))


def variant_labels(runs: Sequence[RunInfo], limit: int = MAX_LABEL) -> dict[str, str]:
    """A short, distinct legend label (at most `limit` characters) for every variant among
    `runs`.

    Sweep points are named by the grid values that differ between the points shown (after
    the sweep's name when the runs come from more than one source). Other runs are named by
    their folder (the `--out` or `--name` the user chose, or the run's default name), less a
    trailing seed or time stamp, so the seeds of one variant share it; what their settings
    differ in is the hover text (`variant_descriptions`).
    """
    full = variant_descriptions(runs)
    folders: dict[str, list[str]] = defaultdict(list)
    for info in runs:
        if info.sweep is None:
            folders[info.variant].append(info.path.name)
    full.update({variant: folder_stem(names) for variant, names in folders.items()})
    labels = {variant: shorten(text, limit) for variant, text in full.items()}
    _disambiguate(labels, lambda v: shorten(labels[v], limit - 8) + f" [{_tag(v)}]")
    return labels


_SEED_OR_TIME = re.compile(r"([-_.]seed[-_]?\d+|[-_]s\d+|[-_]\d{8}-\d{6})+$")


def folder_stem(names: Sequence[str]) -> str:
    """The name the folders of one variant share: each less a trailing seed (`-seed-3`,
    `-s3`) or time stamp, and their common start where they still differ."""
    stems = [_SEED_OR_TIME.sub("", name) or name for name in names]
    if len(set(stems)) == 1:
        return stems[0]
    common = os.path.commonprefix(stems).rstrip("-_. ")
    return common or stems[0]


def variant_descriptions(runs: Sequence[RunInfo]) -> dict[str, str]:
    """The whole, unshortened description behind each variant's legend label (for hover)."""
    first: dict[str, RunInfo] = {}
    for info in runs:
        first.setdefault(info.variant, info)
    sources = {info.sweep or info.scenario for info in first.values()}
    labels = {variant: _base_label(info, len(sources) > 1) for variant, info in first.items()}
    by_sweep: dict[str, list[RunInfo]] = defaultdict(list)
    by_scenario: dict[str, list[RunInfo]] = defaultdict(list)
    for info in first.values():
        if info.sweep is None:
            by_scenario[info.scenario].append(info)
        else:
            by_sweep[info.sweep].append(info)
    for points in by_sweep.values():
        # Only the grid values that differ between the points shown.
        tables = [dict(info.params) for info in points]
        keys = [key for key in tables[0] if len({t.get(key) for t in tables}) > 1]
        if len(points) < 2 or not keys:
            continue
        names = short_key_names(keys)
        for info, table in zip(points, tables, strict=True):
            text = ", ".join(f"{names[key]}={table.get(key, '-')}" for key in keys)
            labels[info.variant] = f"{info.sweep}: {text}" if len(sources) > 1 else text
    for same in by_scenario.values():
        if len(same) < 2:
            continue
        described = describe_differences([unflatten(info.settings) for info in same])
        for info, text in zip(same, described, strict=True):
            text = text or "as the others"
            labels[info.variant] = f"{info.scenario}: {text}" if len(sources) > 1 else text
    _disambiguate(labels, lambda v: f"{first[v].sweep or first[v].scenario}: {labels[v]}")
    _disambiguate(labels, lambda v: f"{labels[v]} [{_tag(v)}]")
    return labels


def _walk(folder: Path, depth: int, max_depth: int, runs: list[Path],
          sweeps: list[Path]) -> None:
    """Collect run and sweep folders; run folders are not searched further."""
    if (folder / "sweep.yaml").is_file() and (folder / "points.parquet").is_file():
        sweeps.append(folder)
    elif (folder / "manifest.json").is_file():
        runs.append(folder)
        return
    if depth >= max_depth:
        return
    try:
        children = sorted(os.scandir(folder), key=lambda entry: entry.name)
    except OSError:
        return
    for child in children:
        if (child.is_dir(follow_symlinks=False) and not child.name.startswith(".")
                and child.name not in _SKIPPED_DIRS):
            _walk(Path(child.path), depth + 1, max_depth, runs, sweeps)


def _run_info(root: Path, run_dir: Path, point: dict[str, Any] | None) -> RunInfo | None:
    manifest = _read_json(run_dir / "manifest.json")
    if manifest is None or manifest.get("status") != "completed" or \
            not (run_dir / "metrics.parquet").is_file():
        return None
    config = _read_yaml(run_dir / "config.yaml")
    settings = tuple(sorted(
        (key, value) for key, value in _flatten(config).items()
        if not key.startswith(_NEUTRAL_SETTINGS)
    ))
    scenario = str(config.get("name") or manifest.get("scenario") or run_dir.name)
    seed = manifest.get("seed")
    info = RunInfo(path=run_dir, label=_label(root, run_dir), scenario=scenario,
                   seed=int(seed) if isinstance(seed, int) else None,
                   variant=f"{scenario}|{_digest(settings)}", settings=settings,
                   has_graph=(run_dir / "graph.parquet").is_file())
    if point is None:
        return info
    params = point["params"]
    return replace(info, variant=f"{point['sweep']}|{_digest(params)}", sweep=point["sweep"],
                   point=point["point"], params=params)


def _sweep_points(sweep_dir: Path, sweep_label: str) -> dict[Path, dict[str, Any]]:
    """Resolved run folder -> its sweep, point index and grid values."""
    try:
        table = pd.read_parquet(sweep_dir / "points.parquet")
    except (OSError, ValueError):
        return {}
    if "run_dir" not in table.columns:
        return {}
    # The sweep file names the grid; without it, every column that is not bookkeeping.
    if _read_yaml(sweep_dir / "sweep.yaml"):
        keys = [k for k in _grid_keys(sweep_dir) if k in table.columns]
    else:
        keys = [c for c in table.columns if c not in _POINT_COLUMNS]
    found = {}
    for row in table.to_dict("records"):
        params = tuple((key, str(row[key])) for key in keys)
        point = int(row["point"]) if "point" in row else None
        found[(sweep_dir / str(row["run_dir"])).resolve()] = {
            "sweep": sweep_label, "point": point, "params": params}
    return found


def _grid_keys(sweep_dir: Path) -> tuple[str, ...]:
    grid = _read_yaml(sweep_dir / "sweep.yaml").get("grid") or {}
    return tuple(str(key) for key in grid) if isinstance(grid, dict) else ()


def _sweep_name(sweep_dir: Path) -> str:
    return str(_read_yaml(sweep_dir / "sweep.yaml").get("name") or sweep_dir.name)


def _base_label(info: RunInfo, named: bool) -> str:
    """A sweep point's grid values (after its sweep's name when `named`), else the scenario."""
    if info.sweep is None:
        return info.scenario
    if not info.params:
        return info.sweep
    names = short_key_names([key for key, _ in info.params])
    values = ", ".join(f"{names[key]}={value}" for key, value in info.params)
    return f"{info.sweep}: {values}" if named else values


def _tag(variant: str) -> str:
    return variant.rsplit("|", 1)[-1][:6]


def _disambiguate(labels: dict[str, str], rename: Callable[[str], str]) -> None:
    """Rename, in place, every variant whose label is shared with another variant."""
    counts: dict[str, int] = defaultdict(int)
    for label in labels.values():
        counts[label] += 1
    clashing = [variant for variant, label in labels.items() if counts[label] > 1]
    renamed = {variant: rename(variant) for variant in clashing}
    labels.update(renamed)


def _flatten(value: Any, prefix: str = "") -> dict[str, str]:
    """Nested mappings as dotted keys; lists and scalars as compact JSON text."""
    if isinstance(value, dict):
        flat: dict[str, str] = {}
        for key, inner in value.items():
            flat.update(_flatten(inner, f"{prefix}{key}."))
        return flat
    return {prefix.rstrip("."): json.dumps(value, sort_keys=True, default=str)}


def _digest(items: tuple[tuple[str, str], ...]) -> str:
    return hashlib.sha1(json.dumps(items).encode("utf-8")).hexdigest()[:12]


def _label(root: Path, folder: Path) -> str:
    relative = folder.relative_to(root).as_posix()
    return relative if relative != "." else folder.name


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}
