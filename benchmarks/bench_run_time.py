"""Estimated against actual run time for every shipped scenario and a composed what-if:
`python benchmarks/bench_run_time.py`.

Each scenario runs as a user runs it, `privsim run NAME --out DIR/NAME` in a fresh process,
and its wall time (start-up included) is set beside the estimate `privsim validate` prints
(`simulator.scenario.run_time`): the ratio estimate / actual, with the estimate's parts. The
what-if is quickstart with half the users privacy fundamentalists, a shilling attack from
step 3 and gender unlearning.

The cost model's coefficients (`simulator/scenario/run_time.json`) are fitted to these runs'
measured parts (training, clean twin, attacker, measurement, agents, the rest): `--fit`
refits and rewrites them. Every row also shows the leave-one-out estimate, from
coefficients fitted to the other runs only, so the table says how well the model predicts
a scenario it has not seen.

Options: `--out DIR` (default outputs/benchmarks/run-time; finished runs there are reused
unless `--rerun`), `--only NAME ...`, `--fit`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from simulator.experiments.catalog import list_scenarios, load_scenario  # noqa: E402
from simulator.scenario.run_time import (  # noqa: E402
    COEFFICIENTS,
    fit_coefficients,
    measured_parts,
    workload,
)
from simulator.scenario.run_time import estimate_run_time as estimate  # noqa: E402
from simulator.scenario.schema import Scenario  # noqa: E402

WHAT_IF = ("what-if", "quickstart", [
    "population.types={fundamentalist: {share: 0.5, beta: 0.2}, pragmatist: {share: 0.3, "
    "beta: 0.6}, unconcerned: {share: 0.2, beta: 1.0}}",
    "attackers+={kind: shilling, start_step: 3}",
    "platform.defenses.unlearning={attribute: gender}",
])


def _cases(only: list[str] | None) -> list[tuple[str, str, list[str]]]:
    cases = [(name, name, []) for name in list_scenarios()] + [WHAT_IF]
    return [case for case in cases if not only or case[0] in only]


def _run(label: str, name: str, sets: list[str], out: Path, rerun: bool) -> float:
    """Wall seconds of `privsim run`, or the recorded ones of a finished earlier run."""
    folder = out / label
    record = folder / "wall_seconds.json"
    if record.is_file() and not rerun:
        return float(json.loads(record.read_text())["wall_seconds"])
    command = [sys.executable, "-m", "simulator", "run", name, "--out", str(folder),
               "--no-progress", *[part for item in sets for part in ("--set", item)]]
    if folder.exists():
        shutil.rmtree(folder)
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    record.write_text(json.dumps({"wall_seconds": wall}))
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "outputs/benchmarks/run-time")
    parser.add_argument("--only", nargs="+")
    parser.add_argument("--rerun", action="store_true")
    parser.add_argument("--fit", action="store_true")
    args = parser.parse_args()
    from tests.shop import ensure_shop

    ensure_shop()  # the example shop `own-data-recbole` reads, unless PRIVSIM_SHOP names one
    args.out.mkdir(parents=True, exist_ok=True)
    rows: list[tuple[str, Scenario, float, dict[str, float]]] = []
    for label, name, sets in _cases(args.only):
        wall = _run(label, name, sets, args.out, args.rerun)
        scenario = load_scenario(name, sets)
        rows.append((label, scenario, wall, measured_parts(args.out / label, wall)))
        print(f"{label}: {wall:.1f} s", flush=True)
    samples = [(workload(scenario), parts) for _, scenario, _, parts in rows]
    if args.fit:
        COEFFICIENTS.write_text(json.dumps(fit_coefficients(samples), indent=1) + "\n")
        print(f"coefficients written to {COEFFICIENTS.relative_to(ROOT)}")
    print(f"\n{'scenario':38} {'actual s':>9} {'estimate':>9} {'ratio':>6} {'held out':>9} "
          f"{'ratio':>6}  parts of the estimate")
    worst = 0.0
    for index, (label, scenario, wall, _) in enumerate(rows):
        found = estimate(scenario)
        others = fit_coefficients(samples[:index] + samples[index + 1:])
        held_out = estimate(scenario, others)
        ratio, ratio_out = found.seconds / wall, held_out.seconds / wall
        worst = max(worst, ratio, 1 / ratio)
        parts = ", ".join(f"{part} {seconds:.0f}" for part, seconds in found.parts.items()
                          if seconds >= 0.5)
        print(f"{label:38} {wall:9.1f} {found.seconds:9.1f} {ratio:6.2f} "
              f"{held_out.seconds:9.1f} {ratio_out:6.2f}  {parts}")
    print(f"\nlargest factor between estimate and actual: {worst:.2f}x")


if __name__ == "__main__":
    main()
