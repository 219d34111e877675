"""Top-N lists of the four platform models against the popularity list and a random order;
run as `python benchmarks/bench_ranking.py [--data FOLDER] [--seeds 0,1,2,3,4] [--steps 4]`
(`--scenarios`, `--models` and `--rankings` pick cases).

Each case is a shipped MovieLens baseline scenario as a user runs it (`ml100k-baseline`,
`ml1m-head-baseline`), its attackers left out (they do not change training), the platform
model and `platform.ranking.method` set, stopped after `--steps` steps. At the last step it
reads MAE, HR@10 and NDCG@10 over the held-out ratings, the popularity list's HR@10 and
NDCG@10 on the same users, and scores a random order on the same candidates (each user's
undisclosed items, uniform scores from a fixed generator). `top10_count` is the mean number of
platform ratings of the items in the lists, against `held_count`, that of the held-out
items: a ranking that favours rarely rated items scores below a random order.

Prints one line per model, ranking and scenario: the mean over seeds and a 95% Student-t
interval of MAE, HR@10, NDCG@10, HR@10 minus the popularity list's and minus the random
order's, and the counts.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from simulator.experiments.catalog import load_scenario  # noqa: E402
from simulator.metrics.errors_and_hits import RankingEvaluator  # noqa: E402
from simulator.simulation.model import PrivacyModel  # noqa: E402

CASES = [("bpr", "score"), ("mf", "score"), ("mf", "consumption"), ("metamf", "score"),
         ("metamf", "consumption"), ("nometamf", "score"), ("nometamf", "consumption")]
SCENARIOS = ("ml100k-baseline", "ml1m-head-baseline")


def one_run(scenario: str, model: str, ranking: str, seed: int, steps: int,
            data: str | None) -> dict[str, float]:
    """The last step's accuracy of one run, with the random order and list popularity."""
    values: dict[str, object] = {"platform.model": model, "platform.ranking.method": ranking,
                                 "attackers": [], "simulation.seed": seed,
                                 "simulation.steps": steps, "output.plots": False}
    if data is not None:
        name = "ml-100k" if scenario.startswith("ml100k") else "ml-1m-head"
        values["world.path"] = str(Path(data) / name)
    sim = PrivacyModel(load_scenario(scenario, [], values))
    for _ in range(steps):
        sim.step()
    row = sim.records.metrics[-1]
    seen_user, seen_item = sim.platform.seen_items()
    ranking_eval = RankingEvaluator(sim.test, n_users=sim.world.n_users,
                                    n_items=sim.world.n_items, k=10,
                                    device=torch.device("cpu"))
    generator = torch.Generator().manual_seed(seed)
    random_hits = ranking_eval.evaluate(
        lambda users: torch.rand(len(users), sim.world.n_items, generator=generator),
        seen_user, seen_item)
    counts = np.bincount(seen_item, minlength=sim.world.n_items)
    recommender = sim.platform.recommender
    scores = recommender.score(torch.arange(sim.world.n_users)).float()
    scores[torch.as_tensor(seen_user), torch.as_tensor(seen_item)] = -torch.inf
    top = torch.topk(scores[torch.as_tensor(ranking_eval.users)], 10, dim=1).indices.numpy()
    return {
        "mae": float(row.get("mae", np.nan)),  # type: ignore[arg-type]
        "hr": float(row["hr_10"]), "ndcg": float(row["ndcg_10"]),
        "pop_hr": float(row["pop_hr_10"]), "pop_ndcg": float(row["pop_ndcg_10"]),
        "random_hr": float(np.nanmean(random_hits.hit)),
        "random_ndcg": float(np.nanmean(random_hits.ndcg)),
        "top10_count": float(counts[top].mean()),
        "held_count": float(counts[sim.test.item].mean()),
    }


def _summary(values: np.ndarray) -> str:
    """Mean and 95% Student-t interval over seeds."""
    array = np.asarray(values, dtype=float)
    mean = float(array.mean())
    if len(array) < 2:
        return f"{mean:+.4f}"
    half = float(stats.t.ppf(0.975, len(array) - 1) * array.std(ddof=1) / np.sqrt(len(array)))
    return f"{mean:+.4f} [{mean - half:+.4f}, {mean + half:+.4f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.environ.get("PRIVSIM_DATA"))
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--models", default="bpr,mf,metamf,nometamf")
    parser.add_argument("--rankings", default="score,consumption")
    args = parser.parse_args()
    torch.set_num_threads(2)
    seeds = [int(s) for s in args.seeds.split(",")]
    models, rankings = args.models.split(","), args.rankings.split(",")
    for scenario in args.scenarios.split(","):
        for model, ranking in [c for c in CASES if c[0] in models and c[1] in rankings]:
            started = time.perf_counter()
            runs = [one_run(scenario, model, ranking, seed, args.steps, args.data)
                    for seed in seeds]
            seconds = (time.perf_counter() - started) / len(runs)
            column = {key: np.array([r[key] for r in runs]) for key in runs[0]}
            print(f"{scenario} {model} {ranking} ({len(seeds)} seeds, {seconds:.0f} s/run): "
                  f"MAE {_summary(column['mae'])}  HR@10 {_summary(column['hr'])}  "
                  f"NDCG@10 {_summary(column['ndcg'])}  "
                  f"HR@10-pop {_summary(column['hr'] - column['pop_hr'])}  "
                  f"NDCG@10-pop {_summary(column['ndcg'] - column['pop_ndcg'])}  "
                  f"HR@10-random {_summary(column['hr'] - column['random_hr'])}  "
                  f"pop HR@10 {column['pop_hr'].mean():.4f}  "
                  f"random HR@10 {column['random_hr'].mean():.4f}  "
                  f"list item ratings {column['top10_count'].mean():.1f} "
                  f"(held-out items {column['held_count'].mean():.1f})", flush=True)

if __name__ == "__main__":
    main()
