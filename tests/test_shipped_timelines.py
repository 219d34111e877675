"""Three shipped scenarios as a user runs them (`privsim run NAME`, then `privsim report`):
the summary shows each one's headline, every over-time figure marks what happened, and the
report, rendered by headless Chromium, is saved under outputs/test-artifacts/."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import matplotlib
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from simulator.analysis import plots
from simulator.analysis.labels import metric_label
from simulator.analysis.timeline import run_schedule
from simulator.cli import app
from tests.test_dashboard_browser import CHROMIUM

pytestmark = pytest.mark.heavy  # long tests: started first (tests/conftest.py)

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "outputs" / "test-artifacts"
# What each scenario makes happen, and when: the marks its figures must carry.
EXPECTED = {
    "fundamentalists-grow": {(5, "convert"), (10, "convert"), (15, "convert")},
    "breach-shock": {(15, "breach")},
    "shilling-push": {(2, "fake profiles")},
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, str]]:
    """Each scenario's run folder and what `privsim run` printed."""
    root = tmp_path_factory.mktemp("shipped")
    found = {}
    for name in EXPECTED:
        result = CliRunner().invoke(app, ["run", name, "--out", str(root / name)],
                                    terminal_width=160)
        assert result.exit_code == 0, result.output
        found[name] = (root / name, result.output)
    return found


@pytest.mark.parametrize("name", list(EXPECTED))
def test_the_summary_shows_the_scenario_headline(runs: dict[str, tuple[Path, str]],
                                                 name: str) -> None:
    folder, printed = runs[name]
    config = yaml.safe_load((folder / "config.yaml").read_text())
    headline = config["report"]["headline"]
    assert headline, f"{name} ships without a headline"
    table = printed[printed.index("after step"):printed.index("results:")]
    assert [metric for metric in headline if metric in table] == headline
    assert f"plots: {folder / 'plots'}" in printed and "privsim report" in printed


@pytest.mark.parametrize("name", list(EXPECTED))
def test_every_figure_marks_what_happened(runs: dict[str, tuple[Path, str]], name: str,
                                          tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                          ) -> None:
    matplotlib.use("Agg")
    folder, _ = runs[name]
    tables = {table: pd.read_parquet(folder / f"{table}.parquet")
              for table in ("metrics", "groups", "events")}
    config = yaml.safe_load((folder / "config.yaml").read_text())
    schedule, steps = run_schedule(config, str(folder / "config.yaml"))
    assert schedule is not None and steps is not None
    marked: dict[str, set[tuple[int, str]]] = {}

    def record(fig: object, path: Path) -> None:
        marks = set()
        for axis in fig.axes:  # type: ignore[attr-defined]
            for text in axis.texts:
                marks.add((round(text.xy[0]), text.get_text()))
        marked[Path(path).name] = marks

    monkeypatch.setattr(plots, "save", record)
    plots.plot_run(tables["metrics"], tables["groups"], tmp_path, 10, tables["events"],
                   schedule, steps)
    over_time = {figure: marks for figure, marks in marked.items() if figure != "timeline.png"}
    assert {"accuracy.png", "disclosure.png", "disparity.png"} <= set(over_time)
    for figure, marks in over_time.items():
        assert EXPECTED[name] <= marks, f"{name}: {figure} lacks {EXPECTED[name] - marks}"
    # The run wrote the same figures (and its timeline) beside its tables.
    assert {f"{figure}" for figure in marked} <= {p.name for p in (folder / "plots").iterdir()}


@pytest.mark.parametrize("name", list(EXPECTED))
def test_the_report_reads_as_one_run_in_chromium(runs: dict[str, tuple[Path, str]],
                                                 name: str) -> None:
    folder, _ = runs[name]
    result = CliRunner().invoke(app, ["report", str(folder)])
    assert result.exit_code == 0, result.output
    page = (folder / "report.html").read_text(encoding="utf-8")
    config = yaml.safe_load((folder / "config.yaml").read_text())
    assert "Question:" in page and "<h2>Timeline</h2>" in page
    for metric in config["report"]["headline"]:
        assert metric_label(metric) in page
    assert "95%" not in page  # one run: no seed intervals
    if not Path(CHROMIUM).is_file():
        pytest.skip("Debian chromium is not installed: apt-get install chromium")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    screenshot = ARTIFACTS / f"report-{name}.png"
    screenshot.unlink(missing_ok=True)
    profile = folder / ".chromium"
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                    "--disable-background-networking", "--no-first-run",
                    f"--user-data-dir={profile}", "--hide-scrollbars",
                    "--window-size=1280,4200", f"--screenshot={screenshot}",
                    (folder / "report.html").as_uri()],
                   check=True, capture_output=True, timeout=120)
    shutil.rmtree(profile, ignore_errors=True)
    assert screenshot.stat().st_size > 20_000
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["status"] == "completed"
