"""The standard figures of a run: accuracy, leakage, disclosure and attacks over time, each
with the run's timeline (retrains, events; `timeline`) and human metric names (`labels`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from simulator.analysis.figures import save, subplots
from simulator.analysis.labels import metric_label
from simulator.analysis.timeline import mark_timeline, plot_timeline


def _save(fig: Figure, path: Path, events: pd.DataFrame | None = None,
          schedule: list[Any] | None = None) -> Path:
    for axis in fig.axes:
        mark_timeline(axis, events, schedule)
    fig.tight_layout()
    save(fig, path)
    return path


def plot_accuracy(metrics: pd.DataFrame, path: Path, k: int,
                  events: pd.DataFrame | None = None,
                  schedule: list[Any] | None = None) -> Path:
    """HR@k and NDCG@k (with the most-popular baseline), and MAE/RMSE when present."""
    has_errors = "mae" in metrics
    fig, axes = subplots(1, 2 if has_errors else 1, figsize=(10 if has_errors else 6, 4))
    ranking_axis = axes[0] if has_errors else axes
    for column, style in ((f"hr_{k}", "-"), (f"ndcg_{k}", "-"),
                          (f"pop_hr_{k}", "--"), (f"pop_ndcg_{k}", "--")):
        if column in metrics:
            ranking_axis.plot(metrics["step"], metrics[column], style,
                              label=metric_label(column))
    ranking_axis.set(xlabel="step", ylabel="ranking accuracy", title="Ranking accuracy")
    ranking_axis.legend()
    if has_errors:
        for column in ("mae", "rmse"):
            axes[1].plot(metrics["step"], metrics[column], label=metric_label(column))
        axes[1].set(xlabel="step", ylabel="error", title="Rating error")
        axes[1].legend()
    return _save(fig, path, events, schedule)


def plot_leakage(metrics: pd.DataFrame, path: Path, events: pd.DataFrame | None = None,
                 schedule: list[Any] | None = None) -> Path:
    """Attribute-inference AUC and balanced accuracy over time, with chance levels."""
    attributes = sorted(
        c.removeprefix("leak_").removesuffix("_auc")
        for c in metrics.columns if c.startswith("leak_") and c.endswith("_auc")
    )
    fig, axes = subplots(1, 2, figsize=(10, 4))
    for attribute in attributes:
        prefix = f"leak_{attribute}"
        line = axes[0].plot(metrics["step"], metrics[f"{prefix}_auc"], label=attribute)[0]
        axes[1].plot(metrics["step"], metrics[f"{prefix}_bacc"], color=line.get_color(),
                     label=attribute)
        axes[1].plot(metrics["step"], metrics[f"{prefix}_bacc_chance"], ":",
                     color=line.get_color(), label=f"{attribute} chance")
    axes[0].axhline(0.5, color="grey", linestyle=":", label="chance")
    axes[0].set(xlabel="step", ylabel="ROC-AUC", title="Attribute leakage (AUC)")
    axes[1].set(xlabel="step", ylabel="balanced accuracy", title="Attribute leakage (BAcc)")
    for axis in axes:
        axis.legend()
    return _save(fig, path, events, schedule)


def plot_disclosure(groups: pd.DataFrame, path: Path, events: pd.DataFrame | None = None
                    ,
                    schedule: list[Any] | None = None) -> Path:
    """Share of experienced ratings disclosed, by inclination type."""
    fig, axis = subplots(figsize=(6, 4))
    by_type = groups[groups["group_kind"].isin(["inclination", "all"])]
    for name, part in by_type.groupby("group", sort=False):
        axis.plot(part["step"], part["disclosure_mean"], label=str(name))
    axis.set(xlabel="step", ylabel="disclosed share", ylim=(0, 1.15),
             title="Disclosure by inclination type")
    axis.legend(loc="lower left", ncols=4, fontsize="small")
    return _save(fig, path, events, schedule)


def plot_attack(metrics: pd.DataFrame, path: Path, events: pd.DataFrame | None = None,
                schedule: list[Any] | None = None) -> Path:
    """Each poisoning attacker's targets: HR@10 on the attacked platform against its clean
    twin, and the genuine users' HR change (collateral damage)."""
    prefixes = sorted({c.removesuffix("target_hr_10") for c in metrics.columns
                       if c.endswith("target_hr_10")}
                      | {c.removesuffix("owned_hr_10_segment") for c in metrics.columns
                         if c.endswith("owned_hr_10_segment")})
    fig, axes = subplots(1, 2, figsize=(10, 4))
    for prefix in prefixes:
        for name in ("target_hr_10", "owned_hr_10_segment", "owned_hr_10_others"):
            column = prefix + name
            if column in metrics:
                label = metric_label(column) + (f" ({prefix.strip('_')})" if prefix else "")
                line = axes[0].plot(metrics["step"], metrics[column], label=label)[0]
                axes[0].plot(metrics["step"], metrics[f"{column}_clean"], ":",
                             color=line.get_color(), label=f"{label} without attack")
    axes[0].set(xlabel="step", ylabel="HR@10 of the attacked items", title="Attack success")
    axes[0].legend(fontsize="small")
    change = [c for c in metrics.columns if c.startswith("hr_") and c.endswith("_change")]
    for column in change:
        axes[1].plot(metrics["step"], metrics[column], label=metric_label(column))
    axes[1].axhline(0.0, color="grey", linestyle=":")
    axes[1].set(xlabel="step", ylabel="attacked - clean", title="Genuine users' accuracy")
    if change:
        axes[1].legend()
    return _save(fig, path, events, schedule)


def plot_disparity(groups: pd.DataFrame, path: Path, k: int,
                   events: pd.DataFrame | None = None,
                   schedule: list[Any] | None = None) -> Path:
    """Who pays for privacy: accuracy, budget and leakage (with its chance level) over time
    by inclination type, and accuracy by involvement group and by the first attribute's
    values, as a grid of panels two wide with labelled axes."""
    leak = next((c for c in groups.columns if c.startswith("leak_") and c.endswith("_auc")),
                None)
    attribute = next((kind for kind in ("gender", "age") if kind in set(groups["group_kind"])),
                     None)
    panels = [("inclination", f"hr_{k}", f"HR@{k} by inclination type"),
              ("inclination", "group_beta_mean", "budget beta by inclination type"),
              ("involvement", f"hr_{k}", f"HR@{k} by involvement")]
    if leak is not None:
        panels.append(("inclination", leak, f"{metric_label(leak)} by inclination type"))
    if attribute is not None:
        panels.append((attribute, f"hr_{k}", f"HR@{k} by {attribute}"))
    panels = [p for p in panels if p[1] in groups.columns]
    n_rows = -(-len(panels) // 2)
    fig, axes = subplots(n_rows, 2, figsize=(10, 3.4 * n_rows), squeeze=False)
    for axis, (kind, column, title) in zip(axes.flat, panels, strict=False):
        part = groups[groups["group_kind"] == kind]
        for name, rows in part.groupby("group", sort=False):
            axis.plot(rows["step"], rows[column], label=str(name))
        if f"{column}_chance" in part:
            chance = part.groupby("step")[f"{column}_chance"].mean()
            axis.plot(chance.index, chance.to_numpy(), ":", color="grey", label="chance")
        axis.set(xlabel="step", ylabel=metric_label(column), title=title)
        axis.legend(fontsize="small")
    for axis in list(axes.flat)[len(panels):]:
        fig.delaxes(axis)
    return _save(fig, path, events, schedule)


def plot_run(metrics: pd.DataFrame, groups: pd.DataFrame, folder: Path, k: int,
             events: pd.DataFrame | None = None, schedule: list[Any] | None = None,
             steps: int | None = None) -> list[Path]:
    """All standard figures of a run into `folder`, marked with its `events` (retrains
    and what happened) and the defense starts of its `schedule`
    (`core.schedule.scheduled_items`); with `steps` too, also `timeline.png`."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [plot_accuracy(metrics, folder / "accuracy.png", k, events, schedule),
             plot_disclosure(groups, folder / "disclosure.png", events, schedule),
             plot_disparity(groups, folder / "disparity.png", k, events, schedule)]
    if any(c.startswith("leak_") for c in metrics.columns):
        paths.append(plot_leakage(metrics, folder / "leakage.png", events, schedule))
    if any(c.endswith(("target_hr_10", "owned_hr_10_segment")) for c in metrics.columns):
        paths.append(plot_attack(metrics, folder / "attack.png", events, schedule))
    if schedule is not None and steps is not None:
        paths.append(plot_timeline(events, schedule, steps, folder / "timeline.png"))
    return paths
