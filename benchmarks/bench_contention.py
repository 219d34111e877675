"""A run sharing its machine: `python benchmarks/bench_contention.py`.

Runs the end-to-end case (the ML-1M-size world for 100 steps, as `bench_scale.py`'s
`ml1m-100`) on a quiet machine, then beside one busy process of normal priority (a
`while True: pass` loop), and prints the ratio; then the same for a sweep of two points on
two workers. Losing one core of N should cost about N/(N-1/2) at most in wall time (about 1.33
on 2 cores); a thread that spins while waiting for a descheduled sibling makes it worse.

Each case runs two ways, interleaved, in fresh processes: `privsim` as shipped (OpenMP threads
wait passively, threads from the cores the process may use), and `spinning`, the reference:
the same command with OpenMP threads spinning 300,000 times before they sleep, libgomp's
default when no wait policy is set (`OMP_WAIT_POLICY=ACTIVE GOMP_SPINCOUNT=300000`, which
reach the sweep's worker processes too). Wall is the whole command, start-up included.

Options: `--repeats N` (default 2), `--only e2e|sweep`, `--steps N` (default 100).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
E2E = ["world.n_users=6040", "world.n_items=3700", "world.mean_ratings_per_user=165",
       "platform.retrain_every=5", "platform.factors=64"]
# The reference: libgomp's own default, spinning about 3 ms before sleeping.
SPINNING = {"OMP_WAIT_POLICY": "ACTIVE", "GOMP_SPINCOUNT": "300000"}
BUSY = "while True: pass"
MODES = ("privsim", "spinning")


def _environment(mode: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "PRIVSIM_THREADS")}
    env["PYTHONPATH"] = str(ROOT)
    return env | (SPINNING if mode == "spinning" else {})


def _timed(args: list[str], mode: str, busy: bool) -> float:
    load = subprocess.Popen([sys.executable, "-c", BUSY]) if busy else None
    try:
        time.sleep(0.5 if busy else 0.0)  # the loop is running before the run starts
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "simulator", *args], cwd=ROOT,
                              env=_environment(mode), capture_output=True, text=True)
        wall = time.perf_counter() - started
    finally:
        if load is not None:
            load.kill()
            load.wait()
    if done.returncode != 0:
        raise SystemExit(f"privsim {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return wall


def e2e_args(folder: Path, steps: int) -> list[str]:
    """`privsim run` of the end-to-end case into a new folder under `folder`."""
    args = ["run", "quickstart", "--no-progress", "--out", str(folder / f"run-{time.time_ns()}")]
    for override in [*E2E, f"simulation.steps={steps}", "output.plots=false"]:
        args += ["--set", override]
    return args


def sweep_args(folder: Path, steps: int) -> list[str]:
    """`privsim sweep` of two points (two seeds of the end-to-end case) on two workers."""
    spec = folder / f"sweep-{time.time_ns()}.yaml"
    spec.write_text(yaml.safe_dump({
        "name": "contention", "base": "quickstart",
        "set": [*E2E, f"simulation.steps={steps}", "output.plots=false"],
        "seeds": [0, 1], "workers": 2,
    }))
    return ["sweep", str(spec), "--workers", "2", "--out", str(folder / spec.stem)]


def measure(case: str, steps: int, repeats: int) -> dict[tuple[str, bool], list[float]]:
    """Wall seconds of `case` per (mode, busy), the modes and loads interleaved."""
    build = e2e_args if case == "e2e" else sweep_args
    walls: dict[tuple[str, bool], list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(repeats):
            for mode in MODES:
                for busy in (False, True):
                    wall = _timed(build(Path(tmp), steps), mode, busy)
                    walls.setdefault((mode, busy), []).append(wall)
                    print(f"  {case:<6} {mode:<9} {'busy' if busy else 'quiet':<6} "
                          f"{wall:7.1f} s", flush=True)
    return walls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--only", choices=("e2e", "sweep"))
    parser.add_argument("--steps", type=int, default=100)
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"{cores} cores; load average {os.getloadavg()[0]:.2f} before the first run")
    rows = []
    for case in (args.only,) if args.only else ("e2e", "sweep"):
        walls = measure(case, args.steps, args.repeats)
        for mode in MODES:
            quiet = statistics.median(walls[(mode, False)])
            busy = statistics.median(walls[(mode, True)])
            rows.append((case, mode, quiet, busy, busy / quiet))
    print(f"\n{'case':<6} {'mode':<9} {'quiet s':>8} {'busy s':>8} {'busy/quiet':>10}  "
          f"(medians of {args.repeats})")
    for case, mode, quiet, busy, ratio in rows:
        print(f"{case:<6} {mode:<9} {quiet:>8.1f} {busy:>8.1f} {ratio:>10.2f}")
    for case in dict.fromkeys(row[0] for row in rows):
        shipped, spinning = (r for r in rows if r[0] == case)
        print(f"{case}: privsim/spinning quiet {shipped[2] / spinning[2]:.2f}, "
              f"busy {shipped[3] / spinning[3]:.2f}")


if __name__ == "__main__":
    main()
