"""The headline-table generator on a tiny configuration."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from simulator.experiments.results import (
    load_results_spec,
    run_results,
    scenario_question,
    write_results_doc,
)
from simulator.foundations.errors import ScenarioError

pytestmark = pytest.mark.heavy  # long tests: started first (tests/conftest.py)

SMALL = [
    "world.n_users=300", "world.n_items=100", "world.mean_ratings_per_user=25",
    "simulation.steps=2", "platform.retrain_every=1", "platform.first_epochs=15",
    "platform.epochs=2", "attackers.0.classifiers=[logreg]", "attackers.0.folds=3",
    "world.signal=3.0", "output.agents_table=false",
]


def _spec(tmp_path: Path) -> Path:
    sweep = tmp_path / "grid.yaml"
    sweep.write_text(yaml.safe_dump({
        "name": "tiny-grid", "base": "quickstart", "set": SMALL,
        "grid": {"platform.factors": [4, 8]}, "seeds": [0],
    }))
    spec = {
        "seeds": [0, 1],
        "headlines": [
            {"name": "leak", "scenario": "quickstart", "set": SMALL,
             "claim": "gender leaks", "metric": "leak_gender_auc",
             "expect": {"above": 0.5, "every_seed": True}},
            {"name": "no-leak-claim", "scenario": "quickstart", "set": SMALL,
             "claim": "gender does not leak", "metric": "leak_gender_auc",
             "expect": {"below": 0.5}},
            {"name": "signal-effect", "scenario": "quickstart", "set": SMALL,
             "claim": "the signal adds leakage", "metric": "leak_gender_auc",
             "reference": {"set": ["world.signal=0.0"]},
             "expect": {"above": 0.0, "every_seed": True}},
            {"name": "growth", "scenario": "quickstart", "set": SMALL,
             "claim": "disclosure grows", "metric": "disclosure_mean",
             "group": "inclination:unconcerned", "reference": {"step": 0, "compare": "ratio"},
             "published": {"value": 1.0, "source": "none", "tolerance": 0.5}},
            {"name": "types-differ", "scenario": "quickstart", "set": SMALL,
             "claim": "the unconcerned disclose more than the fundamentalists",
             "metric": "disclosure_mean", "group": "inclination:unconcerned",
             "versus": {"group": "inclination:fundamentalist"},
             "expect": {"above": 0.0, "every_seed": True}},
            {"name": "withholding", "section": "Externalities", "scenario": "quickstart",
             "set": SMALL, "claim": "pragmatists' disclosure when fundamentalists withhold all",
             "metric": "disclosure_mean", "group": "inclination:pragmatist",
             "externality": {"changed": "inclination:fundamentalist", "beta": 0.0}},
            {"name": "withholding-leak", "section": "Externalities", "scenario": "quickstart",
             "set": SMALL, "claim": "everyone's gender AUC when fundamentalists withhold all",
             "metric": "leak_gender_auc", "group": "all:all",
             "externality": {"changed": "inclination:fundamentalist", "beta": 0.0}},
        ],
        "sections": {"Externalities": "Paired runs.", "Not testable": "A missing feature."},
        "studies": [{"sweep": "grid.yaml", "kind": "grid", "title": "Tiny grid",
                     "columns": ["hr_10", "leak_gender_auc"]}],
    }
    path = tmp_path / "results.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def test_results_table_from_runs(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    out, doc = tmp_path / "out", tmp_path / "docs" / "results.md"  # a folder yet to make
    folders = run_results(spec, out, workers=2)
    assert len(folders) == 4  # two run groups (plain, signal 0), the paired runs, the study
    rows = {r.row.name: r for r in write_results_doc(spec, out, doc)}
    assert doc.is_file()
    assert rows["leak"].verdict == "holds" and len(rows["leak"].values) == 2
    assert rows["leak"].low < rows["leak"].mean < rows["leak"].high
    assert rows["no-leak-claim"].verdict == "does not hold"
    assert rows["signal-effect"].verdict == "holds"
    assert rows["growth"].verdict in ("matches", "differs")
    assert rows["types-differ"].verdict == "holds"
    # paired runs: the pragmatists' own disclosure is untouched by the fundamentalists' budget,
    # and the row's values are the seed-by-seed differences `privsim externality` wrote
    assert rows["withholding"].verdict == "reported"
    assert np.allclose(rows["withholding"].values, 0.0)
    paired = pd.read_parquet(next(out.glob("quickstart-externality-*")) / "externality.parquet")
    everyone = paired[(paired["group_kind"] == "all") & (paired["metric"] == "leak_gender_auc")]
    assert rows["withholding-leak"].mean == pytest.approx(everyone["mean_difference"].iloc[0])
    assert len(rows["withholding-leak"].values) == 2
    text = doc.read_text()
    assert "## Externalities\n\nPaired runs.\n\n| scenario" in text
    assert "## Not testable\n\nA missing feature." in text
    assert "| quickstart |" in text and "**holds**" in text and "**does not hold**" in text
    assert "### Tiny grid" in text and "| 4 | 2 |" in text
    assert scenario_question("quickstart", spec) in text
    # A rerun resumes: nothing is run again, the document is the same.
    before = sorted(p.stat().st_mtime for p in out.rglob("metrics.parquet"))
    run_results(spec, out, workers=2)
    assert sorted(p.stat().st_mtime for p in out.rglob("metrics.parquet")) == before


def test_unrun_rows_are_marked_and_bad_files_named(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    rows = write_results_doc(spec, tmp_path / "nothing", tmp_path / "results.md")
    assert {r.verdict for r in rows} == {"not run"}
    assert "`privsim results --only leak` runs it (under a minute on 2 cores)" in rows[0].why
    assert rows[1].why.endswith("runs it (its runs are those of rows above it)")
    bad = tmp_path / "bad.yaml"
    bad.write_text("headlines:\n  - {name: x, scenario: quickstart, claim: c, metric: m, "
                   "expect: {above: 1, below: 2}}\n")
    with pytest.raises(ScenarioError, match=r"bad.yaml: headlines.0.expect"):
        load_results_spec(bad)
    for fields, message in [
        ("externality: {changed: High, beta: 0.1}", r"bad.yaml: headlines.0.externality.changed"),
        ("externality: {changed: 'involvement:High', beta: 0.1}", r"give group kind:name"),
        ("versus: {group: 'involvement:Low', set: [a=1]}", r"give one of group or set"),
    ]:
        bad.write_text("headlines:\n  - {name: x, scenario: quickstart, claim: c, metric: m, "
                       f"{fields}}}\n")
        with pytest.raises(ScenarioError, match=message):
            load_results_spec(bad)


def test_results_prints_its_plan_and_runs_the_whole_table_only_when_asked(
        tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from simulator.cli import app
    from simulator.experiments.results import plan_results

    spec = _spec(tmp_path)
    # two run groups (plain, signal 0) and a study of two grid points, all on seeds 0 and 1
    plan = plan_results(spec)
    # and the externality's paired runs: unchanged and changed on both seeds
    assert plan.runs == {"under a minute": 2 * 2 + 2 * 2 + 2 * 2}
    assert plan_results(spec, only=["leak"]).runs == {"under a minute": 2}
    assert 0 < plan_results(spec, only=["leak"]).seconds < plan.seconds
    assert sum(plan.rows.values()) == pytest.approx(plan.seconds)  # each run counted once
    out = tmp_path / "out"
    refused = CliRunner().invoke(app, ["results", str(spec), "--out", str(out)])
    assert refused.exit_code == 2
    assert "plan: 12 runs (12 under a minute), about " in refused.output
    assert "choose rows with --only NAME, or run them all with --all" in refused.output
    assert not (out / "results.md").exists()
    rewritten = CliRunner().invoke(app, ["results", str(spec), "--out", str(out), "--no-run"])
    assert rewritten.exit_code == 0, rewritten.output
    assert (out / "results.md").is_file()  # under --out, not the project's docs/results.md


def _judged(values: list[float], rates: list[float] | None = None,
            **fields: object) -> tuple[str, str, float, float]:
    """A headline of `fields` judged on synthetic per-seed values: (verdict, why, low, high)."""
    from simulator.experiments.results import (
        Headline,
        HeadlineResult,
        _verdict,
        headline_range,
        mean_and_interval,
    )

    row = Headline.model_validate({"name": "r", "scenario": "quickstart", "claim": "c",
                                   "metric": "leak_gender_bacc", **fields})
    result = HeadlineResult(row, "q", values=np.array(values, dtype=float),
                            majority=np.array(rates or [], dtype=float))
    result.mean, result.low, result.high = mean_and_interval(result.values,
                                                             headline_range(row))
    verdict, why = _verdict(row, result)
    return verdict, why, result.low, result.high


def test_the_verdict_rule_judges_chance_overshoot_one_seed_and_gains() -> None:
    chance = {"expect": {"chance": 0.5}}
    assert _judged([0.49, 0.5, 0.51, 0.5, 0.505], **chance)[0] == "holds"
    verdict, why, _, high = _judged([0.482, 0.487, 0.49, 0.493, 0.486], **chance)
    assert verdict == "overshoots" and high < 0.5 and "sign flipped" in why
    assert _judged([0.60, 0.62, 0.61, 0.63, 0.60], **chance)[0] == "does not hold"
    assert _judged([0.44, 0.56, 0.53, 0.47, 0.52], **chance)[0] == "not shown"
    # the same window, in absolute units, for a seven-class attribute
    age = {"expect": {"chance": 0.143}, "metric": "leak_age_bacc"}
    assert _judged([0.154, 0.158, 0.16, 0.173, 0.15], **age)[0] == "holds"  # in 0.113..0.173
    assert _judged([0.15, 0.17, 0.18, 0.16, 0.178], **age)[0] == "not shown"
    verdict, why, low, high = _judged([0.5], **chance)
    assert verdict == "1 seed: indicative" and np.isnan(low) and np.isnan(high)
    # Resheff's age row: our gain over the majority against the paper's
    published = {"published": {"value": 0.4416, "source": "paper", "majority": 0.347,
                               "tolerance": 0.03}, "majority": "leak_age_majority",
                 "metric": "leak_age_acc"}
    verdict, why, _, _ = _judged([0.44, 0.43, 0.45, 0.44, 0.45], [0.314] * 5, **published)
    assert verdict == "differs" and "+0.128" in why and "+0.095" in why
    close = _judged([0.41, 0.40, 0.42, 0.41, 0.41], [0.314] * 5, **published)
    assert close[0] == "matches"


def test_intervals_stay_within_what_the_headline_can_take() -> None:
    from simulator.experiments.results import Headline, headline_range, mean_and_interval

    hit = Headline.model_validate({"name": "h", "scenario": "quickstart", "claim": "c",
                                   "metric": "target_hr_10",
                                   "reference": {"set": ["attackers=[]"]}})
    assert headline_range(hit) == (-1.0, 1.0)
    ratio = Headline.model_validate({**hit.model_dump(), "reference": {
        "set": ["x=1"], "compare": "ratio"}})
    assert headline_range(ratio) == (0.0, float("inf"))
    # two-valued outcomes: a push that works on four seeds of five
    mean, low, high = mean_and_interval(np.array([1.0, 1.0, 0.03, 1.0, 1.0]), (0.0, 1.0))
    assert 0.0 <= low <= mean <= high <= 1.0
    mean, low, high = mean_and_interval(np.array([-1.0, -0.98, -0.8, -1.0, -0.9]), (-1, 1))
    assert -1.0 <= low <= mean <= high <= 1.0
    assert mean_and_interval(np.array([0.2, 0.2, 0.2]))[1:] == (0.2, 0.2)
    # a ratio set against another group's ratio; a paired externality difference
    versus = Headline.model_validate({**ratio.model_dump(), "group": "involvement:Low",
                                      "versus": {"group": "involvement:High"}})
    assert headline_range(versus) == (float("-inf"), float("inf"))
    assert versus.counterpart().group == "involvement:High"
    against = Headline.model_validate({**hit.model_dump(), "set": ["a=1"],
                                       "versus": {"set": ["b=2"]}})
    assert headline_range(against) == (-2.0, 2.0)
    assert against.counterpart().set == ["a=1", "b=2"]
    paired = Headline.model_validate({**hit.model_dump(), "reference": None,
                                      "group": "involvement:Low",
                                      "externality": {"changed": "involvement:High",
                                                      "beta": 0.1}})
    assert headline_range(paired) == (-1.0, 1.0)


def test_the_shipped_results_file_traces_every_published_value() -> None:
    """Every published value names where in the paper it is printed, or says it is not in
    ../shared/papers/; every at-chance claim reads a leakage column."""
    from simulator.experiments.results import load_results_spec

    spec = load_results_spec(Path(__file__).parents[1] / "scenarios/results/headlines.yaml")
    published = [row for row in spec.headlines if row.published is not None]
    assert published and all(row.published.where for row in published)
    assert all(row.metric.startswith("leak_") for row in spec.headlines
               if row.expect is not None and row.expect.chance is not None)


def test_no_interval_in_the_published_results_leaves_what_its_headline_can_take() -> None:
    """Every row of docs/results.md: its mean and interval lie within its headline's range
    (the metric's, or that of a difference or ratio of two), and each row is a headline of
    the shipped results file."""
    import re
    from collections import defaultdict

    from simulator.experiments.results import headline_range, load_results_spec

    root = Path(__file__).parents[1]
    spec = load_results_spec(root / "scenarios/results/headlines.yaml")
    by_claim: dict[tuple[str, str], list] = defaultdict(list)
    for row in spec.headlines:
        by_claim[(row.scenario, row.claim.replace("\n", " "))].append(row)
    number = r"(-?[0-9.]+(?:e[-+]?[0-9]+)?|-?inf)"
    checked = 0
    for line in (root / "docs/results.md").read_text(encoding="utf-8").splitlines():
        cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        if len(cells) != 8 or cells[0] in ("scenario", "---"):
            continue
        rows = by_claim.get((cells[0], cells[2]))
        assert rows, f"docs/results.md row not in headlines.yaml: {cells[0]} / {cells[2]}"
        row = rows.pop(0)
        low, high = headline_range(row)
        found = re.fullmatch(rf"{number}(?: \[{number}, {number}\]| \(one seed\))?", cells[3])
        if cells[3] == "not run":
            continue
        assert found, f"{row.name}: unreadable value {cells[3]!r}"
        values = [float(v) for v in found.groups() if v is not None]
        assert all(low - 1e-9 <= v <= high + 1e-9 for v in values), (row.name, cells[3])
        checked += 1
    assert checked >= 50
