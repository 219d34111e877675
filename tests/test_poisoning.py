"""Poisoning attackers and robustness defenses inside running simulations."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from agents.platform import PlatformData
from simulator.attacks.fake_profiles import PublicStats, fake_profiles
from simulator.attacks.protocol import AttackerContext
from simulator.attacks.shilling_attacker import ShillingAttacker, ShillingAttackerConfig
from simulator.attacks.targets import configured_or_by_popularity, items_by_popularity
from simulator.experiments.catalog import load_scenario
from simulator.experiments.sweep import run_sweep
from simulator.foundations.errors import ScenarioError
from simulator.metrics.target_standing import prediction_shift, target_view
from simulator.simulation.model import PrivacyModel
from simulator.world import generate_synthetic
from simulator.world.base import Interactions
from simulator.world.subsample import keep_items

pytestmark = pytest.mark.heavy  # long tests: started first (tests/conftest.py)

TINY = [
    "world.n_users=300", "world.n_items=200", "world.mean_ratings_per_user=30",
    "simulation.steps=4", "simulation.device=cpu", "platform.retrain_every=2",
    "platform.first_epochs=15", "platform.epochs=3", "platform.model=mf",
    "platform.ranking.method=score",  # the attacks' mechanics on MF's own predicted ratings
    "platform.warm_start=false", "output.plots=false",
]
PUSH = "{kind: shilling, model: average, attack_size: 0.1, filler_size: 0.05, start_step: 2}"


def _run(*extra: str) -> PrivacyModel:
    model = PrivacyModel(load_scenario("quickstart", [*TINY, *extra]))
    model.run()
    return model


def _metrics(model: PrivacyModel) -> pd.DataFrame:
    return pd.DataFrame(model.records.metrics)


def _events(model: PrivacyModel, kind: str) -> pd.DataFrame:
    events = pd.DataFrame(model.records.events)
    chosen = events[events["kind"] == kind].copy()
    chosen["detail"] = chosen["detail"].map(json.loads)
    return chosen


@pytest.fixture(scope="module")
def pushed() -> PrivacyModel:
    return _run(f"attackers=[{PUSH}]")


def test_push_attack_raises_the_target_above_the_clean_twin(pushed) -> None:
    metrics = _metrics(pushed)
    before, after = metrics.iloc[1], metrics.iloc[-1]
    # Before the attack the two platforms are the same model.
    assert before["target_hr_10"] == before["target_hr_10_clean"]
    assert before["prediction_shift"] == 0.0 and before["hr_10_change"] == 0.0
    assert after["target_hr_10"] > after["target_hr_10_clean"] + 0.3
    assert after["prediction_shift"] > 0.5
    assert after["fake_profiles"] == 30 and after["fake_users_trained"] == 30
    injection = _events(pushed, "profile_injection")
    assert injection["step"].tolist() == [2]
    assert injection["detail"].iloc[0]["profiles_total"] == 30


def test_nuke_attack_lowers_the_target(pushed) -> None:
    nuke = ("{kind: shilling, model: love_hate, intent: nuke, target_popularity: popular, "
            "attack_size: 0.1, filler_size: 0.05, start_step: 2}")
    after = _metrics(_run(f"attackers=[{nuke}]")).iloc[-1]
    assert after["prediction_shift"] < -0.3
    assert after["target_hr_50"] <= after["target_hr_50_clean"]


def test_fake_accounts_do_not_disturb_the_inference_attacker() -> None:
    inference = "{kind: inference, classifiers: [logreg], folds: 3}"
    model = _run(f"attackers=[{inference}, {PUSH}]")
    metrics = _metrics(model)
    assert np.isfinite(metrics["leak_gender_auc"].iloc[-1])
    assert "attacker1_target_hr_10" not in metrics  # one poisoning attacker: plain names
    assert model.platform.recommender.n_users == model.n_genuine + 30


def test_detection_drops_flagged_profiles_and_reports_its_errors() -> None:
    model = _run(f"attackers=[{PUSH}]", "simulation.steps=3",
                 "platform.defenses.detection={method: threshold, assumed_attack_size: 0.09,"
                 " start_step: 2}")
    metrics = _metrics(model)
    assert metrics["detection_recall"].iloc[:2].isna().all()  # off before its start step
    last = metrics.iloc[-1]
    accounts = len(np.unique(model.platform.data.table.user))  # the table of the last retrain
    assert last["detection_flagged"] == round(0.09 * accounts)
    # Flagging 9% at random would find 9% of the fakes.
    assert 0.0 <= last["detection_precision"] <= 1.0 and last["detection_recall"] > 0.18
    assert last["fake_users_trained"] == 30 - round(last["detection_recall"] * 30)
    retrains = _events(model, "retrain")
    assert retrains["detail"].map(lambda d: "detection" in d["defenses"]).tolist() == [
        False, True]


def test_apr_switches_on_and_changes_training() -> None:
    apr = "platform.defenses.apr={epsilon: 0.1, weight: 1.0, start_step: 2}"
    plain, robust = _run(f"attackers=[{PUSH}]"), _run(f"attackers=[{PUSH}]", apr)
    defenses = _events(robust, "retrain")["detail"].map(lambda d: d["defenses"]).tolist()
    assert defenses == [[], ["apr"]]
    first, last = _metrics(plain), _metrics(robust)
    assert first["mae"].iloc[0] == last["mae"].iloc[0]
    assert first["mae"].iloc[-1] != last["mae"].iloc[-1]


def test_item_owner_lifts_its_item_for_the_segment() -> None:
    owner = ("{kind: item_perturbation, segment_attribute: gender, segment_value: 0, "
             "epsilon: 1.0, objective: score, start_step: 2}")
    model = _run("platform.model=bpr", f"attackers=[{owner}]")
    last = _metrics(model).iloc[-1]
    assert last["perturbation_gain"] > 0
    assert last["owned_shift_segment"] > 0
    assert last["owned_shift_segment"] > last["owned_shift_others"]
    assert _events(model, "item_perturbation")["step"].tolist() == [2]


@pytest.mark.parametrize(("overrides", "message"), [
    (["attackers=[{kind: shilling, model: love_hate}]"], "nuke attack"),
    (["attackers=[{kind: poison}]"], "unknown kind 'poison'"),
    (["attackers=[{kind: shilling, attack_size: 0}]"], "attackers.0.attack_size"),
    (["attackers=[{kind: inference}, {kind: inference}]"], "at most one inference"),
    (["platform.model=metamf", "attackers=[{kind: item_perturbation, target: features}]"],
     "bpr or mf models learn from"),
    (["platform.defenses.detection={method: pca, assumed_attack_size: null}"],
     "assumed_attack_size"),
])
def test_bad_poisoning_settings_are_named(overrides: list[str], message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        load_scenario("quickstart", overrides)


def test_segment_value_outside_the_attribute_is_named() -> None:
    owner = "{kind: item_perturbation, segment_attribute: gender, segment_value: 5}"
    with pytest.raises(ScenarioError, match=r"attackers.0.segment_value: gender codes are 0..1"):
        PrivacyModel(load_scenario("quickstart", [*TINY, "platform.model=bpr",
                                                  f"attackers=[{owner}]"]))


# --- the adaptive attacker ----------------------------------------------------------------


class _FixedScores:
    """A recommender stand-in whose scores rank `top` first for every user."""

    device = torch.device("cpu")

    def __init__(self, n_items: int, top: int) -> None:
        self.scores = torch.linspace(1.0, 0.0, n_items).roll(top)

    def score(self, users: torch.Tensor) -> torch.Tensor:
        return self.scores.expand(len(users), -1).clone()


def _context(n_items: int, implicit: bool = False) -> AttackerContext:
    """A shilling attacker's place beside 100 genuine users of a world of `n_items`."""
    world = generate_synthetic(n_users=100, n_items=n_items, seed=0, mean_ratings_per_user=20)
    return AttackerContext(index=0, label="shilling0", world=world, seed=0, n_genuine=100,
                           first_slot=100, implicit=implicit, device=torch.device("cpu"))


def _adaptive(public: Interactions, n_items: int) -> ShillingAttacker:
    config = ShillingAttackerConfig(model="random", targets=[7], attack_size=0.2,
                                    filler_size=0.1, adaptive=True, probes=4, reserve=0.5)
    return ShillingAttacker(settings=config, context=_context(n_items))


@pytest.fixture
def public() -> Interactions:
    world = generate_synthetic(n_users=100, n_items=60, seed=0, mean_ratings_per_user=20)
    return world.ratings


def test_adaptive_attacker_holds_back_when_its_goal_is_met(public) -> None:
    attacker = _adaptive(public, 60)
    first = attacker.act(0, public)
    assert attacker.injected == 10 and attacker.reserve == 10
    assert len(np.unique(first.ratings.user)) == 10 + 4  # profiles and probes
    assert attacker.observe(_FixedScores(60, top=7)) == 1.0
    nothing = attacker.act(1, public)
    assert len(nothing.ratings) == 0 and attacker.injected == 10


def test_adaptive_attacker_reinjects_and_moves_fillers_when_it_misses(public) -> None:
    attacker = _adaptive(public, 60)
    first = attacker.act(0, public)
    platform = _FixedScores(60, top=30)
    assert attacker.observe(platform) == 0.0  # the target ranks far down
    reaction = attacker.act(1, public)
    assert attacker.injected == 10 + 3 and attacker.reserve == 7  # a quarter of 10, rounded up
    np.testing.assert_array_equal(reaction.replaced_users, np.arange(100, 110))
    # The new fillers come from what the probes were shown: each probe's top 50 of the items
    # it has not rated.
    shown = set()
    for probe in attacker.probe_users:
        scores = platform.scores.clone()
        scores[first.ratings.item[first.ratings.user == probe]] = -np.inf
        shown |= set(torch.topk(scores, 50).indices.tolist())
    rewritten = reaction.ratings.subset(reaction.ratings.user < 110)
    fillers = rewritten.item[rewritten.item != 7]
    assert set(fillers.tolist()) <= shown
    assert not set(fillers.tolist()) <= set(first.ratings.item[first.ratings.user < 110])


def test_a_rewritten_profile_replaces_the_old_one() -> None:
    data = PlatformData()
    data.ingest(Interactions(np.array([0, 1, 1]), np.array([3, 4, 5]),
                             np.ones(3, np.float32), np.zeros(3, np.int64)))
    data.drop_users(np.array([1]))
    data.ingest(Interactions(np.array([1]), np.array([9]), np.ones(1, np.float32),
                             np.zeros(1, np.int64)))
    pairs = zip(data.table.user.tolist(), data.table.item.tolist(), strict=True)
    assert sorted(pairs) == [(0, 3), (1, 9)]


def test_filler_pool_restricts_fillers() -> None:
    world = generate_synthetic(n_users=100, n_items=60, seed=0, mean_ratings_per_user=20)
    stats = PublicStats.from_ratings(world.ratings, 60)
    pool = np.arange(20, 40)
    fakes = fake_profiles("average", "push", np.array([0]), 5, 8, stats,
                          np.random.default_rng(0), filler_pool=pool)
    assert np.isin(fakes.item[fakes.item != 0], pool).all()
    small = fake_profiles("average", "push", np.array([0]), 5, 8, stats,
                          np.random.default_rng(0), filler_pool=np.array([20, 21]))
    per_user = [set(small.item[small.user == u]) for u in range(5)]
    assert all({20, 21} <= items and len(items) == 9 for items in per_user)


# --- measurement and data shape ---------------------------------------------------------


def test_target_view_ranks_among_unrated_items_only() -> None:
    scores = torch.tensor([[0.9, 0.8, 0.7, 0.1], [0.1, 0.2, 0.3, 0.9]])
    view = target_view(lambda users: scores[users], np.array([0, 1]), np.array([2, 3]),
                       np.array([0, 1]), np.array([0, 3]), 4, torch.device("cpu"))
    # user 0 rated item 0: item 2 has one unrated item above it; user 1 rated target 3
    np.testing.assert_array_equal(view.ranks, [[1, 2], [0, -1]])
    assert math.isnan(view.scores[1, 1])
    assert view.hit_rate(1) == pytest.approx(0.25) and view.hit_rate(2) == pytest.approx(0.5)
    shifted = target_view(lambda users: scores[users] + 0.5, np.array([0, 1]), np.array([2, 3]),
                          np.array([0, 1]), np.array([0, 3]), 4, torch.device("cpu"))
    assert prediction_shift(shifted, view) == pytest.approx(0.5)


def test_keep_items_reshapes_the_catalogue() -> None:
    world = generate_synthetic(n_users=80, n_items=50, seed=1, mean_ratings_per_user=20)
    popular = keep_items(world, 10, "popular", 0)
    counts = np.bincount(world.ratings.item, minlength=50)
    assert popular.n_items == 10 and popular.ratings.item.max() < 10
    kept_counts = np.sort(np.bincount(popular.ratings.item))[::-1]
    assert np.array_equal(np.sort(counts)[::-1][:10], kept_counts)
    sample = keep_items(world, 25, "random", 0)
    assert sample.n_items == 25 and len(sample.ratings) < len(world.ratings)
    assert keep_items(world, 25, "random", 0).ratings.item.tolist() == sample.ratings.item.tolist()
    with pytest.raises(ValueError, match="n_items must be in"):
        keep_items(world, 51, "random", 0)


def test_shilling_sweep_writes_the_attack_study(tmp_path: Path) -> None:
    sweep = tmp_path / "attack.yaml"
    sweep.write_text(
        "name: attack\nbase: quickstart\nreport: [attack_success]\n"
        f"set: {json.dumps([*TINY, 'simulation.steps=3', f'attackers=[{PUSH}]'])}\n"
        "grid:\n  attackers.0.model: [random, average]\n  world.n_items: [100, 200]\n"
        "seeds: [0]\nworkers: 2\n"
    )
    folder = run_sweep(sweep, out=tmp_path / "out")
    table = pd.read_csv(folder / "attack.csv")
    assert len(table) == 4 and set(table["attack"]) == {"random", "average"}
    assert (table["target_hr_10_gain"] > 0).all()
    assert (folder / "plots" / "attack_success.png").stat().st_size > 1000


def test_targets_follow_public_popularity() -> None:
    counts = np.r_[np.zeros(5), np.arange(1, 101)]  # items 0-4 never rated
    rng = np.random.default_rng(0)
    unpopular = items_by_popularity(counts, "unpopular", 3, rng)
    popular = items_by_popularity(counts, "popular", 1, rng)
    assert counts[unpopular].max() <= 13 and counts[unpopular].min() >= 1
    assert counts[popular][0] == pytest.approx(np.percentile(counts[5:], 95), abs=1)
    with pytest.raises(ValueError, match="band"):
        items_by_popularity(counts, "niche", 1, rng)
    with pytest.raises(ValueError, match="n must be in"):
        items_by_popularity(counts, "median", 101, rng)
    assert configured_or_by_popularity([3, 7], "median", 1, counts, rng, "items").tolist() == [
        3, 7]
    with pytest.raises(ValueError, match="targets: item 105 is outside the catalogue of 105"):
        configured_or_by_popularity([105], "median", 1, counts, rng, "targets")


def test_implicit_platforms_only_get_liked_interactions(public) -> None:
    config = ShillingAttackerConfig(model="average", targets=[7], attack_size=0.2,
                                    filler_size=0.2)
    explicit = ShillingAttacker(settings=config, context=_context(60)).act(0, public).ratings
    implicit = ShillingAttacker(settings=config,
                                context=_context(60, implicit=True)).act(0, public).ratings
    assert explicit.rating.min() < 4 and implicit.rating.min() >= 4
    assert (implicit.item == 7).sum() == 20  # every profile still takes the pushed target


def test_side_information_owner_rewrites_only_its_items_features() -> None:
    scenario = load_scenario("quickstart", [
        *TINY, "platform.model=bpr", "platform.item_features=true", "simulation.steps=3",
        "attackers=[{kind: item_perturbation, target: features, items: [3], epsilon: 0.8, "
        "segment_attribute: gender, segment_value: 0, start_step: 1}]",
    ])
    world = generate_synthetic(n_users=300, n_items=200, seed=0, mean_ratings_per_user=30)
    genres = (np.random.default_rng(0).random((200, 6)) < 0.3).astype(np.float32)
    model = PrivacyModel(scenario, world=dataclasses.replace(world, item_features=genres))
    model.run()
    declared = model.platform.recommender.item_features()
    changed = np.flatnonzero(np.any(declared != genres, axis=1))
    assert changed.tolist() == [3]
    assert np.linalg.norm(declared[3] - genres[3]) <= 0.8 + 1e-5
    assert declared.min() >= 0.0 and declared.max() <= 1.0
    np.testing.assert_array_equal(model.clean_platform.recommender.item_features(), genres)
    assert _metrics(model)["perturbation_gain"].iloc[-1] > 0


def test_side_information_settings_are_checked() -> None:
    owner = "attackers=[{kind: item_perturbation, target: features}]"
    with pytest.raises(ScenarioError, match="needs platform.item_features"):
        load_scenario("quickstart", ["platform.model=bpr", owner])
    with pytest.raises(ScenarioError, match="cannot yet run with item_features"):
        load_scenario("quickstart", ["platform.model=mf", "platform.item_features=true",
                                     "platform.defenses.dp={noise_multiplier: 1.0}"])
    world = generate_synthetic(n_users=300, n_items=200, seed=0, mean_ratings_per_user=30)
    with pytest.raises(ScenarioError, match="has no item side information"):
        PrivacyModel(load_scenario("quickstart", [*TINY, "platform.item_features=true"]),
                     world=dataclasses.replace(world, item_features=None))


def test_sweeps_over_list_values_stack_their_tables(tmp_path: Path) -> None:
    sweep = tmp_path / "lists.yaml"
    sets = [*TINY, "simulation.steps=1", f"attackers=[{PUSH}]", "attackers.0.start_step=0"]
    sweep.write_text(
        "name: lists\nbase: quickstart\n"
        f"set: {json.dumps(sets)}\n"
        "grid:\n  attackers.0.targets: [[3], [4, 5]]\nseeds: [0]\nworkers: 1\n"
    )
    folder = run_sweep(sweep, out=tmp_path / "out")
    results = pd.read_parquet(folder / "results.parquet")
    assert sorted(results["attackers.0.targets"]) == ["[3]", "[4, 5]"]
