"""A researcher's own what-if: composed with --set (appending to lists), refused when an
attack could never reach the model, named by its changes, and honest about a defense that
did not act."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from simulator.cli import app
from simulator.experiments.catalog import load_scenario
from simulator.foundations.errors import ScenarioError

runner = CliRunner()
TINY = ["world.n_users=120", "world.n_items=80", "world.mean_ratings_per_user=15",
        "world.min_ratings_per_user=5", "simulation.steps=4", "platform.retrain_every=1",
        "platform.first_epochs=4", "platform.epochs=1", "attackers.0.folds=3",
        "attackers.0.classifiers=[logreg]"]
SHILLING = "{kind: shilling, start_step: 1, attack_size: 0.05}"


def test_a_list_item_is_appended_with_plus_or_the_next_index() -> None:
    plus = load_scenario("quickstart", [f"attackers+={SHILLING}"])
    index = load_scenario("quickstart", [f"attackers.1={SHILLING}"])
    api = load_scenario("quickstart", values={"attackers+": {"kind": "shilling",
                                                             "start_step": 1}})
    for scenario in (plus, index, api):
        assert [a.kind for a in scenario.attackers] == ["inference", "shilling"]
    two = load_scenario("quickstart", [f"attackers+=[{SHILLING}, {SHILLING}]"])
    assert [a.kind for a in two.attackers] == ["inference", "shilling", "shilling"]
    events = load_scenario("quickstart", ["events+={step: 2, kind: breach}"])
    assert [e.kind for e in events.events] == ["breach"]


@pytest.mark.parametrize(("override", "message"), [
    ("attackers.5={kind: shilling}", "--set attackers.5: expected an index below 1 (indices 0 "
     "to 0; 1 appends, as does attackers+=...)"),
    ("attackers.1.kind=shilling", "--set attackers.1: expected an index below 1 (indices 0 to "
     "0; set attackers.1={...} first, as does attackers+=...)"),
    ("world+=1", "--set world+: world is not a list; += appends to a list"),
])
def test_a_list_error_says_how_to_add_an_item(override: str, message: str) -> None:
    with pytest.raises(ScenarioError) as caught:
        load_scenario("quickstart", [override])
    assert message in str(caught.value)


def test_an_attack_after_the_last_retrain_is_refused() -> None:
    with pytest.raises(ScenarioError) as caught:
        load_scenario("quickstart", ["simulation.steps=4", "platform.retrain_every=2",
                                     "attackers+={kind: shilling, start_step: 3}"])
    assert ("attackers.1.start_step (average push attack at step 3, after the last retrain at "
            "step 2: its fake profiles reach the model only at a retrain)") in str(caught.value)
    load_scenario("quickstart", ["simulation.steps=4", "platform.retrain_every=2",
                                 "attackers+={kind: shilling, start_step: 2}"])


def test_only_overrides_that_change_the_experiment_are_changes() -> None:
    same = load_scenario("quickstart", ["simulation.seed=4", "output.plots=false",
                                        "platform.model=bpr"])  # bpr already
    assert same.changes == () and same.base is None and same.title == "quickstart"
    changed = load_scenario("quickstart", ["world.signal=0.5", "world.signal=0.5",
                                           f"attackers+={SHILLING}", "attackers.1.intent=nuke"])
    assert changed.changes == ("world.signal", "attackers")  # the item set inside the list
    assert changed.title == "quickstart + 2 changes"
    named = load_scenario("quickstart", ["name=mine", "world.signal=0.5"])
    assert named.title == "mine (quickstart + 1 change)"


def test_a_changed_run_names_its_changes_everywhere(tmp_path: Path) -> None:
    """Folder, manifest, summary and report say `quickstart + N changes` and list them; the
    shipped texts are shown as the base scenario's; an added attacker's effect is shown."""
    sets = [*TINY, f"output.dir={tmp_path}", f"attackers+={SHILLING}",
            "population.types={fundamentalist: {share: 0.5, beta: 0.2}, "
            "unconcerned: {share: 0.5, beta: 0.9}}"]
    result = runner.invoke(app, ["run", "quickstart", "--no-progress",
                                 *[arg for item in sets for arg in ("--set", item)]],
                           terminal_width=400)
    assert result.exit_code == 0, result.output
    changes = list(load_scenario("quickstart", sets).changes)
    assert {"attackers", "population.types", "world.n_users"} <= set(changes)
    assert "output.dir" not in changes
    title = f"quickstart + {len(changes)} changes"
    (folder,) = tmp_path.iterdir()
    assert folder.name.startswith(f"quickstart-{len(changes)}-changes-")
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["title"] == title
    assert manifest["changes"] == {"from": "quickstart", "settings": changes}
    assert f"{title}: after step 3" in result.output
    assert f"changes from quickstart: {', '.join(changes)}" in result.output
    assert "target_hr_10" in result.output  # the added attacker's effect, not in the headline
    assert runner.invoke(app, ["report", str(folder)]).exit_code == 0
    report = (folder / "report.html").read_text(encoding="utf-8")
    assert f"<title>{title} - privsim report</title>" in report
    assert f"Changes from quickstart:</b> {', '.join(changes)}" in report
    assert "The base scenario&#x27;s question:" in report
    assert "<b>Question:</b>" not in report and "<b>Scenario:</b>" not in report


def test_a_defense_that_did_not_act_says_so(tmp_path: Path) -> None:
    """Unlearning on a world whose attribute leaves no trace: held-out probes are at chance
    before any edit, so it skips every retrain; the events, summary and report say so."""
    sets = [*TINY, "world.signal=0.0", "platform.defenses.unlearning={attribute: gender}"]
    out = tmp_path / "run"
    result = runner.invoke(app, ["run", "quickstart", "--out", str(out),
                                 *[arg for item in sets for arg in ("--set", item)]],
                           terminal_width=200)
    assert result.exit_code == 0, result.output
    # not a terminal: a progress line per step, with the time left
    steps = [line for line in result.output.splitlines() if " done, " in line]
    assert [line.split(": step ")[1].split(" done")[0] for line in steps] == [
        "1/4", "2/4", "3/4", "4/4"]
    assert all(line.endswith(" s left") for line in steps)
    import pandas as pd

    events = pd.read_parquet(out / "events.parquet")
    skipped = events[events["kind"] == "defense_skipped"]
    retrains = events[events["kind"] == "retrain"]
    acted = sum("unlearning" in json.loads(d)["defenses"] for d in retrains["detail"])
    assert len(skipped) >= 1 and len(skipped) + acted == len(retrains)
    reasons = {json.loads(d)["reason"].split(" (")[0] for d in skipped["detail"]}
    assert reasons <= {"held-out probes at chance before the edit",
                       "no edit step brought the held-out probes closer to chance"}
    line = (f"defense unlearning: skipped at {len(skipped)} of {len(retrains)} retrains")
    assert line in result.output
    assert "unlearning_probe_auc_after" in result.output  # the added defense's own measure
    assert runner.invoke(app, ["report", str(out)]).exit_code == 0
    report = (out / "report.html").read_text(encoding="utf-8")
    assert "Defense did not act:</b> unlearning: skipped at" in report
    assert "defense skipped" in report  # on the report's timeline


def test_scenario_names_are_never_cut() -> None:
    from simulator.experiments.catalog import list_scenarios

    result = runner.invoke(app, ["scenarios"], terminal_width=60)
    assert result.exit_code == 0, result.output
    assert all(name in result.output for name in list_scenarios())


def test_shipped_data_is_found_from_any_working_folder(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from simulator.scenario.schema import PROJECT

    if not (PROJECT.parent / "shared" / "data" / "ml-100k").is_dir():
        pytest.skip("no MovieLens copy beside the project")
    monkeypatch.delenv("PRIVSIM_DATA", raising=False)
    monkeypatch.chdir(tmp_path)  # ../shared/data is not here
    path = Path(str(load_scenario("ml100k-baseline").world.path))
    assert path.is_absolute() and (path / "u.data").is_file()
    with pytest.raises(ScenarioError, match=r"holds ml-100k/ and ml-1m-head/"):
        load_scenario("quickstart", ["world.source=movielens", "world.path=nowhere"])


def test_a_change_against_its_counterfactual(tmp_path: Path) -> None:
    """Unlearning on and off, paired on 2 seeds: both arms of each seed share everything but
    the defense (disclosure is identical), the differences are with - without per seed, and
    the console, the summary table and the API (resuming the same folder) agree."""
    import pandas as pd

    import simulator

    out = tmp_path / "cf"
    sets = [*TINY, "population.policy=fixed",
            "platform.defenses.unlearning={attribute: gender, stop: steps, steps: 30}"]
    args = ["counterfactual", "quickstart", "--without", "platform.defenses.unlearning=null",
            "--seeds", "2", "--out", str(out), *[a for s in sets for a in ("--set", s)]]
    result = runner.invoke(app, args, terminal_width=300)
    assert result.exit_code == 0, result.output
    assert "with minus without, mean over seeds [95% interval]:" in result.output
    assert "leak_gender_auc: " in result.output and "at step 3 (2 seeds" in result.output
    differences = pd.read_parquet(out / "differences.parquet")
    for seed in (0, 1):
        with_ = pd.read_parquet(out / f"with-seed-{seed}" / "metrics.parquet")
        without = pd.read_parquet(out / f"without-seed-{seed}" / "metrics.parquet")
        mine = differences[(differences["seed"] == seed)
                           & (differences["metric"] == "leak_gender_auc")]
        expected = (with_["leak_gender_auc"] - without["leak_gender_auc"]).to_numpy()
        assert mine["difference"].to_numpy() == pytest.approx(expected)
        assert (with_["disclosure_mean"] == without["disclosure_mean"]).all()
        assert "unlearning_steps" in with_ and "unlearning_steps" not in without
    summary = pd.read_csv(out / "counterfactual.csv")
    row = summary[(summary["metric"] == "leak_gender_auc") & (summary["step"] == 3)].iloc[0]
    assert row["n"] == 2 and row["ci_low"] <= row["mean_difference"] <= row["ci_high"]
    assert (out / "plots" / "difference_leak_gender_auc.png").stat().st_size > 1000
    report = (out / "report.html").read_text(encoding="utf-8")  # written by the command
    assert "against its counterfactual</h1>" in report
    assert "platform.defenses.unlearning=null" in report and "without-seed-1" in report
    assert "<td>leak_gender_auc</td>" in report and "data:image/png;base64," in report
    again = simulator.counterfactual("quickstart", {"platform.defenses.unlearning": None},
                                     sets, seeds=2, out=out)  # every arm done: it resumes
    pd.testing.assert_frame_equal(again.summary, pd.read_parquet(out / "counterfactual.parquet"))
    assert set(again.at_last_step("leak_gender_auc")["step"]) == {3}
    refused = runner.invoke(app, ["counterfactual", "quickstart", "--without",
                                  "platform.model=bpr", "--seeds", "2"])
    assert refused.exit_code == 2 and "changes nothing" in refused.output
