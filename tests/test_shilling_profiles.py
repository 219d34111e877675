"""Fake profiles of the classic shilling attacks and the public statistics they draw on."""

from __future__ import annotations

import numpy as np
import pytest

from simulator.attacks.fake_profiles import (
    ATTACK_KINDS,
    NUKE_ONLY,
    PublicStats,
    fake_profiles,
    filler_count,
    profile_count,
)
from simulator.world.base import Interactions

N_USERS, N_ITEMS = 300, 200
TARGETS = np.array([7, 150])


def _ratings(seed: int = 0) -> Interactions:
    """Random ratings with per-item popularity and per-item quality."""
    rng = np.random.default_rng(seed)
    popularity = rng.pareto(1.5, N_ITEMS) + 0.05
    quality = rng.normal(3.5, 0.8, N_ITEMS)
    n = 6000
    item = rng.choice(N_ITEMS, size=n, p=popularity / popularity.sum())
    user = rng.integers(0, N_USERS, size=n)
    rating = np.clip(np.rint(rng.normal(quality[item], 0.9)), 1, 5).astype(np.float32)
    return Interactions(
        user.astype(np.int64), item.astype(np.int64), rating, np.zeros(n, dtype=np.int64)
    )


@pytest.fixture(scope="module")
def stats() -> PublicStats:
    return PublicStats.from_ratings(_ratings(), N_ITEMS)


def _profiles(kind: str, intent: str, stats: PublicStats, n: int = 20, filler: int = 15,
              seed: int = 1, **kwargs) -> Interactions:
    if kind == "segment" and "selected" not in kwargs:
        kwargs["selected"] = np.array([3, 4, 5])
    return fake_profiles(kind, intent, TARGETS, n, filler, stats,
                         np.random.default_rng(seed), **kwargs)


def _parts(table: Interactions, n_selected: int) -> tuple[np.ndarray, ...]:
    """Per-profile (items, ratings) matrices split into targets, selected, fillers."""
    users = np.unique(table.user)
    items = table.item.reshape(len(users), -1)
    ratings = table.rating.reshape(len(users), -1)
    t, s = len(TARGETS), len(TARGETS) + n_selected
    return (
        items[:, :t], ratings[:, :t], items[:, t:s], ratings[:, t:s], items[:, s:], ratings[:, s:]
    )


def _intents(kind: str) -> tuple[str, ...]:
    return ("nuke",) if kind in NUKE_ONLY else ("push", "nuke")


SELECTED_COUNT = {"random": 0, "average": 0, "love_hate": 0, "bandwagon": 10,
                  "segment": 3, "reverse_bandwagon": 10}


@pytest.mark.parametrize("kind", ATTACK_KINDS)
def test_profile_anatomy(kind: str, stats: PublicStats) -> None:
    for intent in _intents(kind):
        table = _profiles(kind, intent, stats, n=20, filler=15, first_user=1000, timestamp=77)
        assert table.user.dtype == np.int64 and table.item.dtype == np.int64
        assert table.rating.dtype == np.float32 and table.timestamp.dtype == np.int64
        assert np.all(table.timestamp == 77)
        users, per_user = np.unique(table.user, return_counts=True)
        np.testing.assert_array_equal(users, np.arange(1000, 1020))
        n_sel = SELECTED_COUNT[kind]
        assert np.all(per_user == len(TARGETS) + n_sel + 15)
        t_items, t_ratings, s_items, _, f_items, f_ratings = _parts(table, n_sel)
        # every profile rates every target with r_max (push) or r_min (nuke)
        assert np.all(np.sort(t_items, axis=1) == np.sort(TARGETS))
        assert np.all(t_ratings == (5.0 if intent == "push" else 1.0))
        # filler_size distinct fillers, none a target or selected item
        assert f_items.shape == (20, 15)
        assert all(len(np.unique(row)) == 15 for row in f_items)
        assert not np.isin(f_items, TARGETS).any()
        assert not np.isin(f_items, s_items).any()
        assert not np.isin(s_items, TARGETS).any()
        assert np.all((f_ratings >= 1) & (f_ratings <= 5))
        assert np.all(f_ratings == np.rint(f_ratings))
        # no item rated twice by one user
        key = table.user * N_ITEMS + table.item
        assert len(np.unique(key)) == len(key)


def test_fillers_differ_between_profiles_and_cover_the_pool(stats: PublicStats) -> None:
    table = _profiles("random", "push", stats, n=400, filler=20)
    f_items = _parts(table, 0)[4]
    assert len({tuple(row) for row in f_items}) == 400
    counts = np.bincount(f_items.ravel(), minlength=N_ITEMS)
    pool = np.setdiff1d(np.arange(N_ITEMS), TARGETS)
    assert np.all(counts[TARGETS] == 0)
    # uniform: each of the 198 pool items is expected 400 * 20 / 198 ~ 40.4 times
    assert counts[pool].min() > 15 and counts[pool].max() < 70


def test_random_fillers_follow_the_global_distribution(stats: PublicStats) -> None:
    table = _profiles("random", "push", stats, n=500, filler=100)
    f_ratings = _parts(table, 0)[5].astype(np.float64)
    assert abs(f_ratings.mean() - stats.global_mean) < 0.05
    # rounding adds about 1/12 variance, clipping removes some: loose bound on the spread
    assert abs(f_ratings.std() - stats.global_std) < 0.15


def test_average_fillers_track_item_means(stats: PublicStats) -> None:
    table = _profiles("average", "push", stats, n=600, filler=100)
    _, _, _, _, f_items, f_ratings = _parts(table, 0)
    total = np.bincount(f_items.ravel(), weights=f_ratings.ravel(), minlength=N_ITEMS)
    count = np.bincount(f_items.ravel(), minlength=N_ITEMS)
    seen = count > 0
    per_item = total[seen] / count[seen]
    assert np.corrcoef(per_item, stats.item_mean[seen])[0, 1] > 0.8
    # random fillers carry no per-item signal
    table = _profiles("random", "push", stats, n=600, filler=100)
    _, _, _, _, f_items, f_ratings = _parts(table, 0)
    total = np.bincount(f_items.ravel(), weights=f_ratings.ravel(), minlength=N_ITEMS)
    count = np.bincount(f_items.ravel(), minlength=N_ITEMS)
    seen = count > 0
    assert abs(np.corrcoef(total[seen] / count[seen], stats.item_mean[seen])[0, 1]) < 0.4


def test_bandwagon_selects_the_most_popular_items(stats: PublicStats) -> None:
    table = _profiles("bandwagon", "push", stats)
    _, _, s_items, s_ratings, _, _ = _parts(table, 10)
    order = sorted(range(N_ITEMS), key=lambda i: (-stats.item_count[i], i))
    expected = [i for i in order if i not in TARGETS][:10]
    assert np.all(s_items == np.array(expected))
    assert np.all(s_ratings == 5.0)
    assert stats.item_count[s_items[0]].min() >= np.sort(stats.item_count)[-12]


def test_bandwagon_drops_targets_from_given_selected(stats: PublicStats) -> None:
    table = _profiles("bandwagon", "push", stats, selected=np.array([7, 11, 12]))
    _, _, s_items, s_ratings, _, _ = _parts(table, 2)
    assert np.all(s_items == np.array([11, 12]))
    assert np.all(s_ratings == 5.0)
    assert len(np.unique(table.user, return_counts=True)[1]) == 20


def test_segment_rates_selected_high_and_fillers_low(stats: PublicStats) -> None:
    for intent in ("push", "nuke"):
        table = _profiles("segment", intent, stats, selected=np.array([3, 4, 5, 150]))
        _, t_ratings, s_items, s_ratings, _, f_ratings = _parts(table, 3)
        assert np.all(s_items == np.array([3, 4, 5]))
        assert np.all(s_ratings == 5.0)
        assert np.all(f_ratings == 1.0)
        assert np.all(t_ratings == (5.0 if intent == "push" else 1.0))


def test_segment_needs_selected_items(stats: PublicStats) -> None:
    with pytest.raises(ValueError, match="selected"):
        fake_profiles("segment", "push", TARGETS, 5, 5, stats, np.random.default_rng(0))
    with pytest.raises(ValueError, match="selected"):
        fake_profiles("segment", "push", TARGETS, 5, 5, stats, np.random.default_rng(0),
                      selected=TARGETS)


def test_love_hate_rates_fillers_max_and_target_min(stats: PublicStats) -> None:
    table = _profiles("love_hate", "nuke", stats)
    _, t_ratings, _, _, _, f_ratings = _parts(table, 0)
    assert np.all(t_ratings == 1.0)
    assert np.all(f_ratings == 5.0)


def test_reverse_bandwagon_selects_known_disliked_items(stats: PublicStats) -> None:
    table = _profiles("reverse_bandwagon", "nuke", stats)
    _, t_ratings, s_items, s_ratings, _, _ = _parts(table, 10)
    assert np.all(t_ratings == 1.0)
    assert np.all(s_ratings == 1.0)
    chosen = s_items[0]
    known = (stats.item_count >= np.median(stats.item_count)) & (stats.item_count > 0)
    known[TARGETS] = False
    assert np.all(known[chosen])
    # they are the lowest-mean items among the widely known ones
    assert stats.item_mean[chosen].max() <= np.sort(stats.item_mean[known])[9]
    assert stats.item_mean[chosen].mean() < stats.global_mean - 0.5


@pytest.mark.parametrize("kind", NUKE_ONLY)
def test_push_with_a_nuke_only_kind_raises(kind: str, stats: PublicStats) -> None:
    with pytest.raises(ValueError, match="nuke"):
        _profiles(kind, "push", stats)


def test_bad_arguments_raise(stats: PublicStats) -> None:
    rng = np.random.default_rng(0)
    cases = [
        (dict(kind="bogus"), "kind"),
        (dict(intent="promote"), "intent"),
        (dict(targets=np.array([], dtype=np.int64)), "targets"),
        (dict(targets=np.array([3, 3])), "targets"),
        (dict(targets=np.array([N_ITEMS])), "targets"),
        (dict(targets=np.array([-1])), "targets"),
        (dict(n_profiles=0), "n_profiles"),
        (dict(filler_size=N_ITEMS - 1), "filler_size"),
        (dict(filler_size=-1), "filler_size"),
    ]
    for override, word in cases:
        args = dict(kind="random", intent="push", targets=TARGETS, n_profiles=3,
                    filler_size=5, stats=stats, rng=rng)
        args.update(override)
        with pytest.raises(ValueError, match=word):
            fake_profiles(**args)
    # the whole pool is fine; one more is not (bandwagon's 10 selected shrink it)
    fake_profiles("random", "push", TARGETS, 2, N_ITEMS - 2, stats, rng)
    with pytest.raises(ValueError, match="filler_size"):
        fake_profiles("bandwagon", "push", TARGETS, 2, N_ITEMS - 11, stats, rng)
    with pytest.raises(ValueError, match="selected"):
        fake_profiles("random", "push", TARGETS, 2, 5, stats, rng, selected=np.array([1]))
    with pytest.raises(ValueError, match="n_selected"):
        fake_profiles("bandwagon", "push", TARGETS, 2, 5, stats, rng, n_selected=0)


def test_same_seed_same_profiles(stats: PublicStats) -> None:
    for kind in ATTACK_KINDS:
        a = _profiles(kind, "nuke", stats, seed=5)
        b = _profiles(kind, "nuke", stats, seed=5)
        for name in ("user", "item", "rating", "timestamp"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    c = _profiles("average", "nuke", stats, seed=6)
    assert not np.array_equal(_profiles("average", "nuke", stats, seed=5).item, c.item)


def test_filler_and_profile_counts() -> None:
    assert filler_count(0.03, 3706) == 111
    assert filler_count(0.001, 100) == 1
    assert filler_count(1.0, 50) == 50
    assert profile_count(0.05, 6040) == 302
    assert profile_count(0.05, 2509) == 125
    assert profile_count(0.01, 10) == 1
    for bad in (0.0, -0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="filler_fraction"):
            filler_count(bad, 100)
        with pytest.raises(ValueError, match="attack_fraction"):
            profile_count(bad, 100)
    with pytest.raises(ValueError, match="n_genuine"):
        profile_count(0.1, 0)


def test_public_stats_by_hand() -> None:
    table = Interactions(
        np.array([0, 1, 2, 0, 1, 2], dtype=np.int64),
        np.array([0, 0, 0, 1, 1, 3], dtype=np.int64),
        np.array([5, 3, 4, 2, 4, 1], dtype=np.float32),
        np.zeros(6, dtype=np.int64),
    )
    s = PublicStats.from_ratings(table, 5)
    all_r = np.array([5, 3, 4, 2, 4, 1], dtype=float)
    g_mean, g_std = all_r.mean(), all_r.std(ddof=1)
    assert s.n_items == 5
    np.testing.assert_array_equal(s.item_count, [3, 2, 0, 1, 0])
    assert s.global_mean == pytest.approx(19 / 6)
    assert s.global_std == pytest.approx(g_std)
    np.testing.assert_allclose(s.item_mean, [4.0, 3.0, g_mean, 1.0, g_mean])
    np.testing.assert_allclose(s.item_std, [1.0, np.sqrt(2.0), g_std, g_std, g_std])
    with pytest.raises(ValueError, match="ratings.item"):
        PublicStats.from_ratings(table, 3)
    with pytest.raises(ValueError, match="at least 2"):
        PublicStats.from_ratings(table.subset(np.array([0])), 5)
    with pytest.raises(ValueError, match="item_mean"):
        PublicStats(3, np.zeros(3, np.int64), np.zeros(2), np.zeros(3), 3.0, 1.0)
