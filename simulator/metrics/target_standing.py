"""What a poisoning attack achieved: the targets' hit rates and scores among genuine users."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from simulator.metrics.errors_and_hits import ScoreFn

TARGET_KS = (10, 20, 50)


@dataclass
class TargetView:
    """Where the targets stand for the genuine users who have not rated them.

    `scores` and `ranks` are (users, targets), NaN / -1 where the user already rated the
    target (not eligible); a rank is the number of the user's other unrated items scored
    higher or the same (ties count against the target).
    """

    users: np.ndarray
    targets: np.ndarray
    scores: np.ndarray
    ranks: np.ndarray

    def hit_rate(self, k: int) -> float:
        """HR@k of the targets: the share of eligible (user, target) pairs with the target in
        the user's top k, averaged over targets."""
        rates = []
        for column in range(len(self.targets)):
            eligible = self.ranks[:, column] >= 0
            if eligible.any():
                rates.append(float((self.ranks[eligible, column] < k).mean()))
        return float(np.mean(rates)) if rates else float("nan")

    def ndcg(self, k: int) -> float:
        """NDCG@k of the targets: per eligible (user, target) pair, the target being the one
        relevant item, 1 / log2(rank + 2) when it is in the top k (rank from 0) and 0 when it
        is not; averaged over the pair's users, then over targets."""
        gains = []
        for column in range(len(self.targets)):
            ranks = self.ranks[self.ranks[:, column] >= 0, column]
            if len(ranks):
                gains.append(float(np.where(ranks < k, 1.0 / np.log2(ranks + 2.0), 0.0).mean()))
        return float(np.mean(gains)) if gains else float("nan")


def target_view(
    score: ScoreFn,
    users: np.ndarray,
    targets: np.ndarray,
    seen_user: np.ndarray,
    seen_item: np.ndarray,
    n_items: int,
    device: torch.device,
    chunk: int = 1024,
    clip: tuple[float, float] | None = None,
) -> TargetView:
    """Rank every target for every user in `users` among the items that user has not rated
    on the platform (`seen_*`: the platform's (user, item) pairs). With `clip`, a rating
    model's range, the kept scores are its clipped predicted ratings (the ranks use the
    ranking scores as they are)."""
    users = np.asarray(users, dtype=np.int64)
    targets = np.asarray(targets, dtype=np.int64)
    scores = np.full((len(users), len(targets)), np.nan)
    ranks = np.full((len(users), len(targets)), -1, dtype=np.int64)
    position = np.full(int(max(users.max(initial=-1), seen_user.max(initial=-1))) + 1, -1)
    position[users] = np.arange(len(users))
    pick = position[seen_user] >= 0
    seen_row, seen_col = position[seen_user[pick]], seen_item[pick]
    order = np.argsort(seen_row, kind="stable")
    seen_row, seen_col = seen_row[order], seen_col[order]
    for start in range(0, len(users), chunk):
        stop = min(start + chunk, len(users))
        lo, hi = np.searchsorted(seen_row, [start, stop])
        with torch.no_grad():
            block = score(torch.as_tensor(users[start:stop], device=device)).float()
            rows = torch.as_tensor(seen_row[lo:hi] - start, device=device)
            cols = torch.as_tensor(seen_col[lo:hi], device=device)
            block[rows, cols] = -torch.inf
            target_scores = block[:, torch.as_tensor(targets, device=device)]
            # Ties count against the target: an item scored the same ranks ahead of it.
            higher = (block.unsqueeze(1) >= target_scores.unsqueeze(2)).sum(2) - 1
        values = target_scores.cpu().numpy().astype(np.float64)
        eligible = np.isfinite(values)
        if clip is not None:
            values = np.clip(values, *clip)
        scores[start:stop] = np.where(eligible, values, np.nan)
        ranks[start:stop] = np.where(eligible, higher.cpu().numpy(), -1)
    return TargetView(users, targets, scores, ranks)


def prediction_shift(attacked: TargetView, clean: TargetView) -> float:
    """Mean over eligible (user, target) pairs of the attacked model's score minus the clean
    model's (same users and targets; eligible in both)."""
    difference = attacked.scores - clean.scores
    return float(np.nanmean(difference)) if np.isfinite(difference).any() else float("nan")


def target_metrics(attacked: TargetView, clean: TargetView | None) -> dict[str, float]:
    """The per-step target columns: HR@k and NDCG@k (attacked, and clean when known) and the
    shift."""
    row: dict[str, float] = {}
    for k in TARGET_KS:
        row[f"target_hr_{k}"] = attacked.hit_rate(k)
        row[f"target_ndcg_{k}"] = attacked.ndcg(k)
        if clean is not None:
            row[f"target_hr_{k}_clean"] = clean.hit_rate(k)
            row[f"target_ndcg_{k}_clean"] = clean.ndcg(k)
    if clean is not None:
        row["prediction_shift"] = prediction_shift(attacked, clean)
    return row
