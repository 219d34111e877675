"""The white-box item owner on MetaMF and NoMetaMF: each owned item's own parameter row of
the L generator is perturbed through the model's gradients, within the per-item budget."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import simulator.attacks.item_owner as item_owner
from simulator.attacks.item_owner import ItemOwner, ItemPerturbationConfig
from simulator.attacks.item_perturbation import perturb_item_parameters, perturb_items
from simulator.attacks.protocol import AttackerContext
from simulator.metrics.target_standing import target_view
from simulator.recommenders.base import ModelParams
from simulator.recommenders.metamf import MetaMF, NoMetaMF
from simulator.world import generate_synthetic
from simulator.world.base import Interactions
from tests.planted import TINY_METAMF, planted_ratings

N_USERS, N_ITEMS = 120, 80
TINY = TINY_METAMF
WIDTH = TINY["rank"] * TINY["hidden"] + TINY["rank"]
CPU = torch.device("cpu")


Model = MetaMF | NoMetaMF


def _planted(seed: int = 0) -> Interactions:
    """About 30 ratings per user from a rank-3 model with biases, rounded to 1..5."""
    return planted_ratings(N_USERS, N_ITEMS, 4000, seed)


def _params() -> ModelParams:
    """Tiny dimensions and the reference's user init, which learn in a few epochs."""
    return ModelParams(lr=1e-2, batch_size=256, options={
        **TINY, "user_init_std": 1.0, "lr_schedule": "constant", "validation": 0.0})


@pytest.fixture(scope="module")
def data() -> Interactions:
    return _planted()


@pytest.fixture(scope="module")
def trained(data: Interactions) -> dict[str, dict[str, torch.Tensor]]:
    """The parameters of each model after 4 epochs on the planted table."""
    states = {}
    for cls in (MetaMF, NoMetaMF):
        model = cls(N_USERS, N_ITEMS, _params(), CPU, 1)
        model.fit(data, 4)
        states[cls.name] = {k: v.clone() for k, v in model.net.state_dict().items()}
    return states


def _model(trained: dict[str, dict[str, torch.Tensor]], name: str) -> Model:
    """A fresh copy of a trained model."""
    cls = MetaMF if name == "metamf" else NoMetaMF
    model = cls(N_USERS, N_ITEMS, _params(), CPU, 1)
    model.net.load_state_dict(trained[name])
    return model


def _segment(seed: int = 0) -> np.ndarray:
    mask = np.zeros(N_USERS, dtype=bool)
    mask[np.random.default_rng(seed).choice(N_USERS, 40, replace=False)] = True
    return mask


def _mean_unclipped(model: Model, segment: np.ndarray, items: np.ndarray) -> float:
    with torch.no_grad():
        scores = model.net.score_all(torch.as_tensor(np.flatnonzero(segment)))
    return float(scores[:, torch.as_tensor(items)].double().mean())


def _hit_rate(model: Model, data: Interactions, segment: np.ndarray, items: np.ndarray) -> float:
    view = target_view(model.score, np.flatnonzero(segment), items, data.user, data.item,
                       N_ITEMS, CPU)
    return view.hit_rate(10)


def _owner(items: np.ndarray | None, segment: np.ndarray, **settings: object) -> ItemOwner:
    chosen = None if items is None else items.tolist()
    config = ItemPerturbationConfig.model_validate({"items": chosen, **settings})
    world = generate_synthetic(n_users=N_USERS, n_items=N_ITEMS, seed=0,
                               mean_ratings_per_user=30)
    context = AttackerContext(index=0, label="item_owner0", world=world, seed=0,
                              n_genuine=N_USERS, first_slot=N_USERS, implicit=False, device=CPU)
    owner = ItemOwner(settings=config, context=context)
    owner.segment = segment  # the test's own segment, not one attribute value's
    return owner


def _owned(data: Interactions, n: int = 3) -> np.ndarray:
    """The n least rated items, as the item owner picks them by default."""
    owner = _owner(None, _segment(), n_items=n)
    owner.choose_items(data)
    assert owner.owned is not None
    return owner.owned


# --- the model's item parameters ------------------------------------------------------------


@pytest.mark.parametrize("name", ["metamf", "nometamf"])
def test_scores_from_the_current_rows_are_the_model_predictions(trained, name: str) -> None:
    model = _model(trained, name)
    users = torch.tensor([0, 3, 3, 17, 119])
    items = np.array([5, 0, 79, 42])
    rows = model.item_parameters(items)
    assert rows.shape == (len(items), WIDTH) and rows.dtype == np.float32
    with torch.no_grad():
        scores = model.score_item_parameters(users, torch.from_numpy(rows))
        full = model.net.score_all(users)[:, torch.as_tensor(items)]
        pairs = model.net(users.repeat_interleave(len(items)),
                          torch.as_tensor(items).repeat(len(users)))
    assert scores.shape == (len(users), len(items))
    torch.testing.assert_close(scores, full, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(scores.reshape(-1), pairs, atol=1e-5, rtol=1e-5)
    # they are the platform's own ranking scores (unclipped)
    torch.testing.assert_close(scores, model.score(users)[:, items], atol=1e-5, rtol=1e-5)


def test_scores_are_differentiable_in_the_rows(trained) -> None:
    model = _model(trained, "metamf")
    model.net.double()
    rows = torch.from_numpy(model.item_parameters(np.array([9]))).double()
    rows.requires_grad_(True)
    users = torch.tensor([1, 4])
    assert torch.autograd.gradcheck(lambda r: model.score_item_parameters(users, r), (rows,))
    (grad,) = torch.autograd.grad(model.score_item_parameters(users, rows).sum(), rows)
    assert float(grad.abs().sum()) > 0


def test_set_item_parameters_writes_only_those_rows(trained) -> None:
    model = _model(trained, "metamf")
    before = {k: v.clone() for k, v in model.net.state_dict().items()}
    items = np.array([7, 3])
    new = np.random.default_rng(0).normal(size=(2, WIDTH)).astype(np.float32)
    model.set_item_parameters(items, new)
    np.testing.assert_array_equal(model.item_parameters(items), new)
    table = model.net.item_rows.detach()
    others = np.setdiff1d(np.arange(N_ITEMS), items)
    torch.testing.assert_close(table[others], before["item_rows"][others], atol=0, rtol=0)
    for key, value in model.net.state_dict().items():
        if key != "item_rows":
            torch.testing.assert_close(value, before[key], atol=0, rtol=0)
    # copies, not views
    rows = model.item_parameters(items)
    rows[:] = 0.0
    np.testing.assert_array_equal(model.item_parameters(items), new)


@pytest.mark.parametrize(("items", "rows", "match"), [
    (np.array([1, 1]), np.zeros((2, WIDTH)), "repeat"),
    (np.array([N_ITEMS]), np.zeros((1, WIDTH)), "lie in"),
    (np.array([-1]), np.zeros((1, WIDTH)), "lie in"),
    (np.array([1, 2]), np.zeros((2, WIDTH + 1)), "shape"),
    (np.array([1]), np.full((1, WIDTH), np.nan), "finite"),
    (np.array([[1]]), np.zeros((1, WIDTH)), "1-D"),
])
def test_bad_item_parameters_raise(trained, items, rows, match: str) -> None:
    model = _model(trained, "metamf")
    with pytest.raises(ValueError, match=match):
        model.set_item_parameters(items, rows)


# --- the generic perturbation ---------------------------------------------------------------


@pytest.mark.parametrize("objective", ["score", "rank"])
@pytest.mark.parametrize("norm", ["l2", "linf"])
@pytest.mark.parametrize("method", ["fgsm", "pgd"])
def test_through_autograd_it_is_the_dot_product_attack(method, norm, objective) -> None:
    """With a dot-product score the generic path finds what `perturb_items` finds."""
    rng = np.random.default_rng(0)
    users, items = rng.normal(size=(60, 6)), rng.normal(size=(30, 6))
    bias, seen = rng.normal(size=30), rng.random((60, 30)) < 0.2
    owned, segment = np.array([4, 0, 11]), np.arange(0, 60, 2)
    direct = perturb_items(users, items, bias, owned, segment, 0.6, method=method, norm=norm,
                           objective=objective, seen=seen, k=5)
    seg_users, owned_bias = torch.as_tensor(users[segment]), torch.as_tensor(bias[owned])
    generic = perturb_item_parameters(
        lambda rows: seg_users @ rows.T + owned_bias, items[owned], 0.6, method=method,
        norm=norm, objective=objective, owned=owned,
        clean_scores=users[segment] @ items.T + bias, seen=seen[segment], k=5,
    )
    np.testing.assert_allclose(generic.delta, direct.delta, atol=1e-12)
    assert generic.gain == pytest.approx(direct.gain, rel=1e-9)
    assert generic.norm == pytest.approx(direct.norm, rel=1e-9)
    assert generic.steps == direct.steps


@pytest.mark.parametrize(("changes", "match"), [
    ({"objective": "rank"}, "needs owned and clean_scores"),
    ({"objective": "rank", "owned": np.array([0, 1]), "clean_scores": np.zeros((4, 5))},
     "one item per row"),
    ({"objective": "rank", "owned": np.array([0, 1, 2]), "clean_scores": np.zeros(5)},
     "clean_scores"),
    ({"objective": "rank", "owned": np.array([0, 1, 2]), "clean_scores": np.zeros((4, 5)),
      "seen": np.zeros((3, 5), dtype=bool), "k": 2}, "seen"),
    ({"objective": "rank", "owned": np.array([0, 1, 2]), "clean_scores": np.zeros((4, 5)),
      "k": 6}, "k must be"),
    ({"rows": np.zeros((3, 0))}, "rows"),
    ({"rows": np.full((3, 2), np.inf)}, "rows"),
    ({"score": lambda rows: rows.sum(1)}, "score must return"),
    ({"epsilon": 0.0}, "epsilon"),
    ({"method": "cw"}, "method"),
    ({"norm": "l1"}, "norm"),
    ({"steps": 0}, "steps"),
])
def test_bad_generic_arguments_raise(changes: dict, match: str) -> None:
    users = torch.ones(4, 2, dtype=torch.float64)
    kwargs: dict = {"score": lambda rows: users @ rows.T, "rows": np.ones((3, 2)),
                    "epsilon": 0.5}
    kwargs.update(changes)
    with pytest.raises(ValueError, match=match):
        perturb_item_parameters(**kwargs)


# --- the item owner on MetaMF ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["metamf", "nometamf"])
@pytest.mark.parametrize("method", ["fgsm", "pgd"])
@pytest.mark.parametrize("objective", ["score", "rank"])
def test_item_owner_raises_its_items_for_the_segment(trained, data, name, method,
                                                      objective) -> None:
    model = _model(trained, name)
    segment = _segment()
    owned = _owned(data)
    state = {k: v.clone() for k, v in model.net.state_dict().items()}
    score_before = _mean_unclipped(model, segment, owned)
    hits_before = _hit_rate(model, data, segment, owned)
    owner = _owner(owned, segment, method=method, objective=objective, epsilon=0.5)
    gain = owner.act(0, model, data, data.user, data.item)
    assert gain > 0 and gain == owner.last_gain
    assert _mean_unclipped(model, segment, owned) - score_before == pytest.approx(gain,
                                                                                   rel=1e-4)
    assert _hit_rate(model, data, segment, owned) >= hits_before
    change = model.net.item_rows.detach()[owned] - state["item_rows"][owned]
    assert float(torch.linalg.vector_norm(change, dim=1).max()) <= 0.5 + 1e-5
    assert float(change.abs().max()) > 0
    others = np.setdiff1d(np.arange(N_ITEMS), owned)
    for key, value in model.net.state_dict().items():
        expected = state[key]
        if key == "item_rows":
            value, expected = value[others], expected[others]
        torch.testing.assert_close(value, expected, atol=0, rtol=0)


def test_linf_budget_bounds_every_entry_of_the_row(trained, data) -> None:
    model = _model(trained, "metamf")
    segment = _segment()
    owned = _owned(data)
    before = model.item_parameters(owned)
    gain = _owner(owned, segment, norm="linf", epsilon=0.01).act(0, model, data, data.user,
                                                                 data.item)
    change = model.item_parameters(owned).astype(np.float64) - before
    assert gain > 0
    assert np.abs(change).max() <= 0.01 + 1e-5
    assert np.abs(change).max() == pytest.approx(0.01, rel=1e-3)


def test_a_bigger_budget_gains_more_and_lifts_the_items_into_the_top10(trained, data) -> None:
    segment = _segment()
    owned = _owned(data)
    gains, hits = [], []
    for epsilon in (0.1, 0.5, 2.0):
        model = _model(trained, "metamf")
        hits_before = _hit_rate(model, data, segment, owned)
        owner = _owner(owned, segment, epsilon=epsilon)
        gains.append(owner.act(0, model, data, data.user, data.item))
        hits.append(_hit_rate(model, data, segment, owned))
    assert 0 < gains[0] < gains[1] < gains[2]
    assert hits_before < hits[0] <= hits[1] <= hits[2]
    assert hits[2] > hits_before + 0.3


def test_the_model_path_follows_the_capability(trained, data, monkeypatch) -> None:
    model = _model(trained, "metamf")
    monkeypatch.setattr(item_owner, "capabilities", lambda name: frozenset())
    segment = _segment()
    with pytest.raises(ValueError, match="no item embeddings or parameters"):
        _owner(_owned(data), segment).act(0, model, data, data.user, data.item)


# --- in a simulation ------------------------------------------------------------------------


def test_item_owner_on_metamf_in_a_simulation() -> None:
    from simulator.simulation.model import PrivacyModel

    model = PrivacyModel({
        "name": "item-owner-metamf",
        "world": {"source": "synthetic", "n_users": 150, "n_items": 100,
                  "mean_ratings_per_user": 20},
        "platform": {"model": "metamf", "retrain_every": 1, "first_epochs": 3, "epochs": 1,
                     "lr": 0.01, "batch_size": 64,
                     "metamf": {**TINY, "user_init_std": 1.0, "validation": 0.0}},
        "attackers": [{"kind": "inference", "classifiers": ["logreg"], "folds": 2},
                      {"kind": "item_perturbation", "segment_attribute": "gender",
                       "segment_value": 0, "n_items": 2}],
        "simulation": {"steps": 2, "device": "cpu", "seed": 0},
        "output": {"plots": False},
    })
    model.run()
    assert [e["step"] for e in model.records.events if e["kind"] == "retrain"] == [0, 1]
    events = [e for e in model.records.events if e["kind"] == "item_perturbation"]
    assert [e["step"] for e in events] == [0, 1]
    assert all(np.isfinite(e["value"]) and e["value"] > 0 for e in events)
    assert len(json.loads(events[0]["detail"])["items"]) == 2
    last = model.records.metrics[-1]
    assert last["perturbation_gain"] == events[-1]["value"]
    assert last["owned_shift_segment"] > 0
    assert last["owned_hr_10_segment"] > last["owned_hr_10_segment_clean"]
