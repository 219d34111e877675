"""A synthetic world: latent-factor users and items whose tastes depend partly on attributes.

Each user's factor is ``u = z + signal * (g_gender[gender] + g_age[age])`` with ``z ~ N(0, I)``
and fixed attribute directions ``g``; items are ``v ~ N(0, I)``. Which items a user rates is
drawn without replacement with probability proportional to
``popularity_i * exp(tau * <u, v_i> / sqrt(factors))`` (Gumbel-top-k), so that attributes shape
*which* items are rated as well as *how*. Marginals follow MovieLens: 71/29 gender skew, the
ML-1M age and occupation shares, the rating histogram, heavy-tailed activity and popularity,
timestamps over the ML-100K period.

Every random component draws from its own stream spawned from ``seed``; in particular the
attributes come from a stream of their own, so with ``signal = 0`` they are independent of
everything else in the world.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from simulator.world.base import AGE_BRACKETS, GENDERS, Interactions, World
from simulator.world.movielens import ML1M_GENRES, ML1M_OCCUPATIONS
from simulator.world.parameters import validate_parameters

# Shares of the MovieLens releases (ML-1M users.dat; ML-100K u.data for the ratings).
GENDER_SHARES = (0.2829, 0.7171)
AGE_SHARES = (0.0368, 0.1826, 0.3470, 0.1975, 0.0911, 0.0821, 0.0629)
OCCUPATION_SHARES = (
    11.77, 8.74, 4.42, 2.86, 12.57, 1.85, 3.91, 11.24, 0.28, 1.52, 3.23,
    2.14, 6.42, 2.35, 5.00, 2.38, 3.99, 8.31, 1.16, 1.19, 4.65,
)
RATING_SHARES = (0.061, 0.114, 0.271, 0.342, 0.212)
# Number of ML-1M movies of each genre (in ML1M_GENRES order): sets how common a genre is.
GENRE_COUNTS = (
    503, 283, 105, 251, 1200, 211, 127, 1603, 68, 44, 343, 114, 106, 471, 276, 492, 143, 68,
)
GENRES_PER_ITEM_SHARES = (0.5, 0.35, 0.15)  # items have 1, 2 or 3 genres
TIME_SPAN = (874_724_710, 893_286_638)  # ML-100K: September 1997 .. April 1998

ATTRIBUTE_SCALE = 0.2  # attribute shift, in units of z's norm, per attribute at signal = 1
SELECTION_TAU = 2.0  # how strongly affinity (vs popularity) decides which items are rated
ACTIVITY_SIGMA = 1.0  # log-normal spread of the ratings-per-user tail
SECONDS_PER_RATING = 90  # shortest activity window: a burst of ratings, one every 90 s

_STREAMS = ("attributes", "factors", "popularity", "activity", "selection", "ratings",
            "time", "genres")


def generate_synthetic(
    n_users: int = 1000,
    n_items: int = 800,
    signal: float = 1.0,
    mean_ratings_per_user: float = 60.0,
    min_ratings_per_user: int = 20,
    factors: int = 8,
    popularity_exponent: float = 1.0,
    seed: int = 0,
) -> World:
    """Generate a synthetic world; the same arguments always give byte-identical arrays.

    ``signal`` sets how strongly gender and age shape a user's taste (0 = not at all: the
    attributes then carry no information about which items a user rates or how).
    """
    validate_parameters(n_users, n_items, signal, mean_ratings_per_user, min_ratings_per_user,
              factors, popularity_exponent, seed)
    rngs = dict(zip(_STREAMS, _spawn(seed, len(_STREAMS)), strict=True))
    attributes = _draw_attributes(rngs["attributes"], n_users)
    user_f, item_f = _draw_factors(rngs["factors"], attributes, n_items, factors, signal)
    log_pop = _log_popularity(rngs["popularity"], n_items, popularity_exponent)
    counts = _draw_activity(
        rngs["activity"], n_users, mean_ratings_per_user, min_ratings_per_user, n_items // 2
    )
    user, item, affinity = _select_items(rngs["selection"], user_f, item_f, log_pop, counts)
    rating = _draw_ratings(rngs["ratings"], user, item, affinity, log_pop, n_users)
    user, item, rating, timestamp = _draw_times(rngs["time"], user, item, rating, counts)
    features = _draw_genres(rngs["genres"], item_f)
    return World(
        name="synthetic",
        n_users=n_users,
        n_items=n_items,
        ratings=Interactions(user, item, rating, timestamp),
        attributes=attributes,
        attribute_labels={
            "gender": GENDERS, "age": AGE_BRACKETS, "occupation": ML1M_OCCUPATIONS,
        },
        user_ids=np.arange(n_users, dtype=np.int64),
        item_ids=np.arange(n_items, dtype=np.int64),
        item_features=features,
        feature_names=ML1M_GENRES,
    )


def _spawn(seed: int, n: int) -> list[np.random.Generator]:
    children = np.random.SeedSequence(int(seed)).spawn(n)
    return [np.random.Generator(np.random.PCG64(child)) for child in children]


def _draw_attributes(rng: np.random.Generator, n_users: int) -> dict[str, np.ndarray]:
    def draw(shares: tuple[float, ...]) -> np.ndarray:
        p = np.asarray(shares, dtype=np.float64)
        return rng.choice(len(p), size=n_users, p=p / p.sum()).astype(np.int64)

    return {
        "gender": draw(GENDER_SHARES),
        "age": draw(AGE_SHARES),
        "occupation": draw(OCCUPATION_SHARES),
    }


def _attribute_directions(
    rng: np.random.Generator, shares: tuple[float, ...], factors: int
) -> np.ndarray:
    """One direction per attribute value, centred on the population and scaled so that the
    population-average squared shift is (ATTRIBUTE_SCALE * sqrt(factors))^2."""
    p = np.asarray(shares, dtype=np.float64)
    p = p / p.sum()
    g = rng.standard_normal((len(p), factors))
    g -= p @ g
    rms = math.sqrt(float(p @ (g * g).sum(axis=1)))
    return g * (ATTRIBUTE_SCALE * math.sqrt(factors) / max(rms, 1e-12))


def _draw_factors(
    rng: np.random.Generator, attributes: dict[str, np.ndarray], n_items: int,
    factors: int, signal: float,
) -> tuple[np.ndarray, np.ndarray]:
    n_users = len(attributes["gender"])
    z = rng.standard_normal((n_users, factors))
    item_f = rng.standard_normal((n_items, factors))
    g_gender = _attribute_directions(rng, GENDER_SHARES, factors)
    g_age = _attribute_directions(rng, AGE_SHARES, factors)
    if signal == 0:
        return z, item_f
    shift = g_gender[attributes["gender"]] + g_age[attributes["age"]]
    return z + signal * shift, item_f


def _log_popularity(rng: np.random.Generator, n_items: int, exponent: float) -> np.ndarray:
    """Zipf-like log-weights: the item at popularity rank r gets weight r^-exponent."""
    ranks = rng.permutation(n_items) + 1
    return -exponent * np.log(ranks.astype(np.float64))


def _draw_activity(
    rng: np.random.Generator, n_users: int, mean: float, minimum: int, cap: int
) -> np.ndarray:
    """Ratings per user: minimum + a log-normal tail, capped, rescaled to the target mean."""
    tail = rng.lognormal(-ACTIVITY_SIGMA**2 / 2, ACTIVITY_SIGMA, size=n_users)
    excess = mean - minimum
    scale = excess
    counts = np.full(n_users, minimum, dtype=np.int64)
    for _ in range(8):
        counts = np.clip(np.rint(minimum + scale * tail), minimum, cap).astype(np.int64)
        achieved = counts.mean() - minimum
        if excess <= 0 or achieved <= 0 or abs(achieved - excess) < 0.5:
            break
        scale *= excess / achieved
    return counts


def _select_items(
    rng: np.random.Generator, user_f: np.ndarray, item_f: np.ndarray, log_pop: np.ndarray,
    counts: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gumbel-top-k: each user's counts[u] items, drawn without replacement with
    probability proportional to popularity * exp(tau * affinity).

    Returns (user, item, affinity) with affinity = <u, v_i> / sqrt(factors) per row.
    """
    n_users, factors = user_f.shape
    n_items = item_f.shape[0]
    gen = torch.Generator().manual_seed(int(rng.integers(0, 2**63 - 1)))
    scale = SELECTION_TAU / math.sqrt(factors)
    users_t = torch.from_numpy(user_f.astype(np.float32))
    items_t = torch.from_numpy((item_f.T * scale).astype(np.float32))  # (factors, n_items)
    pop_t = torch.from_numpy(log_pop.astype(np.float32))
    order = np.argsort(counts, kind="stable")  # similar k within a chunk keeps top-k cheap
    sorted_counts = counts[order]
    out_items, out_affinity = [], []
    for start, end in _chunks(sorted_counts, max(1, (1 << 22) // n_items)):
        k_rows = sorted_counts[start:end]
        affinity = users_t[torch.from_numpy(order[start:end])] @ items_t
        keys = torch.rand(affinity.shape, generator=gen)
        keys.log_().neg_().log_().neg_()  # Gumbel(0, 1) = -log(-log(U))
        keys += affinity
        keys += pop_t
        top = _top_k(keys.numpy(), int(k_rows[-1]))
        keep = np.arange(top.shape[1]) < k_rows[:, None]
        out_items.append(top[keep])
        out_affinity.append(np.take_along_axis(affinity.numpy(), top, axis=1)[keep])
    user = np.repeat(order, sorted_counts).astype(np.int64)
    item = np.concatenate(out_items).astype(np.int64)
    selected_affinity = np.concatenate(out_affinity).astype(np.float64) / SELECTION_TAU
    return user, item, selected_affinity


def _top_k(keys: np.ndarray, k: int) -> np.ndarray:
    """Indices of each row's k largest keys, largest first.

    torch.topk is fast while 64 * k <= row length (its heap path) but several times slower
    above; numpy's introselect then is faster. Both are exact and deterministic.
    """
    n = keys.shape[1]
    if 64 * k <= n:
        return torch.topk(torch.from_numpy(keys), k, dim=1, sorted=True).indices.numpy()
    top = np.argpartition(keys, n - k, axis=1)[:, n - k:]
    order = np.argsort(-np.take_along_axis(keys, top, axis=1), axis=1, kind="stable")
    return np.take_along_axis(top, order, axis=1)


def _chunks(sorted_counts: np.ndarray, max_rows: int) -> list[tuple[int, int]]:
    """Row ranges of at most max_rows users whose largest count is at most twice the
    smallest, so no chunk pays for a much larger top-k than its users need."""
    bounds = []
    start, n = 0, len(sorted_counts)
    while start < n:
        limit = int(np.searchsorted(sorted_counts, 2 * sorted_counts[start], side="right"))
        end = max(start + 1, min(n, start + max_rows, limit))
        bounds.append((start, end))
        start = end
    return bounds


def _draw_ratings(
    rng: np.random.Generator, user: np.ndarray, item: np.ndarray, affinity: np.ndarray,
    log_pop: np.ndarray, n_users: int,
) -> np.ndarray:
    """Score = global + user bias + item bias + affinity + noise, cut at the quantiles
    that give the MovieLens rating histogram."""
    user_bias = rng.normal(0.0, 0.4, size=n_users)
    pop_z = (log_pop - log_pop.mean()) / max(float(log_pop.std()), 1e-12)
    item_bias = 0.2 * pop_z + rng.normal(0.0, 0.35, size=len(log_pop))
    noise = rng.normal(0.0, 0.7, size=len(user))
    score = 3.5 + user_bias[user] + item_bias[item] + 0.6 * affinity + noise
    cuts = np.quantile(score, np.cumsum(RATING_SHARES)[:-1])
    return (1 + np.searchsorted(cuts, score, side="right")).astype(np.float32)


def _draw_times(
    rng: np.random.Generator, user: np.ndarray, item: np.ndarray, rating: np.ndarray,
    counts: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Each user starts at its own time and spreads its ratings over an activity window
    (heavy-tailed: many short bursts, some months long); times strictly increase per user
    and the order of a user's items is random. Returns rows sorted by (user, timestamp)."""
    t0, t1 = TIME_SPAN
    span = t1 - t0
    n_users = len(counts)
    window = np.maximum(counts * SECONDS_PER_RATING, span * rng.beta(0.25, 1.5, n_users))
    window = np.minimum(window, span).astype(np.int64)
    start = t0 + np.floor(rng.random(n_users) * (span - window + 1)).astype(np.int64)
    position = rng.random(len(user))
    order = np.argsort(user + position, kind="stable")  # by user, then random position
    user, item, rating, position = user[order], item[order], rating[order], position[order]
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.arange(len(user), dtype=np.int64) - first[user]
    room = np.maximum(window - counts, 0)
    timestamp = start[user] + np.floor(position * room[user]).astype(np.int64) + rank
    return user, item, rating, timestamp


def _draw_genres(rng: np.random.Generator, item_f: np.ndarray) -> np.ndarray:
    """18 genre flags per item, from the item factors: 1 to 3 genres each, with the ML-1M
    genre frequencies as a prior."""
    n_items, factors = item_f.shape
    directions = rng.standard_normal((len(ML1M_GENRES), factors))
    prior = np.log(np.asarray(GENRE_COUNTS, dtype=np.float64))
    noise = rng.gumbel(size=(n_items, len(ML1M_GENRES)))
    scores = item_f @ directions.T / math.sqrt(factors) + prior + noise
    p = np.asarray(GENRES_PER_ITEM_SHARES)
    n_genres = rng.choice(len(p), size=(n_items,), p=p) + 1
    ranked = np.argsort(-scores, axis=1, kind="stable")
    keep = np.arange(len(ML1M_GENRES)) < n_genres[:, None]
    features = np.zeros((n_items, len(ML1M_GENRES)), dtype=np.float32)
    features[np.nonzero(keep)[0], ranked[keep]] = 1.0
    return features
