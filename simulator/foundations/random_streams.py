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
