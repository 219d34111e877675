"""The privacy-budget study (Muellner, Kowald and Lex 2021): relative MAE loss by budget.

dMAE@beta = MAE@beta / MAE@1.0, per model and per user group (everyone, and the Low / Med
/ High involvement groups), from a sweep over budgets and models.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from simulator.analysis.figures import save, subplots
from simulator.foundations.errors import PrivsimError

GROUPS = ("all", "Low", "Med", "High")


def budget_table(
    metrics: pd.DataFrame, groups: pd.DataFrame, model_column: str = "platform.model"
) -> pd.DataFrame:
    """Tidy table: model, group, beta, seeds, MAE (mean over seeds) and dMAE.

    `metrics` and `groups` stack the sweep points' tables with their parameters. A point's
    budget is its `beta_mean` (every user has the same beta in this study) and its MAE the
    group MAE, both at the point's last step.
    """
    if "mae" not in groups:
        raise PrivsimError("the privacy-budget study needs a rating model (MAE)")
    beta = metrics.sort_values("step").groupby("point")["beta_mean"].last().round(6)
    last = groups[groups["step"] == groups.groupby("point")["step"].transform("max")]
    wanted = last[(last["group_kind"] == "all") | (last["group_kind"] == "involvement")]
    frame = pd.DataFrame({
        "model": wanted.get(model_column, "model"),
        "group": wanted["group"],
        "beta": wanted["point"].map(beta),
        "seed": wanted["seed"],
        "mae": wanted["mae"],
    })
    full = frame[frame["beta"] == 1.0].set_index(["model", "group", "seed"])["mae"]
    if full.empty:
        raise PrivsimError("the privacy-budget study needs a point with beta = 1.0")
    key = pd.MultiIndex.from_frame(frame[["model", "group", "seed"]])
    frame["dmae"] = frame["mae"].to_numpy() / full.reindex(key).to_numpy()
    table = (frame.groupby(["model", "group", "beta"], as_index=False)
             .agg(seeds=("seed", "nunique"), mae=("mae", "mean"), dmae=("dmae", "mean")))
    order = {name: i for i, name in enumerate(GROUPS)}
    return table.sort_values(["model", "group", "beta"], key=lambda c: c.map(order)
                             if c.name == "group" else c, ascending=[True, True, False],
                             ignore_index=True)


def plot_budget(table: pd.DataFrame, path: Path) -> Path:
    """dMAE against beta, one panel per group, every model on each panel."""
    groups = [g for g in GROUPS if g in set(table["group"])]
    fig, axes = subplots(1, len(groups), figsize=(4 * len(groups), 3.6), sharey=True)
    for axis, group in zip(list(axes) if len(groups) > 1 else [axes], groups, strict=True):
        for model, part in table[table["group"] == group].groupby("model"):
            part = part.sort_values("beta")
            axis.plot(part["beta"], part["dmae"], marker="o", label=str(model))
        axis.axhline(1.0, color="grey", linestyle=":")
        axis.set(title=f"{group} users" if group != "all" else "all users", xlabel="beta",
                 xlim=(1.05, 0.0))
        axis.legend()
    (axes[0] if len(groups) > 1 else axes).set_ylabel("dMAE = MAE@beta / MAE@1.0")
    fig.tight_layout()
    save(fig, path)
    return path


def write_budget_study(folder: Path, metrics: pd.DataFrame, groups: pd.DataFrame) -> pd.DataFrame:
    """Write `budget.csv`, `budget.parquet` and `plots/budget_dmae.png` into a sweep folder."""
    from simulator.runs.outputs import write_parquet, write_text

    table = budget_table(metrics, groups)
    write_parquet(folder / "budget.parquet", table)
    write_text(folder / "budget.csv", table.to_csv(index=False))
    (folder / "plots").mkdir(exist_ok=True)
    plot_budget(table, folder / "plots" / "budget_dmae.png")
    return table
