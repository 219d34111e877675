"""The Python API: run a scenario, load a finished run, plot its metrics.

`run` takes a shipped name, a file, a dict of settings or a `Scenario`, with overrides as a
dict (`{"platform.model": "mf"}`) or as `--set` texts; with `out=None` nothing is kept on
disk (the run is written to a temporary folder and read back).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from simulator.analysis.figures import ShownFigure, subplots
from simulator.experiments.catalog import load_scenario
from simulator.foundations.errors import PrivsimError
from simulator.runs.agent_table import read_agents
from simulator.runs.outputs import read_manifest
from simulator.runs.run_lock import run_status
from simulator.scenario.loading import build_scenario
from simulator.scenario.schema import Scenario

ScenarioSource = str | Path | Mapping[str, Any] | Scenario | None
Overrides = Mapping[str, Any] | Sequence[str] | None


@dataclass
class Run:
    """A finished run: its scenario, tables, manifest and folder (None when not kept)."""

    scenario: Scenario
    metrics: pd.DataFrame
    groups: pd.DataFrame
    events: pd.DataFrame
    manifest: dict[str, Any]
    path: Path | None = None
    # The agents table when it was read already (a run not kept has no folder to read it
    # from later); None: read from `path` on first use.
    agents_table: pd.DataFrame | None = field(default=None, repr=False)

    @property
    def agents(self) -> pd.DataFrame:
        """One row per (sampled) user and step; read from the folder on first use."""
        if self.agents_table is None:
            if self.path is None or not (self.path / "agents.parquet").is_file():
                self.agents_table = pd.DataFrame()
            else:
                self.agents_table = read_agents(self.path / "agents.parquet")
        return self.agents_table

    def plot(self, *metrics: str) -> Figure:
        """Metrics over the steps (default: HR@k and every attribute's leakage AUC), as a
        matplotlib figure (shown by a notebook, saved with `savefig`)."""
        columns = list(metrics) or [c for c in self.metrics.columns
                                    if c.startswith("hr_") or
                                    (c.startswith("leak_") and c.endswith("_auc"))]
        missing = [c for c in columns if c not in self.metrics.columns]
        if missing or not columns:
            numeric = [c for c in self.metrics.columns
                       if pd.api.types.is_numeric_dtype(self.metrics[c])]
            raise ValueError(f"no metric {', '.join(missing) or '(none given)'}; this run has "
                             f"{', '.join(numeric)}")
        figure, axis = subplots(figsize=(7, 4), figure_class=ShownFigure)
        for column in columns:
            axis.plot(self.metrics["step"], self.metrics[column], marker=".", label=column)
        axis.set(xlabel="step", title=self.scenario.name)
        axis.legend(fontsize="small")
        figure.tight_layout()
        return figure


def scenario_from(source: ScenarioSource = None, overrides: Overrides = None,
                  seed: int | None = None) -> Scenario:
    """A validated scenario from a shipped name, a file, a dict or a `Scenario`, with
    overrides (a dict of key paths to values, or `path=value` texts) and a seed."""
    values = dict(overrides) if isinstance(overrides, Mapping) else {}
    texts = [] if isinstance(overrides, Mapping) or overrides is None else list(overrides)
    if isinstance(overrides, str):
        raise TypeError("overrides: give a dict or a list of 'path=value' texts, not one string")
    if seed is not None:
        values["simulation.seed"] = seed
    if isinstance(source, Scenario):
        return build_scenario(source.model_dump(mode="json"), "scenario", texts, values)
    if isinstance(source, Mapping):
        data = dict(source)
        data.setdefault("name", "scenario")
        return build_scenario(data, "scenario settings", texts, values)
    return load_scenario(None if source is None else str(source), texts, values)


def run(scenario: ScenarioSource = None, overrides: Overrides = None, out: str | Path | None = None,
        *, seed: int | None = None, progress: bool = False,
        checkpoint_every: int | None = None) -> Run:
    """Run a scenario to the end. With `out`, the run folder is written there (new or empty)
    and kept; without, nothing is kept on disk and `Run.path` is None."""
    from simulator.experiments.runner import run_scenario

    resolved = scenario_from(scenario, overrides, seed)
    if out is not None:
        result = run_scenario(resolved, out=Path(out), progress=progress,
                              checkpoint_every=checkpoint_every)
        return Run(resolved, result.metrics, result.groups, result.events, result.manifest,
                   result.path)
    quiet = resolved.model_copy(update={"output": resolved.output.model_copy(
        update={"plots": False})})
    with tempfile.TemporaryDirectory(prefix="privsim-") as folder:
        result = run_scenario(quiet, out=Path(folder) / "run", progress=progress)
        agents = result.agents if (result.path / "agents.parquet").is_file() \
            else pd.DataFrame()
        return Run(resolved, result.metrics, result.groups, result.events, result.manifest,
                   agents_table=agents)


@dataclass
class Counterfactual:
    """A scenario against its counterfactual (`counterfactual`): the paired differences per
    seed, step and metric, their summary with 95% intervals, and the folder of both arms."""

    summary: pd.DataFrame
    differences: pd.DataFrame
    path: Path

    def at_last_step(self, *metrics: str) -> pd.DataFrame:
        """The summary rows of the named metrics (all by default) at the last step."""
        last = self.summary[self.summary["step"] == self.summary["step"].max()]
        return last[last["metric"].isin(metrics)] if metrics else last


def counterfactual(scenario: str | Path | None, without: Overrides,
                   overrides: Overrides = None, *, seeds: int = 5,
                   out: str | Path | None = None, workers: int = 2) -> Counterfactual:
    """Run a named or file scenario (with `overrides`) and the same with `without` applied,
    paired on seeds 0..seeds-1; the differences (with - without) of every metric at every
    step with 95% intervals. `without` and `overrides` are dicts of key paths to values
    (`{"platform.defenses.unlearning": None}`) or `path=value` texts."""
    from simulator.experiments.counterfactual import plan_counterfactual, run_counterfactual

    plan = plan_counterfactual(None if scenario is None else str(scenario), _texts(without),
                               list(range(seeds)), _texts(overrides))
    folder = run_counterfactual(plan, out=None if out is None else Path(out), workers=workers)
    return Counterfactual(pd.read_parquet(folder / "counterfactual.parquet"),
                          pd.read_parquet(folder / "differences.parquet"), folder)


def _texts(overrides: Overrides) -> list[str]:
    """Overrides as `path=value` texts (values written as JSON, which YAML reads back)."""
    if overrides is None:
        return []
    if isinstance(overrides, str):
        raise TypeError("overrides: give a dict or a list of 'path=value' texts, not one string")
    if isinstance(overrides, Mapping):
        return [f"{key}={json.dumps(value)}" for key, value in overrides.items()]
    return list(overrides)


def load(run_dir: str | Path) -> Run:
    """A finished run read from its folder (refused, with its status, if it did not finish)."""
    folder = Path(run_dir)
    if not (folder / "manifest.json").is_file():
        raise PrivsimError(f"{folder}: not a run folder (no manifest.json)")
    manifest = read_manifest(folder)
    status = run_status(folder, manifest)
    if status != "completed":
        raise PrivsimError(f"{folder}: the run is {status}, not completed")
    tables = {name: pd.read_parquet(folder / f"{name}.parquet")
              for name in ("metrics", "groups", "events")}
    scenario = load_scenario(str(folder / "config.yaml"))
    changes = manifest.get("changes")
    if changes:  # made from a named scenario by overrides: it keeps saying so
        scenario.made_from(changes["from"], tuple(changes["settings"]))
    return Run(scenario, tables["metrics"], tables["groups"], tables["events"], manifest, folder)
