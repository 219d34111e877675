"""The inference attacker attacks afresh whenever what it sees has changed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold
from sklearn.preprocessing import MaxAbsScaler

from simulator.attacks.features import rating_features
from simulator.experiments.catalog import load_scenario
from simulator.simulation.model import PrivacyModel

SMALL = [
    "world.n_users=200", "world.n_items=150", "world.mean_ratings_per_user=25",
    "platform.first_epochs=3", "platform.epochs=1", "attackers.0.classifiers=[logreg]",
    "attackers.0.folds=3", "simulation.steps=4", "platform.retrain_every=2",
    "simulation.device=cpu",
]


def _inference_steps(threat: str) -> list[int]:
    model = PrivacyModel(load_scenario("quickstart", [*SMALL, f"attackers.0.threat={threat}"]))
    model.run()
    return [e["step"] for e in model.records.events if e["kind"] == "attribute_inference"]


def test_embedding_attacks_once_per_model_and_ratings_every_step() -> None:
    assert _inference_steps("embedding") == [0, 2]  # the embeddings change at retrains only
    assert _inference_steps("ratings") == [0, 1, 2, 3]  # disclosures grow every step
    assert _inference_steps("recommendations") == [0, 1, 2, 3]  # lists skip new disclosures


def _ratings_threat_run(data_dir: Path, retrain_every: int) -> tuple[PrivacyModel, pd.DataFrame]:
    scenario = load_scenario("ml100k-baseline", [
        f"world.path={data_dir / 'ml-100k'}",
        "population.types={everyone: {share: 1.0, beta: 1.0}}",
        "attackers.0.threat=ratings", "attackers.0.classifiers=[logreg]",
        "attackers.0.attributes=[gender]", "simulation.steps=2",
        f"platform.retrain_every={retrain_every}", "platform.first_epochs=2",
        "platform.epochs=1", "simulation.device=cpu",
    ])
    model = PrivacyModel(scenario)
    model.run()
    return model, pd.DataFrame(model.records.metrics)


def test_ratings_leakage_does_not_go_stale_between_retrains(data_dir: Path) -> None:
    """ml100k-baseline, everyone disclosing, ratings threat: the step-1 leakage is the same
    whether the platform retrains at step 1 or not, and it is the leakage of step 1's
    disclosures (a plain logistic regression on them agrees), not step 0's carried over."""
    model, every_step = _ratings_threat_run(data_dir, 1)
    _, every_other = _ratings_threat_run(data_dir, 2)
    assert not every_other.loc[1, "retrained"]
    assert every_step.loc[1, "leak_gender_auc"] == every_other.loc[1, "leak_gender_auc"]
    assert every_other.loc[1, "leak_gender_auc"] != every_other.loc[0, "leak_gender_auc"]

    # Independent check: sklearn on the same disclosed ratings, the same known users.
    world = model.world
    known = model.attacker.known
    labels = world.attributes["gender"]
    x = MaxAbsScaler().fit_transform(
        rating_features(model.platform.data.table, world.n_users, world.n_items)
    )
    # The attacker predicts unknown users by the mean of its stratified-fold models.
    folds = StratifiedKFold(5, shuffle=True, random_state=model.attacker.seed)
    x_known, y_known = x[known], labels[known]
    proba = np.mean([
        LogisticRegression(C=1.0, max_iter=1000).fit(x_known[train], y_known[train])
        .predict_proba(x[~known])[:, 1]
        for train, _ in folds.split(np.zeros(len(y_known)), y_known)
    ], axis=0)
    reference = roc_auc_score(labels[~known], proba)
    assert abs(every_other.loc[1, "leak_gender_auc"] - reference) < 0.002  # float32 vs 64
    assert every_other.loc[1, "leak_gender_auc"] > every_other.loc[0, "leak_gender_auc"] + 0.05
    assert np.isfinite(reference) and reference > 0.65
