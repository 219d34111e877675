"""Screening the platform's data for fake profiles before a retrain (the detection defense).

The detectors in `detection` work on a compact users x items table; here the platform's
accounts with at least one rating are renumbered 0..n-1 (accounts without ratings cannot be
profiled and are never flagged), the configured detector runs, and flagged accounts'
ratings are dropped. The supervised detector learns from profiles the platform makes itself
with the classic attack models, from public statistics of its own data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.attacks.fake_profiles import PublicStats, fake_profiles
from simulator.defenses.detection.detectors import (
    detection_report,
    pca_varselect,
    profile_features,
    remove_users,
    supervised_detect,
    supervised_detector,
    threshold_detect,
)
from simulator.defenses.detection.settings import DetectionConfig
from simulator.foundations.random_streams import random_stream
from simulator.world.base import Interactions

# Attack models the supervised detector is shown, and how many of each it makes (as a
# share of the platform's profiled accounts, at least MIN_TRAINING_FAKES).
TRAINING_MODELS = ("random", "average", "bandwagon")
TRAINING_SHARE = 0.05
MIN_TRAINING_FAKES = 10
SUPERVISED_FOLDS = 5
FILLER_SIZES = 12


@dataclass(frozen=True)
class Screening:
    """The table to train on and what the detector did (precision/recall against the truth
    the simulator knows: accounts at or above `n_genuine` are fake)."""

    table: Interactions
    flagged_users: np.ndarray
    metrics: dict[str, float]


def screen(
    table: Interactions, n_items: int, n_genuine: int, config: DetectionConfig, seed: int
) -> Screening:
    """Run the configured detector on `table` and drop the flagged accounts' ratings."""
    accounts, compact = np.unique(table.user, return_inverse=True)
    local = Interactions(compact.astype(np.int64), table.item, table.rating, table.timestamp)
    n = len(accounts)
    n_flag = (
        int(round(config.assumed_attack_size * n)) if config.assumed_attack_size is not None
        else None
    )
    if n < 3:
        flagged = np.zeros(n, dtype=bool)
    elif config.method == "pca":
        assert n_flag is not None
        flagged = pca_varselect(local, n, n_items, n_flag)
    elif config.method == "threshold":
        flagged = threshold_detect(profile_features(local, n, n_items), n_flag, config.z)
    else:
        flagged = _supervised(local, n, n_items, seed)
    is_fake = accounts >= n_genuine
    report = detection_report(flagged, is_fake)
    kept = remove_users(local, flagged)
    kept = Interactions(accounts[kept.user], kept.item, kept.rating, kept.timestamp)
    return Screening(kept, accounts[flagged], {
        "detection_flagged": float(report.n_flagged),
        "detection_precision": report.precision,
        "detection_recall": report.recall,
    })


def _supervised(local: Interactions, n: int, n_items: int, seed: int) -> np.ndarray:
    """Train on the platform's accounts (label 0; fakes among them are label noise) plus
    profiles it generates itself (label 1), then classify its accounts, cross-fitted."""
    rng = random_stream(seed, "detection_training_profiles")
    stats = PublicStats.from_ratings(local, n_items)
    per_model = max(MIN_TRAINING_FAKES, int(round(TRAINING_SHARE * n)))
    # Filler sizes spread densely over the usual range of attacks (1-10% of the items): the
    # real one is unknown, and gaps between sizes become regions a forest calls genuine.
    fillers = np.unique(np.clip(np.round(np.linspace(0.01, 0.1, FILLER_SIZES) * n_items), 1,
                                n_items - 20).astype(int))
    parts, first = [local], n
    for kind in TRAINING_MODELS:
        for filler in fillers:
            count = max(2, per_model // len(fillers))
            target = rng.choice(n_items, 1)
            parts.append(fake_profiles(kind, "push", target, count, int(filler), stats, rng,
                                       first_user=first, n_selected=5))
            first += count
    combined = Interactions.concat(parts)
    features = profile_features(combined, first, n_items)
    made = features[n:]
    # Cross-fitting: each account is judged by a model that never saw it. Trained on itself
    # with label 0, a forest memorises the real fakes among the accounts as genuine.
    fold = rng.permutation(n) % SUPERVISED_FOLDS
    flagged = np.zeros(n, dtype=bool)
    for k in range(SUPERVISED_FOLDS):
        held = fold == k
        x = np.vstack([features[:n][~held], made])
        y = np.r_[np.zeros(int((~held).sum()), dtype=int), np.ones(len(made), dtype=int)]
        model = supervised_detector(x, y, seed)
        flagged[held] = supervised_detect(model, features[:n][held])
    return flagged
