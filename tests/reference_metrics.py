"""Reference metrics of every shipped scenario on small settings, recorded from the code
before a restructuring: a change that should not alter results is checked against them.

`python -m tests.reference_metrics` rewrites `tests/reference_metrics.json` (only do that
when a change is meant to alter results, and say so); `python -m tests.reference_metrics NAME`
records only the named scenarios (a newly shipped one) and keeps the others.

`python -m tests.reference_metrics --new-columns [NAME...]` is for a change that adds or drops
columns without moving any recorded value (a new measurement, a new defense column): it runs
the scenarios (all, or the named), refuses if a recorded column moved beyond its tolerance,
and records the new columns (and forgets the dropped ones) in both files; a new column
takes its family's measured spread (`tests/test_reference_metrics.py`), and one of no
family is compared exactly until `--spread` is run again.

`python -m tests.reference_metrics --spread` measures how far each column moves from the
recorded values when the machine-dependent kernels change: each configuration in
`CONFIGURATIONS` (NumPy's and SciPy's OpenBLAS forced to another CPU kernel, PyTorch's
vectorised kernels and MKL held to older instruction sets, one thread or two) runs every
scenario in a fresh process, and the largest difference per column over all of them is
written to `tests/reference_spread.json`, which `tests/test_reference_metrics.py` turns
into each column's tolerance. Rerun it whenever the references are recorded again.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from simulator.experiments.catalog import list_scenarios, load_scenario
from simulator.scenario.schema import Scenario

REFERENCE = Path(__file__).with_name("reference_metrics.json")
SPREAD = Path(__file__).with_name("reference_spread.json")
# Machine-dependent kernels, one configuration per process: OpenBLAS's CPU kernel (NumPy and
# SciPy: scikit-learn's MLP and logistic regression), PyTorch's vectorised kernels
# (ATEN_CPU_CAPABILITY), its MKL's instruction set (MKL_ENABLE_INSTRUCTIONS), NumPy's own
# dispatched loops (NPY_DISABLE_CPU_FEATURES: an AVX2 or older machine), and the thread
# count of every library (PRIVSIM_THREADS: reductions split differently).
_AVX2 = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2",
         "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR"}
_SSE = {"ATEN_CPU_CAPABILITY": "default", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2",
        "NPY_DISABLE_CPU_FEATURES": "X86_V3 X86_V4 AVX512_ICL AVX512_SPR"}
CONFIGURATIONS: dict[str, dict[str, str]] = {
    f"{kernel.lower()}-{threads}{'-' + name if name else ''}": {
        "OPENBLAS_CORETYPE": kernel, "PRIVSIM_THREADS": str(threads), **instructions}
    for kernel, threads, name, instructions in (
        ("Haswell", 2, "", {}), ("Haswell", 1, "", {}),
        ("SkylakeX", 2, "", {}), ("SkylakeX", 1, "", {}),
        ("Zen", 2, "", {}), ("Zen", 1, "", {}),
        ("Sandybridge", 2, "", {}), ("Sandybridge", 1, "", {}),
        ("Haswell", 2, "avx2", _AVX2), ("Haswell", 1, "avx2", _AVX2),
        ("SkylakeX", 1, "avx2", _AVX2),
        ("Sandybridge", 2, "sse", _SSE), ("Sandybridge", 1, "sse", _SSE),
    )
}
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
    # Target items named by index may lie outside the small catalogue: the attacker then
    # chooses as many by its popularity rule.
    targets = [f"attackers.{i}.{change}" for i, attacker in enumerate(scenario.attackers)
               if getattr(attacker, "targets", None)
               for change in ("targets=null", f"n_targets={len(attacker.targets)}")]
    return load_scenario(name, [*COMMON, *world, *targets, f"simulation.stop_after={stop}"])


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


def measure_spread(configurations: dict[str, dict[str, str]] = CONFIGURATIONS) -> None:
    """Run every scenario under each configuration (a fresh process each) and write the
    largest absolute difference from the recorded reference per column to SPREAD."""
    recorded = json.loads(REFERENCE.read_text(encoding="utf-8"))
    spread: dict[str, float] = {}
    where: dict[str, str] = {}
    for label, environment in configurations.items():
        with tempfile.TemporaryDirectory() as folder:
            out = Path(folder) / "metrics.json"
            subprocess.run([sys.executable, "-m", "tests.reference_metrics", "--measure",
                            str(out)], check=True, cwd=Path(__file__).parents[1],
                           env=os.environ | environment)
            found = json.loads(out.read_text(encoding="utf-8"))
        for name, columns in recorded.items():
            for column, values in columns.items():
                differences = [abs(a - b) for a, b in zip(found[name][column], values,
                                                          strict=True)
                               if a == a and b == b]  # NaN where both are NaN
                if [a == a for a in found[name][column]] != [b == b for b in values]:
                    raise SystemExit(f"{label}: {name} {column}: NaN where the reference "
                                     "has a value, or the reverse")
                largest = max(differences, default=0.0)
                if largest > spread.get(column, -1.0):
                    spread[column], where[column] = largest, f"{name} ({label})"
        print(f"{label}: measured", flush=True)
    SPREAD.write_text(json.dumps({
        "configurations": configurations,
        "largest_difference": dict(sorted(spread.items())),
        "found_in": dict(sorted(where.items())),
    }, indent=1) + "\n", encoding="utf-8")


def record(names: list[str] | None = None) -> None:
    """Rewrite the reference file from the current code: every scenario, or only `names`."""
    found = json.loads(REFERENCE.read_text(encoding="utf-8")) if names else {}
    found.update({name: metrics_of(name) for name in sorted(names or list_scenarios())})
    REFERENCE.write_text(json.dumps(found, indent=1, sort_keys=True) + "\n", encoding="utf-8")


def record_new_columns(names: list[str] | None = None) -> None:
    """Record the columns the scenarios (all, or `names`) now write that are not recorded,
    and forget those they no longer write; refuse, changing nothing, if a recorded column's
    values moved beyond its tolerance."""
    from tests.test_reference_metrics import EXACT_RTOL, TOLERANCE

    recorded = json.loads(REFERENCE.read_text(encoding="utf-8"))
    spread = json.loads(SPREAD.read_text(encoding="utf-8"))
    moved, added, dropped = [], set(), set()
    for name in sorted(names or list_scenarios()):
        found = metrics_of(name)
        old = recorded.get(name, {})
        for column in sorted(set(found) & set(old)):
            if not np.allclose(found[column], old[column], rtol=EXACT_RTOL,
                               atol=TOLERANCE.get(column, 0.0), equal_nan=True):
                moved.append(f"{name}: {column} {old[column]} -> {found[column]}")
        added |= set(found) - set(old)
        dropped |= {f"{name}: {c}" for c in set(old) - set(found)}
        recorded[name] = found
    if moved:
        raise SystemExit("recorded values moved, so this is not only new columns (record "
                         "again with `python -m tests.reference_metrics NAME` and say why):\n"
                         + "\n".join(moved))
    written = {c for columns in recorded.values() for c in columns}
    largest = spread["largest_difference"]
    for column in sorted(written - set(largest)):
        largest[column] = 0.0
        spread["found_in"][column] = "not measured yet: run --spread"
    for column in sorted(set(largest) - written):
        del largest[column]
        spread["found_in"].pop(column, None)
    spread["largest_difference"] = dict(sorted(largest.items()))
    spread["found_in"] = dict(sorted(spread["found_in"].items()))
    REFERENCE.write_text(json.dumps(recorded, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    SPREAD.write_text(json.dumps(spread, indent=1) + "\n", encoding="utf-8")
    print(f"added {len(added)} columns ({', '.join(sorted(added)) or 'none'}); dropped "
          f"{len(dropped)} ({', '.join(sorted(dropped)) or 'none'})")


if __name__ == "__main__":
    from tests.shop import ensure_shop

    ensure_shop()  # for own-data-recbole; inherited by the --spread subprocesses
    if sys.argv[1:2] == ["--spread"]:
        measure_spread()
    elif sys.argv[1:2] == ["--measure"]:  # one configuration: every scenario, to a file
        Path(sys.argv[2]).write_text(json.dumps(
            {name: metrics_of(name) for name in sorted(list_scenarios())}), encoding="utf-8")
    elif sys.argv[1:2] == ["--new-columns"]:
        record_new_columns(sys.argv[2:] or None)
    else:
        record(sys.argv[1:] or None)
