"""Tests of MetaMF and NoMetaMF as platform models under two defenses: DP-SGD through Opacus
(the per-example network of `metamf_dense`) and APR (the perturbed step of `MetaMF._step`)."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from opacus import GradSampleModule, PrivacyEngine
from opacus.accountants import RDPAccountant
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from simulator.defenses.adversarial.gradient_reversal import AttributeAdversary
from simulator.defenses.apr.defense import FastGradientPerturbation
from simulator.defenses.dp.defense import PrivateTraining
from simulator.defenses.dp.dp_sgd import dp_fit
from simulator.defenses.dp.settings import DPConfig
from simulator.recommenders.base import ModelParams
from simulator.recommenders.dense import DenseTable
from simulator.recommenders.metamf import MetaMF, NoMetaMF
from simulator.recommenders.metamf_dense import MetaMFDenseNet
from simulator.simulation.model import PrivacyModel
from simulator.world.base import Interactions
from tests.planted import TINY_METAMF, planted_ratings

N_USERS, N_ITEMS = 120, 90
TINY = TINY_METAMF
APR = FastGradientPerturbation(epsilon=0.1, weight=1.0)


def _planted(seed: int = 0) -> Interactions:
    """About 28 ratings per user from a rank-3 model with biases, rounded to 1..5; the last
    user has none."""
    return planted_ratings(N_USERS, N_ITEMS, 3500, seed, rated_users=N_USERS - 1)


@pytest.fixture(scope="module")
def split() -> tuple[Interactions, Interactions]:
    data = _planted()
    test = np.random.default_rng(1).random(len(data)) < 0.15
    return data.subset(~test), data.subset(test)


def _make(cls: type[MetaMF] = MetaMF, seed: int = 0, **options: object) -> MetaMF:
    """A tiny model trained on every rating (no hold-out), the reference init, constant lr."""
    options = {**TINY, "validation": 0.0, "user_init_std": 1.0, "lr_schedule": "constant",
               **options}
    return cls(N_USERS, N_ITEMS, ModelParams(lr=1e-2, batch_size=256, options=options),
               "cpu", seed)


def _state(model: MetaMF) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.net.state_dict().items()}


def _columns(data: Interactions, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return (torch.as_tensor(data.user[:n]), torch.as_tensor(data.item[:n]),
            torch.as_tensor(data.rating[:n]))


def _example_losses(output: torch.Tensor, rating: torch.Tensor, weight: float | None
                    ) -> torch.Tensor:
    """Each example's objective: squared error, plus weight times the shifted one (APR)."""
    if weight is None:
        return (output - rating).square()
    return (output[:, 0] - rating).square() + weight * (output[:, 1] - rating).square()


class _Criterion(nn.Module):
    """The per-example objective as a torch loss with a `reduction` (Opacus switches it)."""

    def __init__(self, weight: float | None) -> None:
        super().__init__()
        self.weight, self.reduction = weight, "mean"

    def forward(self, output: torch.Tensor, rating: torch.Tensor) -> torch.Tensor:
        loss = _example_losses(output, rating, self.weight)
        return loss if self.reduction == "none" else loss.sum() if self.reduction == "sum" \
            else loss.mean()


def _per_example_gradients(net: MetaMFDenseNet, columns: tuple[torch.Tensor, ...],
                           weight: float | None) -> dict[str, torch.Tensor]:
    """Each trainable parameter's gradient of each example's objective, one backward pass
    per example: name -> (B, *shape)."""
    names = [n for n, p in net.named_parameters() if p.requires_grad]
    rows: dict[str, list[torch.Tensor]] = {n: [] for n in names}
    for b in range(len(columns[0])):
        one = tuple(c[b : b + 1] for c in columns)
        net.zero_grad(set_to_none=True)
        _example_losses(net(*one), one[2], weight).sum().backward()
        for n, p in net.named_parameters():
            if p.requires_grad:
                assert p.grad is not None
                rows[n].append(p.grad.clone())
    return {n: torch.stack(g) for n, g in rows.items()}


# -- the per-example network ------------------------------------------------------------------
def test_dense_net_predicts_like_the_model(split) -> None:
    model = _make()
    model.fit(split[0], 1)
    columns = _columns(split[0], 200)
    expected = model.net(columns[0], columns[1]).detach()
    net = model.dense_training(split[0]).net
    torch.testing.assert_close(net(*columns).detach(), expected, atol=1e-5, rtol=1e-5)
    model.set_perturbation(APR)
    training = model.dense_training(split[0])
    out = training.net(*columns).detach()
    assert out.shape == (200, 2)
    torch.testing.assert_close(out[:, 0], expected, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(out[:, 1], expected, atol=1e-3)
    # The shift is an ascent step on each example's own error.
    errors = (out - columns[2].unsqueeze(1)).square()
    assert (errors[:, 1] > errors[:, 0]).float().mean() > 0.9
    assert isinstance(training.net.user, DenseTable) and isinstance(training.net.item, DenseTable)
    assert isinstance(training.net.memory, nn.Linear) and training.net.memory.bias is None


@pytest.mark.filterwarnings("ignore:Secure RNG turned off", "ignore:Full backward hook",
                            "ignore:In CPU autocast")
@pytest.mark.parametrize("cls, weight", [(MetaMF, None), (MetaMF, 1.0), (NoMetaMF, 0.5)],
                         ids=["metamf", "metamf-apr", "nometamf-apr"])
def test_opacus_per_example_gradients_match_autograd(split, cls, weight) -> None:
    model = _make(cls)
    model.fit(split[0], 1)
    if weight is not None:
        model.set_perturbation(FastGradientPerturbation(epsilon=0.3, weight=weight))
    net = model.dense_training(split[0]).net
    assert isinstance(net, MetaMFDenseNet)
    columns = _columns(split[0], 10)
    columns = (torch.cat([columns[0], columns[0][:2]]), torch.cat([columns[1], columns[1][3:5]]),
               torch.cat([columns[2], columns[2][:2]]))  # users and items read twice
    expected = _per_example_gradients(copy.deepcopy(net), columns, weight)
    if cls is NoMetaMF:
        assert not any(name.startswith("rp_") for name in expected)

    # Opacus's per-example gradients (hooks mode: the Linear rule, functorch for the tables).
    hooked = GradSampleModule(copy.deepcopy(net), batch_first=True, loss_reduction="sum")
    _example_losses(hooked(*columns), columns[2], weight).sum().backward()
    for name, p in hooked._module.named_parameters():
        if p.requires_grad:
            torch.testing.assert_close(p.grad_sample, expected[name], atol=1e-5, rtol=1e-4)

    # Ghost clipping as dp_fit runs it, noise 0: the clipped sum of the per-example gradients.
    norms = torch.stack([g.flatten(1).square().sum(1) for g in expected.values()]).sum(0).sqrt()
    clip = float(norms.median())
    ghost = copy.deepcopy(net)
    loader = DataLoader(TensorDataset(*columns), batch_size=len(columns[0]))
    module, optimizer, criterion, _ = PrivacyEngine().make_private(
        module=ghost, optimizer=torch.optim.SGD(ghost.parameters(), lr=0.0),
        criterion=_Criterion(weight), data_loader=loader, noise_multiplier=0.0,
        max_grad_norm=clip, poisson_sampling=False, grad_sample_mode="ghost")
    optimizer.zero_grad()
    criterion(module(*columns), columns[2]).backward()
    assert (norms > clip).any() and (norms < clip).any()
    scale = (clip / (norms + 1e-6)).clamp(max=1.0)
    for name, p in ghost.named_parameters():
        if p.requires_grad:
            manual = (expected[name] * scale.view(-1, *[1] * (expected[name].dim() - 1))).sum(0)
            torch.testing.assert_close(p.grad, manual, atol=1e-5, rtol=1e-4)


def test_adversary_adds_a_penalty_column_and_trains_its_heads(split) -> None:
    model = _make()
    codes = np.random.default_rng(0).integers(-1, 2, N_USERS)
    adversary = AttributeAdversary({"gender": codes}, seed=0)
    model.set_adversary(adversary)
    model.set_perturbation(APR)
    training = model.dense_training(split[0])
    columns = _columns(split[0], 50)
    out = training.net(*columns)
    assert out.shape == (50, 3) and training.penalised
    p = model.net.user_emb[columns[0]]
    torch.testing.assert_close(out[:, 2], adversary.penalty(columns[0], p), atol=1e-6, rtol=0)
    heads = [t.detach().clone() for t in adversary.heads["gender"].parameters()]
    assert training.after_step is not None and training.end_epoch is not None
    training.after_step()
    assert not all(torch.equal(a, b.detach())
                   for a, b in zip(heads, adversary.heads["gender"].parameters(), strict=True))
    # dp_fit trains on clean + weight * shifted + penalty and the heads after every step.
    report = dp_fit(model, split[0], 2, False, DPConfig(noise_multiplier=1.0), seed=0,
                    batch_size=128)
    assert np.isfinite(report.losses).all() and len(adversary.history) == 2


# -- DP-SGD -----------------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore:Optimal order is the smallest alpha")
def test_dp_fit_without_noise_lowers_the_loss(split) -> None:
    train, _ = split
    model = _make()
    start = _state(model)
    settings = DPConfig(noise_multiplier=0.0, max_grad_norm=1e4)
    report = dp_fit(model, train, 3, False, settings, seed=0, lr=1e-2, batch_size=128)
    assert report.epochs == 3 and np.isfinite(report.losses).all()
    assert report.losses[-1] < 0.7 * report.losses[0]
    after = _state(model)
    for name in start:
        assert not torch.equal(start[name], after[name]), name
    # No placement of users without ratings: the last user's row is still its initial one.
    assert torch.equal(after["user_emb"][-1], start["user_emb"][-1])
    mse = float(np.mean((model.predict(train.user, train.item) - train.rating) ** 2))
    assert mse < report.losses[0]


def test_dp_fit_of_nometamf_keeps_the_rp_generators(split) -> None:
    model = _make(NoMetaMF)
    model.set_perturbation(APR)
    start = _state(model)
    report = dp_fit(model, split[0], 1, False, DPConfig(noise_multiplier=1.0), seed=0,
                    batch_size=128)
    assert np.isfinite(report.losses).all()
    after = _state(model)
    for name in start:
        if name.startswith("rp_"):
            assert torch.equal(start[name], after[name]), name
        else:
            assert not torch.equal(start[name], after[name]), name
    assert not any(p.requires_grad for layer in model.net.rp_layers() for p in layer.parameters())


def test_dp_epsilon_is_the_rdp_accountant_s(split) -> None:
    train, _ = split
    report = dp_fit(_make(), train, 2, False, DPConfig(noise_multiplier=1.2, delta=1e-4),
                    seed=0, batch_size=200)
    assert report.noise_multiplier == 1.2 and report.delta == 1e-4
    assert report.sample_rate == pytest.approx(1 / int(np.ceil(len(train) / 200)))
    accountant = RDPAccountant()
    accountant.history = [(1.2, report.sample_rate, report.steps)]
    assert report.epsilon == pytest.approx(accountant.get_epsilon(delta=1e-4), rel=1e-9)


def test_dp_in_the_simulator_composes_two_retrains() -> None:
    scenario = {
        "name": "metamf-dp",
        "world": {"source": "synthetic", "n_users": 100, "n_items": 80,
                  "mean_ratings_per_user": 25},
        "platform": {"model": "metamf", "retrain_every": 2, "first_epochs": 1, "epochs": 1,
                     "metamf": TINY, "defenses": {"dp": {"noise_multiplier": 1.0}}},
        "attackers": [],
        "simulation": {"steps": 4, "device": "cpu", "seed": 0},
    }
    model = PrivacyModel(scenario)
    model.run()
    dp = model.platform.defenses.get("dp")
    assert isinstance(dp, PrivateTraining) and len(dp.ledger.records) == 2
    history = [(r.noise_multiplier, r.sample_rate, r.steps) for r in dp.ledger.records]
    assert all(noise == 1.0 and steps > 0 for noise, _, steps in history)
    accountant = RDPAccountant()
    accountant.history = history
    expected = accountant.get_epsilon(delta=dp.ledger.delta)
    metrics = pd.DataFrame(model.records.metrics)
    assert metrics["dp_epsilon_user_max"].iloc[-1] == pytest.approx(expected, rel=1e-9)
    assert expected > metrics["dp_epsilon_retrain"].iloc[-1]


# -- APR --------------------------------------------------------------------------------------
def test_apr_loss_matches_full_table_autograd(split) -> None:
    model = _make()
    model.fit(split[0], 1)
    net = model.net
    users, items, rating = _columns(split[0], 300)
    mse, total = model._perturbed_loss(users, items, rating, APR)
    # Reference: the gradient with respect to the whole tables (zero for rows not read), so
    # each read row's gradient is summed over the pairs that read it.
    clean = F.mse_loss(net(users, items), rating)
    grad_u, grad_i = torch.autograd.grad(clean, (net.user_emb, net.item_rows))
    shifted = torch.func.functional_call(
        net, {"user_emb": net.user_emb + APR(grad_u), "item_rows": net.item_rows + APR(grad_i)},
        (users, items))
    torch.testing.assert_close(mse, clean)
    torch.testing.assert_close(total, clean + F.mse_loss(shifted, rating), rtol=1e-5, atol=1e-6)


def test_apr_changes_training_and_weight_zero_does_not(split) -> None:
    train, _ = split
    plain, apr, zero = _make(), _make(), _make()
    apr.set_perturbation(APR)
    zero.set_perturbation(FastGradientPerturbation(epsilon=0.1, weight=0.0))
    reports = [m.fit(train, 2) for m in (plain, apr, zero)]
    assert all(np.isfinite(r.losses).all() and r.diverged is None for r in reports)
    assert not np.allclose(plain.user_embeddings(), apr.user_embeddings(), atol=1e-4)
    for (name, a), b in zip(_state(plain).items(), _state(zero).values(), strict=True):
        assert torch.equal(a, b), name
    apr.set_perturbation(None)
    assert apr.fit(train, 2).losses == reports[0].losses  # None: plain training again


def _worst_case_increase(model: MetaMF, data: Interactions, epsilon: float) -> float:
    """How much the training MSE rises when every p_u and item-table row moves by epsilon
    along its own gradient (FGSM, the perturbation APR trains against)."""
    net = model.net
    users, items, rating = _columns(data, len(data))
    clean = F.mse_loss(net(users, items), rating)
    grad_u, grad_i = torch.autograd.grad(clean, (net.user_emb, net.item_rows))
    attack = FastGradientPerturbation(epsilon, 1.0)
    with torch.no_grad():
        shifted = torch.func.functional_call(
            net, {"user_emb": net.user_emb + attack(grad_u),
                  "item_rows": net.item_rows + attack(grad_i)}, (users, items))
        return float(F.mse_loss(shifted, rating) - clean)


def test_apr_makes_metamf_less_sensitive_to_worst_case_perturbations(split) -> None:
    train, test = split
    plain, apr = _make(), _make()
    apr.set_perturbation(APR)
    for model in (plain, apr):
        model.fit(train, 8)
    plain_rise = _worst_case_increase(plain, train, APR.epsilon)
    apr_rise = _worst_case_increase(apr, train, APR.epsilon)
    assert apr_rise < 0.75 * plain_rise, (apr_rise, plain_rise)  # seeds 0-2: 0.32-0.68
    maes = [float(np.abs(m.predict(test.user, test.item) - test.rating).mean())
            for m in (plain, apr)]
    assert maes[1] < maes[0] + 0.05, maes
