"""The run-time estimate: work counts read from the scenario, coefficients fitted by
non-negative least squares, and what `privsim validate` prints."""

from __future__ import annotations

import math

import pytest
from typer.testing import CliRunner

from simulator.cli import app
from simulator.experiments.catalog import list_scenarios, load_scenario
from simulator.scenario.run_time import (
    PARTS,
    estimate_run_time,
    fit_coefficients,
    load_coefficients,
    workload,
)

SHILLING = "attackers+={kind: shilling, start_step: 3}"


def test_work_counts_follow_what_the_scenario_asks_for() -> None:
    plain = workload(load_scenario("quickstart"))
    longer = workload(load_scenario("quickstart", ["simulation.steps=40"]))
    assert longer["measurement"]["rankings"] == 2 * plain["measurement"]["rankings"]
    assert longer["training"]["epochs_bpr"] > plain["training"]["epochs_bpr"]
    poisoned = workload(load_scenario("quickstart", [SHILLING]))
    # the clean twin trains and ranks too
    assert poisoned["training"]["epochs_bpr"] == 2 * plain["training"]["epochs_bpr"]
    assert poisoned["attacker"]["poisoning_steps"] == 20
    unlearning = workload(load_scenario("quickstart", [
        "platform.defenses.unlearning={attribute: gender, start_step: 10}"]))
    assert unlearning["training"]["unlearning_users_synthetic"] == 1000 * 5  # retrains 10..18
    assert workload(load_scenario("quickstart", ["platform.model=metamf"]))["training"].keys() \
        >= {"epochs_metamf"}
    assert plain["attacker"] == {"fit_logreg": 1000 * 2 * 20, "fit_xgboost": 1000 * 2 * 20}
    # MF ranked by consumption steps 1 + 4 consumption rows per rating besides the rating.
    by_score = workload(load_scenario("quickstart", ["platform.model=mf",
                                                     "platform.ranking.method=score"]))
    by_consumption = workload(load_scenario("quickstart", ["platform.model=mf"]))
    assert by_consumption["training"]["epochs_mf"] == 6 * by_score["training"]["epochs_mf"]


def test_the_fit_recovers_known_costs_and_never_goes_negative() -> None:
    truth = {"training": {"epochs_bpr": 2e-6, "retrains": 0.5}, "attacker": {"fit_logreg": 1e-5},
             "measurement": {"rankings": 1e-8, "user_steps": 0.0}, "agents": {"user_steps": 1e-6},
             "rest": {"runs": 3.0, "steps": 0.1}}
    samples = []
    for users, steps in ((500, 5), (1000, 10), (2000, 20), (4000, 8), (800, 30)):
        work = {"training": {"epochs_bpr": users * 60 * steps, "retrains": steps / 2},
                "attacker": {"fit_logreg": users * steps}, "agents": {"user_steps": users * steps},
                "measurement": {"rankings": users * 800 * steps, "user_steps": users * steps},
                "rest": {"runs": 1.0, "steps": steps}}
        seconds = {part: sum(truth[part][k] * v for k, v in counts.items())
                   for part, counts in work.items()}
        samples.append((work, seconds))
    fitted = fit_coefficients(samples)
    for part, counts in truth.items():
        for name, value in counts.items():
            assert fitted[part][name] == pytest.approx(value, rel=1e-6, abs=1e-12)
    assert all(v >= 0 for part in fitted.values() for v in part.values())


def test_every_shipped_scenario_gets_a_finite_estimate_from_the_shipped_coefficients() -> None:
    coefficients = load_coefficients()
    assert set(coefficients) == set(PARTS)
    for name in list_scenarios():
        found = estimate_run_time(load_scenario(name), coefficients)
        assert math.isfinite(found.seconds) and found.seconds > 1, name
        assert found.seconds == pytest.approx(sum(found.parts.values()))
    quick = estimate_run_time(load_scenario("quickstart"))
    what_if = estimate_run_time(load_scenario("quickstart", [
        SHILLING, "platform.defenses.unlearning={attribute: gender}"]))
    assert what_if.parts["training"] > 2 * quick.parts["training"]


def test_validate_prints_the_estimated_run_time() -> None:
    result = CliRunner().invoke(app, ["validate", "quickstart", "--set", SHILLING],
                                terminal_width=200)
    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if line.startswith("run time:"))
    assert line.startswith("run time: about ") and "training" in line and "2 CPU cores" in line
