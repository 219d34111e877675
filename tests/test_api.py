"""The Python API: run, load, Scenario, plot; importing it leaves global state alone."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from matplotlib.figure import Figure

import simulator
from simulator.analysis.figures import save, subplots
from simulator.foundations.errors import PrivsimError

pytestmark = pytest.mark.heavy  # long tests: started first (tests/conftest.py)

SMALL = {"world.n_users": 120, "world.n_items": 80, "world.mean_ratings_per_user": 20,
         "simulation.steps": 3, "simulation.device": "cpu", "platform.first_epochs": 3,
         "platform.epochs": 1, "attackers.0.folds": 3, "attackers.0.classifiers": ["logreg"]}


def test_run_without_a_folder_keeps_nothing_on_disk(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = simulator.run("quickstart", overrides=SMALL, seed=2)
    assert result.path is None and list(tmp_path.iterdir()) == []
    assert len(result.metrics) == 3 and result.manifest["seed"] == 2
    assert {"step", "hr_10", "leak_gender_auc"} <= set(result.metrics.columns)
    assert not result.groups.empty and not result.events.empty
    assert result.agents["step"].nunique() == 3
    figure = result.plot()
    assert isinstance(figure, Figure) and len(figure.axes[0].lines) >= 2
    with pytest.raises(ValueError, match="no metric nope"):
        result.plot("nope")


def test_a_kept_run_loads_back_the_same(tmp_path: Path) -> None:
    kept = simulator.run("quickstart", overrides=SMALL, out=tmp_path / "run")
    assert kept.path == tmp_path / "run" and (kept.path / "metrics.parquet").is_file()
    again = simulator.load(tmp_path / "run")
    pd.testing.assert_frame_equal(again.metrics, kept.metrics)
    assert again.scenario == kept.scenario
    assert again.agents.equals(kept.agents)
    with pytest.raises(PrivsimError, match="not a run folder"):
        simulator.load(tmp_path)


def test_scenarios_built_in_code_give_the_shipped_results() -> None:
    shipped = simulator.run("quickstart", overrides=SMALL)
    as_object = simulator.Scenario.model_validate(
        simulator.api.scenario_from("quickstart").model_dump())
    from_object = simulator.run(as_object, overrides=SMALL)
    from_dict = simulator.run(as_object.model_dump(mode="json"),
                              overrides=[f"{k}={v}" for k, v in SMALL.items()])
    for other in (from_object, from_dict):
        pd.testing.assert_frame_equal(other.metrics.filter(regex="^(?!seconds)"),
                                      shipped.metrics.filter(regex="^(?!seconds)"))
    with pytest.raises(PrivsimError, match="simulation.steps"):
        simulator.run({"simulation": {"steps": 0}})


def test_importing_and_running_change_no_global_state() -> None:
    script = """
import os
import matplotlib
raw = lambda key: dict.__getitem__(matplotlib.rcParams, key)  # read without resolving
backend, math, env = raw("backend"), raw("text.parse_math"), os.environ.get("MPLBACKEND")
import simulator, simulator.foundations.allocator as allocator
result = simulator.run("quickstart", overrides={SMALL!r})
result.plot()
import sys
assert raw("backend") == backend and os.environ.get("MPLBACKEND") == env
assert raw("text.parse_math") == math
assert not allocator._done, "the allocator was tuned"
assert "matplotlib.pyplot" not in sys.modules, "pyplot was imported"
print("untouched")
""".replace("{SMALL!r}", repr(SMALL))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0 and "untouched" in done.stdout, done.stderr[-2000:]


def test_dollar_signs_in_plotted_text_are_not_tex(tmp_path: Path) -> None:
    figure, axis = subplots()
    axis.plot([0, 1], [0, 1], label=r"a$\frac$ type")
    axis.legend()
    axis.set_title("$x")
    save(figure, tmp_path / "f.png")
    assert (tmp_path / "f.png").stat().st_size > 0
