"""HTML reports of runs and sweeps: self-contained, escaped, with every figure embedded."""

from __future__ import annotations

import base64
import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from simulator.analysis.report import write_report
from simulator.experiments.catalog import load_scenario
from simulator.experiments.runner import run_scenario
from simulator.experiments.sweep import run_sweep

TINY = ["world.n_users=200", "world.n_items=150", "world.mean_ratings_per_user=30",
        "simulation.steps=2", "simulation.device=cpu", "platform.retrain_every=1",
        "platform.first_epochs=5", "platform.epochs=2", "attackers.0.classifiers=[logreg]",
        "attackers.0.folds=3", "output.plots=false"]
IMAGE = re.compile(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"')
REMOTE = re.compile(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", re.IGNORECASE)


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    scenario = load_scenario("quickstart", [*TINY, "output.plots=true"])
    return run_scenario(scenario, out=tmp_path_factory.mktemp("run") / "run",
                        progress=False).path


@pytest.fixture(scope="module")
def one_key_sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sweep")
    spec = root / "one-key.yaml"
    # One worker: on a small machine one spawned process starts faster than two.
    spec.write_text(f"name: one-key\nbase: quickstart\nset: {json.dumps(TINY)}\n"
                    "grid:\n  world.signal: [0.0, 1.5]\nseeds: [0, 1]\nworkers: 1\n")
    return run_sweep(spec, out=root / "out")


def _check_self_contained(text: str, figure_files: list[Path]) -> None:
    """Every figure file is embedded (byte for byte) and nothing is loaded from elsewhere."""
    embedded = [base64.b64decode(data) for data in IMAGE.findall(text)]
    assert len(embedded) == len(figure_files)
    assert sorted(embedded) == sorted(p.read_bytes() for p in figure_files)
    assert all(image.startswith(b"\x89PNG") for image in embedded)
    assert not REMOTE.search(text)
    assert "<script" not in text and "<link" not in text


def _check_figures_folder(folder: Path) -> list[Path]:
    pngs = sorted(folder.glob("*.png"))
    assert pngs
    for png in pngs:
        assert png.stat().st_size > 1000
        assert png.with_suffix(".pdf").stat().st_size > 1000
    assert len(list(folder.glob("*.pdf"))) == len(pngs)
    return pngs


def test_run_report_reads_as_one_run(run_folder: Path) -> None:
    path = write_report(run_folder, question="does it <leak>?")
    assert path == run_folder / "report.html"
    text = path.read_text(encoding="utf-8")
    # The run's own figures, with its timeline: no seed bands, no trade-off across variants.
    figures = sorted((run_folder / "figures").glob("*.png"))
    assert {p.stem for p in figures} == {"accuracy", "disclosure", "disparity", "leakage",
                                         "timeline"}
    assert not list((run_folder / "figures").glob("over_time_*"))
    assert not list((run_folder / "figures").glob("tradeoff_*"))
    _check_self_contained(text, figures)
    assert "95%" not in text and "seeds" not in text
    # The small settings are changes of quickstart: the report names them, and shows the
    # shipped texts as the base scenario's.
    manifest = json.loads((run_folder / "manifest.json").read_text(encoding="utf-8"))
    changes = manifest["changes"]["settings"]
    assert manifest["title"] == f"quickstart + {len(changes)} changes"
    assert f"<h1>{manifest['title']}</h1>" in text
    assert f"<b>Changes from quickstart:</b> {', '.join(changes)}" in text
    assert "<b>The base scenario&#x27;s question:</b> does it &lt;leak&gt;?" in text
    assert "<b>The base scenario (quickstart):</b>" in text
    metrics = pd.read_parquet(run_folder / "metrics.parquet")
    first, last = metrics.iloc[0], metrics.iloc[-1]
    change = last["hr_10"] - first["hr_10"]
    assert (f"<td>HR@10</td><td>hr_10</td><td class=\"num\">{last['hr_10']:.4f}</td>"
            f"<td>{change:+.4f}</td><td>{last['pop_hr_10']:.4f} (popularity)</td>") in text
    assert "<h2>Timeline</h2><p>2 retrains, at steps 0, 1.</p>" in text
    assert "world:" in text and "&quot;status&quot;: &quot;completed&quot;" in text


def test_the_report_command_shows_a_shipped_scenario_question(run_folder: Path,
                                                             tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from simulator.cli import app

    copy = shutil.copytree(run_folder, tmp_path / "cli")
    result = CliRunner().invoke(app, ["report", str(copy)])
    assert result.exit_code == 0, result.output
    text = (copy / "report.html").read_text(encoding="utf-8")
    assert ("<b>The base scenario&#x27;s question:</b> on a platform that learns from what "
            "users disclose") in text


def test_sweep_report_summarises_every_variant(one_key_sweep: Path, tmp_path: Path) -> None:
    out = tmp_path / "reports" / "sweep.html"
    assert write_report(one_key_sweep, out) == out
    assert not (one_key_sweep / "report.html").exists()
    text = out.read_text(encoding="utf-8")
    figures = _check_figures_folder(one_key_sweep / "figures")
    assert not [p for p in figures if p.stem.startswith("heatmap")]  # one grid key only
    _check_self_contained(text, figures)
    assert "one-key (base: quickstart)" in text
    assert "<td>world.signal=0.0</td>" in text and "<td>world.signal=1.5</td>" in text
    results = pd.read_parquet(one_key_sweep / "results.parquet")
    last = results[(results["world.signal"] == 1.5) & (results["step"] == 1)]
    assert len(last) == 2
    assert f"{last['ndcg_10'].mean():.4f} [" in text
    assert "point-003-seed-1" in text


def test_report_escapes_text(run_folder: Path, tmp_path: Path) -> None:
    copy = shutil.copytree(run_folder, tmp_path / "copy")
    manifest = json.loads((copy / "manifest.json").read_text())
    (copy / "manifest.json").write_text(json.dumps({**manifest, "title": "<b>R&D</b>"}))
    text = write_report(copy).read_text(encoding="utf-8")
    assert "<h1>&lt;b&gt;R&amp;D&lt;/b&gt;</h1>" in text
    assert "<b>R&D</b>" not in text


def test_failed_run_report_shows_why(run_folder: Path, tmp_path: Path) -> None:
    copy = shutil.copytree(run_folder, tmp_path / "failed")
    shutil.rmtree(copy / "plots")
    shutil.rmtree(copy / "figures", ignore_errors=True)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest.update(status="failed", error="RuntimeError: <diverged>")
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.warns(UserWarning, match="status failed"):
        text = write_report(copy).read_text(encoding="utf-8")
    assert "status failed (RuntimeError: &lt;diverged&gt;)" in text
    assert "No completed results." in text
    assert not IMAGE.search(text)


def test_report_rejects_a_folder_that_is_neither(tmp_path: Path) -> None:
    stray = tmp_path / "drafts"
    stray.mkdir()
    with pytest.raises(ValueError, match="drafts is neither a run folder"):
        write_report(stray)
    assert not (stray / "report.html").exists()


def test_the_question_is_found_without_the_run_s_data(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A report of a MovieLens run shows its question where the data folder is gone."""
    from simulator.cli import _shipped_question

    monkeypatch.setenv("PRIVSIM_DATA", str(tmp_path / "nowhere"))
    (tmp_path / "manifest.json").write_text(json.dumps({"scenario": "ml100k-baseline"}))
    question = _shipped_question(tmp_path)
    assert question is not None and question.startswith("on MovieLens 100K")
