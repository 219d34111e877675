"""Scenario and sweep files, and --set values, cannot make the loader blow up or guess."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from simulator.cli import app
from simulator.experiments.catalog import load_scenario
from simulator.foundations.errors import ScenarioError

LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{b}: &{b} [{', '.join([f'*{a}'] * 9)}]\n" for a, b in zip("abcdefgh", "bcdefghi", strict=True)
)
BAD_FILES = {
    "alias-bomb": (LAUGHS, "more than 100,000 values once its aliases"),
    # libyaml's parser stops it itself; PyYAML's pure-Python one recurses until Python stops
    "deep": ("world: " + "[" * 3000 + "]" * 3000 + "\n",
             "(nested too deeply|exceeded maximum nesting depth)"),
    "deep-70": ("world: " + "[" * 70 + "]" * 70 + "\n", "nested deeper than 64 levels"),
    "self-alias": ("world: &w [*w]\n", "nested deeper than 64 levels"),
    "duplicate-key": ("name: a\nsimulation: {steps: 3}\nname: b\n",
                      re.escape(":3: invalid YAML: key 'name' given twice (first on line 1)")),
    "duplicate-nested": ("simulation: {steps: 3, steps: 4}\n", "key 'steps' given twice"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_a_hostile_scenario_file_is_refused_in_one_line(tmp_path: Path, case: str) -> None:
    text, problem = BAD_FILES[case]
    path = tmp_path / f"{case}.yaml"
    path.write_text(text)
    with pytest.raises(ScenarioError) as caught:
        load_scenario(str(path))
    assert re.search(problem, str(caught.value)) and "\n" not in str(caught.value)
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 2 and "Traceback" not in result.output


def test_binary_and_oversized_files_are_refused(tmp_path: Path) -> None:
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(bytes(range(256)))
    with pytest.raises(ScenarioError, match="not UTF-8 text"):
        load_scenario(str(binary))
    big = tmp_path / "big.yaml"
    big.write_text("# " + "x" * (1 << 20) + "\n")
    with pytest.raises(ScenarioError, match="limited to 1,048,576"):
        load_scenario(str(big))


def test_set_values_have_the_same_limits() -> None:
    with pytest.raises(ScenarioError, match="key 'steps' given twice"):
        load_scenario("quickstart", ["simulation={steps: 2, steps: 3}"])
    with pytest.raises(ScenarioError, match="nested deeper than 64"):
        load_scenario("quickstart", ["description=" + "[" * 80 + "]" * 80])
