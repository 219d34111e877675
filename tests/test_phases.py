"""The model runs each step's phases through Mesa, with Mesa's `steps` as the step, and is
built from a plain dict of settings as well as from a scenario file."""

from __future__ import annotations

import ast
from pathlib import Path

import mesa
import pandas as pd
import pytest

from agents import AttackerAgent, CleanTwin, PlatformAgent, UserPopulation
from simulator.experiments.catalog import load_scenario
from simulator.foundations.errors import ScenarioError
from simulator.simulation.model import PrivacyModel

TINY = [
    "world.n_users=120", "world.n_items=80", "world.mean_ratings_per_user=20",
    "world.min_ratings_per_user=5", "simulation.steps=2", "simulation.device=cpu",
    "platform.first_epochs=2", "platform.epochs=1", "platform.retrain_every=2",
    "output.plots=false",
]
EVERY_KIND = (
    "attackers=[{kind: inference, classifiers: [logreg], folds: 3}, "
    "{kind: shilling, adaptive: true, start_step: 0}, "
    "{kind: item_perturbation, n_items: 1, start_step: 0}]"
)
SETTINGS = {
    "world": {"n_users": 100, "n_items": 60, "mean_ratings_per_user": 15,
              "min_ratings_per_user": 5},
    "platform": {"first_epochs": 2, "epochs": 1},
    "attackers": [],
    "simulation": {"steps": 3, "device": "cpu"},
    "output": {"plots": False},
}
ROOT = Path(__file__).resolve().parents[1]


def test_every_phase_runs_through_mesa_in_the_documented_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = PrivacyModel(load_scenario("quickstart", [*TINY, EVERY_KIND]))
    ran: list[tuple[str, str]] = []
    do = mesa.agent.AgentSet.do

    def recording(self: mesa.agent.AgentSet, method: str, *args: object) -> object:
        if method == "act":  # an attacker phase: the attackers that declare it act
            acting = {type(a.attacker).__name__ for a in self if args[0] in a.attacker.phases}
            ran.extend((kind, str(args[0])) for kind in sorted(acting))
        else:
            ran.append(("/".join(sorted({type(a).__name__ for a in self})), method))
        return do(self, method, *args)

    monkeypatch.setattr(mesa.agent.AgentSet, "do", recording)
    model.step()  # step 0: the platform retrains
    retrain_step = list(ran)
    ran.clear()
    model.step()  # step 1: no retrain, so nobody reacts to one
    assert retrain_step == [
        ("UserPopulation", "disclose"),
        ("PlatformAgent", "receive"), ("CleanTwin", "receive"),
        ("ShillingAttacker", "inject"), ("ItemOwner", "pick_items"),
        ("PlatformAgent", "retrain_if_due"),
        ("ItemOwner", "perturb"), ("ShillingAttacker", "probe"),
        ("CleanTwin", "retrain_if_due"),
        ("InferenceAttacker", "infer"),
        ("UserPopulation", "observe"),
    ]
    assert ran == [p for p in retrain_step if p[1] not in ("perturb", "probe")]
    assert PrivacyModel.__doc__ is not None
    attackers = ("ShillingAttacker", "ItemOwner", "InferenceAttacker")
    documented = [f"`{phase}`" if kind in attackers else f"{kind}.{phase}"
                  for kind, phase in retrain_step]
    positions = [PrivacyModel.__doc__.index(name) for name in documented]
    assert positions == sorted(positions)


def test_each_agent_kind_is_one_mesa_agent_set_and_users_are_one_agent() -> None:
    model = PrivacyModel(load_scenario("quickstart", [*TINY, EVERY_KIND]))
    by_type = model.agents_by_type
    assert list(by_type[UserPopulation]) == [model.population]
    assert list(by_type[PlatformAgent]) == [model.platform]
    assert list(by_type[CleanTwin]) == [model.clean_platform]
    assert [a.attacker for a in by_type[AttackerAgent]] == model.attackers
    assert model.attacker in model.attackers and model.item_owners[0] in model.attackers
    assert len(model.agents) == 6  # not one agent per user


def test_mesa_steps_is_the_step() -> None:
    model = PrivacyModel(load_scenario("quickstart", [*TINY, "attackers=[]"]))
    assert model.steps == 0
    assert "step_index" not in vars(model)  # no counter besides Mesa's
    model.step()
    assert model.steps == model.step_index == 1
    model.run(1)
    assert model.steps == 2
    assert [row["step"] for row in model.records.metrics] == [0, 1]
    assert model.records.agents[-1]["step"][0] == 1


def test_a_model_is_built_from_a_plain_dict_of_settings() -> None:
    model = PrivacyModel.from_settings(SETTINGS, {"simulation.steps": 2})
    assert model.scenario.simulation.steps == 2
    assert model.world.n_users == 100
    model.run()
    assert pd.DataFrame(model.records.metrics)["step"].tolist() == [0, 1]
    direct = PrivacyModel(SETTINGS)
    assert direct.scenario.simulation.steps == 3


def test_bad_settings_name_the_key() -> None:
    with pytest.raises(ScenarioError, match="simulation.stepz"):
        PrivacyModel({"simulation": {"stepz": 3}})
    with pytest.raises(ScenarioError, match="platform.retrain_every"):
        PrivacyModel.from_settings(SETTINGS, {"platform.retrain_every": 0})


def _imports(package: str) -> set[str]:
    found: set[str] = set()
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module)
    return found


@pytest.mark.parametrize("package", ["simulator/metrics", "simulator/attacks",
                                     "simulator/recommenders", "simulator/defenses",
                                     "simulator/world"])
def test_the_engine_never_imports_agents_or_the_model(package: str) -> None:
    bad = {m for m in _imports(package)
           if m == "agents" or m.startswith("agents.") or m == "simulator.simulation.model"}
    assert not bad, bad


def test_metrics_never_import_attacks() -> None:
    # The attacker scores itself with the leakage metrics' AUC: the import goes one way.
    assert not {m for m in _imports("simulator/metrics") if m.startswith("simulator.attacks")}
