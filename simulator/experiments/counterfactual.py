"""A counterfactual for any change: a scenario and the same scenario without the change,
run in pairs on common random numbers over several seeds, and the paired difference of every
metric at every step with its 95% interval.

For each seed, the `with` arm is the scenario (with its overrides) and the `without` arm is
the same scenario with the counterfactual overrides on top (typically a defense or an
attacker taken out, e.g. `platform.defenses.unlearning=null`). Both arms draw the world, the
users and every random stream from the same seed, so a difference is the change's effect on
that seed, not noise between runs. Arms run as sweep points do (`sweep._run_point`: worker
processes, a finished arm is kept and a rerun resumes the rest).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from simulator.analysis.figures import save, subplots
from simulator.analysis.headlines import default_headline, run_effects
from simulator.analysis.intervals import t_half_width
from simulator.analysis.labels import metric_label
from simulator.experiments.catalog import load_scenario
from simulator.experiments.sweep import run_labelled
from simulator.foundations.errors import ScenarioError
from simulator.runs.outputs import new_run_dir, write_json, write_parquet, write_text
from simulator.scenario.schema import Scenario

ARMS = ("with", "without")
COLUMNS = ["step", "metric", "n", "mean_with", "mean_without", "mean_difference", "ci_low",
           "ci_high", "excludes_zero"]


@dataclass(frozen=True)
class CounterfactualPlan:
    """Every run: (arm, seed) -> resolved scenario; and what the without arm changed."""

    runs: dict[tuple[str, int], Scenario]
    without: list[str]
    title: str


def plan_counterfactual(scenario: str | None, without: list[str], seeds: list[int],
                        overrides: list[str] | None = None) -> CounterfactualPlan:
    """Resolve both arms for every seed (scenario None: quickstart); `without` are the
    counterfactual's `--set`s."""
    if not without:
        raise ScenarioError("counterfactual: give the change to take away, e.g. "
                            "--without platform.defenses.unlearning=null")
    if not seeds or len(set(seeds)) != len(seeds):
        raise ScenarioError(f"counterfactual: seeds must be distinct and at least one, got "
                            f"{seeds}")
    sets = list(overrides or [])
    runs: dict[tuple[str, int], Scenario] = {}
    for seed in seeds:
        runs["with", seed] = load_scenario(scenario, [*sets, f"simulation.seed={seed}"])
        runs["without", seed] = load_scenario(
            scenario, [*sets, *without, f"simulation.seed={seed}"])
    first = runs["with", seeds[0]]
    if first.model_dump() == runs["without", seeds[0]].model_dump():
        raise ScenarioError(f"counterfactual: --without {' '.join(without)} changes nothing "
                            "in the scenario")
    return CounterfactualPlan(runs, list(without), first.title)


def run_counterfactual(plan: CounterfactualPlan, out: Path | None = None,
                       workers: int = 2) -> Path:
    """Run both arms of every seed (finished arms are kept), then write the paired
    differences (`differences.parquet`), their summary per step and metric
    (`counterfactual.csv` / `.parquet`) and a figure per metric of the difference over
    time; returns the folder."""
    first = next(iter(plan.runs.values()))
    folder = out or new_run_dir(Path(first.output.dir) / "counterfactual", first.name)
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / "counterfactual.json", {
        "scenario": plan.title, "without": plan.without,
        "seeds": sorted({seed for _, seed in plan.runs}),
    })
    jobs = {f"{arm}-seed-{seed}": scenario for (arm, seed), scenario in plan.runs.items()}
    failed = run_labelled(jobs, folder, workers)
    if failed:
        label, error = next(iter(failed.items()))
        raise ScenarioError(f"counterfactual: {len(failed)} run(s) failed (rerun to resume), "
                            f"e.g. {label}: {error}")
    tables = {key: pd.read_parquet(folder / f"{key[0]}-seed-{key[1]}" / "metrics.parquet")
              for key in plan.runs}
    differences = paired_metric_differences(tables)
    summary = summarise_differences(differences)
    write_parquet(folder / "differences.parquet", differences)
    write_parquet(folder / "counterfactual.parquet", summary)
    write_text(folder / "counterfactual.csv", summary.to_csv(index=False))
    key = key_metrics(first, list(next(iter(tables.values())).columns))
    plot_differences(summary, folder / "plots", plan.title, plan.without, key)
    return folder


def key_metrics(scenario: Scenario, columns: list[str]) -> list[str]:
    """The metrics a counterfactual reports first: the scenario's headline (or accuracy,
    disclosure and leakage), its poisoning attackers' effects and its defenses' measures."""
    names = list(scenario.report.headline) or default_headline(columns)
    return [*names, *(c for c in run_effects(columns) if c not in names)]


def paired_metric_differences(tables: dict[tuple[str, int], pd.DataFrame]) -> pd.DataFrame:
    """Per (seed, step, metric): the with and without values and with - without, for every
    numeric metric both arms measured (timings aside)."""
    parts = []
    for seed in sorted({seed for _, seed in tables}):
        with_, without = tables["with", seed], tables["without", seed]
        shared = [c for c in with_.columns if c in without.columns and c != "step"
                  and not c.startswith("seconds") and pd.api.types.is_numeric_dtype(with_[c])
                  and not pd.api.types.is_bool_dtype(with_[c])]
        steps = sorted(set(with_["step"]) & set(without["step"]))
        left = with_.set_index("step").loc[steps, shared].astype(float)
        right = without.set_index("step").loc[steps, shared].astype(float)
        long = pd.DataFrame({
            "with": left.stack(future_stack=True),
            "without": right.stack(future_stack=True),
        }).reset_index(names=["step", "metric"])
        long.insert(0, "seed", seed)
        parts.append(long)
    frame = pd.concat(parts, ignore_index=True)
    frame["difference"] = frame["with"] - frame["without"]
    return frame


def summarise_differences(differences: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Per (step, metric): seeds with a finite difference, mean with and without over those
    seeds, the mean difference and its t interval (NaN with fewer than 2 seeds)."""
    finite = np.isfinite(differences["difference"].to_numpy(dtype=float))
    kept = differences[finite]
    grouped = kept.groupby(["step", "metric"], sort=False)
    table = grouped.agg(n=("difference", "count"), mean_with=("with", "mean"),
                        mean_without=("without", "mean"),
                        mean_difference=("difference", "mean"),
                        std=("difference", "std")).reset_index()
    half = t_half_width(table["std"].to_numpy(), table["n"].to_numpy(), confidence)
    table["ci_low"] = table["mean_difference"] - half
    table["ci_high"] = table["mean_difference"] + half
    table["excludes_zero"] = ((table["ci_low"] > 0) | (table["ci_high"] < 0)).astype(bool)
    return table[COLUMNS].sort_values(["metric", "step"], kind="stable").reset_index(drop=True)


def headline_lines(summary: pd.DataFrame, metrics: list[str]) -> list[str]:
    """`with - without: leak_gender_auc -0.150 [-0.180, -0.120] at step 19` per metric that
    both arms measured, at the last step."""
    lines = []
    for metric in metrics:
        rows = summary[summary["metric"] == metric]
        if rows.empty:
            continue
        last = rows.iloc[-1]
        interval = ("" if np.isnan(last["ci_low"])
                    else f" [{last['ci_low']:+.4f}, {last['ci_high']:+.4f}]")
        lines.append(f"{metric}: {last['mean_difference']:+.4f}{interval} at step "
                     f"{int(last['step'])} ({int(last['n'])} seeds; with {last['mean_with']:.4f},"
                     f" without {last['mean_without']:.4f})")
    return lines


def plot_differences(summary: pd.DataFrame, folder: Path, title: str, without: list[str],
                     metrics: list[str]) -> list[Path]:
    """One figure per metric: both arms' means over the steps, and with - without with its
    interval shaded and 0 marked."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for metric in metrics:
        rows = summary[summary["metric"] == metric]
        if rows.empty or not np.isfinite(rows["mean_difference"].to_numpy(dtype=float)).any():
            continue
        label = metric_label(str(metric))
        figure, (arms, difference) = subplots(1, 2, figsize=(10, 3.8))
        arms.plot(rows["step"], rows["mean_with"], marker="o", label="with")
        arms.plot(rows["step"], rows["mean_without"], marker="o", linestyle="--",
                  label="without")
        arms.set(xlabel="step", ylabel=label, title="Both arms (mean over seeds)")
        arms.legend(fontsize="small")
        difference.plot(rows["step"], rows["mean_difference"], marker="o",
                        label="with - without")
        difference.fill_between(rows["step"], rows["ci_low"], rows["ci_high"], alpha=0.25,
                                label="95% interval")
        difference.axhline(0.0, color="grey", linestyle=":")
        difference.set(xlabel="step", ylabel=f"difference in {label}",
                       title="Paired difference")
        difference.legend(fontsize="small")
        for axis in (arms, difference):
            axis.xaxis.set_major_locator(MaxNLocator(integer=True))  # whole steps
        figure.suptitle(f"{title}; without: {' '.join(without)}"[:150], fontsize="medium")
        figure.tight_layout()
        paths.append(save(figure, folder / f"difference_{metric}.png"))
    return paths
