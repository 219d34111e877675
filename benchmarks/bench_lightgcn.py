"""LightGCN beside BPR on MovieLens 100K, run as `python benchmarks/bench_lightgcn.py [EPOCHS...]`.

Both models train on each user's ratings but the last 10% by time (every rating a positive,
32 factors, their default learning rates, 2 threads) and are ranked over all items the user
has not rated in training: HR@10 and NDCG@10 of the held-out items after each number of
epochs given (default 10 20 40 80), each from a cold start, over the seeds given by
`--seeds` (default 0 1 2), with the seconds per epoch and LightGCN's per-epoch cost as a ratio
of BPR's measured in the same run. Needs the MovieLens 100K folder (`PRIVSIM_DATA`, default
`../shared/data`).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from simulator.foundations.device import resolve_device  # noqa: E402
from simulator.metrics.errors_and_hits import RankingEvaluator  # noqa: E402
from simulator.recommenders.base import ModelParams  # noqa: E402
from simulator.recommenders.registry import make_recommender  # noqa: E402
from simulator.world.movielens import load_movielens  # noqa: E402
from simulator.world.split import temporal_split  # noqa: E402

MODELS = ("bpr", "lightgcn")
FACTORS = 32


def data_folder() -> Path:
    """The MovieLens 100K folder."""
    root = Path(os.environ.get("PRIVSIM_DATA", Path(__file__).resolve().parents[2] / "shared"
                               / "data"))
    return root / "ml-100k"


def run(model_name: str, epochs: int, seed: int, train, test, n_users: int, n_items: int,
        device: torch.device) -> dict[str, float]:
    """HR@10, NDCG@10 and seconds per epoch of one cold-started fit."""
    model = make_recommender(model_name, n_users, n_items, ModelParams(FACTORS), device, seed)
    started = time.perf_counter()
    model.fit(train, epochs)
    seconds = (time.perf_counter() - started) / epochs
    evaluator = RankingEvaluator(test, n_users=n_users, n_items=n_items, k=10, device=device)
    hits = evaluator.evaluate(model.score, train.user, train.item)
    return {"hr": float(np.nanmean(hits.hit)), "ndcg": float(np.nanmean(hits.ndcg)),
            "s_per_epoch": seconds}


def interval(values: list[float]) -> str:
    """mean ± half-width of the 95% t-interval."""
    from scipy import stats

    a = np.asarray(values)
    if len(a) < 2:
        return f"{a.mean():.4f}"
    half = stats.t.ppf(0.975, len(a) - 1) * a.std(ddof=1) / np.sqrt(len(a))
    return f"{a.mean():.4f} ± {half:.4f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("epochs", nargs="*", type=int, default=[10, 20, 40, 80])
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    args = parser.parse_args()
    torch.set_num_threads(2)
    device = resolve_device("auto")
    world = load_movielens(data_folder())
    train, test = temporal_split(world.ratings, world.n_users, 0.1)
    print(f"ML-100K, {len(train)} training and {len(test)} held-out ratings, "
          f"{FACTORS} factors, device {device}, seeds {args.seeds}")
    print(f"{'model':<10}{'epochs':>7}{'HR@10':>18}{'NDCG@10':>18}{'s/epoch':>10}")
    per_epoch: dict[str, list[float]] = {m: [] for m in MODELS}
    for epochs in args.epochs:
        for name in MODELS:
            results = [run(name, epochs, seed, train, test, world.n_users, world.n_items,
                           device) for seed in args.seeds]
            per_epoch[name] += [r["s_per_epoch"] for r in results]
            print(f"{name:<10}{epochs:>7}{interval([r['hr'] for r in results]):>18}"
                  f"{interval([r['ndcg'] for r in results]):>18}"
                  f"{np.median([r['s_per_epoch'] for r in results]):>10.3f}")
    ratio = np.median(per_epoch["lightgcn"]) / np.median(per_epoch["bpr"])
    print(f"lightgcn_epoch_ratio_vs_bpr: {ratio:.1f}")


if __name__ == "__main__":
    main()
