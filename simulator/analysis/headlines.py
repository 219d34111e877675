"""The end-of-run summary: the headline metrics with what they are compared with."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import pandas as pd

DEFAULT_PREFIXES = ("hr_", "ndcg_", "mae", "rmse", "disclosure_mean")


@dataclass(frozen=True)
class HeadlineRow:
    """One metric at the last step, at the first step, and its reference (a chance level,
    a baseline or the no-attack twin), named."""

    metric: str
    last: float
    first: float
    reference: float | None
    reference_name: str

    @property
    def change(self) -> float:
        """last - first."""
        return self.last - self.first


def default_headline(columns: list[str]) -> list[str]:
    """Accuracy, disclosure and leakage (AUC and balanced accuracy) columns, in table order."""
    return [c for c in columns if c.startswith(DEFAULT_PREFIXES) and not c.endswith(
        ("_chance", "_clean", "_change")) or (c.startswith("leak_") and c.endswith(
            ("_auc", "_bacc")))]


# What an attacker in the run makes happen: shown whatever the headline lists, so that a run
# that added an attacker to a scenario shows what the attack did.
ATTACK_EFFECT = re.compile(r"^(target_hr_\d+|prediction_shift|owned_hr_\d+_segment)$")


def attack_effects(columns: list[str]) -> list[str]:
    """The columns of the run's poisoning attackers' effects: the targets' HR@k, the shift
    of the predicted ratings, the item owner's HR@k in its segment."""
    return [c for c in columns if ATTACK_EFFECT.match(c)]


def run_effects(columns: list[str]) -> list[str]:
    """What a run's summary shows beside its headline: its poisoning attackers' effects and
    its defenses' own measures (`summary_columns`), when it has them."""
    from simulator.defenses.registry import defense_summary_columns

    return [*attack_effects(columns), *defense_summary_columns(columns)]


REFERENCES = (("{}_chance", "chance"), ("pop_{}", "popularity"), ("{}_clean", "without attack"))


def zero_without_attack(metric: str) -> bool:
    """Whether `metric` measures an attack's effect (attacked minus clean), so that it is 0
    by definition without the attack: `*_change`, `prediction_shift`, `owned_shift_*`."""
    return metric.endswith(("_change", "prediction_shift")) or "owned_shift_" in metric


def reference_columns(metric: str) -> list[tuple[str, str]]:
    """The columns a metric may be read against, in order of preference, with their names:
    its chance level, the popularity baseline, the same platform without the attack."""
    return [(pattern.format(metric), name) for pattern, name in REFERENCES]


def reference_of(metric: str, row: pd.Series) -> tuple[float | None, str]:
    """What a metric is read against (`reference_columns`, or 0 for an attack's effect) in
    one row; (None, "") without one."""
    for column, name in reference_columns(metric):
        if column in row.index and _finite(row[column]):
            return float(row[column]), name
    if zero_without_attack(metric):
        return 0.0, "without attack"
    return None, ""


def headline_rows(metrics: pd.DataFrame, headline: list[str]) -> tuple[list[HeadlineRow],
                                                                         list[str]]:
    """The rows of the named metrics (or the default ones), and the names not measured."""
    names = list(headline or default_headline(list(metrics.columns)))
    names += [c for c in run_effects(list(metrics.columns)) if c not in names]
    first, last = metrics.iloc[0], metrics.iloc[-1]
    rows, missing = [], []
    for name in names:
        if name not in metrics.columns or not pd.api.types.is_numeric_dtype(metrics[name]):
            missing.append(name)
            continue
        reference, label = reference_of(name, last)
        rows.append(HeadlineRow(name, float(last[name]), float(first[name]), reference, label))
    return rows, missing


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)
