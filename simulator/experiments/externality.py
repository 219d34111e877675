"""Externalities of disclosure: paired counterfactual runs with common random numbers.

For every seed, a baseline run of the scenario and, for every chosen group G, a run in which
only G's users disclose with another budget (through `population.beta_overrides`, so every
other user's draws are unchanged: disclosure, inclination and event draws come from per-user
streams or from the same seed). The paired differences of every group's accuracy and leakage,
over seeds, give each group's externality on every other group.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from simulator.analysis.externality_stats import (
    externality_matrix,
    paired_differences,
    plot_externality_heatmap,
    summarise,
)
from simulator.experiments.catalog import load_scenario
from simulator.experiments.sweep import run_labelled
from simulator.foundations.errors import ScenarioError
from simulator.runs.outputs import new_run_dir, write_parquet, write_text
from simulator.scenario.schema import Scenario

DEFAULT_METRICS = ("hr_10", "ndcg_10", "mae", "leak_gender_auc", "leak_age_auc",
                   "disclosure_mean")


@dataclass(frozen=True)
class ExternalityPlan:
    """The runs: scenario per seed (baseline) and per (group, seed) (changed)."""

    baseline: dict[int, Scenario]
    changed: dict[tuple[str, int], Scenario]
    group_kind: str


def plan_runs(
    scenario: str, groups: list[str], beta: float, seeds: list[int],
    overrides: list[str] | None = None,
) -> ExternalityPlan:
    """Resolve every run; groups are `kind:name` (e.g. `involvement:High`) of one kind."""
    from simulator.simulation.model import PrivacyModel

    if not groups:
        raise ScenarioError("externality: give at least one --group kind:name")
    if not 0.0 <= beta <= 1.0:
        raise ScenarioError(f"externality: --beta must be in [0, 1], got {beta}")
    parsed = [_parse_group(text) for text in groups]
    kinds = {kind for kind, _ in parsed}
    if len(kinds) != 1:
        raise ScenarioError(f"externality: groups must share one kind, got {sorted(kinds)}")
    baseline, changed = {}, {}
    for seed in seeds:
        base = load_scenario(scenario, overrides, {"simulation.seed": seed})
        baseline[seed] = base
        model = PrivacyModel(base)  # built only to know who is in each group for this seed
        known = {(g.kind, g.name): g for g in model.measurer.groups}
        for kind, name in parsed:
            if (kind, name) not in known:
                names = sorted(f"{k}:{n}" for k, n in known)
                raise ScenarioError(f"externality: unknown group {kind}:{name}; one of {names}")
            ids = model.world.user_ids[known[(kind, name)].mask]
            data = base.model_dump(mode="json")
            data["population"]["beta_overrides"] = {
                **data["population"]["beta_overrides"], **{int(u): beta for u in ids}
            }
            changed[(f"{kind}:{name}", seed)] = Scenario.model_validate(data)
    return ExternalityPlan(baseline, changed, parsed[0][0])


def run_label(group: str | None, seed: int) -> str:
    """The folder of one paired run: `baseline-seed-S` (group None) or, for a changed
    group `kind:name`, `kind-name-seed-S`."""
    prefix = "baseline" if group is None else group.replace(":", "-")
    return f"{prefix}-seed-{seed}"


def _parse_group(text: str) -> tuple[str, str]:
    kind, sep, name = text.partition(":")
    if not sep or not kind or not name:
        raise ScenarioError(f"externality: group {text!r} must be kind:name, e.g. involvement:High")
    return kind, name


def run_externality(
    plan: ExternalityPlan, out: Path | None = None, workers: int = 2,
    metrics: tuple[str, ...] = DEFAULT_METRICS,
) -> Path:
    """Run every planned run (a process pool), then write the paired differences, their
    summaries (`externality.csv`), the matrix per metric and a heatmap per metric."""
    scenario_name = next(iter(plan.baseline.values())).name
    folder = out or new_run_dir(Path("outputs") / "externality", scenario_name)
    folder.mkdir(parents=True, exist_ok=True)
    jobs = {run_label(None, s): sc for s, sc in plan.baseline.items()}
    jobs |= {run_label(g, s): sc for (g, s), sc in plan.changed.items()}
    failed = run_labelled(jobs, folder, workers)
    if failed:
        label, error = next(iter(failed.items()))
        raise ScenarioError(f"externality: {len(failed)} run(s) failed, e.g. {label}: {error}")

    def groups(label: str) -> pd.DataFrame:
        return pd.read_parquet(folder / label / "groups.parquet")

    baseline = {s: groups(run_label(None, s)) for s in plan.baseline}
    present = [m for m in metrics if m in next(iter(baseline.values()))]
    summaries, tables = {}, []
    for group in dict.fromkeys(g for g, _ in plan.changed):
        changed = {s: groups(run_label(group, s)) for s in plan.baseline}
        summary = summarise(paired_differences(baseline, changed, present))
        summary.insert(0, "changed_group", group)
        summaries[group] = summary
        tables.append(summary)
    table = pd.concat(tables, ignore_index=True)
    write_parquet(folder / "externality.parquet", table)
    write_text(folder / "externality.csv", table.to_csv(index=False))
    (folder / "plots").mkdir(exist_ok=True)
    for metric in present:
        matrix, significant = externality_matrix(summaries, metric, plan.group_kind)
        write_text(folder / f"matrix_{metric}.csv", matrix.to_csv())
        plot_externality_heatmap(
            matrix, significant, folder / "plots" / f"externality_{metric}.png",
            f"Change in {metric} (95% CI excluding 0 marked)",
        )
    return folder
