"""The headline table: every shipped what-if's headline number over seeds, with a verdict.

A results file (`scenarios/results/headlines.yaml`) lists headlines: a scenario (with
overrides), the metric that answers its question, how it is read (at a step, against a
reference run, step, metric or group, as an externality of another group's budget, or set
against another group or run with `versus`), what the scenario claims about it and, where a
paper gives one, the published value. `run_results` runs every distinct scenario over the
seeds through the sweep machinery (so a rerun resumes and reuses finished runs), the paired
runs of the externality rows and the studies' sweeps, then `write_results_doc` writes
`docs/results.md`: per headline the question, the mean with its 95% interval over
seeds, the published value and a verdict by the rule stated at the top of the document.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator
from scipy.stats import bootstrap, sem
from scipy.stats import t as student_t

from simulator.analysis.budget import budget_table
from simulator.analysis.intervals import metric_range
from simulator.experiments.catalog import find_scenario
from simulator.experiments.externality import plan_runs, run_externality, run_label
from simulator.experiments.sweep import expand_points, load_sweep, run_sweep
from simulator.foundations.errors import ScenarioError
from simulator.foundations.yaml_files import load_model_file, read_yaml
from simulator.runs.outputs import read_manifest, write_text


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Expectation(_Strict):
    """Where the claim puts the headline: above or below a value, inside a range, or at a
    chance level (`chance`: within `CHANCE_WINDOW` of it, the same absolute window for every
    attribute). `every_seed`: each seed's value must be there, not only the interval."""

    above: float | None = None
    below: float | None = None
    within: tuple[float, float] | None = None
    chance: float | None = None
    every_seed: bool = False

    @model_validator(mode="after")
    def _one_kind(self) -> Expectation:
        kinds = (self.above, self.below, self.within, self.chance)
        if sum(v is not None for v in kinds) != 1:
            raise ValueError("give exactly one of above, below, within, chance")
        return self


class Published(_Strict):
    """A paper's value for the same quantity, where it is printed, and how close counts as
    matching. With `majority` (the paper's majority-class rate) the comparison is of gains
    over the majority: ours (the row's `majority` column, per seed) against the paper's,
    within `tolerance` in absolute units; otherwise of the values, within `tolerance`
    relative to the paper's."""

    value: float
    source: str
    where: str = Field("", description="table or figure, dataset and setting of the value")
    verified: bool = Field(True, description="false: the value is not in ../shared/papers/")
    majority: float | None = Field(None, description="the paper's majority-class rate")
    tolerance: float = Field(0.05, ge=0.0, description="difference that matches")


class Reference(_Strict):
    """What the headline is compared with, seed by seed: the same run at another `step`,
    another `metric` of the same run and step, or a run of the same scenario with more
    overrides (`set`) read at the same step."""

    step: int | None = None
    metric: str | None = None
    group: str | None = None
    set: list[str] = Field(default_factory=list)
    compare: Literal["difference", "ratio"] = "difference"

    @model_validator(mode="after")
    def _one_kind(self) -> Reference:
        kinds = (self.step is not None, self.metric is not None, self.group is not None,
                 bool(self.set))
        if sum(kinds) != 1:
            raise ValueError("give one of step, metric, group or set")
        return self


class Externality(_Strict):
    """The row's value is its group's metric when only the users of `changed` (`kind:name`)
    disclose with budget `beta`, minus the same in the unchanged run, seed by seed (paired
    runs from `privsim externality`: every other user's draws are the same)."""

    changed: str = Field(pattern=r"^[^:]+:.+$", description="kind:name of the changed group")
    beta: float = Field(ge=0.0, le=1.0)


class Versus(_Strict):
    """What a headline's value is set against, seed by seed: the same value for another
    group (`kind:name`), or the same value in runs with more overrides (`set`)."""

    group: str | None = None
    set: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_kind(self) -> Versus:
        if (self.group is not None) == bool(self.set):
            raise ValueError("give one of group or set")
        return self


class Headline(_Strict):
    """One row of the table."""

    name: str
    section: str = "Headlines"
    scenario: str
    set: list[str] = Field(default_factory=list)
    seeds: list[int] | None = Field(None, description="default: the results file's seeds")
    question: str | None = Field(None, description="default: the scenario file's Question")
    claim: str
    metric: str
    group: str | None = Field(None, description="kind:name to read the groups table")
    step: int | None = Field(None, description="default: the last step")
    reference: Reference | None = None
    externality: Externality | None = None
    versus: Versus | None = Field(
        None, description="the row's value minus the same value for another group or in runs "
        "with more overrides, seed by seed")
    expect: Expectation | None = None
    published: Published | None = None
    majority: str | None = Field(None, description="our majority-rate column, for gains")
    range: tuple[float, float] | None = Field(
        None, description="the values the headline can take (intervals are clipped to it); "
        "default: from its metric and its comparison")
    note: str = ""

    @model_validator(mode="after")
    def _one_comparison(self) -> Headline:
        if self.reference is not None and self.externality is not None:
            raise ValueError("give reference or externality, not both")
        if self.externality is not None and self.group is None:
            raise ValueError("an externality row reads a group: give group kind:name")
        if self.versus is not None and self.versus.group is not None and self.group is None:
            raise ValueError("versus.group compares the row's group with another: give group")
        return self

    def read_rows(self) -> list[Headline]:
        """The headlines whose values this row reads: itself and its `versus` counterpart."""
        return [self, self.counterpart()] if self.versus is not None else [self]

    def counterpart(self) -> Headline:
        """The same headline for `versus`'s group, or with its overrides added."""
        assert self.versus is not None
        if self.versus.group is not None:
            return self.model_copy(update={"group": self.versus.group, "versus": None})
        return self.model_copy(update={"set": [*self.set, *self.versus.set], "versus": None})


class Study(_Strict):
    """A study sweep whose whole table goes into the document."""

    sweep: str
    kind: Literal["privacy_budget", "grid"]
    title: str
    columns: list[str] = Field(default_factory=list, description="grid: metrics shown")
    seeds: list[int] | None = Field(None, description="default: the results file's seeds")
    note: str = ""


class ResultsSpec(_Strict):
    """A results file."""

    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2, 3, 4], min_length=1)
    headlines: list[Headline] = Field(default_factory=list)
    studies: list[Study] = Field(default_factory=list)
    sections: dict[str, str] = Field(
        default_factory=dict, description="text under a section's heading, by section name "
        "(a section may have text and no rows: claims no feature can test yet)")


def load_results_spec(path: Path) -> ResultsSpec:
    """Read and validate a results file, naming the file and key on errors."""
    return load_model_file(ResultsSpec, path)


@dataclass(frozen=True)
class RunGroup:
    """One scenario with one set of overrides, run over some seeds (one sweep)."""

    scenario: str
    overrides: tuple[str, ...]
    seeds: tuple[int, ...]

    @property
    def slug(self) -> str:
        """A folder name: the scenario name and a short hash of the overrides and seeds."""
        return _slug(self.scenario, [*self.overrides, ",".join(map(str, self.seeds))])


def _slug(scenario: str, key: list[str], kind: str = "") -> str:
    """`<scenario name>[-kind]-<short hash of key>`: a folder name for a set of runs."""
    digest = hashlib.sha1("\n".join(key).encode()).hexdigest()[:8]
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", Path(scenario).stem)
    return f"{name}-{kind}-{digest}" if kind else f"{name}-{digest}"


def headline_groups(row: Headline, seeds: list[int]) -> tuple[RunGroup, RunGroup | None]:
    """The run group of a headline, and that of its reference runs (None without)."""
    chosen = tuple(row.seeds or seeds)
    main = RunGroup(row.scenario, tuple(row.set), chosen)
    ref = row.reference
    other = (RunGroup(row.scenario, (*row.set, *ref.set), chosen)
             if ref is not None and ref.set else None)
    return main, other


@dataclass(frozen=True)
class ExternalityGroup:
    """Paired runs of one scenario over some seeds: unchanged, and with one group's budget
    changed (`privsim externality`)."""

    scenario: str
    overrides: tuple[str, ...]
    seeds: tuple[int, ...]
    changed: str
    beta: float

    @property
    def slug(self) -> str:
        """A folder name: the scenario name, `externality` and a short hash of the rest."""
        return _slug(self.scenario, [*self.overrides, ",".join(map(str, self.seeds)),
                                     self.changed, repr(self.beta)], "externality")


def externality_group(row: Headline, seeds: list[int]) -> ExternalityGroup | None:
    """The paired runs an externality row reads (None for other rows)."""
    if row.externality is None:
        return None
    return ExternalityGroup(row.scenario, tuple(row.set), tuple(row.seeds or seeds),
                            row.externality.changed, row.externality.beta)


def externality_groups(spec: ResultsSpec) -> list[ExternalityGroup]:
    """Every distinct set of paired runs the externality rows need."""
    found = (externality_group(r, spec.seeds) for row in spec.headlines
             for r in row.read_rows())
    return list(dict.fromkeys(g for g in found if g is not None))


def run_groups(spec: ResultsSpec) -> list[RunGroup]:
    """Every distinct (scenario, overrides, seeds) the headlines and their references need."""
    found = (group for row in spec.headlines for group in _row_groups(row, spec.seeds))
    return list(dict.fromkeys(g for g in found if isinstance(g, RunGroup)))


def _row_groups(row: Headline, seeds: list[int]) -> list[RunGroup | ExternalityGroup]:
    """The runs a row reads, its `versus` counterpart's included: a sweep per scenario and
    set of overrides, or the paired runs of an externality."""
    found: list[RunGroup | ExternalityGroup] = []
    for r in row.read_rows():
        paired = externality_group(r, seeds)
        found += [paired] if paired is not None else [
            g for g in headline_groups(r, seeds) if g is not None]
    return found


def _scenario_path(name: str, spec_file: Path) -> str:
    relative = spec_file.parent / name
    return str(relative.resolve()) if name.endswith((".yaml", ".yml")) and relative.is_file() \
        else name


def run_results(
    spec_file: Path, out: Path, workers: int | None = None, only: list[str] | None = None,
) -> dict[str, Path]:
    """Run (or resume) every headline's runs and every study sweep; returns the sweep folder
    of each run group slug and study name. `only` restricts to headlines whose names, and
    studies whose sweep names, start with one of the given strings."""
    spec = load_results_spec(spec_file)
    chosen = [h for h in spec.headlines if _selected(h.name, only)]
    folders: dict[str, Path] = {}
    out.mkdir(parents=True, exist_ok=True)
    for group in run_groups(spec.model_copy(update={"headlines": chosen})):
        sweep = {"name": group.slug, "base": _scenario_path(group.scenario, spec_file),
                 "set": [*group.overrides, "output.plots=false"], "seeds": list(group.seeds)}
        folders[group.slug] = _run_generated(out, group.slug, sweep, workers)
    for paired in externality_groups(spec.model_copy(update={"headlines": chosen})):
        folders[paired.slug] = _run_externality(out, paired, spec_file, workers)
    for study in spec.studies:
        path = spec_file.parent / study.sweep
        base = load_sweep(path)
        name = base.name
        if not _selected(name, only):
            continue
        sweep = base.model_dump(mode="json", exclude={"replications", "root_seed"})
        sweep["seeds"] = study.seeds or spec.seeds
        sweep["base"] = _scenario_path(base.base, path)
        folders[name] = _run_generated(out, name, sweep, workers)
    return folders


@dataclass
class ResultsPlan:
    """The runs `run_results` would start, by run-time class, and their estimated seconds
    one after another on 2 CPU cores (`simulator.scenario.run_time`)."""

    runs: dict[str, int]
    seconds: float
    # each headline's and study's estimated seconds (runs it shares with an earlier row are
    # counted there, not again)
    rows: dict[str, float] = field(default_factory=dict)

    @property
    def hours(self) -> float:
        """Estimated hours on 2 CPU cores (runs side by side share the cores, so workers do
        not shorten it much)."""
        return self.seconds / 3600


def plan_results(spec_file: Path, only: list[str] | None = None) -> ResultsPlan:
    """How many runs `run_results` would start (finished ones included), by run-time class
    on 2 CPU cores (`catalog.run_time_class` of each group's or study's scenario), and how
    long they take by the cost model."""
    from simulator.experiments.catalog import load_scenario, run_time_class
    from simulator.scenario.run_time import estimate_run_time

    spec = load_results_spec(spec_file)
    chosen = [h for h in spec.headlines if _selected(h.name, only)]
    plan: dict[str, int] = {}
    seconds = 0.0
    rows: dict[str, float] = {}
    costs: dict[str, float] = {}
    for group in run_groups(spec.model_copy(update={"headlines": chosen})):
        scenario = load_scenario(_scenario_path(group.scenario, spec_file),
                                 list(group.overrides))
        kind = run_time_class(scenario)
        plan[kind] = plan.get(kind, 0) + len(group.seeds)
        costs[group.slug] = estimate_run_time(scenario).seconds * len(group.seeds)
        seconds += costs[group.slug]
    for paired in externality_groups(spec.model_copy(update={"headlines": chosen})):
        scenario = load_scenario(_scenario_path(paired.scenario, spec_file),
                                 list(paired.overrides))
        kind = run_time_class(scenario)
        plan[kind] = plan.get(kind, 0) + 2 * len(paired.seeds)  # unchanged and changed
        costs[paired.slug] = estimate_run_time(scenario).seconds * 2 * len(paired.seeds)
        seconds += costs[paired.slug]
    counted: set[str] = set()
    for row in chosen:
        mine = [g.slug for g in _row_groups(row, spec.seeds)]
        rows[row.name] = sum(costs.get(slug, 0.0) for slug in mine if slug not in counted)
        counted.update(mine)
    for study in spec.studies:
        path = spec_file.parent / study.sweep
        base = load_sweep(path)
        if not _selected(base.name, only):
            continue
        seeds = len(study.seeds or spec.seeds)
        one_seed = base.model_copy(update={"seeds": [0], "replications": None})
        points = len(expand_points(one_seed, path))
        scenario = load_scenario(_scenario_path(base.base, path), list(base.set))
        kind = run_time_class(scenario)
        plan[kind] = plan.get(kind, 0) + points * seeds
        rows[base.name] = estimate_run_time(scenario).seconds * points * seeds
        seconds += rows[base.name]
    return ResultsPlan(plan, seconds, rows)


def _selected(name: str, only: list[str] | None) -> bool:
    return not only or any(name.startswith(prefix) for prefix in only)


def _run_externality(out: Path, paired: ExternalityGroup, spec_file: Path,
                     workers: int | None) -> Path:
    """Run (or resume) one externality's paired runs into out/slug."""
    plan = plan_runs(_scenario_path(paired.scenario, spec_file), [paired.changed], paired.beta,
                     list(paired.seeds), list(paired.overrides))
    return run_externality(plan, out / paired.slug, workers or 1)


def _run_generated(out: Path, name: str, sweep: dict[str, Any], workers: int | None) -> Path:
    """Write a sweep file for `sweep` and run it into out/name (resuming what is there)."""
    folder = out / name
    spec_path = out / f"{name}.sweep.yaml"
    write_text(spec_path, yaml.safe_dump(sweep, sort_keys=False))
    return run_sweep(spec_path, out=folder, workers=workers)


# -- evaluation ------------------------------------------------------------------------------


@dataclass
class HeadlineResult:
    """A headline's per-seed values, their summary and its verdict."""

    row: Headline
    question: str
    values: np.ndarray = field(default_factory=lambda: np.zeros(0))
    majority: np.ndarray = field(default_factory=lambda: np.zeros(0))
    mean: float = float("nan")
    low: float = float("nan")
    high: float = float("nan")
    verdict: str = "not run"
    why: str = ""


def _completed_metrics(folder: Path) -> pd.DataFrame | None:
    path = folder / "results.parquet"
    return pd.read_parquet(path) if path.is_file() else None


def _sweep_tables(
    folder: Path | None, with_groups: bool
) -> tuple[pd.DataFrame, pd.DataFrame | None] | None:
    """A sweep's stacked metrics and (when asked) groups tables; None when it has not run
    or not completed."""
    if folder is None:
        return None
    table = _completed_metrics(folder)
    if table is None:
        return None
    return table, pd.read_parquet(folder / "groups.parquet") if with_groups else None


def _read_value(table: pd.DataFrame, groups: pd.DataFrame | None, row: Headline,
                step: int | None, metric: str | None = None,
                group: str | None = None) -> pd.Series:
    """`metric` (default: the row's) of `group` (default: the row's; None: everyone) per seed
    at `step` (None: each seed's last step)."""
    metric = metric or row.metric
    group = group or row.group
    source = table
    if group is not None:
        if groups is None:
            raise ScenarioError(f"headline {row.name}: no groups table")
        kind, _, name = group.partition(":")
        source = groups[(groups["group_kind"] == kind) & (groups["group"] == name)]
    if metric not in source:
        raise ScenarioError(f"headline {row.name}: the runs have no column {metric!r}")
    if step is None:
        step_of = source.groupby("seed")["step"].transform("max")
        source = source[source["step"] == step_of]
    else:
        source = source[source["step"] == step]
    return source.groupby("seed")[metric].last().astype(float)


def evaluate(
    row: Headline, question: str, folders: dict[str, Path], seeds: list[int]
) -> HeadlineResult:
    """Read a headline's values from its runs and judge them."""
    result = HeadlineResult(row, question)
    if row.versus is not None:
        mine = _values(row, folders, seeds)
        theirs = _values(row.counterpart(), folders, seeds)
        if mine is None or theirs is None:
            return result
        ours, other = mine[0].align(theirs[0], join="inner")
        return _judged(result, ours - other)
    found = _values(row, folders, seeds)
    if found is None:
        return result
    values, majority = found
    if majority is not None:
        values, majority = values.dropna().align(majority, join="inner")
        result.majority = majority.to_numpy()
    return _judged(result, values)


def _values(row: Headline, folders: dict[str, Path], seeds: list[int]
            ) -> tuple[pd.Series, pd.Series | None] | None:
    """A headline's value per seed (before any `versus`) and, when it names one, its
    `majority` column per seed; None until its runs are there."""
    paired = externality_group(row, seeds)
    if paired is not None:
        values = _externality_values(row, paired, folders.get(paired.slug))
        return None if values is None else (values, None)
    group, ref_group = headline_groups(row, seeds)
    needs_groups = row.group is not None or (row.reference is not None
                                             and row.reference.group is not None)
    tables = _sweep_tables(folders.get(group.slug), needs_groups)
    if tables is None:
        return None
    table, groups = tables
    values = _read_value(table, groups, row, row.step)
    ref = row.reference
    if ref is not None:
        if ref.step is not None:
            other = _read_value(table, groups, row, ref.step)
        elif ref.metric is not None:
            other = _read_value(table, groups, row, row.step, ref.metric)
        elif ref.group is not None:
            other = _read_value(table, groups, row, row.step, group=ref.group)
        else:
            assert ref_group is not None
            ref_tables = _sweep_tables(folders.get(ref_group.slug), bool(row.group))
            if ref_tables is None:
                return None
            other = _read_value(*ref_tables, row, row.step)
        values, other = values.align(other, join="inner")
        values = values - other if ref.compare == "difference" else values / other
    majority = (None if row.majority is None else
                _read_value(table, groups, row, row.step, row.majority))
    return values, majority


def _judged(result: HeadlineResult, values: pd.Series) -> HeadlineResult:
    """Fill in the values over seeds, their interval and the verdict."""
    values = values.dropna()
    if values.empty:
        return result
    result.values = values.to_numpy()
    result.mean, result.low, result.high = mean_and_interval(result.values,
                                                             headline_range(result.row))
    result.verdict, result.why = _verdict(result.row, result)
    return result


def _externality_values(row: Headline, paired: ExternalityGroup,
                        folder: Path | None) -> pd.Series | None:
    """Per seed: the row's group's metric in the changed run minus in the unchanged one;
    None until every pair has completed."""
    if folder is None or not (folder / "externality.parquet").is_file():
        return None
    differences = {}
    for seed in paired.seeds:
        pair = []
        for label in (None, paired.changed):
            path = folder / run_label(label, seed) / "groups.parquet"
            if not path.is_file():
                return None
            groups = pd.read_parquet(path).assign(seed=seed)
            pair.append(_read_value(groups, groups, row, row.step))
        differences[seed] = float(pair[1].iloc[0] - pair[0].iloc[0])
    return pd.Series(differences, dtype=float)


# Stated once at the top of the document; `mean_and_interval` and `_verdict` implement it.
INTERVAL_METHOD = (
    "Intervals are 95% intervals of the mean over seeds, each end the more cautious of two: "
    "the Student-t interval and the percentile bootstrap (`scipy.stats.bootstrap`, 9,999 "
    "resamples, fixed seed); both are clipped to the values the headline can take (a hit "
    "rate to [0, 1], a difference of two to [-1, 1]). With 5 seeds a bootstrap alone is too "
    "narrow (it resamples only the values seen), and with two-valued outcomes, such as an "
    "attack that works on some seeds and fails on others, a t-interval alone assumes a spread "
    "they lack and can leave the metric's range; those rows run 20 seeds.")
CHANCE_WINDOW = 0.03
VERDICT_RULE = (
    "Verdicts follow one rule. A claim that a value is above or below a bound **holds** "
    "when the whole interval is there, is **not shown** when only the mean is, and **does "
    "not hold** otherwise. A claim that an attacker is **at chance** holds when the whole "
    f"interval lies within {CHANCE_WINDOW} of the chance level (absolute units, the same "
    "for every attribute); an interval entirely below chance **overshoots** (the attribute "
    "can be read with the sign flipped). A published value **matches** when our gain over "
    "the majority class is within the stated tolerance of the paper's gain (absolute), or, "
    "where the paper gives no majority rate, our value is within the tolerance relative to "
    "its; otherwise it **differs**. A row measured on one seed has no interval: it reads "
    "**1 seed: indicative** and is not counted among the verdicts.")
INDICATIVE = "1 seed: indicative"


def headline_range(row: Headline) -> tuple[float, float]:
    """The values a headline can take: as declared, else its metric's range, turned into the
    range of a difference or a ratio of two such values."""
    if row.range is not None:
        return row.range
    low, high = metric_range(row.metric)
    if row.externality is not None or (row.reference is not None
                                       and row.reference.compare == "difference"):
        low, high = -(high - low), high - low
    elif row.reference is not None:  # a ratio
        low, high = (0.0, float("inf")) if low >= 0 else (float("-inf"), float("inf"))
    if row.versus is not None:  # a difference of two such values
        return -(high - low), high - low
    return low, high


def mean_and_interval(values: np.ndarray, bounds: tuple[float, float] = (-np.inf, np.inf),
                      confidence: float = 0.95) -> tuple[float, float, float]:
    """The mean over seeds and its interval (`INTERVAL_METHOD`): at each end the more
    cautious of the Student-t and the percentile-bootstrap interval, clipped to `bounds`;
    NaN for one seed, and a point where every seed agrees."""
    values = np.asarray(values, dtype=float)
    mean = float(values.mean())
    if len(values) < 2:
        return mean, float("nan"), float("nan")
    if np.all(values == values[0]):
        return float(values[0]), float(values[0]), float(values[0])
    found = bootstrap((values,), np.mean, confidence_level=confidence, n_resamples=9999,
                      method="percentile", random_state=np.random.default_rng(0))
    t_low, t_high = student_t.interval(confidence, len(values) - 1, loc=mean, scale=sem(values))
    low = min(found.confidence_interval.low, t_low)
    high = max(found.confidence_interval.high, t_high)
    return mean, float(np.clip(low, *bounds)), float(np.clip(high, *bounds))


def _fmt(value: float) -> str:
    return f"{value:.3g}" if abs(value) >= 0.001 or value == 0 else f"{value:.2e}"


def _verdict(row: Headline, result: HeadlineResult) -> tuple[str, str]:
    """From `expect`: holds (the interval, or every seed, is where the claim puts it), does
    not hold (the mean is not), or not shown (the mean is, the interval is too wide); from
    `published` alone: matches or differs."""
    reasons = []
    verdict = "reported"
    if len(result.values) < 2:
        return INDICATIVE, "one seed gives no interval" + (f"; {row.note}" if row.note else "")
    if row.expect is not None:
        verdict, reason = _expectation(row.expect, result)
        reasons.append(reason)
    if row.published is not None:
        close, reason = _published(row.published, result)
        if row.expect is None:
            verdict = "matches" if close else "differs"
        reasons.append(reason)
    if row.note:
        reasons.append(row.note)
    return verdict, "; ".join(reasons)


def _published(p: Published, result: HeadlineResult) -> tuple[bool, str]:
    """Whether our value matches the paper's, and why: gains over the majority when both
    majority rates are known, else the values themselves."""
    if p.majority is not None and len(result.majority) == len(result.values):
        ours = float(np.mean(result.values - result.majority))
        theirs = p.value - p.majority
        close = abs(ours - theirs) <= p.tolerance
        here = _fmt(float(np.mean(result.majority)))
        return close, (f"gain over the majority {ours:+.3f} (majority {here} here) against "
                       f"the paper's {theirs:+.3f} (majority {_fmt(p.majority)}): "
                       f"{'within' if close else 'more than'} {_fmt(p.tolerance)}")
    close = abs(result.mean - p.value) <= p.tolerance * abs(p.value)
    return close, (f"{'within' if close else 'more than'} {p.tolerance:.0%} of the published "
                   f"{_fmt(p.value)}")


def _expectation(e: Expectation, result: HeadlineResult) -> tuple[str, str]:
    points = result.values if e.every_seed else np.array([result.low, result.high])
    if not np.all(np.isfinite(points)):
        return "not shown", "one seed gives no interval"
    if e.chance is not None:
        return _at_chance(e.chance, result)
    if e.within is not None:
        lo, hi = e.within
        inside = lambda v: (v >= lo) & (v <= hi)  # noqa: E731
        where = f"inside [{_fmt(lo)}, {_fmt(hi)}]"
    elif e.above is not None:
        bound = e.above
        inside = lambda v: v > bound  # noqa: E731
        where = f"above {_fmt(bound)}"
    else:
        assert e.below is not None
        bound = e.below
        inside = lambda v: v < bound  # noqa: E731
        where = f"below {_fmt(bound)}"
    span = (f"seeds range {_fmt(result.values.min())}..{_fmt(result.values.max())}"
            if e.every_seed else f"interval {_fmt(result.low)}..{_fmt(result.high)}")
    if bool(np.all(inside(points))):
        return "holds", f"{span}, {where}"
    if bool(inside(result.mean)):
        return "not shown", f"mean {_fmt(result.mean)} is {where} but the {span} is not all"
    return "does not hold", f"mean {_fmt(result.mean)} is not {where} ({span})"


def _at_chance(chance: float, result: HeadlineResult) -> tuple[str, str]:
    """The at-chance rule: the interval within CHANCE_WINDOW of chance; entirely below it
    is an overshoot."""
    lo, hi = chance - CHANCE_WINDOW, chance + CHANCE_WINDOW
    span = f"interval {_fmt(result.low)}..{_fmt(result.high)}"
    if result.high < chance:
        return "overshoots", (f"{span}, all below chance {_fmt(chance)}: the attribute can be "
                              "read with the sign flipped")
    if lo <= result.low and result.high <= hi:
        return "holds", f"{span}, within {CHANCE_WINDOW} of chance {_fmt(chance)}"
    if lo <= result.mean <= hi:
        return "not shown", (f"mean {_fmt(result.mean)} is within {CHANCE_WINDOW} of chance "
                             f"{_fmt(chance)} but the {span} is not all")
    return "does not hold", (f"mean {_fmt(result.mean)} is not within {CHANCE_WINDOW} of "
                             f"chance {_fmt(chance)} ({span})")


_QUESTION = re.compile(r"^#\s*Question:\s*(.*)$")


def scenario_question(name: str, spec_file: Path) -> str:
    """The `# Question:` comment at the top of a scenario file (continued on the following
    comment lines until one that starts a new thought), or its description."""
    path = Path(_scenario_path(name, spec_file))
    path = path if path.is_file() else find_scenario(name)
    lines = path.read_text(encoding="utf-8").splitlines()
    for index, line in enumerate(lines):
        match = _QUESTION.match(line)
        if not match:
            continue
        parts = [match.group(1).strip()]
        for follow in lines[index + 1:]:
            text = follow.lstrip("#").strip()
            if not follow.startswith("#") or not text or parts[-1].endswith("?"):
                break
            parts.append(text)
        return " ".join(parts)
    description = read_yaml(path).get("description", "")
    return " ".join(str(description).split())


# -- the document ----------------------------------------------------------------------------


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _interval(result: HeadlineResult) -> str:
    if not np.isfinite(result.mean):
        return "not run"
    if not np.isfinite(result.low):
        return f"{_fmt(result.mean)} (one seed)"
    return f"{_fmt(result.mean)} [{_fmt(result.low)}, {_fmt(result.high)}]"


def _published_cell(p: Published | None) -> str:
    """The paper's value, its source and where in it, or that it is not verified here."""
    if p is None:
        return "-"
    where = f", {p.where}" if p.where else ""
    unverified = "; not in ../shared/papers/, unverified here" if not p.verified else ""
    return f"{_fmt(p.value)} ({p.source}{where}{unverified})"


def headline_table(results: list[HeadlineResult]) -> str:
    """The headline rows as a Markdown table."""
    lines = ["| scenario | question | headline | mean [95% interval] | seeds | published | "
             "verdict | why |", "|---|---|---|---|---|---|---|---|"]
    for r in results:
        row = r.row
        what = row.claim
        published = _published_cell(row.published)
        lines.append(
            f"| {_cell(row.scenario)} | {_cell(r.question)} | {_cell(what)} | "
            f"{_interval(r)} | {len(r.values)} | {_cell(published)} | **{r.verdict}** | "
            f"{_cell(r.why)} |"
        )
    return "\n".join(lines)


def _summary(values: pd.Series, metric: str) -> str:
    """`mean [low, high]` over seeds (the headlines' interval, clipped to the metric's
    range), or the mean alone for one seed."""
    values = values.dropna()
    if values.empty:
        return "-"
    mean, low, high = mean_and_interval(values.to_numpy(), metric_range(metric))
    return _fmt(mean) if len(values) < 2 else f"{_fmt(mean)} [{_fmt(low)}, {_fmt(high)}]"


def _sections(results: list[HeadlineResult], texts: dict[str, str]) -> list[str]:
    """One Markdown section per headline section, in file order (then sections that have
    only text): its heading, its text, its table."""
    order = list(dict.fromkeys([*(r.row.section for r in results), *texts]))
    lines = []
    for name in order:
        lines += [f"## {name}", ""]
        if name in texts:
            lines += [texts[name].strip(), ""]
        rows = [r for r in results if r.row.section == name]
        if rows:
            lines += [headline_table(rows), ""]
    return lines


def study_section(study: Study, folder: Path | None) -> str:
    """A study's table: the privacy-budget table (MAE and dMAE by model, group and budget),
    or a grid's chosen metrics at the last step, mean [95% interval] over seeds."""
    lines = [f"### {study.title}", ""]
    if study.note:
        lines += [study.note, ""]
    if folder is None or not (folder / "results.parquet").is_file():
        return "\n".join([*lines, "(not run)", ""])
    metrics = pd.read_parquet(folder / "results.parquet")
    spec = yaml.safe_load((folder / "sweep.yaml").read_text(encoding="utf-8"))
    keys = list(spec.get("grid", {}))
    last = metrics[metrics["step"] == metrics.groupby(["point", "seed"])["step"]
                   .transform("max")]
    if study.kind == "privacy_budget":
        groups = pd.read_parquet(folder / "groups.parquet")
        table = budget_table(metrics, groups)
        seeds = int(table["seeds"].max())
        pivot = table.pivot_table(index=["group", "beta"], columns="model",
                                  values=["mae", "dmae"])
        stats, models = pivot.columns.get_level_values(0), pivot.columns.get_level_values(1)
        header = "| group | beta | " + " | ".join(
            f"{stat} {model}" for stat, model in zip(stats, models, strict=True)) + " |"
        lines += [f"Mean over {seeds} seed{'s' if seeds != 1 else ''}.", "", header,
                  "|---|---|" + "---|" * len(pivot.columns)]
        ordered = pivot.sort_index(ascending=[True, False])
        for group, beta, values in zip(ordered.index.get_level_values("group"),
                                       ordered.index.get_level_values("beta"),
                                       ordered.to_numpy(), strict=True):
            lines.append(f"| {group} | {beta:g} | " + " | ".join(
                f"{v:.3f}" for v in values) + " |")
        return "\n".join([*lines, ""])
    header = "| " + " | ".join(keys) + " | seeds | " + " | ".join(study.columns) + " |"
    lines += [header, "|" + "---|" * (len(keys) + 1 + len(study.columns))]
    for key, part in last.groupby(keys, sort=False, dropna=False):
        key_values = key if isinstance(key, tuple) else (key,)
        shown = tuple("none" if v is None or v != v else v for v in key_values)
        cells = [_summary(part[c], c) if c in part else "-" for c in study.columns]
        lines.append("| " + " | ".join(str(v) for v in shown) + f" | {part['seed'].nunique()} | "
                     + " | ".join(cells) + " |")
    return "\n".join([*lines, ""])


def _compute_hours(folders: list[Path]) -> float:
    """The summed run times (hours) of the finished runs in `folders` (the table's sweeps and
    paired runs; other runs under the same output folder are not counted), from their
    manifests."""
    total = 0.0
    for manifest in (m for folder in folders for m in folder.rglob("manifest.json")):
        try:
            data = read_manifest(manifest.parent)
        except (OSError, ValueError):
            continue
        timings = data.get("timings") if isinstance(data, dict) else None
        if isinstance(timings, dict) and isinstance(timings.get("total_seconds"), int | float):
            total += float(timings["total_seconds"])
    return total / 3600


def write_results_doc(spec_file: Path, out: Path, doc: Path) -> list[HeadlineResult]:
    """Evaluate every headline from the runs under `out` and write the Markdown document."""
    spec = load_results_spec(spec_file)
    slugs = [g.slug for g in run_groups(spec)] + [g.slug for g in externality_groups(spec)]
    folders = {slug: out / slug for slug in slugs}
    results = [evaluate(row, row.question or scenario_question(row.scenario, spec_file),
                        folders, spec.seeds) for row in spec.headlines]
    unrun = [r for r in results if r.verdict == "not run"]
    if unrun:
        costs = plan_results(spec_file).rows
        for r in unrun:
            minutes = costs.get(r.row.name, 0.0) / 60
            cost = ("its runs are those of rows above it" if minutes == 0 else
                    "under a minute on 2 cores" if minutes < 1 else
                    f"about {minutes:.0f} min on 2 cores beyond the runs of the rows above it")
            r.why = (f"not run in this generation: `privsim results --only {r.row.name}` "
                     f"runs it ({cost})")
    sections, study_folders = [], []
    for study in spec.studies:
        name = load_sweep(spec_file.parent / study.sweep).name
        folder = out / name
        study_folders.append(folder)
        sections.append(study_section(study, folder if folder.is_dir() else None))
    counted = [r.verdict for r in results if r.verdict not in (INDICATIVE, "not run")]
    counts = pd.Series(counted, dtype=object).value_counts()
    summary = ", ".join(f"{n} {verdict}" for verdict, n in counts.items())
    compute = _compute_hours([*folders.values(), *study_folders])
    indicative = sum(r.verdict == INDICATIVE for r in results)
    if indicative:
        summary += f"; {indicative} rows rest on one seed (indicative, not counted)"
    if unrun:
        summary += (f"; {len(unrun)} of {len(results)} rows were not run in this generation "
                    "(each names the command that runs it)")
    text = "\n".join([
        "# Results",
        "",
        f"Generated by `privsim results` from `{spec_file.name}`: every headline run over "
        f"seeds {', '.join(map(str, spec.seeds))} (unless a row or study names its own), read at "
        "the last step unless stated. "
        f"Verdicts: {summary}."
        + (f" The runs behind it took {compute:.1f} h of computing in all (the sum of their "
           "own run times)." if compute else ""),
        "",
        INTERVAL_METHOD,
        "",
        VERDICT_RULE,
        "",
        *_sections(results, spec.sections),
        "## Studies",
        "",
        *sections,
    ])
    doc.parent.mkdir(parents=True, exist_ok=True)
    write_text(doc, text.rstrip() + "\n")
    return results
