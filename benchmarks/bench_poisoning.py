"""Speed of the poisoning and robustness machinery, run as `python benchmarks/bench_poisoning.py`.

Section "APR epoch": seconds per BPR and MF epoch with APR against the same model's plain
epoch, interleaved on one ML-100K-shaped synthetic table (ratio = APR / plain).

Section "detection": seconds of each detector (generic features, PCA VarSelect, threshold,
supervised with its self-made training profiles and cross-fitting) on the same table with a
3% average attack injected.

Section "simulation step": seconds per step of a poisoned simulation (which trains a clean
twin of the platform) against the same simulation without attackers.

The last line printed is `apr_epoch_ratio_bpr: R`.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from simulator.attacks.fake_profiles import PublicStats, fake_profiles  # noqa: E402
from simulator.defenses.apr.defense import FastGradientPerturbation
from simulator.defenses.detection.detectors import (  # noqa: E402
    pca_varselect,
    profile_features,
    threshold_detect,
)
from simulator.defenses.detection.screening import screen  # noqa: E402
from simulator.defenses.detection.settings import DetectionConfig  # noqa: E402
from simulator.experiments.catalog import load_scenario  # noqa: E402
from simulator.recommenders.base import ModelParams  # noqa: E402
from simulator.recommenders.bpr import BPR  # noqa: E402
from simulator.recommenders.mf import MF  # noqa: E402
from simulator.simulation.model import PrivacyModel  # noqa: E402
from simulator.world import generate_synthetic  # noqa: E402

THREADS = 2
USERS, ITEMS = 943, 1682  # ML-100K's shape


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench_apr(model_cls: type, ratings, rounds: int = 5) -> tuple[float, float]:
    """Median seconds per epoch, plain and with APR (epsilon 0.5, weight 1), interleaved."""
    params = ModelParams(factors=64)
    plain = model_cls(USERS, ITEMS, params, "cpu", 0)
    robust = model_cls(USERS, ITEMS, params, "cpu", 0)
    robust.set_perturbation(FastGradientPerturbation(0.5, 1.0))
    plain.fit(ratings, 1)
    robust.fit(ratings, 1)  # warm-up: first-call allocations are not what we measure
    times: dict[str, list[float]] = {"plain": [], "apr": []}
    for _ in range(rounds):
        times["plain"].append(_timed(lambda: plain.partial_fit(ratings, 1)))
        times["apr"].append(_timed(lambda: robust.partial_fit(ratings, 1)))
    return statistics.median(times["plain"]), statistics.median(times["apr"])


def bench_detection(ratings) -> dict[str, float]:
    """Seconds of each detector on the table plus a 3% average attack."""
    stats = PublicStats.from_ratings(ratings, ITEMS)
    n_fake = round(0.03 * USERS)
    fakes = fake_profiles("average", "push", np.array([5]), n_fake, round(0.03 * ITEMS), stats,
                          np.random.default_rng(0), first_user=USERS)
    table = type(ratings).concat([ratings, fakes])
    n = USERS + n_fake
    result = {
        "features": _timed(lambda: profile_features(table, n, ITEMS)),
        "pca": _timed(lambda: pca_varselect(table, n, ITEMS, n_fake)),
    }
    features = profile_features(table, n, ITEMS)
    result["threshold"] = _timed(lambda: threshold_detect(features, n_fake))
    config = DetectionConfig(method="supervised")
    result["supervised"] = _timed(lambda: screen(table, ITEMS, USERS, config, 0))
    return result


def bench_steps() -> tuple[float, float]:
    """Seconds per step of the quickstart with MF, without and with a 3% average attack."""
    base = ["platform.model=mf", "simulation.steps=6", "simulation.device=cpu",
            "output.plots=false", "attackers=[]"]
    attack = "attackers=[{kind: shilling, model: average, start_step: 0}]"
    seconds = []
    for overrides in (base, [*base, attack]):
        model = PrivacyModel(load_scenario("quickstart", overrides))
        seconds.append(_timed(model.run) / 6)
    return seconds[0], seconds[1]


def main() -> None:
    torch.set_num_threads(THREADS)
    world = generate_synthetic(n_users=USERS, n_items=ITEMS, seed=0, mean_ratings_per_user=100)
    ratings = world.ratings
    print(f"table: {USERS} users x {ITEMS} items, {len(ratings):,} ratings; "
          f"{THREADS} torch threads")
    ratios = {}
    for cls in (BPR, MF):
        plain, apr = bench_apr(cls, ratings)
        ratios[cls.name] = apr / plain
        print(f"APR epoch, {cls.name}: plain {plain:.3f} s, APR {apr:.3f} s, "
              f"ratio {apr / plain:.2f}")
    for name, seconds in bench_detection(ratings).items():
        print(f"detection, {name}: {seconds:.3f} s")
    clean, poisoned = bench_steps()
    print(f"simulation step (quickstart, mf): {clean:.3f} s without attackers, "
          f"{poisoned:.3f} s with a shilling attacker and the clean twin "
          f"(ratio {poisoned / clean:.2f})")
    print(f"apr_epoch_ratio_bpr: {ratios['bpr']:.2f}")


if __name__ == "__main__":
    main()
