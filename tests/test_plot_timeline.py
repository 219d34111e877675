"""Run figures carry the timeline (retrains, events) and human metric names."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import pandas as pd
import pytest

from simulator.analysis.labels import metric_label
from simulator.analysis.plots import plot_accuracy
from simulator.analysis.timeline import mark_timeline, timeline_marks

EVENTS = pd.DataFrame({
    "step": [0, 2, 2, 3, 3, 4, 4, 5],
    "kind": ["retrain", "retrain", "profile_injection", "convert", "profile_injection",
             "retrain", "attack_observation", "breach"],
})


def test_the_timeline_marks_retrains_and_what_happened() -> None:
    retrains, marks = timeline_marks(EVENTS)
    assert retrains == [0, 2, 4]
    # Fake profiles are marked where they first arrive; observations are not marked.
    assert marks == [(2, "fake profiles"), (3, "convert"), (5, "breach")]
    assert timeline_marks(None) == ([], [])


def test_a_figure_draws_the_marks_and_whole_steps(tmp_path: Path) -> None:
    matplotlib.use("Agg")
    metrics = pd.DataFrame({"step": range(6), "hr_10": [0.1, 0.2, 0.2, 0.3, 0.3, 0.4],
                            "pop_hr_10": [0.1] * 6})
    from simulator.analysis.figures import subplots

    fig, axis = subplots()
    axis.plot(metrics["step"], metrics["hr_10"])
    mark_timeline(axis, EVENTS)
    vertical = [line for line in axis.get_lines() if len(set(line.get_xdata())) == 1]
    assert sorted(float(line.get_xdata()[0]) for line in vertical) == [0, 2, 2, 3, 4, 5]
    assert {t.get_text() for t in axis.texts} == {"fake profiles", "convert", "breach"}
    fig.canvas.draw()
    ticks = [t for t in axis.get_xticks() if 0 <= t <= 5]
    assert all(float(t).is_integer() for t in ticks)
    assert plot_accuracy(metrics, tmp_path / "accuracy.png", 10, EVENTS).is_file()


@pytest.mark.parametrize(("column", "label"), [
    ("hr_10", "HR@10"), ("pop_ndcg_20", "NDCG@20 (popularity)"), ("mae", "MAE"),
    ("leak_gender_auc", "gender AUC"), ("leak_age_bacc_chance", "age balanced accuracy chance"),
    ("target_hr_10_clean", "HR@10 of the attacked items without attack"),
    ("hr_10_change", "HR@10 change"), ("fake_users_trained", "fake users trained"),
])
def test_metrics_have_human_names(column: str, label: str) -> None:
    assert metric_label(column) == label


def test_the_timeline_figure_shows_the_schedule_and_what_happened(tmp_path: Path) -> None:
    matplotlib.use("Agg")
    from simulator.analysis.timeline import plot_timeline
    from simulator.experiments.catalog import load_scenario
    from simulator.scenario.schedule import scheduled_items

    scenario = load_scenario("quickstart", [
        "simulation.steps=6", "events=[{step: 3, kind: convert, types: [pragmatist], "
        "to: fundamentalist, share: 0.2}, {step: 5, kind: breach}]",
        "platform.defenses.adversarial={start_step: 2}"])
    schedule = scheduled_items(scenario)
    assert [item.step for item in schedule] == [2, 3, 5]
    path = plot_timeline(EVENTS, schedule, 6, tmp_path / "timeline.png")
    assert path.is_file() and path.stat().st_size > 1000


def test_defenses_switched_on_later_are_marked_on_every_figure(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    matplotlib.use("Agg")
    from simulator.analysis import plots
    from simulator.experiments.catalog import load_scenario
    from simulator.scenario.schedule import scheduled_items

    later = scheduled_items(load_scenario("quickstart", [
        "simulation.steps=6", "platform.defenses.adversarial={start_step: 2}"]))
    from_start = scheduled_items(load_scenario("quickstart", [
        "simulation.steps=6", "platform.defenses.adversarial={start_step: 0}"]))
    assert (2, "adversarial defense on") in timeline_marks(EVENTS, later)[1]
    assert timeline_marks(EVENTS, from_start) == timeline_marks(EVENTS)
    assert timeline_marks(None, later) == ([], [(2, "adversarial defense on")])

    drawn: dict[str, set[str]] = {}
    lines: dict[str, set[str]] = {}

    def record(fig: object, path: Path) -> None:
        axes = fig.axes  # type: ignore[attr-defined]
        drawn[Path(path).name] = {t.get_text() for axis in axes for t in axis.texts}
        lines[Path(path).name] = {line.get_label() for axis in axes for line in axis.lines}

    monkeypatch.setattr(plots, "save", record)
    steps = range(6)
    metrics = pd.DataFrame({"step": steps, "hr_10": 0.2, "pop_hr_10": 0.1,
                            "leak_gender_auc": 0.6, "leak_gender_auc_chance": 0.5,
                            "leak_gender_bacc": 0.6, "leak_gender_bacc_chance": 0.5})
    groups = pd.DataFrame([{"step": s, "group_kind": kind, "group": group, "hr_10": 0.2,
                            "disclosure_mean": 0.5, "group_beta_mean": 0.5,
                            "leak_gender_auc": 0.6, "leak_gender_auc_chance": 0.5}
                           for s in steps for kind, group in (("all", "all"),
                                                              ("inclination", "a"),
                                                              ("involvement", "low"))])
    plots.plot_run(metrics, groups, tmp_path, 10, EVENTS, later)
    assert set(drawn) == {"accuracy.png", "disclosure.png", "disparity.png", "leakage.png"}
    for texts in drawn.values():
        assert {"adversarial defense on", "breach", "convert", "fake profiles"} <= texts
    # Every panel with a reference draws it: chance for leakage, popularity for accuracy.
    assert "chance" in lines["disparity.png"] and "chance" in lines["leakage.png"]
    assert "HR@10 (popularity)" in lines["accuracy.png"]
