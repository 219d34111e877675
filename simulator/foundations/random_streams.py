"""Counter-based random numbers: one independent stream per (purpose, user).

A draw is a pure function of (seed, purpose, user, counter), so changing what one user
or one group does never shifts anyone else's random numbers (common random numbers for
counterfactual runs). numpy's generators are sequential and cannot be indexed like this
across thousands of users without a Python loop per user, hence this small hash.
"""

from __future__ import annotations

import zlib
from typing import TypeVar

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)

_Words = TypeVar("_Words", np.ndarray, np.uint64)


def _splitmix64(x: _Words) -> _Words:
    """The SplitMix64 finaliser, elementwise on uint64 (wrap-around is intended)."""
    with np.errstate(over="ignore"):
        z = x + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _MIX1
        z = (z ^ (z >> np.uint64(27))) * _MIX2
        return z ^ (z >> np.uint64(31))


def purpose_key(purpose: str) -> int:
    """A stable 32-bit key for a named purpose (e.g. 'disclosure')."""
    return zlib.crc32(purpose.encode("utf-8"))


def stream_uniform(
    seed: int, purpose: str, user: np.ndarray, counter: np.ndarray | int
) -> np.ndarray:
    """Uniform [0, 1) draws, one per element of `user` (broadcast with `counter`)."""
    user = np.asarray(user, dtype=np.uint64)
    counter = np.asarray(counter, dtype=np.uint64)
    base = _splitmix64(np.uint64(seed) ^ (np.uint64(purpose_key(purpose)) << np.uint64(32)))
    mixed = _splitmix64(_splitmix64(base ^ user) ^ counter)
    return (mixed >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


# Sequential streams (numpy generators), one per purpose: `random_stream(seed, purpose,
# *index)` seeds numpy's SeedSequence with (seed, the purpose's word, *index), so a purpose
# draws the same numbers whatever else a run does. The words are those the streams were
# first given, kept so that every recorded run draws what it drew. Mesa's own `model.rng`
# (seeded with the scenario's seed) is left to Mesa: one shared generator would make each
# purpose's numbers depend on how much every other purpose drew before it.
STREAMS: dict[str, int] = {
    "inclinations": 1,  # each user's inclination type
    "inference_known_users": 2,  # the users whose attributes the inference attacker knows
    "unlearning_requests": 3,  # who asks for unlearning from the start
    "agents_table_sample": 7,  # the users the agents table follows
    "poisoner": 20,  # a poisoning attacker's own draws (index: its place in `attackers`)
    "poisoner_public_labels": 22,  # the genuine users whose attributes a poisoner knows
    "poisoner_declarations": 23,  # what a poisoner's fake accounts declare at sign-up
    "consumption_negatives": 29,  # unrated items sampled as the consumption task's zeros
    "detection_training_profiles": 31,  # the profiles a supervised detector trains on
    "item_sample": 40,  # the items a MovieLens world keeps (`world.n_items`)
    "breach_news_relay": 50,  # which neighbours a breach's news reaches (index: the step)
    "social_graph": 51,  # the social graph of a generated network
}


def random_stream(seed: int, purpose: str, *index: int) -> np.random.Generator:
    """numpy's generator for one named purpose (`STREAMS`) of a run seeded `seed`."""
    if purpose not in STREAMS:
        raise KeyError(f"unknown random stream {purpose!r}; add it to STREAMS")
    return np.random.default_rng([seed, STREAMS[purpose], *index])


RETRAIN_STRIDE = 1000  # seeds of successive retrains of one run lie this far apart


def retrain_seed(seed: int, retrain: int) -> int:
    """The seed of a run's `retrain`-th training (0 first), which seeds the torch generators
    of that training and of the defenses acting on it."""
    return seed + RETRAIN_STRIDE * retrain
