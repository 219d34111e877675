"""Users' lifecycle: opting out, deletion (and its membership-inference audit), conversion."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from simulator.experiments.catalog import load_scenario
from simulator.foundations.errors import ScenarioError
from simulator.simulation.model import PrivacyModel

TINY = [
    "world.n_users=400", "world.n_items=200", "world.mean_ratings_per_user=30",
    "simulation.steps=6", "simulation.device=cpu", "platform.retrain_every=1",
    "platform.first_epochs=30", "platform.epochs=5", "platform.reg=0.0", "attackers=[]",
    "output.plots=false",
    "population.types={sharers: {share: 0.8, beta: 1.0}, abstainers: {share: 0.2, beta: 0.0}}",
]
DELETION = "events=[{step: 3, kind: deletion, share: 0.3, types: [sharers]}]"


def _run(*extra: str) -> PrivacyModel:
    model = PrivacyModel(load_scenario("quickstart", [*TINY, *extra]))
    model.run()
    return model


@pytest.fixture(scope="module")
def deleted() -> PrivacyModel:
    return _run(DELETION)


def test_deletion_removes_every_rating_of_the_users(deleted) -> None:
    gone = np.flatnonzero(deleted.population.deleted)
    assert len(gone) > 50
    assert not np.isin(deleted.platform.data.table.user, gone).any()
    assert set(np.unique(deleted.platform.deleted_ratings.user)) <= set(gone)
    assert np.all(deleted.population.inclination[gone] == 0)  # drawn among sharers only
    events = pd.DataFrame(deleted.records.events)
    assert events[events["kind"] == "deletion"]["value"].tolist() == [len(gone)]


def test_exact_deletion_brings_membership_inference_to_chance(deleted) -> None:
    metrics = pd.DataFrame(deleted.records.metrics).set_index("step")
    assert metrics.loc[3, "mia_auc_before_deletion"] > 0.8  # the old model remembers them
    assert abs(metrics.loc[3, "mia_auc"] - 0.5) < 0.1
    assert metrics["mia_auc"].iloc[:3].isna().all()


def test_approximate_deletion_leaves_traces_exact_does_not() -> None:
    by_rating = "platform.ranking.method=score"  # the attack reads MF's predicted ratings
    exact = _run("platform.model=mf", by_rating, DELETION)
    approximate = _run("platform.model=mf", by_rating, "platform.deletion=finetune", DELETION)
    auc = {name: pd.DataFrame(m.records.metrics)["mia_auc"].iloc[-1]
           for name, m in (("exact", exact), ("approximate", approximate))}
    assert auc["approximate"] > auc["exact"] + 0.1


def test_opted_out_users_stop_disclosing_but_stay_in_the_data() -> None:
    model = PrivacyModel(load_scenario("quickstart", [
        *TINY, "events=[{step: 2, kind: opt_out, share: 0.5}]"]))
    model.run(2)
    before = model.population.n_disclosed.copy()
    model.run(4)
    out = model.population.opted_out
    assert 0.4 < out.mean() < 0.6
    np.testing.assert_array_equal(model.population.n_disclosed[out], before[out])
    assert (model.population.n_disclosed[~out] >= before[~out]).all()
    assert np.isin(np.flatnonzero(out & (before > 0)), model.platform.data.table.user).all()


def test_conversion_moves_users_to_another_type() -> None:
    model = PrivacyModel(load_scenario("quickstart", [
        *TINY, "population.policy=privacy_calculus",
        "events=[{step: 1, kind: convert, share: 0.5, types: [sharers], to: abstainers}]"]))
    model.run()
    sharers_left = (model.population.inclination == 0).mean()
    assert 0.3 < sharers_left < 0.5  # about half of the 80% moved
    moved = model.population.snapshot()["beta"][model.population.inclination == 1]
    assert moved.max() < 0.1


def test_event_types_must_exist() -> None:
    with pytest.raises(ScenarioError, match="unknown inclination type 'nobody'"):
        load_scenario("quickstart", [*TINY, "events=[{step: 1, kind: opt_out, types: [nobody]}]"])


def test_inclination_groups_follow_converted_users() -> None:
    model = PrivacyModel(load_scenario("quickstart", [
        *TINY, "events=[{step: 2, kind: convert, share: 0.5, types: [sharers], to: abstainers}]"]))
    model.run()
    groups = pd.DataFrame(model.records.groups)
    sizes = groups[groups["group_kind"] == "inclination"].pivot(
        index="step", columns="group", values="n_users")
    assert sizes.loc[1, "sharers"] == 320 and sizes.loc[2, "sharers"] < 200
    assert (sizes.sum(axis=1) == 400).all()


def test_unlearning_requests_arrive_as_events_and_drive_the_defense() -> None:
    model = _run(
        "platform.model=bpr",
        "platform.defenses.unlearning={attribute: gender, scope: requested, steps: 20, "
        "distance: kl, stop: steps}",
        "events=[{step: 2, kind: unlearning_request, share: 0.25, types: [sharers]}]",
    )
    metrics = pd.DataFrame(model.records.metrics)
    asked = model.population.asks_unlearning
    assert 0.15 < asked.mean() < 0.25
    assert metrics["unlearning_users"].iloc[:2].fillna(0).eq(0).all()
    assert metrics["unlearning_users"].iloc[-1] == (asked & model.population.active).sum()
