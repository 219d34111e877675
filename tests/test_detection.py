"""Fake-profile detection: features, PCA VarSelect, threshold and supervised detectors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from simulator.defenses.detection.detectors import (
    FEATURE_NAMES,
    DetectionReport,
    detection_report,
    pca_varselect,
    profile_features,
    remove_users,
    supervised_detect,
    supervised_detector,
    suspicion_scores,
    threshold_detect,
)
from simulator.world.base import Interactions

N_GENUINE, N_ITEMS, N_FAKE, FILLER = 300, 200, 15, 20
N_USERS = N_GENUINE + N_FAKE
TARGET = N_ITEMS - 5  # a rarely rated item: the kind an attacker pushes
IS_FAKE = np.arange(N_USERS) >= N_GENUINE


def _table(user, item, rating) -> Interactions:
    user = np.asarray(user, dtype=np.int64)
    return Interactions(
        user, np.asarray(item, dtype=np.int64), np.asarray(rating, dtype=np.float32),
        np.zeros(len(user), dtype=np.int64),
    )


def _genuine_world(seed: int) -> Interactions:
    """300 users with 2-d tastes; each rates 10-40 items drawn by Zipf-like popularity."""
    rng = np.random.default_rng(seed)
    taste = rng.normal(size=(N_GENUINE, 2))
    traits = rng.normal(size=(N_ITEMS, 2))
    popularity = 1.0 / np.arange(1, N_ITEMS + 1) ** 1.6
    lengths = rng.integers(10, 41, N_GENUINE)
    # Gumbel top-k: per-user samples without replacement, proportional to popularity.
    keys = np.log(popularity) - np.log(-np.log(rng.random((N_GENUINE, N_ITEMS))))
    order = np.argsort(-keys, axis=1)
    keep = np.arange(N_ITEMS) < lengths[:, None]
    user = np.repeat(np.arange(N_GENUINE), lengths)
    item = order[keep]
    score = 3.5 + (taste[user] * traits[item]).sum(axis=1) / np.sqrt(2)
    rating = np.clip(np.rint(score + rng.normal(0.0, 0.3, len(user))), 1, 5)
    return _table(user, item, rating)


def _average_attack(genuine: Interactions, seed: int) -> Interactions:
    """15 push profiles: target 5, 20 random fillers ~ N(item mean, item std), rounded."""
    rng = np.random.default_rng(seed)
    r = genuine.rating.astype(np.float64)
    count = np.maximum(np.bincount(genuine.item, minlength=N_ITEMS), 1)
    mean = np.bincount(genuine.item, weights=r, minlength=N_ITEMS) / count
    var = np.bincount(genuine.item, weights=r**2, minlength=N_ITEMS) / count - mean**2
    std = np.sqrt(np.maximum(var, 0.0))
    candidates = np.setdiff1d(np.arange(N_ITEMS), [TARGET])
    fillers = np.stack([rng.choice(candidates, FILLER, replace=False) for _ in range(N_FAKE)])
    filler_ratings = np.clip(np.rint(rng.normal(mean[fillers], std[fillers])), 1, 5)
    user = np.repeat(np.arange(N_GENUINE, N_USERS), FILLER + 1)
    item = np.column_stack([np.full(N_FAKE, TARGET), fillers]).ravel()
    rating = np.column_stack([np.full(N_FAKE, 5.0), filler_ratings]).ravel()
    return _table(user, item, rating)


def _copy_attack(genuine: Interactions, seed: int) -> Interactions:
    """15 push profiles, each a copy of a random genuine user's ratings plus the target at 5."""
    rng = np.random.default_rng(seed)
    sources = rng.choice(N_GENUINE, N_FAKE, replace=False)
    parts = []
    for fake, source in enumerate(sources):
        own = (genuine.user == source) & (genuine.item != TARGET)
        items = np.concatenate([[TARGET], genuine.item[own]])
        ratings = np.concatenate([[5.0], genuine.rating[own]])
        parts.append(_table(np.full(len(items), N_GENUINE + fake), items, ratings))
    return Interactions.concat(parts)


@pytest.fixture(scope="module")
def genuine() -> Interactions:
    return _genuine_world(0)


@pytest.fixture(scope="module")
def average_world(genuine) -> Interactions:
    return Interactions.concat([genuine, _average_attack(genuine, 100)])


@pytest.fixture(scope="module")
def copy_world(genuine) -> Interactions:
    return Interactions.concat([genuine, _copy_attack(genuine, 100)])


@pytest.fixture(scope="module")
def trained_detector(genuine):
    """Trained on a batch the platform injected itself (another seed than the test batch)."""
    own_batch = Interactions.concat([genuine, _average_attack(genuine, 900)])
    return supervised_detector(profile_features(own_batch, N_USERS, N_ITEMS), IS_FAKE, seed=0)


# --------------------------------------------------------------------------- features


def test_features_match_their_definitions_on_a_hand_made_table():
    ratings = _table(
        [0, 0, 0, 1, 1, 1, 2, 2, 3, 3, 3],
        [0, 1, 2, 0, 1, 2, 0, 2, 1, 2, 3],
        [5, 3, 1, 4, 3, 2, 1, 5, 4, 4, 4],
    )  # user 3 is flat, user 4 rated nothing
    f = profile_features(ratings, n_users=5, n_items=4, k=1)
    assert f.shape == (5, len(FEATURE_NAMES))
    assert FEATURE_NAMES == ("rdma", "wdma", "degsim", "lengthvar", "popularity")
    # item means / counts: item 0 10/3 over 3, item 1 10/3 over 3, item 2 3 over 4
    deviations, counts = np.array([5 - 10 / 3, 10 / 3 - 3, 3 - 1]), np.array([3, 3, 4])
    assert f[0, 0] == pytest.approx(np.mean(deviations / counts))
    assert f[0, 1] == pytest.approx(np.mean(deviations / counts**2))
    # lengths 3, 3, 2, 3 (mean 2.75, sum of squared deviations 0.75)
    np.testing.assert_allclose(f[:4, 3], [0.25 / 0.75, 0.25 / 0.75, 0.75 / 0.75, 0.25 / 0.75])
    # centred rows: user 0 (2, 0, -2), user 1 (1, 0, -1), user 2 (-2, ., 2): users 0 and 1
    # agree perfectly, user 2 disagrees with both, so its best neighbour has similarity 0
    np.testing.assert_allclose(f[:4, 2], [1.0, 1.0, 0.0, 0.0], atol=1e-12)
    # popularity: mean log(1 + count) of the user's items (counts 3, 3, 4, 1 for items 0-3)
    log_count = np.log1p([3, 3, 4, 1])
    assert f[0, 4] == pytest.approx(log_count[[0, 1, 2]].mean())
    assert f[2, 4] == pytest.approx(log_count[[0, 2]].mean())
    np.testing.assert_array_equal(f[4], 0.0)
    # k = 2 averages user 0's best (1) and second best (0) neighbours
    assert profile_features(ratings, 5, 4, k=2)[0, 2] == pytest.approx(0.5)


def test_users_without_ratings_get_zero_features(average_world):
    n_users = N_USERS + 5  # five users who rated nothing
    f = profile_features(average_world, n_users, N_ITEMS)
    np.testing.assert_array_equal(f[N_USERS:], 0.0)
    assert np.all(f[:N_USERS, 0] > 0) and np.isfinite(f).all()


def test_a_repeated_rating_counts_once_with_its_latest_value():
    base = _table([0, 0, 1, 1, 2, 2], [0, 1, 0, 1, 0, 1], [5, 2, 4, 1, 2, 5])
    stale = Interactions(
        np.array([0], np.int64), np.array([0], np.int64), np.array([1], np.float32),
        np.array([-10], np.int64),
    )
    with_repeat = Interactions.concat([stale, base])
    np.testing.assert_allclose(
        profile_features(with_repeat, 3, 2, k=1), profile_features(base, 3, 2, k=1)
    )
    np.testing.assert_array_equal(
        pca_varselect(with_repeat, 3, 2, n_flag=1, components=1),
        pca_varselect(base, 3, 2, n_flag=1, components=1),
    )


# --------------------------------------------------------------------------- easy case


def test_pca_varselect_finds_average_attack_profiles(average_world):
    flagged = pca_varselect(average_world, N_USERS, N_ITEMS, n_flag=N_FAKE)
    report = detection_report(flagged, IS_FAKE)
    assert report.n_flagged == N_FAKE
    assert report.precision >= 0.8 and report.recall >= 0.8


def test_threshold_detect_finds_average_attack_profiles(average_world):
    features = profile_features(average_world, N_USERS, N_ITEMS)
    top = detection_report(threshold_detect(features, n_flag=N_FAKE), IS_FAKE)
    assert top.precision >= 0.8 and top.recall >= 0.8
    by_z = detection_report(threshold_detect(features, z=2.0), IS_FAKE)
    assert by_z.recall >= 0.8 and by_z.n_flagged < 3 * N_FAKE
    # the fakes really are outlying in the stated directions: noise-filled profiles deviate
    # on rarely rated items and have no close taste neighbours
    fakes, real = features[IS_FAKE], features[~IS_FAKE]
    assert np.median(fakes[:, 0]) > np.percentile(real[:, 0], 75)
    assert np.median(fakes[:, 2]) < np.percentile(real[:, 2], 10)


def test_supervised_detector_trained_on_own_batch_catches_a_fresh_batch(
    trained_detector, average_world
):
    features = profile_features(average_world, N_USERS, N_ITEMS)
    report = detection_report(supervised_detect(trained_detector, features), IS_FAKE)
    assert report.precision >= 0.8 and report.recall >= 0.8


# --------------------------------------------------------------------------- hard case


def test_profiles_copied_from_real_users_evade_every_detector(
    average_world, copy_world, trained_detector
):
    def recalls(world: Interactions) -> np.ndarray:
        features = profile_features(world, N_USERS, N_ITEMS)
        masks = (
            pca_varselect(world, N_USERS, N_ITEMS, n_flag=N_FAKE),
            threshold_detect(features, n_flag=N_FAKE),
            supervised_detect(trained_detector, features),
        )
        return np.array([detection_report(m, IS_FAKE).recall for m in masks])

    easy, hard = recalls(average_world), recalls(copy_world)
    assert np.all(hard <= 0.3), hard
    assert np.all(easy - hard >= 0.5), (easy, hard)


def test_detection_report_on_a_hand_made_mask():
    flagged = np.array([True, True, False, False, True, False])
    is_fake = np.array([True, False, True, False, False, True])
    report = detection_report(flagged, is_fake)
    assert isinstance(report, DetectionReport)
    assert report.n_flagged == 3 and report.n_fake == 3
    assert report.precision == pytest.approx(1 / 3) and report.recall == pytest.approx(1 / 3)
    np.testing.assert_array_equal(report.flagged, flagged)

    both = detection_report(np.array([1, 0, 1, 0]), np.array([1, 1, 1, 0]))
    assert both.precision == 1.0 and both.recall == pytest.approx(2 / 3)

    nothing_flagged = detection_report(np.zeros(4, bool), np.array([1, 0, 0, 0], bool))
    assert math.isnan(nothing_flagged.precision) and nothing_flagged.recall == 0.0
    no_fakes = detection_report(np.array([1, 0, 0, 0], bool), np.zeros(4, bool))
    assert math.isnan(no_fakes.recall) and no_fakes.precision == 0.0


# --------------------------------------------------------------------------- helpers


def test_remove_users_drops_exactly_the_flagged_users_rows(average_world):
    flagged = pca_varselect(average_world, N_USERS, N_ITEMS, n_flag=N_FAKE)
    kept = remove_users(average_world, flagged)
    keep_rows = ~flagged[average_world.user]
    assert len(kept) == int(keep_rows.sum())
    assert not np.isin(kept.user, np.flatnonzero(flagged)).any()
    np.testing.assert_array_equal(kept.item, average_world.item[keep_rows])
    np.testing.assert_array_equal(kept.rating, average_world.rating[keep_rows])
    assert len(remove_users(average_world, np.zeros(N_USERS, bool))) == len(average_world)


def test_threshold_detect_never_flags_users_without_ratings(average_world):
    features = profile_features(average_world, N_USERS + 5, N_ITEMS)
    flagged = threshold_detect(features, n_flag=N_USERS)
    assert flagged[:N_USERS].all() and not flagged[N_USERS:].any()
    assert not threshold_detect(features, z=-1e9)[N_USERS:].any()


def test_directions_choose_the_suspicious_tail(average_world):
    features = profile_features(average_world, N_USERS, N_ITEMS)
    # In this world the fakes are noise around item means: no neighbours, so low degsim.
    low_degsim = suspicion_scores(
        features, directions=[1, 1, -1, 1, -1], log_scale=[True, True, False, False, False]
    )
    high_degsim = suspicion_scores(
        features, directions=[1, 1, 1, 1, -1], log_scale=[True, True, False, False, False]
    )
    assert low_degsim[IS_FAKE].mean() > high_degsim[IS_FAKE].mean()
    # a custom feature layout needs its directions spelled out
    with pytest.raises(ValueError, match="directions"):
        suspicion_scores(features[:, :2])
    one_column = threshold_detect(features[:, 2:3], n_flag=N_FAKE, directions=[-1],
                                  log_scale=[False])
    assert one_column.sum() == N_FAKE


def test_results_are_deterministic(average_world, genuine):
    np.testing.assert_array_equal(
        profile_features(average_world, N_USERS, N_ITEMS),
        profile_features(average_world, N_USERS, N_ITEMS),
    )
    np.testing.assert_array_equal(
        pca_varselect(average_world, N_USERS, N_ITEMS, N_FAKE),
        pca_varselect(average_world, N_USERS, N_ITEMS, N_FAKE),
    )
    assert np.array_equal(_average_attack(genuine, 5).rating, _average_attack(genuine, 5).rating)
    features = profile_features(average_world, N_USERS, N_ITEMS)
    a = supervised_detector(features, IS_FAKE, seed=3)
    b = supervised_detector(features, IS_FAKE, seed=3)
    np.testing.assert_array_equal(a.predict_proba(features), b.predict_proba(features))


# --------------------------------------------------------------------------- bad arguments


@pytest.mark.parametrize("n_flag", [-1, N_USERS + 1])
def test_n_flag_outside_the_user_range_is_rejected(average_world, n_flag):
    features = profile_features(average_world, N_USERS, N_ITEMS)
    with pytest.raises(ValueError, match="n_flag"):
        pca_varselect(average_world, N_USERS, N_ITEMS, n_flag=n_flag)
    with pytest.raises(ValueError, match="n_flag"):
        threshold_detect(features, n_flag=n_flag)


def test_bad_arguments_raise_value_error(average_world):
    features = profile_features(average_world, N_USERS, N_ITEMS)
    with pytest.raises(ValueError, match="same shape"):
        detection_report(np.zeros(3, bool), np.zeros(4, bool))
    with pytest.raises(ValueError, match="labels_train"):
        supervised_detector(features, IS_FAKE[:-1], seed=0)
    with pytest.raises(ValueError, match="both"):
        supervised_detector(features, np.zeros(N_USERS, bool), seed=0)
    model = supervised_detector(features, IS_FAKE, seed=0)
    with pytest.raises(ValueError, match="columns"):
        supervised_detect(model, features[:, :3])
    with pytest.raises(ValueError, match="ratings.user"):
        profile_features(average_world, N_USERS - 1, N_ITEMS)
    with pytest.raises(ValueError, match="ratings.item"):
        pca_varselect(average_world, N_USERS, N_ITEMS - 10, n_flag=1)
    with pytest.raises(ValueError, match="k must"):
        profile_features(average_world, N_USERS, N_ITEMS, k=0)
    with pytest.raises(ValueError, match="components"):
        pca_varselect(average_world, N_USERS, N_ITEMS, n_flag=1, components=0)
    with pytest.raises(ValueError, match="flagged"):
        remove_users(average_world, np.zeros(N_USERS - 1, bool))
    with pytest.raises(ValueError, match="features"):
        threshold_detect(np.full((4, 4), np.nan))
    with pytest.raises(ValueError, match="flagged"):
        detection_report(np.array([0, 2, 1]), np.zeros(3, bool))
