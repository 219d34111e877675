"""Tests of the platform models (BPR, MF), their shared sparse-SGD machinery and the registry."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from simulator.recommenders import _sparse_sgd as sgd
from simulator.recommenders.base import ModelParams, Recommender
from simulator.recommenders.bpr import BPR
from simulator.recommenders.mf import MF
from simulator.recommenders.registry import available_models, make_recommender
from simulator.world.base import Interactions

N_USERS, N_ITEMS, RANK = 300, 200, 4
CPU = torch.device("cpu")


def _planted(seed: int = 0) -> tuple[Interactions, np.ndarray, np.ndarray]:
    """Users pick 20-39 items each by a planted rank-4 affinity plus popularity; ratings follow
    the affinity. Returns the table, the row of one held-out positive per user, the other rows.
    """
    rng = np.random.default_rng(seed)
    u_f = rng.normal(size=(N_USERS, RANK))
    i_f = rng.normal(size=(N_ITEMS, RANK))
    affinity = u_f @ i_f.T
    logits = 1.5 * affinity - 0.8 * np.log(np.arange(1, N_ITEMS + 1))[rng.permutation(N_ITEMS)]
    gumbel = -np.log(-np.log(rng.random(logits.shape)))
    n_per_user = rng.integers(20, 40, N_USERS)
    chosen = np.argsort(-(logits + gumbel), axis=1)
    users = np.concatenate([np.full(n, u) for u, n in enumerate(n_per_user)])
    items = np.concatenate([chosen[u, :n] for u, n in enumerate(n_per_user)])
    raw = 3.2 + 0.6 * affinity[users, items] + rng.normal(0, 0.3, len(users))
    ratings = np.clip(np.round(raw), 1, 5).astype(np.float32)
    data = Interactions(
        users.astype(np.int64), items.astype(np.int64), ratings, np.arange(len(users))
    )
    starts = np.concatenate([[0], np.cumsum(n_per_user)[:-1]])
    held = starts + rng.integers(0, n_per_user)
    return data, held, np.setdiff1d(np.arange(len(data)), held)


@pytest.fixture(scope="module")
def planted() -> tuple[Interactions, Interactions, Interactions]:
    """(whole table, training part, one held-out rating per user)."""
    data, held, train = _planted()
    return data, data.subset(train), data.subset(held)


def _bpr(seed: int = 0, **kw: float | int | None) -> BPR:
    return BPR(N_USERS, N_ITEMS, ModelParams(factors=16, **kw), CPU, seed)


def _mf(seed: int = 0, **kw: float | int | None) -> MF:
    return MF(N_USERS, N_ITEMS, ModelParams(factors=8, **kw), CPU, seed)


def _hit_rate(scores: np.ndarray, train: Interactions, test: Interactions) -> float:
    """HR@10 with full ranking over the items each user has not interacted with."""
    scores = scores.copy()
    scores[train.user, train.item] = -np.inf
    top = np.argpartition(-scores, 10, axis=1)[:, :10]
    return float(np.mean((top[test.user] == test.item[:, None]).any(1)))


# -- learning -------------------------------------------------------------------------------
@pytest.mark.parametrize("make", [_bpr, _mf])
def test_loss_falls_over_epochs(make, planted) -> None:
    _, train, _ = planted
    report = make().fit(train, 15)
    assert report.epochs == 15 and len(report.losses) == 15
    assert report.losses[-1] < 0.8 * report.losses[0]
    assert np.all(np.isfinite(report.losses))
    assert report.seconds > 0 and report.warm_start is False


def test_bpr_hit_rate_beats_popularity(planted) -> None:
    _, train, test = planted
    model = _bpr()
    model.fit(train, 30)
    popularity = np.bincount(train.item, minlength=N_ITEMS).astype(np.float64)
    hr_pop = _hit_rate(np.tile(popularity, (N_USERS, 1)), train, test)
    hr_bpr = _hit_rate(model.score(torch.arange(N_USERS)).numpy(), train, test)
    assert hr_bpr > hr_pop + 0.1, (hr_bpr, hr_pop)


def test_mf_mae_beats_global_mean(planted) -> None:
    _, train, test = planted
    model = _mf()
    model.fit(train, 30)
    mae = np.abs(model.predict(test.user, test.item) - test.rating).mean()
    mae_mean = np.abs(train.rating.mean() - test.rating).mean()
    assert mae < 0.85 * mae_mean, (mae, mae_mean)


# -- warm start and determinism -----------------------------------------------------------------
@pytest.mark.parametrize("make", [_bpr, _mf])
def test_warm_start_continues_and_cold_start_reinitialises(make, planted) -> None:
    _, train, _ = planted
    model = make()
    first = model.fit(train, 10)
    warm = model.fit(train, 1, warm_start=True)
    assert warm.warm_start is True
    assert warm.losses[0] < 1.05 * first.losses[-1]
    assert warm.losses[0] < 0.9 * first.losses[0]
    cold = model.fit(train, 1)
    assert cold.losses[0] == pytest.approx(first.losses[0], rel=1e-6)
    fresh = make()
    fresh.fit(train, 1)
    np.testing.assert_array_equal(model.user_embeddings(), fresh.user_embeddings())


def test_partial_fit_is_a_warm_start(planted) -> None:
    _, train, _ = planted
    model = _bpr()
    model.fit(train, 5)
    report = model.partial_fit(train, 1)
    assert report.warm_start is True and report.epochs == 1


@pytest.mark.parametrize("make", [_bpr, _mf])
def test_same_seed_same_embeddings_other_seed_differs(make, planted) -> None:
    _, train, _ = planted
    a, b, c = make(seed=3), make(seed=3), make(seed=4)
    for m in (a, b, c):
        m.fit(train, 3)
    np.testing.assert_array_equal(a.user_embeddings(), b.user_embeddings())
    np.testing.assert_array_equal(a.item_embeddings(), b.item_embeddings())
    assert not np.array_equal(a.user_embeddings(), c.user_embeddings())


def test_users_without_interactions_keep_their_init(planted) -> None:
    _, train, _ = planted
    model = _bpr()
    init = model.user_embeddings()
    model.fit(train.subset(train.user != 7), 3)
    after = model.user_embeddings()
    np.testing.assert_array_equal(after[7], init[7])
    assert not np.array_equal(after[8], init[8])


# -- inference ------------------------------------------------------------------------------
@pytest.mark.parametrize("make", [_bpr, _mf])
def test_score_shape_and_predict_consistency(make, planted) -> None:
    _, train, _ = planted
    model = make()
    model.fit(train, 3)
    users = torch.tensor([0, 5, 299])
    scores = model.score(users)
    assert scores.shape == (3, N_ITEMS)
    items = np.array([0, 17, 199])
    for row, u in enumerate(users.tolist()):
        predicted = model.predict(np.full(len(items), u), items)
        assert predicted.dtype == np.float32
        np.testing.assert_allclose(predicted, scores[row, items].numpy(), rtol=1e-5, atol=1e-5)
    assert model.user_embeddings().shape == (N_USERS, model.params.factors)
    assert model.item_embeddings().shape == (N_ITEMS, model.params.factors)
    assert model.user_embeddings().dtype == np.float32


def test_mf_predictions_stay_on_the_rating_scale(planted) -> None:
    _, train, _ = planted
    model = _mf(lr=0.05)
    model.fit(train, 5)
    assert model.predicts_ratings is True
    pairs = model.predict(np.repeat(np.arange(N_USERS), 3), np.tile([0, 1, 2], N_USERS))
    assert pairs.min() >= 1.0 and pairs.max() <= 5.0
    # Ranking scores are the same predictions before clipping.
    scores = model.score(torch.arange(N_USERS))[:, :3].reshape(-1).numpy()
    np.testing.assert_allclose(np.clip(scores, 1.0, 5.0), pairs, rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("cls", [BPR, MF])
def test_trains_on_cuda(cls, planted) -> None:
    _, train, _ = planted
    device = torch.device("cuda")
    models = [cls(N_USERS, N_ITEMS, ModelParams(factors=8), device, 0) for _ in range(2)]
    reports = [m.fit(train, 10) for m in models]
    assert reports[0].losses[-1] < reports[0].losses[0]
    assert models[0].score(torch.arange(3)).device.type == "cuda"
    # CUDA sums gradients with atomics: same-seed fits agree to float tolerance, not bits.
    np.testing.assert_allclose(models[0].user_embeddings(), models[1].user_embeddings(),
                               rtol=1e-3, atol=1e-4)


# -- edge cases -----------------------------------------------------------------------------
@pytest.mark.parametrize("make", [_bpr, _mf])
def test_empty_table_trains_nothing(make) -> None:
    model = make()
    before = model.user_embeddings()
    report = model.fit(Interactions.empty(), 5)
    assert report.epochs == 0 and report.losses == []
    np.testing.assert_array_equal(model.user_embeddings(), before)
    report = model.fit(Interactions.empty(), 5, warm_start=True)
    assert report.epochs == 0 and report.warm_start is True


@pytest.mark.parametrize("make", [_bpr, _mf])
def test_out_of_range_indices_raise(make) -> None:
    bad = Interactions(
        np.array([0, N_USERS]), np.array([1, 2]), np.ones(2, np.float32), np.zeros(2, np.int64)
    )
    with pytest.raises(ValueError, match="user indices"):
        make().fit(bad, 1)
    with pytest.raises(ValueError, match="epochs"):
        make().fit(Interactions.empty(), -1)


def test_explicit_small_batch_is_used(planted) -> None:
    _, train, _ = planted
    report = _bpr(batch_size=256).fit(train, 3)
    assert report.losses[-1] < report.losses[0]


# -- shared machinery -----------------------------------------------------------------------
def test_epoch_batches_partition_rows_and_list_them_consistently(planted) -> None:
    data, _, _ = planted
    pairs = sgd.PairIndex(data, N_USERS, N_ITEMS, CPU, with_values=True)
    generator = torch.Generator().manual_seed(0)
    seen = []
    for batch in sgd.epoch_batches(pairs, 8, generator):
        assert torch.all(batch.user[1:] >= batch.user[:-1])  # grouped by user
        assert torch.all(batch.item_major_item[1:] >= batch.item_major_item[:-1])
        to_sample = batch.item_major_to_sample
        assert torch.equal(batch.user.index_select(0, to_sample), batch.item_major_user)
        assert torch.equal(batch.item.index_select(0, to_sample), batch.item_major_item)
        seen.append(batch.user * N_ITEMS + batch.item)
    keys = torch.sort(torch.cat(seen)).values
    expected = np.sort(data.user * N_ITEMS + data.item)
    np.testing.assert_array_equal(keys.numpy(), expected)


def test_negatives_avoid_known_positives(planted) -> None:
    data, _, _ = planted
    model = _bpr()
    pairs = sgd.PairIndex(data, N_USERS, N_ITEMS, CPU)
    user = torch.as_tensor(np.repeat(np.arange(N_USERS), 50))
    j, counts, slot_sample = model._sample_negatives(pairs, user)
    hit_rate = float(pairs.contains(user, j).float().mean())
    density = len(data) / (N_USERS * N_ITEMS)
    assert hit_rate < 0.3 * density
    assert int(counts.sum()) == len(user)
    assert torch.all(j.index_select(0, slot_sample)[1:] >= j.index_select(0, slot_sample)[:-1])


def test_membership_lookup_without_bitmap_agrees(planted, monkeypatch) -> None:
    data, _, _ = planted
    with_bitmap = sgd.PairIndex(data, N_USERS, N_ITEMS, CPU)
    monkeypatch.setattr(sgd, "_BITMAP_LIMIT", 0)
    with_search = sgd.PairIndex(data, N_USERS, N_ITEMS, CPU)
    generator = torch.Generator().manual_seed(1)
    user = torch.randint(N_USERS, (5000,), generator=generator)
    item = torch.randint(N_ITEMS, (5000,), generator=generator)
    expected = with_bitmap.contains(user, item)
    assert 0 < int(expected.sum()) < 5000
    assert torch.equal(with_search.contains(user, item), expected)
    known = torch.as_tensor(data.user), torch.as_tensor(data.item)
    assert bool(with_search.contains(*known).all())


def test_prefetch_keeps_order_and_propagates_errors() -> None:
    assert list(sgd.prefetch(lambda: iter(range(50)), depth=2)) == list(range(50))

    def failing():
        yield 1
        raise RuntimeError("producer failed")

    stream = sgd.prefetch(failing)
    assert next(stream) == 1
    with pytest.raises(RuntimeError, match="producer failed"):
        next(stream)
    endless = sgd.prefetch(lambda: iter(range(10**9)), depth=2)
    assert next(endless) == 0
    endless.close()  # stops and joins the producer thread


@pytest.mark.parametrize("make", [_bpr, _mf])
def test_results_do_not_depend_on_the_thread_budget(make, planted) -> None:
    _, train, _ = planted
    threads = torch.get_num_threads()
    embeddings = []
    try:
        for budget in (1, 2):  # 1: sequential, 2: batches prepared in a prefetch thread
            torch.set_num_threads(budget)
            model = make()
            model.fit(train, 2)
            assert torch.get_num_threads() == budget  # restored after the fit
            embeddings.append(model.user_embeddings())
    finally:
        torch.set_num_threads(threads)
    np.testing.assert_array_equal(embeddings[0], embeddings[1])


@pytest.mark.parametrize("n_labels", [1, 4, 256, 1 << 16])
def test_random_labels_are_uniform_and_in_range(n_labels) -> None:
    generator = torch.Generator().manual_seed(0)
    labels = sgd.random_labels(200_000, n_labels, generator).long()
    assert len(labels) == 200_000
    assert int(labels.min()) >= 0 and int(labels.max()) < n_labels
    if n_labels <= 256:
        counts = torch.bincount(labels, minlength=n_labels).double()
        expected = 200_000 / n_labels
        assert float(((counts - expected) ** 2 / expected).sum()) < 2 * n_labels + 50


def test_batch_count_is_a_power_of_two() -> None:
    assert sgd.n_batches_for(1_000_209, 65_536) == 16
    assert sgd.n_batches_for(10, 65_536) == 1
    assert sgd.n_batches_for(5_000, 1_000) == 8
    assert sgd.auto_batch_size(1_000_209) == 62_514
    assert sgd.auto_batch_size(100) == sgd.MIN_AUTO_BATCH


# -- registry -------------------------------------------------------------------------------
def test_registry_builds_known_models_and_rejects_unknown() -> None:
    assert available_models() == ["bpr", "lightgcn", "metamf", "mf", "nometamf"]
    model = make_recommender("bpr", 10, 5, ModelParams(factors=4), "cpu", 0)
    assert isinstance(model, BPR) and isinstance(model, Recommender)
    assert isinstance(make_recommender("mf", 10, 5, ModelParams(), CPU, 0), MF)
    with pytest.raises(ValueError, match="available: bpr, lightgcn, metamf, mf, nometamf"):
        make_recommender("svd++", 10, 5, ModelParams(), CPU, 0)


@pytest.mark.parametrize("name", ["bpr", "mf", "metamf"])
def test_set_user_embeddings_changes_scores_only_through_users(name) -> None:
    options = {"user_dim": 4, "memory_dim": 8, "hidden": 8, "item_dim": 4, "rank": 2}
    params = ModelParams(factors=4, options=options if name == "metamf" else {})
    model = make_recommender(name, 6, 5, params, "cpu", 0)
    items_before = model.item_embeddings()
    new = np.random.default_rng(0).normal(size=model.user_embeddings().shape)
    model.set_user_embeddings(new)
    np.testing.assert_allclose(model.user_embeddings(), new.astype(np.float32))
    np.testing.assert_array_equal(model.item_embeddings(), items_before)
    other = make_recommender(name, 6, 5, params, "cpu", 0)
    other.set_user_embeddings(new)
    assert torch.equal(model.score(torch.arange(6)), other.score(torch.arange(6)))
    with pytest.raises(ValueError, match="shape"):
        model.set_user_embeddings(new[:, :2])
    with pytest.raises(ValueError, match="finite"):
        model.set_user_embeddings(np.full_like(new, np.nan))
