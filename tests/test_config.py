"""Scenario validation: contract key paths, overrides and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from simulator.experiments.catalog import list_scenarios, load_scenario
from simulator.foundations.errors import ScenarioError
from simulator.foundations.yaml_files import expand_env
from simulator.scenario.loading import build_scenario
from simulator.scenario.schema import Scenario

CONTRACT_KEYS = {
    "world.source": "synthetic",
    "world.signal": 0.5,
    "world.n_users": 300,
    "world.n_items": 200,
    "simulation.steps": 4,
    "simulation.seed": 7,
    "simulation.device": "cpu",
    "platform.model": "mf",
    "platform.retrain_every": 3,
    "platform.epochs": 2,
}


def test_quickstart_is_shipped_and_valid() -> None:
    assert {"quickstart", "ml100k-baseline", "ml1m-head-baseline"} <= set(list_scenarios())
    scenario = load_scenario()
    assert scenario.name == "quickstart"
    assert scenario.world.source == "synthetic"


@pytest.mark.parametrize(("key", "value"), CONTRACT_KEYS.items())
def test_contract_key_paths_work_with_set(key: str, value: object) -> None:
    scenario = load_scenario("quickstart", [f"{key}={value}"])
    section, field = key.split(".")
    assert getattr(getattr(scenario, section), field) == value


def test_contract_keys_in_a_file(tmp_path: Path) -> None:
    lines = ["world:", "  source: movielens", f"  path: {tmp_path}", "simulation:", "  steps: 3"]
    path = tmp_path / "s.yaml"
    path.write_text("\n".join(lines))
    scenario = load_scenario(str(path))
    assert scenario.world.path == str(tmp_path)
    assert scenario.simulation.steps == 3


def test_unknown_key_names_its_path() -> None:
    with pytest.raises(ScenarioError, match=r"platform\.epoch: unknown key"):
        load_scenario("quickstart", ["platform.epoch=3"])


def test_beta_out_of_range_names_the_key() -> None:
    with pytest.raises(ScenarioError, match=r"population\.types\.pragmatist\.beta"):
        load_scenario("quickstart", ["population.types.pragmatist.beta=1.5"])


def test_beta_override_out_of_range() -> None:
    with pytest.raises(ScenarioError, match=r"beta_overrides.*\[0, 1\]"):
        build_scenario({"population": {"beta_overrides": {3: 1.5}}}, "x.yaml")


def test_shares_must_sum_to_one() -> None:
    data = {"population": {"types": {"a": {"share": 0.5, "beta": 1.0}}}}
    with pytest.raises(ScenarioError, match="sum to 1"):
        build_scenario(data, "x.yaml")


def test_missing_data_folder(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(ScenarioError, match=r"world: .*data folder not found") as caught:
        load_scenario("ml100k-baseline", [f"world.path={missing}"])
    assert "PRIVSIM_DATA" in str(caught.value) and "--set world.path=" in str(caught.value)


def test_movielens_defaults_to_the_shared_ml100k() -> None:
    scenario = build_scenario({"world": {"source": "movielens"}}, "x.yaml")
    assert scenario.world.path is not None and scenario.world.path.endswith("ml-100k")


def test_bad_value_type_is_reported() -> None:
    with pytest.raises(ScenarioError, match=r"simulation\.steps.*got 'many'"):
        load_scenario("quickstart", ["simulation.steps=many"])


def test_unknown_model() -> None:
    with pytest.raises(ScenarioError, match=r"platform\.model"):
        load_scenario("quickstart", ["platform.model=svd"])


def test_yaml_syntax_error_names_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("world:\n  source: synthetic\n  signal: [1, 2\n")
    with pytest.raises(ScenarioError, match=r"bad\.yaml:\d+: invalid YAML"):
        load_scenario(str(path))


def test_unknown_scenario_name_lists_shipped() -> None:
    with pytest.raises(ScenarioError, match="shipped: .*quickstart"):
        load_scenario("no-such-scenario")


def test_malformed_override() -> None:
    with pytest.raises(ScenarioError, match="expected key.path=value"):
        load_scenario("quickstart", ["simulation.steps"])


def test_attacker_list_items_are_addressable() -> None:
    scenario = load_scenario("quickstart", ["attackers.0.known_fraction=0.3"])
    assert scenario.attackers[0].known_fraction == 0.3
    with pytest.raises(ScenarioError, match="index below 1"):
        load_scenario("quickstart", ["attackers.4.known_fraction=0.3"])


def test_env_expansion(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRIVSIM_TEST_DIR", "/data")
    assert expand_env("${PRIVSIM_TEST_DIR:-x}/ml") == "/data/ml"
    monkeypatch.delenv("PRIVSIM_TEST_DIR")
    assert expand_env("${PRIVSIM_TEST_DIR:-x}/ml") == "x/ml"
    with pytest.raises(ScenarioError, match="PRIVSIM_TEST_DIR"):
        expand_env("${PRIVSIM_TEST_DIR}/ml")


def test_defaults_round_trip() -> None:
    scenario = Scenario()
    again = Scenario.model_validate(scenario.model_dump(mode="json"))
    assert again == scenario


def test_every_shipped_scenario_and_sweep_validates(data_dir: Path) -> None:
    """Shipped files use only valid keys (MovieLens ones need the data folder)."""
    from simulator.experiments.sweep import expand_points, load_sweep

    for name in list_scenarios():
        load_scenario(name)
    sweeps = sorted((Path(__file__).parents[1] / "scenarios" / "sweeps").glob("*.yaml"))
    assert len(sweeps) >= 5
    for path in sweeps:
        spec = load_sweep(path)
        assert expand_points(spec, path), path


def test_every_problem_is_listed_with_its_source_and_a_suggestion(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("name: t\nworld: {n_users: 60, sead: 3}\nplatfrom: {model: bpr}\n"
                    "attackers: [{kind: shilling, atack_size: 0.1}]\n", encoding="utf-8")
    with pytest.raises(ScenarioError) as caught:
        load_scenario(str(path), ["platform.defenses.dp.noise_multipler=1",
                                  "platform.lr=1000"])
    lines = str(caught.value).splitlines()
    assert lines[0] == "5 problems in the scenario:"
    assert sorted(line.strip() for line in lines[1:]) == sorted([
        f"{path}: world.sead: unknown key; did you mean 'seed'?",
        f"{path}: platfrom: unknown key; did you mean 'platform'?",
        f"{path}: attackers.0.atack_size: unknown key; did you mean 'attack_size'?",
        "--set 'platform.defenses.dp.noise_multipler=1': platform.defenses.dp."
        "noise_multipler: unknown key; did you mean 'noise_multiplier'?",
        "--set 'platform.lr=1000': platform.lr: Input should be less than or equal to 10 "
        "(got 1000); allowed: > 0 and <= 10.0",
    ])


def test_a_long_list_of_problems_is_cut() -> None:
    keys = [f"simulation.unknown{i}=1" for i in range(14)]
    with pytest.raises(ScenarioError) as caught:
        load_scenario("quickstart", keys)
    lines = str(caught.value).splitlines()
    assert lines[0] == "14 problems in the scenario:"
    assert len(lines) == 1 + 10 + 1 and lines[-1].strip() == "(and 4 more)"
    assert "did you mean" not in lines[1]  # nothing close to suggest


def test_a_single_problem_stays_on_one_line() -> None:
    with pytest.raises(ScenarioError) as caught:
        load_scenario("quickstart", ["platform.modle=mf"])
    assert str(caught.value) == ("--set 'platform.modle=mf': platform.modle: unknown key; "
                                 "did you mean 'model'?")


# --- values that are not what they seem ---------------------------------------------------


def test_shown_cuts_a_long_value_and_says_its_length() -> None:
    from simulator.foundations.errors import shown

    assert shown("abc") == "'abc'" and shown("abc", quote=False) == "abc"
    assert shown("a" * 100_000) == "'" + "a" * 100 + "...' (100,000 characters)"
    assert shown("a" * 100_000, 10, quote=False) == "aaaaaaaaaa... (100,000 characters)"
    assert shown(1.5) == "1.5" and shown([1] * 1000).endswith("(3,000 characters)")
    assert shown(10**5000) == "an integer of about 5,000 digits"  # too long for repr()
    assert shown("\udcff") == "'\\udcff'"


@pytest.mark.parametrize("key", ["attackers.\u00b2.top_k", "attackers.\u0663.top_k",
                                 "attackers.\uff11.top_k", "attackers.99999999999999999999.top_k",
                                 "attackers." + "9" * 5000 + ".top_k", "attackers.-1.top_k",
                                 "attackers. 0.top_k"])
def test_a_list_index_is_ascii_digits(key: str) -> None:
    with pytest.raises(ScenarioError, match="expected an index below 1") as caught:
        load_scenario("quickstart", [f"{key}=3"])
    assert len(str(caught.value)) < 300


@pytest.mark.parametrize("first", ["attackers=[1]", "attackers=[abc]", "events=[5]",
                                   "platform.defenses=[1]", "world=5"])
def test_a_key_path_through_a_value_is_refused(first: str) -> None:
    section = first.split("=")[0]
    with pytest.raises(ScenarioError, match=r"is a value, not a section"):
        load_scenario("quickstart", [first, f"{section}.0.kind=shilling"])


@pytest.mark.parametrize(("text", "problem"), [
    ('simulation: {steps: !!int "abc"}', r"s\.yaml:1: invalid YAML: 'abc' cannot be read as !!int"),
    ("simulation: {steps: !!int ''}", r"s\.yaml:1: invalid YAML: '' cannot be read as !!int"),
    ("simulation:\n  seed: !!timestamp x", r"s\.yaml:2: invalid YAML: 'x' cannot be read as "
                                           "!!timestamp$"),
    ("simulation: {seed: !!float 1.2.3}", r"'1\.2\.3' cannot be read as !!float"),
    ("simulation: {seed: !!bool maybe}", r"'maybe' cannot be read as !!bool$"),
    ("simulation: !!map x", r"s\.yaml:1: invalid YAML: expected a mapping node"),
    ("simulation: !!set x", r"s\.yaml:1: invalid YAML: expected a mapping node"),
    ("simulation: {seed: " + "1" * 5000 + "}",
     r"an integer of 5,000 characters is too long \(at most 4,300\)"),
    ("simulation: {seed: 2001-13-45}",
     r"simulation\.seed: Input should be a valid integer, unable to parse string as an "
     r"integer \(got '2001-13-45'\)"),
])
def test_a_value_yaml_cannot_build_is_one_line_naming_the_file(
        tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(text + "\n", encoding="utf-8")
    with pytest.raises(ScenarioError, match=problem) as caught:
        load_scenario(str(path))
    assert "\n" not in str(caught.value) and str(path) in str(caught.value)


def test_dates_are_read_as_text(tmp_path: Path) -> None:
    from simulator.foundations.yaml_files import read_yaml

    path = tmp_path / "s.yaml"
    path.write_text("a: 2001-01-01\nb: 2001-12-14t21:59:43.10-05:00\nc: !!timestamp 2001-01-01\n"
                    "d: 1:30\n", encoding="utf-8")
    data = read_yaml(path)
    assert data["a"] == "2001-01-01" and data["b"] == "2001-12-14t21:59:43.10-05:00"
    assert str(data["c"]) == "2001-01-01" and data["d"] == 90  # a tag still makes a date
    with pytest.raises(ScenarioError, match=r"--set 'simulation\.seed=2001-01-01': "
                                            r"simulation\.seed: .*\(got '2001-01-01'\)"):
        load_scenario("quickstart", ["simulation.seed=2001-01-01"])


def test_a_long_base_60_integer_is_refused_at_once(tmp_path: Path) -> None:
    """YAML 1.1 reads 1:1:...:1 as a base-60 integer in time quadratic in its length."""
    import time

    path = tmp_path / "s.yaml"
    path.write_text("simulation: {seed: " + "1:" * 400_000 + "1}\n", encoding="utf-8")
    start = time.perf_counter()
    with pytest.raises(ScenarioError, match="an integer of 800,001 characters is too long"):
        load_scenario(str(path))
    assert time.perf_counter() - start < 10


@pytest.mark.parametrize("override", [
    "simulation.steps=" + "a" * 100_000, "simulation.steps=" + "9" * 100_000,
    "a" * 100_000 + "=1", "population.types={" + "a" * 100_000 + ": {share: 1, beta: 1}}",
    "attackers.0.kind=" + "x" * 100_000, "events=[{step: 1, types: [" + "t" * 100_000 + "]}]",
    "world.path=${" + "A" * 100_000 + "}", "population.beta_overrides={1: " + "9" * 4000 + "}",
    "simulation.steps=!!" + "t" * 100_000 + " 1", "simulation.steps=[" + "1, " * 30_000 + "1]",
])
def test_an_echoed_value_is_cut_to_a_readable_length(override: str) -> None:
    with pytest.raises(ScenarioError) as caught:
        load_scenario("quickstart", [override])
    lines = str(caught.value).splitlines()
    assert max(map(len, lines)) < 1_000, str(caught.value)[:2000]
    assert "characters)" in str(caught.value) or "digits" in str(caught.value)


@pytest.mark.parametrize(("path", "problem"), [
    ("a" * 300, "cannot be used (File name too long)"),
    ("/tmp/" + "a" * 300 + "/ml-100k", "cannot be used (File name too long)"),
    ("a\x00b", "data folder not found: 'a\\x00b'"),
    ("\udcff", "world.path: '\\udcff' is not valid text"),
    ("\ud800", "world.path: '\\ud800' is not valid text"),
])
def test_a_data_folder_that_cannot_be_a_path(path: str, problem: str) -> None:
    data = {"world": {"source": "movielens", "path": path}}
    with pytest.raises(ScenarioError) as caught:
        build_scenario(data, "x.yaml")
    assert problem in str(caught.value) and len(str(caught.value)) < 1_000


def test_any_string_that_is_not_text_is_refused_with_its_key() -> None:
    with pytest.raises(ScenarioError, match=r"^x\.yaml: description: '\\udcff' is not valid"):
        build_scenario({"description": "\udcff"}, "x.yaml")
    # as a YAML escape, libyaml refuses it as invalid YAML; PyYAML's own parser reads it
    refusal = ("value is not valid YAML" if yaml.__with_libyaml__ else r"name: '\\udcff'")
    with pytest.raises(ScenarioError, match=r"^--set 'name=\"\\\\udcff\"': " + refusal):
        build_scenario({}, "x.yaml", ['name="\\udcff"'])


@pytest.mark.parametrize(("name", "problem"), [
    ("x" * 300, "(300 characters): not a scenario file or shipped name (File name too long)"),
    ("x" * 300 + ".yaml", "not a scenario file or shipped name (File name too long)"),
    ("a\x00b", "unknown scenario 'a\\x00b'"),
    ("a\x00b.yaml", "'a\\x00b.yaml': scenario file not found"),
])
def test_a_scenario_argument_that_cannot_be_a_file_name(name: str, problem: str) -> None:
    with pytest.raises(ScenarioError) as caught:
        load_scenario(name)
    assert problem in str(caught.value) and len(str(caught.value)) < 1_000
