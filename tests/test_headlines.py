"""The end-of-run summary: headline metrics, their references and changes, what to do next."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from simulator.analysis.headlines import default_headline, headline_rows
from simulator.cli import app
from tests.test_simulation import SMALL

METRICS = pd.DataFrame({
    "step": [0, 1, 2],
    "hr_10": [0.2, 0.25, 0.3], "pop_hr_10": [0.2, 0.2, 0.21],
    "leak_gender_auc": [0.6, 0.62, 0.7], "leak_gender_auc_chance": [0.5, 0.5, 0.5],
    "target_hr_10": [0.0, 0.1, 0.4], "target_hr_10_clean": [0.0, 0.0, 0.01],
    "prediction_shift": [0.0, 0.3, 0.5], "leak_gender_classifier": ["lr", "lr", "lr"],
    "hr_10_change": [0.0, 0.0, -0.01],
})


def test_each_headline_has_its_reference_and_change() -> None:
    rows, missing = headline_rows(METRICS, ["target_hr_10", "leak_gender_auc", "hr_10",
                                            "prediction_shift", "absent",
                                            "leak_gender_classifier"])
    assert missing == ["absent", "leak_gender_classifier"]  # not a measured number
    found = {r.metric: (r.last, r.change, r.reference, r.reference_name) for r in rows}
    assert found["target_hr_10"][2:] == (0.01, "without attack")
    assert found["leak_gender_auc"][2:] == (0.5, "chance")
    assert found["hr_10"][2:] == (0.21, "popularity")
    assert found["prediction_shift"][2:] == (0.0, "without attack")  # attacked - clean
    assert math.isclose(found["target_hr_10"][1], 0.4)
    assert [r.metric for r in rows] == ["target_hr_10", "leak_gender_auc", "hr_10",
                                        "prediction_shift"]  # in the order named


def test_the_default_headline_is_accuracy_and_leakage() -> None:
    assert default_headline(list(METRICS.columns)) == ["hr_10", "leak_gender_auc"]


def test_the_summary_names_the_headline_the_folder_and_the_next_commands(
    tmp_path: Path,
) -> None:
    out = tmp_path / "run"
    sets = [*SMALL, "simulation.steps=2", "report.headline=[leak_gender_auc, nothing]"]
    result = CliRunner().invoke(app, ["run", "quickstart", "--out", str(out), "--no-progress",
                                      *(a for s in sets for a in ("--set", s))])
    assert result.exit_code == 0, result.output
    assert "leak_gender_auc" in result.output and "hr_10 " not in result.output
    assert "(chance)" in result.output and "change since step 0" in result.output
    assert "after step 1 (2 steps)" in result.output
    assert "report.headline: not measured in this run: nothing" in result.output
    assert f"next: privsim report {out}  |  privsim dashboard {tmp_path}" in result.output
