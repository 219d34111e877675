"""The poisoning benchmarks' protocol as a study: the targets' HR@50 and NDCG@50 by victim
model and attack, with the no-attack row from the clean twins and ARLib's published numbers
beside ours."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from simulator.analysis.intervals import t_half_width
from simulator.foundations.errors import PrivsimError

MODEL_KEY = "platform.model"
ATTACK_KEY = "attackers.0.model"
K = 50
NO_ATTACK = "none"
# ARLib's ML-1M table (Wang et al. 2024): LightGCN victim, 1% fake users, 5 target items,
# HR@50 of the targets, mean of 10 runs, 7:1:2 split. It prints no NDCG and no MF rows.
PUBLISHED_HR = {("lightgcn", NO_ATTACK): 0.000, ("lightgcn", "random"): 0.0106,
                ("lightgcn", "bandwagon"): 0.0133}
METRICS = (f"target_hr_{K}", f"target_ndcg_{K}")


def protocol_table(metrics: pd.DataFrame) -> pd.DataFrame:
    """Per victim model and attack (and `none`, from each run's clean twin): runs, mean and
    95% t-interval half-width over seeds of the targets' HR@50 and NDCG@50 at each point's
    last step, and ARLib's published HR@50 where it gives one."""
    needed = [MODEL_KEY, ATTACK_KEY, *METRICS, *(f"{m}_clean" for m in METRICS)]
    missing = [c for c in needed if c not in metrics]
    if missing:
        raise PrivsimError(f"the attack-protocol study needs a sweep over {MODEL_KEY} and "
                           f"{ATTACK_KEY} with one shilling attacker (missing {missing})")
    last = metrics[metrics["step"] == metrics.groupby("point")["step"].transform("max")]
    attacked = last[[MODEL_KEY, ATTACK_KEY, "seed", *METRICS]]
    # Every run's clean twin is a no-attack run of its seed; one per model and seed is kept.
    clean = (last.drop_duplicates([MODEL_KEY, "seed"])
             [[MODEL_KEY, "seed", *(f"{m}_clean" for m in METRICS)]]
             .rename(columns={f"{m}_clean": m for m in METRICS})
             .assign(**{ATTACK_KEY: NO_ATTACK}))
    runs = pd.concat([clean, attacked], ignore_index=True)
    rows = []
    for (model, attack), part in runs.groupby([MODEL_KEY, ATTACK_KEY], sort=False):
        row: dict[str, object] = {"model": model, "attack": attack, "runs": len(part)}
        for metric in METRICS:
            values = part[metric].to_numpy(dtype=float)
            row[metric] = float(np.mean(values))
            spread = np.std(values, ddof=1) if len(values) > 1 else np.nan
            row[f"{metric}_ci"] = float(t_half_width(np.array([spread]),
                                                     np.array([len(values)]))[0])
        row[f"arlib_hr_{K}"] = PUBLISHED_HR.get((str(model), str(attack)), float("nan"))
        rows.append(row)
    order = {NO_ATTACK: 0, "random": 1, "average": 2, "bandwagon": 3, "segment": 4}
    table = pd.DataFrame(rows)
    return table.sort_values(["model", "attack"], key=lambda c: c.map(order).fillna(9)
                             if c.name == "attack" else c, ignore_index=True)


def protocol_markdown(table: pd.DataFrame) -> str:
    """The table as Markdown: mean ± 95% half-width, ARLib's value or a dash."""
    lines = [f"| victim | attack | runs | target HR@{K} | target NDCG@{K} | ARLib HR@{K} |",
             "|---|---|---:|---:|---:|---:|"]
    for values in table.to_dict("records"):
        cells = []
        for metric in METRICS:
            mean, half = values[metric], values[f"{metric}_ci"]
            cells.append(f"{mean:.4f}" + ("" if np.isnan(half) else f" ± {half:.4f}"))
        published = values[f"arlib_hr_{K}"]
        arlib = "–" if np.isnan(published) else f"{published:.4f}"
        lines.append(f"| {values['model']} | {values['attack']} | {values['runs']} "
                     f"| {cells[0]} | {cells[1]} | {arlib} |")
    return "\n".join(lines) + "\n"


def write_protocol_study(folder: Path, metrics: pd.DataFrame) -> pd.DataFrame:
    """Write `attack_protocol.csv`, `.parquet` and `.md` into a sweep folder."""
    from simulator.runs.outputs import write_parquet, write_text

    table = protocol_table(metrics)
    write_parquet(folder / "attack_protocol.parquet", table)
    write_text(folder / "attack_protocol.csv", table.to_csv(index=False))
    write_text(folder / "attack_protocol.md", protocol_markdown(table))
    return table
