"""Run time by phase and peak memory at growing world sizes: `python benchmarks/bench_scale.py`.

Each configuration is one `privsim run quickstart --set ...` in a fresh process (as a user
runs it); its manifest gives the seconds spent per phase, summed over steps (agents,
training, attack, the rest of measurement: full ranking, popularity baseline, leakage and
group scores; writing: agents-table spill, tables, plots), and its peak resident memory,
printed beside the estimate the run checked before starting (`simulator.scenario.memory`). Wall is
the whole command, start-up included.

Configurations: the ML-1M-size world (6,040 users, 3,700 items, 165 ratings per user,
~1M ratings) for 100 steps retraining every 5 with 64 factors, with the attacker
cross-validating every attack and (`-select5`) every 5th attack; 10,000 and 100,000 users
(60 ratings each) for 20 steps retraining every 2; with `--large`, 1,000,000 users x 3,700
items for 5 steps. Each runs on the CPU, and again on CUDA when a GPU is present. Then the
command line's start-up: `privsim --help` and `privsim validate quickstart` against a bare
interpreter in the same run.

Options: `--large`; `--only NAME ...` (ml1m-100, ml1m-100-select5, users-10k, users-100k,
users-1m).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from simulator.experiments.catalog import load_scenario  # noqa: E402
from simulator.scenario.memory import GIB, estimate_memory, synthetic_size  # noqa: E402

CONFIGS = {
    "ml1m-100": ["world.n_users=6040", "world.n_items=3700", "world.mean_ratings_per_user=165",
                 "simulation.steps=100", "platform.retrain_every=5", "platform.factors=64"],
    "ml1m-100-select5": ["world.n_users=6040", "world.n_items=3700",
                         "world.mean_ratings_per_user=165", "simulation.steps=100",
                         "platform.retrain_every=5", "platform.factors=64",
                         "attackers.0.selection_every=5"],
    "users-10k": ["world.n_users=10000", "world.n_items=5000", "world.mean_ratings_per_user=60",
                  "simulation.steps=20", "platform.retrain_every=2"],
    "users-100k": ["world.n_users=100000", "world.n_items=5000",
                   "world.mean_ratings_per_user=60", "simulation.steps=20",
                   "platform.retrain_every=2"],
    "users-1m": ["world.n_users=1000000", "world.n_items=3700",
                 "world.mean_ratings_per_user=60", "simulation.steps=5",
                 "platform.retrain_every=2"],
}
LARGE = ("users-1m",)
PHASES = ("setup", "agents", "training", "attack", "ranking+scoring", "writing")


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def run_one(name: str, device: str) -> dict[str, float]:
    """Run one configuration in a fresh process; its phase seconds and memory."""
    overrides = [*CONFIGS[name], f"simulation.device={device}"]
    scenario = load_scenario("quickstart", overrides)
    estimate = estimate_memory(scenario, *synthetic_size(scenario)).host_bytes / GIB
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "run"
        command = [sys.executable, "-m", "simulator", "run", "quickstart", "--no-progress",
                   "--out", str(out)]
        for override in overrides:
            command += ["--set", override]
        started = time.perf_counter()
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        wall = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"{name} on {device} failed:\n{done.stderr[-2000:]}")
        timings = json.loads((out / "manifest.json").read_text())["timings"]
    return {
        "wall": wall, "setup": timings["setup_seconds"], "agents": timings["agents_seconds"],
        "training": timings["training_seconds"], "attack": timings["attack_seconds"],
        "ranking+scoring": timings["measurement_seconds"] - timings["attack_seconds"],
        "measurement": timings["measurement_seconds"], "writing": timings["writing_seconds"],
        "peak": timings["peak_memory_gib"], "estimate": estimate,
    }


def _median_seconds(command: list[str], repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(command, cwd=ROOT, capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--large", action="store_true", help="also the 1M-user world")
    parser.add_argument("--only", nargs="+", choices=list(CONFIGS))
    args = parser.parse_args()
    names = args.only or [n for n in CONFIGS if args.large or n not in LARGE]
    devices = ["cpu", "cuda"] if _cuda() else ["cpu"]
    print(f"{'config':<16} {'device':<6} {'wall s':>7} "
          + " ".join(f"{p:>15}" for p in PHASES)
          + f" {'measure/wall':>12} {'peak GiB':>9} {'est. GiB':>9}")
    for name in names:
        for device in devices:
            row = run_one(name, device)
            print(f"{name:<16} {device:<6} {row['wall']:>7.1f} "
                  + " ".join(f"{row[p]:>15.1f}" for p in PHASES)
                  + f" {row['measurement'] / row['wall']:>12.2f} {row['peak']:>9.2f}"
                  f" {row['estimate']:>9.2f}", flush=True)
    bare = _median_seconds([sys.executable, "-c", "pass"])
    help_s = _median_seconds([sys.executable, "-m", "simulator", "--help"])
    validate_s = _median_seconds([sys.executable, "-m", "simulator", "validate", "quickstart"])
    print(f"start-up (median of 5): bare python {bare:.2f} s, privsim --help {help_s:.2f} s "
          f"(+{help_s - bare:.2f}), privsim validate quickstart {validate_s:.2f} s "
          f"(+{validate_s - bare:.2f})")


if __name__ == "__main__":
    main()
