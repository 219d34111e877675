"""Tests of DP-SGD training (Opacus) for MF and BPR and of the privacy ledger."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from opacus.accountants.analysis.rdp import compute_rdp, get_privacy_spent
from opacus.grad_sample.embedding_norm_sample import compute_embedding_norm_sample

from simulator.defenses.dp.accounting import PrivacyLedger
from simulator.defenses.dp.dp_sgd import _table_norm_sample, default_batch_size, dp_fit
from simulator.defenses.dp.settings import DPConfig
from simulator.recommenders.base import ModelParams
from simulator.recommenders.bpr import BPR
from simulator.recommenders.dense import DenseTable as _Table
from simulator.recommenders.mf import MF
from simulator.world.base import Interactions

N_USERS, N_ITEMS, RANK = 120, 80, 3
CPU = torch.device("cpu")
BATCH = 256  # about 12 steps per epoch keeps the tests fast
ORDERS = [1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64))


def _planted(seed: int = 0) -> tuple[Interactions, Interactions]:
    """A planted rank-3 rating table, popular items rated higher (about 25 ratings per user):
    (train, test)."""
    rng = np.random.default_rng(seed)
    u_f, i_f = rng.normal(size=(N_USERS, RANK)), rng.normal(size=(N_ITEMS, RANK))
    item_effect = rng.normal(0, 0.5, N_ITEMS)
    popularity = np.exp(1.5 * item_effect) / np.exp(1.5 * item_effect).sum()
    users = np.repeat(np.arange(N_USERS), 30)
    items = np.concatenate(
        [rng.choice(N_ITEMS, 30, replace=False, p=popularity) for _ in range(N_USERS)]
    )
    raw = 3.4 + item_effect[items] + 0.5 * (u_f[users] * i_f[items]).sum(1)
    ratings = np.clip(np.round(raw + rng.normal(0, 0.3, len(users))), 1, 5).astype(np.float32)
    data = Interactions(users, items, ratings, np.arange(len(users)))
    test = rng.random(len(users)) < 0.15
    return data.subset(~test), data.subset(test)


@pytest.fixture(scope="module")
def planted() -> tuple[Interactions, Interactions]:
    return _planted()


def _mf(seed: int = 0) -> MF:
    return MF(N_USERS, N_ITEMS, ModelParams(factors=8), CPU, seed)


def _bpr(seed: int = 0) -> BPR:
    return BPR(N_USERS, N_ITEMS, ModelParams(factors=8), CPU, seed)


def _mae(model: MF, test: Interactions) -> float:
    return float(np.mean(np.abs(model.predict(test.user, test.item) - test.rating)))


def _rdp_epsilon(history: list[tuple[float, float, int]], delta: float) -> float:
    rdp = sum(compute_rdp(q=q, noise_multiplier=s, steps=t, orders=ORDERS) for s, q, t in history)
    return float(get_privacy_spent(orders=ORDERS, rdp=rdp, delta=delta)[0])


# -- training ---------------------------------------------------------------------------------
def test_mf_learns_under_low_noise(planted) -> None:
    train, test = planted
    model = _mf()
    report = dp_fit(
        model, train, 8, False, DPConfig(noise_multiplier=0.3), seed=1, lr=0.05, batch_size=BATCH
    )
    assert report.epochs == 8 and len(report.losses) == 8
    assert report.losses[-1] < 0.7 * report.losses[0]
    baseline = float(np.mean(np.abs(train.rating.mean() - test.rating)))
    assert _mae(model, test) < 0.9 * baseline
    assert model.mu is not None and abs(model.mu - train.rating.mean()) < 0.5


def test_bpr_loss_falls(planted) -> None:
    train, _ = planted
    model = _bpr()
    before = model.table.clone()
    report = dp_fit(
        model, train, 6, False, DPConfig(noise_multiplier=0.5), seed=1, lr=0.05, batch_size=BATCH
    )
    assert report.losses[-1] < min(report.losses[0], 0.95 * np.log(2))  # ln 2 at the start
    assert not torch.equal(before, model.table)
    assert torch.count_nonzero(model.bias[:N_USERS]) == 0  # BPR has no user bias


def test_rejects_other_models(planted) -> None:
    with pytest.raises(TypeError):
        dp_fit(object(), planted[0], 1, False, DPConfig(), seed=0)  # type: ignore[arg-type]


# -- accounting -------------------------------------------------------------------------------
def test_epsilon_matches_independent_rdp_accounting(planted) -> None:
    train, _ = planted
    report = dp_fit(_mf(), train, 2, False, DPConfig(noise_multiplier=1.1), seed=0)
    batch = default_batch_size(len(train))
    assert report.sample_rate == pytest.approx(1 / int(np.ceil(len(train) / batch)))
    assert report.steps == 2 * int(1 / report.sample_rate)
    assert report.delta == pytest.approx(1 / len(train))
    assert report.noise_multiplier == 1.1
    expected = _rdp_epsilon([(1.1, report.sample_rate, report.steps)], report.delta)
    assert report.epsilon == pytest.approx(expected, rel=1e-9)


def test_target_epsilon_is_met_closely(planted) -> None:
    train, _ = planted
    settings = DPConfig(target_epsilon=2.0, delta=1e-4)
    report = dp_fit(_mf(), train, 2, False, settings, seed=0, batch_size=BATCH)
    assert report.delta == 1e-4
    assert 1.9 <= report.epsilon <= 2.0


def test_more_noise_gives_smaller_epsilon(planted) -> None:
    train, _ = planted
    eps = [
        dp_fit(_mf(), train, 1, False, DPConfig(noise_multiplier=s), seed=0, batch_size=BATCH)
        .epsilon
        for s in (0.7, 1.5)
    ]
    assert eps[1] < eps[0]


def test_norm_rule_matches_opacus_embedding_rule() -> None:
    gen = torch.Generator().manual_seed(0)
    layer = _Table(9, 4)
    for lookups in (1, 2, 3):
        ids = torch.randint(0, 4, (40, lookups), generator=gen).squeeze(1)
        backprops = torch.randn(*ids.shape, 4, generator=gen)
        ours = _table_norm_sample(layer, [ids], backprops)[layer.weight]
        reference = compute_embedding_norm_sample(layer, [ids], backprops)[layer.weight]
        torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-6)


# -- starts and determinism -------------------------------------------------------------------
def test_warm_start_continues_from_the_model(planted) -> None:
    train, test = planted
    settings = DPConfig(noise_multiplier=1.0)
    trained = _mf()
    trained.fit(train, 30)
    trained_mae = _mae(trained, test)
    warm = dp_fit(trained, train, 1, True, settings, seed=0, lr=0.002, batch_size=BATCH)
    assert warm.warm_start
    assert _mae(trained, test) < trained_mae + 0.05
    cold = _mf()
    dp_fit(cold, train, 1, False, settings, seed=0, lr=0.002, batch_size=BATCH)
    assert _mae(trained, test) < _mae(cold, test) - 0.1


def test_cold_start_reinitialises_and_is_deterministic(planted) -> None:
    train, _ = planted
    settings = DPConfig(noise_multiplier=1.0)
    first, second, other = _mf(), _mf(), _mf()
    second.fit(train, 2)  # a cold start must forget this
    reports = [
        dp_fit(m, train, 1, False, settings, seed=5, batch_size=BATCH) for m in (first, second)
    ]
    torch.testing.assert_close(first.table, second.table, rtol=0, atol=0)
    torch.testing.assert_close(first.bias, second.bias, rtol=0, atol=0)
    assert first.mu == second.mu and reports[0].losses == reports[1].losses
    dp_fit(other, train, 1, False, settings, seed=6, batch_size=BATCH)
    assert not torch.equal(first.table, other.table)


# -- ledger -----------------------------------------------------------------------------------
def test_ledger_composes_per_user() -> None:
    ledger = PrivacyLedger(n_users=5)
    first = ledger.record(1.0, 0.01, 300, 1e-5, np.array([0, 1, 1, 2]))
    second = ledger.record(0.8, 0.02, 100, 1e-4, np.array([2, 3]))
    eps = ledger.user_epsilons()
    assert ledger.delta == 1e-5
    one = _rdp_epsilon([(1.0, 0.01, 300)], 1e-5)
    assert ledger.retrain_epsilon(first) == pytest.approx(one)
    assert ledger.retrain_epsilon(second) == pytest.approx(_rdp_epsilon([(0.8, 0.02, 100)], 1e-4))
    both = _rdp_epsilon([(1.0, 0.01, 300), (0.8, 0.02, 100)], 1e-5)
    only_second = _rdp_epsilon([(0.8, 0.02, 100)], 1e-5)
    np.testing.assert_allclose(eps, [one, one, both, only_second, 0.0])
    assert both > max(one, only_second)


def test_ledger_records_fits(planted) -> None:
    train, _ = planted
    settings = DPConfig(noise_multiplier=1.0)
    report = dp_fit(_mf(), train, 1, False, settings, seed=0, batch_size=BATCH)
    ledger = PrivacyLedger(n_users=N_USERS + 1, delta=report.delta)
    ledger.record_fit(report, train)
    eps = ledger.user_epsilons()
    assert eps[N_USERS] == 0.0
    np.testing.assert_allclose(eps[:N_USERS], report.epsilon)
    assert PrivacyLedger(3).user_epsilons().tolist() == [0.0, 0.0, 0.0]
    with pytest.raises(ValueError):
        ledger.record(1.0, 0.01, 10, 1e-5, np.array([N_USERS + 1]))
