"""Whether each configured defense acted: the retrains that listed it as acting, and those at
which it was active yet did nothing (`defense_skipped` events), with the reasons given."""

from __future__ import annotations

import json
from collections import Counter

import pandas as pd


def skipped_defenses(events: pd.DataFrame) -> list[str]:
    """A line per defense that skipped a retrain while active: `unlearning: skipped at 5 of
    9 retrains (steps 2, 4, 6, 8, 10: held-out probes at chance before the edit)`."""
    acted: Counter[str] = Counter()
    skipped: dict[str, list[tuple[int, str]]] = {}
    for kind, step, detail in zip(events["kind"], events["step"], events["detail"],
                                  strict=True):
        if kind == "retrain":
            acted.update(json.loads(detail).get("defenses", []))
        elif kind == "defense_skipped":
            found = json.loads(detail)
            skipped.setdefault(found["defense"], []).append((int(step), str(found["reason"])))
    lines = []
    for name, where in skipped.items():
        steps = [step for step, _ in where]
        shown = ", ".join(map(str, steps[:8])) + (", ..." if len(steps) > 8 else "")
        reasons = Counter(_kind_of(reason) for _, reason in where)
        reason = "; ".join(reasons) if len(reasons) > 1 else where[0][1]
        lines.append(f"{name}: skipped at {len(where)} of {len(where) + acted[name]} retrains "
                     f"(step{'s' if len(steps) > 1 else ''} {shown}: {reason})")
    return lines


def _kind_of(reason: str) -> str:
    """A reason without its numbers (`(AUC 0.52)`), to group retrains by why they skipped."""
    return reason.split(" (")[0]
