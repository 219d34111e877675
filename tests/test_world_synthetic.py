"""The synthetic world: marginals like MovieLens, determinism, attribute signal, speed."""

from __future__ import annotations

import time

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score

from simulator.world import World, generate_synthetic, load_world
from simulator.world.base import AGE_BRACKETS, GENDERS
from simulator.world.synthetic import AGE_SHARES, RATING_SHARES, TIME_SPAN


@pytest.fixture(scope="module")
def world() -> World:
    return generate_synthetic(n_users=3000, n_items=1500, seed=7)


def _arrays(w: World) -> list[np.ndarray]:
    r = w.ratings
    return [r.user, r.item, r.rating, r.timestamp, *w.attributes.values(), w.item_features]


def _gender_auc(w: World) -> float:
    """Cross-validated AUC of a logistic regression predicting gender from which items
    each user rated (the user x item incidence matrix)."""
    x = np.zeros((w.n_users, w.n_items), dtype=np.float32)
    x[w.ratings.user, w.ratings.item] = 1.0
    cv = StratifiedKFold(5, shuffle=True, random_state=0)
    model = LogisticRegression(C=0.1, max_iter=300)
    return float(cross_val_score(model, x, w.attributes["gender"], cv=cv, scoring="roc_auc").mean())


def test_shapes_and_dtypes(world: World) -> None:
    r = world.ratings
    assert world.name == "synthetic"
    assert (world.n_users, world.n_items) == (3000, 1500)
    assert r.user.dtype == np.int64 and r.item.dtype == np.int64
    assert r.rating.dtype == np.float32 and r.timestamp.dtype == np.int64
    assert np.array_equal(world.user_ids, np.arange(3000)) and world.user_ids.dtype == np.int64
    assert np.array_equal(world.item_ids, np.arange(1500)) and world.item_ids.dtype == np.int64
    assert r.user.min() == 0 and r.user.max() == 2999
    assert r.item.min() >= 0 and r.item.max() < 1500
    assert set(world.attributes) == {"gender", "age", "occupation"}
    for name, labels in world.attribute_labels.items():
        codes = world.attributes[name]
        assert codes.shape == (3000,) and codes.dtype == np.int64
        assert codes.min() >= 0 and codes.max() < len(labels)
    assert world.attribute_labels["gender"] == GENDERS
    assert world.attribute_labels["age"] == AGE_BRACKETS
    assert len(world.attribute_labels["occupation"]) == 21


def test_no_repeated_pairs_and_sorted(world: World) -> None:
    r = world.ratings
    pairs = r.user * world.n_items + r.item
    assert len(np.unique(pairs)) == len(r)
    assert np.all(np.diff(r.user) >= 0)
    same_user = np.diff(r.user) == 0
    assert np.all(np.diff(r.timestamp)[same_user] > 0)  # strictly increasing per user


def test_rating_histogram_matches_movielens(world: World) -> None:
    r = world.ratings.rating
    assert set(np.unique(r).tolist()) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    shares = np.bincount(r.astype(np.int64), minlength=6)[1:] / len(r)
    np.testing.assert_allclose(shares, RATING_SHARES, atol=0.01)


def test_attribute_shares(world: World) -> None:
    male = np.mean(world.attributes["gender"] == GENDERS.index("M"))
    assert 0.68 < male < 0.74
    ages = np.bincount(world.attributes["age"], minlength=7) / world.n_users
    np.testing.assert_allclose(ages, AGE_SHARES, atol=0.03)
    assert len(np.unique(world.attributes["occupation"])) == 21


def test_activity_and_popularity_are_heavy_tailed(world: World) -> None:
    counts = world.ratings_per_user()
    assert counts.min() >= 20
    assert counts.max() <= world.n_items // 2
    assert 50 < counts.mean() < 70
    assert counts.max() > 5 * np.median(counts)
    assert np.percentile(counts, 90) > 2 * np.median(counts)
    popularity = np.sort(np.bincount(world.ratings.item, minlength=world.n_items))[::-1]
    top_decile_share = popularity[: world.n_items // 10].sum() / popularity.sum()
    assert top_decile_share > 0.3
    density = world.describe()["density"]
    assert 0.02 < density < 0.06


def test_timestamps_span_and_staggered_starts(world: World) -> None:
    r = world.ratings
    assert TIME_SPAN[0] <= r.timestamp.min() and r.timestamp.max() <= TIME_SPAN[1]
    first = np.ones(len(r), dtype=bool)
    first[1:] = r.user[1:] != r.user[:-1]
    starts = r.timestamp[first]
    assert len(starts) == world.n_users
    assert np.std(starts) > 30 * 86400  # users join at different times


def test_item_features_are_genre_flags(world: World) -> None:
    f = world.item_features
    assert f is not None and f.shape == (world.n_items, 18)
    assert len(world.feature_names) == 18 and "Drama" in world.feature_names
    assert set(np.unique(f).tolist()) <= {0.0, 1.0}
    per_item = f.sum(axis=1)
    assert per_item.min() >= 1 and per_item.max() <= 3
    drama = world.feature_names.index("Drama")
    western = world.feature_names.index("Western")
    assert f[:, drama].sum() > f[:, western].sum()


def test_same_seed_same_world_different_seed_different() -> None:
    a = generate_synthetic(n_users=500, n_items=300, seed=3)
    b = generate_synthetic(n_users=500, n_items=300, seed=3)
    c = generate_synthetic(n_users=500, n_items=300, seed=4)
    for x, y in zip(_arrays(a), _arrays(b), strict=True):
        assert x.dtype == y.dtype and x.tobytes() == y.tobytes()
    assert not np.array_equal(a.attributes["gender"], c.attributes["gender"])
    assert len(a.ratings) != len(c.ratings) or not np.array_equal(a.ratings.item, c.ratings.item)


def test_signal_changes_only_tastes() -> None:
    """Common random numbers: the signal leaves attributes and activity unchanged."""
    a = generate_synthetic(n_users=400, n_items=300, signal=0.0, seed=5)
    b = generate_synthetic(n_users=400, n_items=300, signal=2.0, seed=5)
    for name in a.attributes:
        assert np.array_equal(a.attributes[name], b.attributes[name])
    assert np.array_equal(a.ratings_per_user(), b.ratings_per_user())
    assert not np.array_equal(a.ratings.item, b.ratings.item)


def test_signal_zero_leaks_nothing_and_signal_two_leaks() -> None:
    kwargs = {"n_users": 800, "n_items": 400, "mean_ratings_per_user": 40.0}
    null = [_gender_auc(generate_synthetic(signal=0.0, seed=s, **kwargs)) for s in range(3)]
    strong = [_gender_auc(generate_synthetic(signal=2.0, seed=s, **kwargs)) for s in range(3)]
    print(f"gender AUC, signal 0: {np.round(null, 3)}; signal 2: {np.round(strong, 3)}")
    assert abs(np.mean(null) - 0.5) < 0.05
    assert max(abs(a - 0.5) for a in null) < 0.09
    assert min(strong) > 0.75


def test_generation_is_fast() -> None:
    generate_synthetic(n_users=200, n_items=200)  # warm-up: imports, torch kernels
    start = time.perf_counter()
    w = generate_synthetic(n_users=6000, n_items=3700)
    elapsed = time.perf_counter() - start
    assert w.n_users == 6000 and len(w.ratings) > 6000 * 50
    assert elapsed < 5.0, f"6000 x 3700 took {elapsed:.2f} s"


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"n_users": 1}, "n_users"),
        ({"n_items": 1}, "n_items"),
        ({"n_users": 10.5}, "n_users"),
        ({"signal": -0.1}, "signal"),
        ({"signal": float("nan")}, "signal"),
        ({"factors": 0}, "factors"),
        ({"seed": -1}, "seed"),
        ({"popularity_exponent": -1.0}, "popularity_exponent"),
        ({"min_ratings_per_user": 0}, "min_ratings_per_user"),
        ({"n_items": 30}, "min_ratings_per_user"),  # 20 > 30 // 2
        ({"mean_ratings_per_user": 10.0}, "mean_ratings_per_user"),  # below the minimum
        ({"n_items": 100, "mean_ratings_per_user": 60.0}, "mean_ratings_per_user"),
    ],
)
def test_bad_parameters_raise(kwargs: dict[str, float], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        generate_synthetic(**kwargs)  # type: ignore[arg-type]


def test_small_worlds_and_edge_parameters() -> None:
    w = generate_synthetic(n_users=2, n_items=2, min_ratings_per_user=1,
                           mean_ratings_per_user=1.0, factors=1)
    assert len(w.ratings) == 2
    flat = generate_synthetic(n_users=300, n_items=200, popularity_exponent=0.0,
                              mean_ratings_per_user=20.0)
    assert np.all(flat.ratings_per_user() == 20)


def test_load_world_dispatches() -> None:
    w = load_world("synthetic", n_users=300, n_items=200, signal=0.5, seed=1,
                   mean_ratings_per_user=30.0)
    ref = generate_synthetic(n_users=300, n_items=200, signal=0.5, seed=1,
                             mean_ratings_per_user=30.0)
    assert np.array_equal(w.ratings.item, ref.ratings.item)
    default = load_world("synthetic")
    assert (default.n_users, default.n_items) == (1000, 800)
    with pytest.raises(ValueError, match="source"):
        load_world("netflix")
    with pytest.raises(ValueError, match="path"):
        load_world("movielens")


def test_random_split_holds_out_ceil_fraction_per_user_at_random() -> None:
    from simulator.world import random_split, temporal_split

    world = generate_synthetic(n_users=300, n_items=200, mean_ratings_per_user=40, seed=5)
    train, test = random_split(world.ratings, world.n_users, 0.2, seed=1)
    counts = world.ratings_per_user()
    assert np.array_equal(np.bincount(test.user, minlength=300), np.ceil(0.2 * counts - 1e-9))
    assert len(train) + len(test) == len(world.ratings)
    pairs = set(zip(train.user.tolist(), train.item.tolist(), strict=True))
    assert not pairs & set(zip(test.user.tolist(), test.item.tolist(), strict=True))
    again, _ = random_split(world.ratings, world.n_users, 0.2, seed=1)
    assert np.array_equal(again.item, train.item)
    # Unlike the temporal split, test ratings are not each user's latest.
    _, latest = temporal_split(world.ratings, world.n_users, 0.2)
    assert not np.array_equal(np.sort(latest.item), np.sort(test.item))
    assert np.all(np.diff(train.user) >= 0)
