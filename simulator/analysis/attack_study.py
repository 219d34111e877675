"""The attack-success study of a poisoning sweep: target HR@10 with and without the attack,
by attack model, attack size and catalogue size, and one figure of it."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from simulator.analysis.figures import save, subplots
from simulator.foundations.errors import PrivsimError

MODEL_KEY = "attackers.0.model"
SIZE_KEY = "attackers.0.attack_size"
ITEMS_KEY = "world.n_items"
SAMPLE_KEY = "world.item_sample"
VALUES = ("target_hr_10", "target_hr_10_clean", "prediction_shift", "hr_10_change")


def attack_table(metrics: pd.DataFrame) -> pd.DataFrame:
    """Mean over seeds, at each point's last step, of the target and collateral columns,
    by whichever of attack model, attack size, catalogue size and item sample (random subset
    or popular head, i.e. density) the sweep varies."""
    missing = [c for c in VALUES if c not in metrics]
    if missing:
        raise PrivsimError(
            f"the attack-success study needs one shilling attacker (missing {missing})"
        )
    last = metrics[metrics["step"] == metrics.groupby("point")["step"].transform("max")]
    keys = [k for k in (MODEL_KEY, SIZE_KEY, ITEMS_KEY, SAMPLE_KEY) if k in last]
    if not keys:
        raise PrivsimError(f"the attack-success study needs a grid over one of "
                           f"{MODEL_KEY}, {SIZE_KEY}, {ITEMS_KEY}")
    table = last.groupby(keys, as_index=False).agg(
        seeds=("seed", "nunique"), **{c: (c, "mean") for c in VALUES}
    )
    table["target_hr_10_gain"] = table["target_hr_10"] - table["target_hr_10_clean"]
    return table.rename(columns={MODEL_KEY: "attack", SIZE_KEY: "attack_size",
                                 ITEMS_KEY: "n_items", SAMPLE_KEY: "item_sample"})


def plot_attack(table: pd.DataFrame, path: Path) -> Path:
    """Target HR@10 gain against catalogue size: one panel per attack model, one line per
    attack size and item sample the sweep varies (a single line when it varies neither)."""
    x = "n_items" if "n_items" in table else ("attack_size" if "attack_size" in table else None)
    if x is None:
        raise PrivsimError("the attack-success plot needs a grid over world.n_items or size")
    attacks = sorted(table["attack"].unique()) if "attack" in table else [None]
    fig, axes = subplots(1, len(attacks), figsize=(4 * len(attacks), 3.6), sharey=True,
                             squeeze=False)
    for axis, attack in zip(axes[0], attacks, strict=True):
        part = table if attack is None else table[table["attack"] == attack]
        keys = [k for k in ("attack_size", "item_sample") if k != x and k in part]
        series = part.groupby(keys) if keys else [((), part)]
        for values, line in series:
            line = line.sort_values(x)
            named = dict(zip(keys, values if isinstance(values, tuple) else (values,),
                             strict=True))
            label = ", ".join(
                f"{v:.0%} fakes" if k == "attack_size" else f"{v} items" for k, v in named.items()
            )
            axis.plot(line[x], line["target_hr_10_gain"], marker="o", label=label)
        axis.set(title=f"{attack} attack" if attack else "attack", xlabel=x.replace("_", " "))
        if x == "n_items":
            axis.set_xscale("log")
        if any(axis.get_legend_handles_labels()[1]):
            axis.legend()
    axes[0][0].set_ylabel("target HR@10: attacked - clean")
    fig.tight_layout()
    save(fig, path)
    return path


def write_attack_study(folder: Path, metrics: pd.DataFrame) -> pd.DataFrame:
    """Write `attack.csv`, `attack.parquet` and `plots/attack_success.png` into a sweep folder."""
    from simulator.runs.outputs import write_parquet, write_text

    table = attack_table(metrics)
    write_parquet(folder / "attack.parquet", table)
    write_text(folder / "attack.csv", table.to_csv(index=False))
    (folder / "plots").mkdir(exist_ok=True)
    plot_attack(table, folder / "plots" / "attack_success.png")
    return table
