"""Privacy accounting across DP retrains: per-retrain epsilon and each user's cumulative epsilon.

Adjacency is rating-level, as in `simulator.defenses.dp.dp_sgd`: a retrain's epsilon bounds what it
reveals about any one rating in its training table. A user's cumulative epsilon composes the
retrains whose training table held at least one of that user's ratings (RDP composition,
Opacus's RDP accountant), so it bounds what the whole history of releases reveals about any
single rating of that user. It is not a bound on the user's whole profile: for k ratings,
group privacy gives roughly k times as much. Users never trained on have epsilon 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from opacus.accountants import RDPAccountant
from opacus.accountants.analysis import rdp as rdp_analysis

from simulator.defenses.dp.dp_sgd import DPTrainingReport
from simulator.world.base import Interactions


@dataclass(frozen=True)
class RetrainRecord:
    """One DP retrain: its Poisson-subsampled Gaussian mechanism and who was in its data."""

    noise_multiplier: float
    sample_rate: float
    steps: int
    delta: float
    users: np.ndarray  # sorted unique indices of users with ratings in the training table


def _epsilon(records: list[RetrainRecord], delta: float) -> float:
    """Epsilon at `delta` of the RDP composition of `records` (0 for none): what Opacus's
    `RDPAccountant` gives for them as its history, with each mechanism's RDP curve computed
    once per run instead of once per user pattern and step (it is most of the cost)."""
    if not records:
        return 0.0
    orders = RDPAccountant.DEFAULT_ALPHAS
    rdp = sum([_rdp(r.noise_multiplier, r.sample_rate, r.steps) for r in records])
    epsilon, _ = rdp_analysis.get_privacy_spent(orders=orders, rdp=rdp, delta=delta)
    return float(epsilon)


@lru_cache(maxsize=4096)
def _rdp(noise_multiplier: float, sample_rate: float, steps: int) -> np.ndarray:
    """One Poisson-subsampled Gaussian mechanism's RDP at the accountant's orders (read-only:
    shared between calls)."""
    curve = np.asarray(rdp_analysis.compute_rdp(
        q=sample_rate, noise_multiplier=noise_multiplier, steps=steps,
        orders=RDPAccountant.DEFAULT_ALPHAS), dtype=float)
    curve.flags.writeable = False
    return curve


class PrivacyLedger:
    """The DP retrains of one run and the rating-level epsilon they cost each user.

    `delta` is the delta at which cumulative epsilons are stated; by default the smallest
    delta of the recorded retrains (the most demanding one).
    """

    def __init__(self, n_users: int, delta: float | None = None) -> None:
        if n_users <= 0:
            raise ValueError(f"n_users must be positive, got {n_users}")
        if delta is not None and not 0.0 < delta < 1.0:
            raise ValueError(f"delta must lie in (0, 1), got {delta}")
        self.n_users = n_users
        self._delta = delta
        self.records: list[RetrainRecord] = []

    def __len__(self) -> int:
        return len(self.records)

    @property
    def delta(self) -> float:
        """The delta cumulative epsilons are stated at."""
        if self._delta is not None:
            return self._delta
        if not self.records:
            raise ValueError("no retrain recorded and no delta given")
        return min(r.delta for r in self.records)

    def record(
        self,
        noise_multiplier: float,
        sample_rate: float,
        steps: int,
        delta: float,
        users: np.ndarray,
    ) -> int:
        """Add one retrain; `users` are the users with ratings in its data. Returns its index."""
        if noise_multiplier < 0 or not 0.0 < sample_rate <= 1.0 or steps < 0:
            raise ValueError(
                "need noise_multiplier >= 0, sample_rate in (0, 1] and steps >= 0, got "
                f"{noise_multiplier}, {sample_rate}, {steps}"
            )
        if not 0.0 < delta < 1.0:
            raise ValueError(f"delta must lie in (0, 1), got {delta}")
        present = np.unique(np.asarray(users, dtype=np.int64))
        if len(present) and (present[0] < 0 or present[-1] >= self.n_users):
            raise ValueError(f"user indices must lie in [0, {self.n_users})")
        self.records.append(
            RetrainRecord(float(noise_multiplier), float(sample_rate), int(steps), delta, present)
        )
        return len(self.records) - 1

    def record_fit(self, report: DPTrainingReport, data: Interactions) -> int:
        """Add the retrain described by a `dp_fit` report on `data`."""
        return self.record(
            report.noise_multiplier, report.sample_rate, report.steps, report.delta, data.user
        )

    def retrain_epsilon(self, index: int) -> float:
        """Epsilon of one retrain alone, at its own delta."""
        record = self.records[index]
        return _epsilon([record], record.delta)

    def participation(self) -> np.ndarray:
        """(n_users, retrains) boolean matrix: whose ratings each retrain used."""
        matrix = np.zeros((self.n_users, len(self.records)), dtype=bool)
        for column, record in enumerate(self.records):
            matrix[record.users, column] = True
        return matrix

    def user_epsilons(self, delta: float | None = None) -> np.ndarray:
        """Each user's cumulative epsilon over the retrains that used their ratings, (n_users,).

        Users with the same participation pattern share one composition, so the cost grows
        with the number of distinct patterns, not with the number of users.
        """
        if not self.records:
            return np.zeros(self.n_users)
        at = self.delta if delta is None else delta
        patterns, group = np.unique(self.participation(), axis=0, return_inverse=True)
        per_pattern = np.array(
            [
                _epsilon([r for r, used in zip(self.records, p, strict=True) if used], at)
                for p in patterns
            ]
        )
        return per_pattern[group.reshape(-1)]
