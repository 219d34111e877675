"""Reference metrics of every shipped scenario on small settings, recorded from the code
before a restructuring: a change that should not alter results is checked against them.

`python -m tests.reference_metrics` rewrites `tests/reference_metrics.json` (only do that
when a change is meant to alter results, and say so); `python -m tests.reference_metrics NAME`
records only the named scenarios (a newly shipped one) and keeps the others.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import pandas as pd

from simulator.core.config import Scenario
from simulator.experiments.catalog import list_scenarios, load_scenario

REFERENCE = Path(__file__).with_name("reference_metrics.json")
COMMON = ["simulation.device=cpu", "simulation.stop_after=3", "platform.first_epochs=3",
          "platform.epochs=1", "output.plots=false", "output.agents_table=false"]
SYNTHETIC = ["world.n_users=150", "world.n_items=100", "world.mean_ratings_per_user=20",
             "world.min_ratings_per_user=5"]
MOVIELENS = ["world.n_users=120", "world.n_items=300"]


def small_scenario(name: str) -> Scenario:
    """The shipped scenario `name` on a small world, three steps, few epochs."""
    scenario = load_scenario(name)
    world = SYNTHETIC if scenario.world.source == "synthetic" else MOVIELENS
    stop = min(3, scenario.simulation.steps)
    return load_scenario(name, [*COMMON, *world, f"simulation.stop_after={stop}"])


def metrics_of(name: str) -> dict[str, list[float]]:
    """Every numeric metric column (timings aside) of the small run, step by step."""
    from simulator.experiments.runner import run_scenario

    with tempfile.TemporaryDirectory() as folder:
        result = run_scenario(small_scenario(name), out=Path(folder) / "run", progress=False)
    table = result.metrics
    return {column: [float(v) for v in table[column].astype(float)]
            for column in table.columns
            if not column.startswith("seconds") and pd.api.types.is_numeric_dtype(table[column])
            and not pd.api.types.is_bool_dtype(table[column])}


def record(names: list[str] | None = None) -> None:
    """Rewrite the reference file from the current code: every scenario, or only `names`."""
    found = json.loads(REFERENCE.read_text(encoding="utf-8")) if names else {}
    found.update({name: metrics_of(name) for name in sorted(names or list_scenarios())})
    REFERENCE.write_text(json.dumps(found, indent=1, sort_keys=True) + "\n", encoding="utf-8")


if __name__ == "__main__":
    record(sys.argv[1:] or None)
