"""Post-training attribute unlearning: MGDA weight, distinguishability losses, and edits of
trained BPR, MF and MetaMF user embeddings."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from simulator.defenses.unlearning.distinguishability import (
    distinguishability,
    kl_distinguishability,
    ledoit_wolf_shrinkage,
    mmd2_terms,
    mmd_distinguishability,
)
from simulator.defenses.unlearning.edit import unlearn_attribute
from simulator.defenses.unlearning.mgda import mgda_direction, mgda_weight
from simulator.defenses.unlearning.settings import UnlearningConfig
from simulator.recommenders.base import ModelParams
from simulator.recommenders.registry import make_recommender
from simulator.world.synthetic import generate_synthetic

pytestmark = pytest.mark.heavy  # long tests: started first (tests/conftest.py)

# -- MGDA -------------------------------------------------------------------------------------


def test_mgda_weight_orthogonal_equal_norms_is_half() -> None:
    assert mgda_weight(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])) == pytest.approx(0.5)


def test_mgda_weight_equal_gradients_is_half() -> None:
    g = torch.tensor([[0.3, -1.2], [2.0, 0.5]])
    assert mgda_weight(g, g.clone()) == 0.5


def test_mgda_weight_clips_at_both_bounds() -> None:
    big, small = torch.tensor([1.0, 0.0]), torch.tensor([0.1, 0.0])
    # The min-norm point of a segment on one ray is its shorter end.
    assert mgda_weight(big, small) == 0.0
    assert mgda_weight(small, big) == 1.0
    direction, alpha = mgda_direction(small, big)
    assert alpha == 1.0 and torch.equal(direction, small)


def test_mgda_weight_interior_matches_closed_form() -> None:
    g1, g2 = torch.tensor([2.0, 0.0]), torch.tensor([0.0, 1.0])
    # ((g2 - g1) . g2) / ||g1 - g2||^2 = 1 / 5
    assert mgda_weight(g1, g2) == pytest.approx(0.2)


def test_mgda_direction_is_a_common_descent_direction() -> None:
    gen = torch.Generator().manual_seed(0)
    for _ in range(200):
        g1 = torch.randn(5, 3, generator=gen) * torch.rand(1, generator=gen) * 10
        g2 = torch.randn(5, 3, generator=gen)
        direction, alpha = mgda_direction(g1, g2)
        assert 0.0 <= alpha <= 1.0
        assert float((direction * g1).sum()) >= -1e-5
        assert float((direction * g2).sum()) >= -1e-5


# -- distinguishability ------------------------------------------------------------------------


def _two_samples(shift: float, n: int = 600, d: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2 * n, d, generator=gen)
    x[n:, 0] += shift
    labels = torch.cat([torch.zeros(n), torch.ones(n)]).long()
    return x, labels


@pytest.mark.parametrize(
    ("kind", "covariance"), [("kl", "diagonal"), ("kl", "shrunk"), ("mmd", "diagonal")]
)
def test_losses_separate_same_from_shifted(kind: str, covariance: str) -> None:
    same, labels = _two_samples(0.0)
    shifted, _ = _two_samples(1.5)
    low = float(distinguishability(same, labels, kind, covariance))
    high = float(distinguishability(shifted, labels, kind, covariance))
    assert 0.0 <= low < 0.1 * high
    assert high > (0.5 if kind == "kl" else 0.02)


@pytest.mark.parametrize(
    ("kind", "covariance"), [("kl", "diagonal"), ("kl", "shrunk"), ("mmd", "diagonal")]
)
def test_losses_are_differentiable_and_ignore_unknown_labels(kind: str, covariance: str) -> None:
    x, labels = _two_samples(1.0, n=200)
    labels[::7] = -1
    emb = x.clone().requires_grad_(True)
    distinguishability(emb, labels, kind, covariance).backward()
    assert emb.grad is not None and torch.isfinite(emb.grad).all()
    assert float(emb.grad.abs().sum()) > 0
    assert float(emb.grad[labels == -1].abs().sum()) == 0.0


def test_kl_catches_a_covariance_difference_only_in_full_form() -> None:
    gen = torch.Generator().manual_seed(2)
    z = torch.randn(2000, 2, generator=gen)
    correlated = torch.stack([z[:1000, 0], z[:1000, 0] * 0.9 + z[:1000, 1] * 0.3], 1)
    anti = torch.stack([z[1000:, 0], -z[1000:, 0] * 0.9 + z[1000:, 1] * 0.3], 1)
    x, labels = torch.cat([correlated, anti]), torch.cat([torch.zeros(1000), torch.ones(1000)])
    assert float(kl_distinguishability(x, labels.long(), "diagonal")) < 0.05
    assert float(kl_distinguishability(x, labels.long(), "shrunk")) > 1.0


def test_multi_class_losses() -> None:
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(900, 4, generator=gen)
    labels = torch.arange(900) % 3
    same_kl = float(kl_distinguishability(x, labels, "shrunk"))
    same_mmd = float(mmd_distinguishability(x, labels))
    x[labels == 2, 1] += 2.0
    assert float(kl_distinguishability(x, labels, "shrunk")) > 20 * same_kl
    assert float(mmd_distinguishability(x, labels)) > 20 * same_mmd


def test_mmd_subsamples_large_classes() -> None:
    x, labels = _two_samples(1.5, n=1500)
    gen = torch.Generator().manual_seed(0)
    full = float(mmd_distinguishability(x, labels, max_per_class=10_000))
    sub = float(mmd_distinguishability(x, labels, gen, max_per_class=500))
    assert sub == pytest.approx(full, rel=0.3)


def test_ledoit_wolf_shrinkage_matches_sklearn() -> None:
    from sklearn.covariance import ledoit_wolf_shrinkage as sk_shrinkage

    x = torch.randn(60, 10, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    x = x - x.mean(0)
    assert ledoit_wolf_shrinkage(x) == pytest.approx(
        sk_shrinkage(x.numpy(), assume_centered=True), rel=1e-6
    )


# -- unlearning on trained models ----------------------------------------------------------------


@pytest.fixture(scope="module")
def world():
    return generate_synthetic(
        n_users=400, n_items=300, signal=2.0, mean_ratings_per_user=40, seed=0
    )


def _trained(name: str, world, epochs: int = 30, options: dict | None = None):
    params = ModelParams(factors=16, options=options or {})
    model = make_recommender(name, world.n_users, world.n_items, params, "cpu", 0)
    model.fit(world.ratings, epochs)
    return model


def _attacker_auc(emb: np.ndarray, labels: np.ndarray) -> float:
    """A fresh logistic regression trained on half of the users, AUC on the other half."""
    order = np.random.default_rng(0).permutation(len(labels))
    train, test = order[: len(order) // 2], order[len(order) // 2 :]
    clf = LogisticRegression(max_iter=2000).fit(emb[train], labels[train])
    return float(roc_auc_score(labels[test], clf.predict_proba(emb[test])[:, 1]))


def _top10(model, world) -> np.ndarray:
    scores = model.score(torch.arange(world.n_users)).clone()
    scores[world.ratings.user, world.ratings.item] = -torch.inf
    return torch.topk(scores, 10, dim=1).indices.numpy()


def _overlap(a: np.ndarray, b: np.ndarray) -> float:
    same = (a[:, :, None] == b[:, None, :]).any(2)
    return float(same.mean())


def test_unlearning_bpr_hides_gender_and_keeps_rankings(world) -> None:
    model = _trained("bpr", world)
    gender = world.attributes["gender"]
    items, biases, emb0 = model.item_embeddings(), model.item_biases(), model.user_embeddings()
    top0 = _top10(model, world)
    assert _attacker_auc(emb0, gender) > 0.85
    settings = UnlearningConfig(
        distance="kl", covariance="shrunk", weighting="fixed", weight=0.8, steps=150, lr=1e-2,
        stop="steps",
    )
    report = unlearn_attribute(model, gender, settings, data=world.ratings)
    assert report.distance_after < 0.1 * report.distance_before
    assert report.steps == 150 and report.edited_users == world.n_users
    assert abs(_attacker_auc(model.user_embeddings(), gender) - 0.5) < 0.12
    # Taste depends strongly on gender in this world, so hiding it must cost some ranking.
    assert _overlap(top0, _top10(model, world)) > 0.7
    assert np.array_equal(model.item_embeddings(), items)
    assert np.array_equal(model.item_biases(), biases)
    assert not np.allclose(model.user_embeddings(), emb0)


def _mean_attacker_auc(emb: np.ndarray, labels: np.ndarray, splits: int = 10) -> float:
    """Fresh logistic regressions, each on a random half of the users, scored on the rest."""
    aucs = []
    for seed in range(splits):
        order = np.random.default_rng(seed).permutation(len(labels))
        train, test = order[: len(order) // 2], order[len(order) // 2 :]
        clf = LogisticRegression(max_iter=2000).fit(emb[train], labels[train])
        aucs.append(roc_auc_score(labels[test], clf.predict_proba(emb[test])[:, 1]))
    return float(np.mean(aucs))


def test_probe_stop_leaves_attackers_at_chance_not_mirrored(world) -> None:
    """Driving the KL to its minimum makes the half an attacker knows the mirror image of
    the other half (fresh attackers score well below 0.5); stopping where held-out probes
    are at chance leaves them near 0.5. (Probes every 30 steps: the same stop, at 210, as
    every 10, in a third of the time.)"""
    gender = world.attributes["gender"]
    base = _trained("bpr", world)
    assert _mean_attacker_auc(base.user_embeddings(), gender) > 0.85
    results = {}
    for stop in ("steps", "probe"):
        model = copy.deepcopy(base)
        report = unlearn_attribute(
            model, gender, UnlearningConfig(distance="kl", stop=stop, steps=300,
                                            probe_every=30),
            data=world.ratings,
        )
        results[stop] = (report, _mean_attacker_auc(model.user_embeddings(), gender))
    over, over_auc = results["steps"]
    probed, probed_auc = results["probe"]
    assert over.steps == 300 and over_auc < 0.46
    assert probed.steps < 300 and probed.steps % 30 == 0
    assert probed.probe_auc_before > 0.85 and abs(probed.probe_auc_after - 0.5) < 0.03
    assert abs(probed_auc - 0.5) < 0.05


def _attacker_bacc(emb: np.ndarray, labels: np.ndarray, classifiers: list[str]) -> float:
    """The inference attacker's balanced accuracy on the half of the users it does not know."""
    from simulator.attacks.inference import infer_attribute, pick_best
    from simulator.metrics.classification import balanced_accuracy

    known = np.zeros(len(labels), dtype=bool)
    known[np.random.default_rng(0).permutation(len(labels))[: len(labels) // 2]] = True
    best = pick_best(infer_attribute(emb, labels, known, 2, classifiers, 5, 0))
    return balanced_accuracy(labels[~known], best.proba[~known].argmax(1))


def test_probe_stop_with_the_attackers_classifiers_leaves_that_attacker_at_chance(world):
    """Probing with the attacker's own families (XGBoost beside the torch probes): after the
    edit that attacker, trained on half of the users, is within 0.03 of chance on the rest."""
    gender = world.attributes["gender"]
    model = _trained("bpr", world)
    classifiers = ["logreg", "xgboost"]
    assert _attacker_bacc(model.user_embeddings(), gender, classifiers) > 0.75
    report = unlearn_attribute(model, gender, UnlearningConfig(distance="kl", probe_every=30),
                               data=world.ratings, probes=("logreg", "mlp", "xgboost"))
    assert 0 < report.steps < 300 and abs(report.probe_auc_after - 0.5) < 0.03
    assert abs(_attacker_bacc(model.user_embeddings(), gender, classifiers) - 0.5) < 0.03


def test_probe_stop_waits_while_any_probe_family_finds_the_attribute(
    world, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two families at chance and one above it is not chance: the edit goes on, and keeps
    the check whose farthest family is closest to chance."""
    import simulator.defenses.unlearning.edit as unlearning

    readings = iter([{"logreg": 0.5, "mlp": 0.49, "xgboost": 0.62},
                     {"logreg": 0.47, "mlp": 0.48, "xgboost": 0.55},
                     {"logreg": 0.49, "mlp": 0.5, "xgboost": 0.5}])
    monkeypatch.setattr(unlearning, "held_out_aucs", lambda *args, **kwargs: next(readings))
    model = _trained("bpr", world, epochs=2)
    report = unlearn_attribute(model, world.attributes["gender"],
                               UnlearningConfig(distance="kl", probe_every=5),
                               data=world.ratings, probes=("logreg", "mlp", "xgboost"))
    assert report.probe_auc_before == 0.62 and report.steps == 10
    assert report.probe_auc_after == 0.5


def test_unlearning_probes_include_the_scenarios_attacker_classifiers() -> None:
    from simulator.defenses.protocol import DefenseContext
    from simulator.defenses.unlearning.defense import AttributeUnlearning
    from simulator.experiments.catalog import load_scenario
    from simulator.simulation.build import attacker_classifiers

    scenario = load_scenario("quickstart", ["attackers.0.classifiers=[forest, logreg]",
                                            "attackers.0.attributes=[gender]"])
    found = attacker_classifiers(scenario)
    assert found == {"gender": ("forest", "logreg")}
    context = DefenseContext({}, {}, 1, 1, 0, attacker_classifiers=found)
    default = AttributeUnlearning(config=UnlearningConfig(attribute="gender"), context=context)
    assert default.probe_families() == ("logreg", "mlp", "forest")
    chosen = AttributeUnlearning(config=UnlearningConfig(attribute="age", probes=["mlp"]),
                                  context=context)
    assert chosen.probe_families() == ("mlp",)


def test_users_without_ratings_keep_their_rows(world) -> None:
    """Rows the model learned nothing about stay at their initialisation and out of the
    class statistics."""
    model = _trained("bpr", world, epochs=10)
    known = world.ratings.subset(world.ratings.user >= 40)  # users 0..39 never rated
    emb0 = model.user_embeddings()
    report = unlearn_attribute(model, world.attributes["gender"],
                               UnlearningConfig(stop="steps", steps=20), data=known)
    after = model.user_embeddings()
    assert report.edited_users == world.n_users - 40
    assert np.array_equal(after[:40], emb0[:40])
    assert not np.allclose(after[40:], emb0[40:])


def test_unbiased_mmd_is_centred_on_zero_for_one_distribution() -> None:
    """Same distribution: the estimates fall on both sides of 0; shifted: clearly above."""
    gen = torch.Generator().manual_seed(5)
    estimates = torch.stack([
        mmd2_terms(torch.randn(150, 4, generator=gen), torch.randn(150, 4, generator=gen))
        for _ in range(40)
    ])
    assert (estimates < 0).any() and (estimates > 0).any()
    assert abs(float(estimates.mean())) < 3 * float(estimates.std()) / 40**0.5
    shifted = mmd2_terms(torch.randn(150, 4, generator=gen),
                         torch.randn(150, 4, generator=gen) + 1.0)
    assert (shifted > 10 * estimates.std(0)).all()


def test_unlearning_mgda_reports_weights_and_lowers_distance(world) -> None:
    model = _trained("bpr", world)
    gender = world.attributes["gender"]
    settings = UnlearningConfig(  # every step: this is about MGDA, not the probe stop
        weighting="mgda", utility="distance", covariance="diagonal", lr=1e-2, steps=60,
        stop="steps",
    )
    report = unlearn_attribute(model, gender, settings)
    assert 0.0 <= report.mean_alpha <= 1.0
    assert report.utility_before == 0.0 < report.utility_after
    # MGDA stops near the Pareto front: the distance regulariser soon balances the KL.
    assert report.distance_after < 0.6 * report.distance_before


def test_unlearning_requested_scope_moves_only_masked_rows(world) -> None:
    model = _trained("bpr", world, epochs=10)
    gender = world.attributes["gender"].copy()
    gender[::5] = -1
    emb0 = model.user_embeddings()
    mask = np.zeros(world.n_users, dtype=bool)
    mask[np.random.default_rng(1).choice(world.n_users, 120, replace=False)] = True
    settings = UnlearningConfig(scope="requested", weighting="fixed", weight=1.2, steps=40,
                                stop="steps")
    report = unlearn_attribute(model, gender, settings, data=world.ratings, users=mask)
    after = model.user_embeddings()
    assert report.edited_users == 120
    assert np.array_equal(after[~mask], emb0[~mask])
    assert (np.abs(after[mask] - emb0[mask]).sum(1) > 0).all()
    assert report.distance_after < report.distance_before
    with pytest.raises(ValueError, match="mask"):
        unlearn_attribute(model, gender, settings, data=world.ratings)


def test_unlearning_mf_with_its_own_loss(world) -> None:
    model = _trained("mf", world, epochs=20)
    gender = world.attributes["gender"]
    r = world.ratings
    mse0 = float(np.mean((model.predict(r.user, r.item) - r.rating) ** 2))
    settings = UnlearningConfig(
        distance="mmd", utility="model", weighting="fixed", weight=1.0, steps=100,
        stop="steps",
    )
    report = unlearn_attribute(model, gender, settings, data=world.ratings, seed=3)
    mse1 = float(np.mean((model.predict(r.user, r.item) - r.rating) ** 2))
    assert report.distance_after < 0.3 * report.distance_before
    assert mse1 < mse0 * 1.15
    with pytest.raises(ValueError, match="data"):
        unlearn_attribute(model, gender, settings)


def test_unlearning_metamf_edits_only_user_embeddings(world) -> None:
    tiny = {"user_dim": 8, "memory_dim": 16, "hidden": 16, "item_dim": 8, "rank": 2}
    model = _trained("metamf", world, epochs=2, options=tiny)
    net_before = {k: v.clone() for k, v in model.net.state_dict().items() if k != "user_emb"}
    emb0 = model.user_embeddings()
    settings = UnlearningConfig(covariance="shrunk", weighting="fixed", weight=0.4, steps=30,
                                stop="steps")
    report = unlearn_attribute(model, world.attributes["gender"], settings, data=world.ratings)
    assert report.distance_after < report.distance_before
    assert not np.allclose(model.user_embeddings(), emb0)
    for key, value in model.net.state_dict().items():
        if key != "user_emb":
            assert torch.equal(value, net_before[key]), key
