"""What a run records, row by row: metrics, groups, agents and events."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

EVENT_COLUMNS = ("step", "kind", "agent", "value", "seconds", "detail")


@dataclass
class Records:
    """Every row a run records; the runner turns the lists into the output tables.

    Mesa's `DataCollector` is not used for these rows because they do not fit it:
    - the metrics table's columns depend on the scenario and appear when what they measure
      first exists (accuracy after the first retrain, leakage after the first attack), and
      the table keeps them in that order of appearance; a `DataCollector` needs one reporter
      per column declared up front, so it would reorder the columns of every output file or
      hold one dict-valued column, which is these lists again behind a `deepcopy` per step;
    - the groups table has many rows per step, the events table any number, and the agents
      table is one array per column per step that the runner spills to disk as it goes;
      none of them is a model reporter or a per-agent reporter (the users are one agent);
    - checkpoints restore plain data into a freshly built model (`state_codec`); a
      `DataCollector` holds reporter functions and is not a privsim class, so it would need
      its own case in the codec.
    Speed is no reason either way (`benchmarks/bench_records.py`, quickstart on 2 CPU
    cores): one `collect` of a metrics row costs ~22 us against ~0.03 us for a list append,
    and a quickstart run with both takes 3.48 s (median of 3) against 3.35 s without.
    """

    metrics: list[dict[str, object]] = field(default_factory=list)
    groups: list[dict[str, object]] = field(default_factory=list)
    agents: list[dict[str, np.ndarray]] = field(default_factory=list)
    events: list[dict[str, object]] = field(default_factory=list)

    def event(
        self, step: int, kind: str, agent: str, value: float, seconds: float, detail: dict
    ) -> None:
        """Log one event (a retrain, an injection, an opt-out wave...) of `agent` at `step`."""
        self.events.append({
            "step": step, "kind": kind, "agent": agent, "value": value,
            "seconds": seconds, "detail": json.dumps(detail, sort_keys=True),
        })

    def add_step(
        self, row: dict[str, object], group_rows: list[dict[str, object]],
        agent_rows: dict[str, np.ndarray] | None,
    ) -> None:
        """Record one step: its metrics row, its group rows and (when kept) its agent rows."""
        self.metrics.append(row)
        self.groups.extend({"step": row["step"], **g} for g in group_rows)
        if agent_rows is not None:
            self.agents.append(agent_rows)
