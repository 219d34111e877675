"""Core speed benchmarks, run as `python benchmarks/bench_core.py`.

Section "BPR epoch": seconds per BPR epoch of our torch `BPR` against the C++ reference
`implicit.cpu.bpr.BayesianPersonalizedRanking`, both with 64 factors and 2 threads, on a
synthetic ML-1M-shaped table, plus HR@10 of both after the same number of epochs on a
leave-last-out split. Epochs of the two are interleaved (one of ours, one of the reference) so
that load from other processes on the machine hits both alike; the medians are compared.

Section "simulation step": seconds per step of the whole simulation, split into agents
(users' disclosure decisions), training (platform retrains) and measurement (accuracy,
leakage, inference attack), for the quickstart and for a 6,000-user synthetic world.

The last line printed by `main()` is `bpr_epoch_ratio_vs_implicit: R` (ours / reference).
New sections go into `main()` before that line.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from simulator.recommenders.base import ModelParams  # noqa: E402
from simulator.recommenders.bpr import BPR  # noqa: E402
from simulator.world.base import Interactions  # noqa: E402

try:
    import scipy.sparse
    from implicit.cpu.bpr import BayesianPersonalizedRanking
except ImportError:  # the reference is optional (pip install implicit)
    BayesianPersonalizedRanking = None

THREADS = 2
FACTORS = 64
ML1M_USERS, ML1M_ITEMS, ML1M_INTERACTIONS = 6_040, 3_706, 1_000_209


# -- data -----------------------------------------------------------------------------------
def make_ml1m_like(
    seed: int = 0,
    n_users: int = ML1M_USERS,
    n_items: int = ML1M_ITEMS,
    n_interactions: int = ML1M_INTERACTIONS,
    popularity_exponent: float = 0.9,
    rank: int = 16,
) -> Interactions:
    """A synthetic implicit-feedback table with ML-1M's shape.

    User activity is log-normal with at least 20 items per user; item popularity follows a
    power law (Zipf exponent `popularity_exponent`) and a planted rank-`rank` taste structure
    decides which items each user picks (Gumbel top-k without replacement). Timestamps are
    random, so "last" means a random positive per user.
    """
    rng = np.random.default_rng(seed)
    weight = rng.lognormal(0.0, 1.0, n_users)
    counts = np.floor(20 + weight / weight.sum() * (n_interactions - 20 * n_users)).astype(int)
    counts = np.minimum(counts, n_items // 2)
    while (short := n_interactions - int(counts.sum())) > 0:
        np.add.at(counts, rng.choice(n_users, short), 1)
        counts = np.minimum(counts, n_items // 2)
    log_pop = -popularity_exponent * np.log(np.arange(1, n_items + 1))[rng.permutation(n_items)]
    user_taste = rng.normal(size=(n_users, rank))
    item_taste = rng.normal(size=(n_items, rank))
    users, items = [], []
    for start in range(0, n_users, 512):
        stop = min(n_users, start + 512)
        logits = log_pop + 1.5 * (user_taste[start:stop] @ item_taste.T) / np.sqrt(rank)
        gumbel = -np.log(-np.log(rng.random(logits.shape)))
        ranked = np.argsort(-(logits + gumbel), axis=1)
        for row, user in enumerate(range(start, stop)):
            users.append(np.full(counts[user], user, dtype=np.int64))
            items.append(ranked[row, : counts[user]].astype(np.int64))
    user = np.concatenate(users)
    item = np.concatenate(items)
    timestamp = rng.integers(0, 10**9, len(user))
    return Interactions(user, item, np.ones(len(user), np.float32), timestamp)


def leave_last_out(data: Interactions, n_users: int) -> tuple[Interactions, Interactions]:
    """Each user's latest interaction (ties by row order) is test; the rest is train."""
    order = np.lexsort((np.arange(len(data)), data.timestamp, data.user))
    counts = np.bincount(data.user, minlength=n_users)
    last = order[np.cumsum(counts)[counts > 0] - 1]
    is_test = np.zeros(len(data), bool)
    is_test[last] = True
    return data.subset(~is_test), data.subset(is_test)


def hit_rate_at_10(scores: np.ndarray, train: Interactions, test: Interactions) -> float:
    """HR@10: share of test users whose held-out item ranks in the top 10 of all items they
    have not interacted with in training (full ranking, no sampled candidates)."""
    scores = np.array(scores, dtype=np.float32, copy=True)
    scores[train.user, train.item] = -np.inf
    top = np.argpartition(-scores[test.user], 10, axis=1)[:, :10]
    return float(np.mean((top == test.item[:, None]).any(axis=1)))


def _to_csr(data: Interactions, n_users: int, n_items: int) -> scipy.sparse.csr_matrix:
    values = np.ones(len(data), np.float32)
    return scipy.sparse.csr_matrix((values, (data.user, data.item)), shape=(n_users, n_items))


def _reference(iterations: int, seed: int) -> BayesianPersonalizedRanking:
    return BayesianPersonalizedRanking(
        factors=FACTORS, iterations=iterations, num_threads=THREADS, random_state=seed
    )


# -- BPR epoch ------------------------------------------------------------------------------
def bench_bpr_epoch(
    data: Interactions | None = None,
    n_users: int = ML1M_USERS,
    n_items: int = ML1M_ITEMS,
    timed_epochs: int = 7,
    warmup_epochs: int = 2,
    hr_epochs: int = 20,
    seed: int = 0,
) -> dict[str, float]:
    """Seconds per BPR epoch (median of `timed_epochs` after `warmup_epochs`) and HR@10 after
    `hr_epochs`, for our BPR and, when installed, implicit's. Keys: ours_s, ref_s, ratio,
    ours_min_s, ref_min_s, ours_setup_s, ours_hr10, ref_hr10 (NaN where not measured)."""
    if data is None:
        data = make_ml1m_like(seed)
    nan = float("nan")
    out = dict.fromkeys(
        ["ours_s", "ref_s", "ratio", "ours_min_s", "ref_min_s", "ours_setup_s"], nan
    ) | {"ours_hr10": nan, "ref_hr10": nan}
    params = ModelParams(factors=FACTORS)

    # Speed: one epoch of ours (a warm 1-epoch fit; its per-fit indexing is timed apart),
    # then one epoch of the reference (a warm 1-iteration fit), alternately.
    ours = BPR(n_users, n_items, params, torch.device("cpu"), seed)
    ref = _reference(1, seed) if BayesianPersonalizedRanking is not None else None
    matrix = _to_csr(data, n_users, n_items) if ref is not None else None
    ours_times, ref_times, setups = [], [], []
    for epoch in range(warmup_epochs + timed_epochs):
        report = ours.fit(data, 1, warm_start=epoch > 0)
        if ref is not None:
            tick = time.perf_counter()
            ref.fit(matrix, show_progress=False)
            ref_seconds = time.perf_counter() - tick
        if epoch >= warmup_epochs:
            ours_times.append(ours.epoch_seconds[0])
            setups.append(report.seconds - ours.epoch_seconds[0])
            if ref is not None:
                ref_times.append(ref_seconds)
    out["ours_s"], out["ours_min_s"] = float(np.median(ours_times)), float(np.min(ours_times))
    out["ours_setup_s"] = float(np.median(setups))
    if ref_times:
        out["ref_s"], out["ref_min_s"] = float(np.median(ref_times)), float(np.min(ref_times))
        out["ratio"] = out["ours_s"] / out["ref_s"]

    # Quality: the same number of epochs from scratch on a leave-last-out split.
    train, test = leave_last_out(data, n_users)
    model = BPR(n_users, n_items, params, torch.device("cpu"), seed)
    model.fit(train, hr_epochs)
    out["ours_hr10"] = hit_rate_at_10(model.score(torch.arange(n_users)).numpy(), train, test)
    if ref is not None:
        reference = _reference(hr_epochs, seed)
        reference.fit(_to_csr(train, n_users, n_items), show_progress=False)
        scores = reference.user_factors @ reference.item_factors.T
        out["ref_hr10"] = hit_rate_at_10(scores, train, test)
    out["hr_epochs"] = float(hr_epochs)
    out["timed_epochs"] = float(timed_epochs)
    return out


def print_bpr_epoch(result: dict[str, float]) -> None:
    """A small table of the BPR epoch section."""
    epochs = int(result["hr_epochs"])
    print(f"BPR epoch, {FACTORS} factors, {THREADS} threads, "
          f"median of {int(result['timed_epochs'])} interleaved epochs")
    print(f"{'model':<22}{'s/epoch':>10}{'min':>9}{f'HR@10 ({epochs} ep)':>18}")
    print(f"{'ours (torch BPR)':<22}{result['ours_s']:>10.3f}{result['ours_min_s']:>9.3f}"
          f"{result['ours_hr10']:>18.4f}")
    if np.isnan(result["ref_s"]):
        print("implicit is not installed (pip install implicit): reference skipped")
    else:
        print(f"{'implicit (C++ BPR)':<22}{result['ref_s']:>10.3f}{result['ref_min_s']:>9.3f}"
              f"{result['ref_hr10']:>18.4f}")
    print(f"ours: {THREADS} threads = a batch-preparation thread and an update thread; "
          f"per-fit indexing {result['ours_setup_s']:.3f} s (once per fit, not per epoch)")


# -- simulation steps ------------------------------------------------------------------------
def bench_simulation_steps(label: str, overrides: list[str]) -> dict[str, float]:
    """Mean seconds per simulation step by phase, for the quickstart with `overrides`."""
    from simulator.experiments.catalog import load_scenario
    from simulator.simulation.model import PrivacyModel

    scenario = load_scenario("quickstart", ["simulation.device=cpu", *overrides])
    started = time.perf_counter()
    model = PrivacyModel(scenario)
    setup = time.perf_counter() - started
    model.run()
    rows = model.records.metrics
    phases = {
        phase: float(np.mean([row[f"seconds_{phase}"] for row in rows]))
        for phase in ("agents", "training", "measurement")
    }
    step = sum(phases.values())
    return {"label": label, "users": model.world.n_users, "steps": len(rows), "setup": setup,
            **phases, "step": step, "agents_share": phases["agents"] / step}


def print_simulation_steps(results: list[dict[str, float]]) -> None:
    """A table of seconds per step by phase."""
    print("\nsimulation step, seconds per step (mean over the run)")
    print(f"{'world':<28}{'users':>7}{'agents':>10}{'training':>10}{'measure':>10}"
          f"{'step':>9}{'agents %':>10}")
    for r in results:
        print(f"{r['label']:<28}{r['users']:>7}{r['agents']:>10.4f}{r['training']:>10.3f}"
              f"{r['measurement']:>10.3f}{r['step']:>9.3f}{100 * r['agents_share']:>9.2f}%")


def main() -> None:
    """Run every section; the ratio line comes last."""
    torch.set_num_threads(THREADS)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"torch {torch.__version__}, {os.cpu_count()} cpus, load average {load:.2f}")
    tick = time.perf_counter()
    data = make_ml1m_like(seed=0)
    print(f"synthetic ML-1M-shaped table: {len(data):,} interactions "
          f"({time.perf_counter() - tick:.1f} s to build)")
    result = bench_bpr_epoch(data)
    print_bpr_epoch(result)
    print_simulation_steps([
        bench_simulation_steps("quickstart (1,000 users)", []),
        bench_simulation_steps("synthetic 6,000 x 3,700", [
            "world.n_users=6000", "world.n_items=3700", "world.mean_ratings_per_user=165",
            "simulation.steps=10", "platform.factors=64",
        ]),
    ])
    print(f"bpr_epoch_ratio_vs_implicit: {result['ratio']:.3f}")


if __name__ == "__main__":
    main()
