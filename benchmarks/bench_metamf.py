"""MetaMF epoch speed, ours against the reference formulation; run as
`python benchmarks/bench_metamf.py`.

Ours: `MetaMF` with default dimensions (32/128/512/32/8) and its default batch (1024),
generating each distinct user of a batch once and only the batch's rows of L(u).
Reference: the formulation of the reference code, where every example of a batch of 64
generates its user's whole N x 8 factor L(u) and N x 32 table E(u), trained with dense Adam
(weight_decay) and gradient-norm clipping at 5, on the same network.

Both are timed on a fixed number of batches and extrapolated to a full epoch (the reference
needs many minutes per ML-1M epoch on CPU); ours is also timed on a whole ML-100K epoch.
Tables are synthetic, ML-100K-shaped (943 x 1,682, 80,000 ratings) and ML-1M-shaped
(6,040 x 3,706, 800,000 ratings). MAE is compared on a small table (held-out 10%), both
formulations trained for the same number of epochs with the same lr.

The last line printed is `metamf_speedup_vs_per_example: S` (reference s/epoch / ours, ML-1M).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from simulator.recommenders.base import ModelParams  # noqa: E402
from simulator.recommenders.metamf import GRAD_CLIP, MetaMF  # noqa: E402
from simulator.world.base import Interactions  # noqa: E402

THREADS = 2
REF_BATCH = 64
REF_BATCHES = 30  # reference batches timed per table
OUR_BATCHES = 120  # our batches timed on the ML-1M-shaped table


def synthetic_table(n_users: int, n_items: int, n: int, seed: int = 0) -> Interactions:
    """Distinct (user, item) pairs with skewed activity/popularity, ratings from a rank-5 model
    with biases plus noise, rounded to 1..5."""
    rng = np.random.default_rng(seed)
    act = 1.0 / (np.arange(n_users) + 20.0) ** 0.7
    pop = 1.0 / (np.arange(n_items) + 10.0) ** 0.8
    keys = np.zeros(0, np.int64)
    while len(keys) < n:
        u = rng.choice(n_users, size=n, p=act / act.sum())
        i = rng.choice(n_items, size=n, p=pop / pop.sum())
        keys = np.unique(np.concatenate([keys, u.astype(np.int64) * n_items + i]))
    keys = rng.permutation(keys)[:n]
    user, item = keys // n_items, keys % n_items
    p, q = rng.normal(size=(n_users, 5)), rng.normal(size=(n_items, 5))
    bu, bi = rng.normal(0, 0.4, n_users), rng.normal(0, 0.5, n_items)
    raw = 3.6 + bu[user] + bi[item] + 0.35 * (p[user] * q[item]).sum(1)
    rating = np.clip(np.rint(raw + rng.normal(0, 0.5, n)), 1, 5).astype(np.float32)
    return Interactions(user, item, rating, np.zeros(n, np.int64))


class Reference:
    """The reference training step on a `MetaMF` network: per-example generation of L(u) and
    E(u), dense Adam with coupled weight decay on all trainable parameters, clipping at 5."""

    def __init__(self, model: MetaMF, lr: float, reg: float) -> None:
        self.net = model.net
        params = [p for p in self.net.parameters() if p.requires_grad]
        self.params = params
        self.opt = torch.optim.Adam(params, lr=lr, weight_decay=reg)
        self.gen = torch.Generator().manual_seed(0)

    def step(self, users: torch.Tensor, items: torch.Tensor, rating: torch.Tensor) -> float:
        loss = F.mse_loss(self.net.forward_reference(users, items), rating)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, GRAD_CLIP)
        self.opt.step()
        return float(loss.detach())

    def epoch(self, data: Interactions, max_batches: int | None = None) -> tuple[float, int]:
        """Seconds for one shuffled pass (or its first `max_batches` batches), batches run."""
        u, i, r = _tensors(data)
        order = torch.randperm(len(data), generator=self.gen)
        start, done = time.perf_counter(), 0
        for lo in range(0, len(data), REF_BATCH):
            if max_batches is not None and done >= max_batches:
                break
            idx = order[lo : lo + REF_BATCH]
            self.step(u[idx], i[idx], r[idx])
            done += 1
        return time.perf_counter() - start, done


def _tensors(data: Interactions) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return (torch.as_tensor(data.user), torch.as_tensor(data.item),
            torch.as_tensor(data.rating))


def ours_partial_epoch(model: MetaMF, data: Interactions, max_batches: int) -> tuple[float, int]:
    """Seconds for our first `max_batches` training steps of a shuffled epoch."""
    u, i, r = _tensors(data)
    order = model._epoch_order(u)
    bs = model.batch_size
    start, done = time.perf_counter(), 0
    for lo in range(0, min(len(data), max_batches * bs), bs):
        idx = order[lo : lo + bs]
        model._step(u[idx], i[idx], r[idx])
        done += 1
    return time.perf_counter() - start, done


def speed(name: str, n_users: int, n_items: int, n: int, full_ours: bool) -> tuple[float, float]:
    """(ours, reference) seconds per epoch on a synthetic table of this shape; prints a row."""
    data = synthetic_table(n_users, n_items, n)
    ours = MetaMF(n_users, n_items, ModelParams(), "cpu", 0)
    ours_partial_epoch(ours, data, 3)  # warm-up
    n_batches = -(-n // ours.batch_size)
    if full_ours:
        ours_s = ours.fit(data, 1).seconds
        how = "full epoch"
    else:
        secs, done = ours_partial_epoch(ours, data, OUR_BATCHES)
        ours_s = secs / done * n_batches
        how = f"{done} of {n_batches} batches, extrapolated"
    ref_model = MetaMF(n_users, n_items, ModelParams(), "cpu", 0)
    ref = Reference(ref_model, ref_model.lr, ref_model.reg)
    ref.epoch(data, 2)  # warm-up
    secs, done = ref.epoch(data, REF_BATCHES)
    ref_batches = -(-n // REF_BATCH)
    ref_s = secs / done * ref_batches
    print(f"{name:<10} {n_users:>6} {n_items:>6} {n:>8} | ours {ours_s:8.1f} s/epoch "
          f"(batch {ours.batch_size}, {how}) | reference {ref_s:8.1f} s/epoch (batch "
          f"{REF_BATCH}, {done} of {ref_batches} batches, extrapolated) | "
          f"speedup {ref_s / ours_s:6.1f}x", flush=True)
    return ours_s, ref_s


def mae_check(epochs: int = 4) -> None:
    """MAE on a held-out 10% of a small table after the same epochs, ours vs reference."""
    data = synthetic_table(300, 400, 20_000, seed=1)
    test = np.random.default_rng(2).random(len(data)) < 0.1
    train, held = data.subset(~test), data.subset(test)
    ours = MetaMF(300, 400, ModelParams(), "cpu", 0)
    ours.fit(train, epochs)
    ours_mae = float(np.abs(ours.predict(held.user, held.item) - held.rating).mean())
    same = MetaMF(300, 400, ModelParams(batch_size=REF_BATCH), "cpu", 0)
    same.fit(train, epochs)
    same_mae = float(np.abs(same.predict(held.user, held.item) - held.rating).mean())
    ref_model = MetaMF(300, 400, ModelParams(), "cpu", 0)
    ref = Reference(ref_model, ref_model.lr, ref_model.reg)
    for _ in range(epochs):
        ref.epoch(train)
    ref_mae = float(np.abs(ref_model.predict(held.user, held.item) - held.rating).mean())
    mean_mae = float(np.abs(train.rating.mean() - held.rating).mean())
    print(f"MAE after {epochs} epochs (300 x 400, 18k train ratings, lr {ours.lr}): ours "
          f"{ours_mae:.3f} (batch {ours.batch_size}), {same_mae:.3f} (batch {REF_BATCH}) | "
          f"reference formulation {ref_mae:.3f} "
          f"(batch {REF_BATCH}) | global mean {mean_mae:.3f}", flush=True)


def main() -> None:
    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    print(f"MetaMF, default dims 32/128/512/32/8, CPU, {THREADS} threads")
    speed("ML-100K", 943, 1682, 80_000, full_ours=True)
    ours_s, ref_s = speed("ML-1M", 6040, 3706, 800_000, full_ours=False)
    user_model = MetaMF(6040, 3706, ModelParams(options={"batching": "user"}), "cpu", 0)
    secs, done = ours_partial_epoch(user_model, synthetic_table(6040, 3706, 800_000), OUR_BATCHES)
    print(f"ML-1M, ours with batching='user': {secs / done * 782:.1f} s/epoch "
          f"({done} of 782 batches, extrapolated)", flush=True)
    mae_check()
    print(f"metamf_speedup_vs_per_example: {ref_s / ours_s:.1f}")


if __name__ == "__main__":
    main()
