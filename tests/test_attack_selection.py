"""Cross-validating every K-th attack: refits in between keep the choice and cost one fit."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from simulator.attacks import inference
from simulator.attacks.inference import infer_attribute
from simulator.experiments.catalog import load_scenario
from simulator.metrics.classification import leakage_scores
from simulator.simulation.model import PrivacyModel


def _planted(seed: int, shift: float = 1.2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, 900)
    x = rng.normal(size=(900, 6)).astype(np.float32)
    x[:, 0] += shift * labels
    known = np.zeros(900, dtype=bool)
    known[rng.permutation(900)[:450]] = True
    return x, labels, known


def test_a_refit_keeps_the_earlier_choice_and_fits_once(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    x, labels, known = _planted(0)
    chosen = infer_attribute(x, labels, known, 3, ["logreg", "xgboost"], 5, 0, refit=True)
    assert chosen[1].rounds is not None and chosen[1].rounds >= 1
    fits = []
    original = inference._fit_predict

    def counting(name, seed, device, x_train, *rest):  # type: ignore[no-untyped-def]
        fits.append(len(x_train))
        return original(name, seed, device, x_train, *rest)

    monkeypatch.setattr(inference, "_fit_predict", counting)
    rng = np.random.default_rng(1)  # new features of the same users
    x2 = rng.normal(size=x.shape).astype(np.float32)
    x2[:, 0] += 1.2 * labels
    again = infer_attribute(x2, labels, known, 3, ["logreg", "xgboost"], 5, 0, selected=chosen)
    assert fits == [450]  # XGBoost once on all known users (logistic regression in torch)
    assert [o.cv_auc for o in again] == [o.cv_auc for o in chosen]
    assert again[1].rounds == chosen[1].rounds
    for outcome in again:
        assert leakage_scores(labels[~known], outcome.proba[~known])["auc"] > 0.7


def test_a_run_cross_validates_every_kth_attack() -> None:
    small = [
        "world.n_users=300", "world.n_items=150", "world.mean_ratings_per_user=25",
        "world.signal=3.0", "simulation.steps=10", "platform.retrain_every=2",
        "platform.first_epochs=5", "platform.epochs=2", "attackers.0.folds=3",
        "attackers.0.attributes=[gender]", "simulation.device=cpu",
    ]
    model = PrivacyModel(load_scenario("quickstart", [*small, "attackers.0.selection_every=2"]))
    model.run()
    events = pd.DataFrame(model.records.events)
    attacks = events[events["kind"] == "attribute_inference"]
    details = [json.loads(d) if isinstance(d, str) else d for d in attacks["detail"]]
    assert [d["cross_validated"] for d in details] == [True, False, True, False, True]
    metrics = pd.DataFrame(model.records.metrics)
    cv = metrics["leak_gender_cv_auc_logreg"]
    assert cv[2] == cv[0] and cv[4] != cv[2]  # carried at the refit, new at the next choice
    assert metrics["leak_gender_auc_logreg"][2] != metrics["leak_gender_auc_logreg"][0]
