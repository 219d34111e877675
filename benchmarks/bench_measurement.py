"""Measurement and start-up benchmarks, run as `python benchmarks/bench_measurement.py`.

Section "start-up": median wall seconds of `privsim --help` and `privsim validate
quickstart` in fresh processes, against a bare `python -c pass` measured in the same run.

Section "popularity baseline": seconds to score the most-popular baseline by full ranking
for every user, through a users x items score table (`RankingEvaluator.evaluate` with
`popularity_scores`) and from the one global order (`evaluate_popularity`), on synthetic
disclosure tables of ML-1M size and of 100,000 users; the ratio is table / order.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from simulator.metrics.errors_and_hits import RankingEvaluator, popularity_scores  # noqa: E402
from simulator.world.base import Interactions  # noqa: E402

REPEATS = 5


def _median_seconds(command: list[str]) -> float:
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        subprocess.run(command, cwd=ROOT, capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_startup() -> None:
    cli = [sys.executable, "-m", "simulator"]
    bare = _median_seconds([sys.executable, "-c", "pass"])
    print(f"start-up, median of {REPEATS} fresh processes (s)")
    print(f"{'python -c pass':<32}{bare:>8.3f}")
    for label, args in (("privsim --help", ["--help"]),
                        ("privsim validate quickstart", ["validate", "quickstart"])):
        print(f"{label:<32}{_median_seconds([*cli, *args]):>8.3f}")


def _disclosures(n_users: int, n_items: int, n_seen: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    seen_user = rng.integers(0, n_users, n_seen)
    seen_item = np.minimum(rng.zipf(1.3, n_seen) - 1, n_items - 1)
    test_user = np.repeat(np.arange(n_users), 5)
    test_item = rng.integers(0, n_items, len(test_user))
    test = Interactions(test_user, test_item, np.full(len(test_user), 4.0, np.float32),
                        np.arange(len(test_user)))
    return seen_user, seen_item, test


def bench_popularity() -> None:
    device = torch.device("cpu")
    print("\npopularity baseline, full ranking of every user with test ratings (s)")
    print(f"{'users':>8}{'items':>7}{'ratings':>11}{'table':>9}{'order':>9}{'ratio':>8}")
    for n_users, n_items, n_seen in ((6040, 3700, 1_000_000), (100_000, 5000, 6_000_000)):
        seen_user, seen_item, test = _disclosures(n_users, n_items, n_seen)
        evaluator = RankingEvaluator(test, n_users=n_users, n_items=n_items, k=10, device=device)
        start = time.perf_counter()
        fast = evaluator.evaluate_popularity(seen_user, seen_item)
        order_s = time.perf_counter() - start
        start = time.perf_counter()
        dense = evaluator.evaluate(popularity_scores(seen_item, n_items, device),
                                   seen_user, seen_item)
        table_s = time.perf_counter() - start
        if not np.allclose(fast.ndcg, dense.ndcg, equal_nan=True):
            raise SystemExit("the two popularity rankings disagree")
        print(f"{n_users:>8}{n_items:>7}{n_seen:>11,}{table_s:>9.3f}{order_s:>9.3f}"
              f"{table_s / order_s:>8.1f}")


def main() -> None:
    bench_startup()
    bench_popularity()


if __name__ == "__main__":
    main()
