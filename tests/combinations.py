"""The combination matrix: every platform model x defense set x attacker set, on one small
synthetic world, either runs two steps with every configured defense acting, or is refused
by the scenario check with a reason.

`python -m tests.combinations` rewrites `docs/combinations.md` from the scenario check (which
cells are refused, and why); `tests/test_combinations.py` fails when the file is stale, runs
every cell the file marks as running, and checks every refusal still happens as recorded.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from simulator.attacks.inference_attacker import InferenceAttacker
from simulator.attacks.registry import ATTACKERS
from simulator.defenses.registry import DEFENSES
from simulator.foundations.errors import ScenarioError
from simulator.recommenders.registry import MODELS as RECOMMENDERS
from simulator.scenario.loading import build_scenario
from simulator.scenario.schema import Scenario

DOC = Path(__file__).resolve().parents[1] / "docs" / "combinations.md"

# Every registered model, defense and attacker (installed ones included): a new one is
# combined with all the others without editing this file. Pairs of defenses that must
# compose are listed by hand.
MODELS = tuple(RECOMMENDERS)
COMPOSITIONS: tuple[tuple[str, ...], ...] = (
    ("dp", "apr"), ("dp", "adversarial"), ("adversarial", "unlearning"),
    ("detection", "adversarial"),  # screening before a privacy defense
)
DEFENSE_SETS: tuple[tuple[str, ...], ...] = (
    (), *((defense.key,) for defense in DEFENSES), *COMPOSITIONS)
# The defenses' small settings (`Defense.example`), so the whole matrix runs in minutes.
DEFENSE_SETTINGS: dict[str, dict[str, Any]] = {d.key: d.example for d in DEFENSES}
# An inference attacker alone, then beside each other attacker in turn.
INFERENCE = InferenceAttacker.example
ATTACKER_SETS: dict[str, list[dict[str, Any]]] = {
    InferenceAttacker.kind: [INFERENCE],
    **{a.kind: [INFERENCE, a.example] for a in ATTACKERS if a is not InferenceAttacker},
}
ATTACKER_TITLES = {
    InferenceAttacker.kind: "An inference attacker alone",
    **{a.kind: f"An inference attacker and {a.title}" for a in ATTACKERS
       if a is not InferenceAttacker},
}
# The base scenario every cell is built from: shaped like scenarios/ml100k-baseline.yaml
# (fixed disclosure, an embedding attacker) on a small synthetic world, retraining every step.
BASE: dict[str, Any] = {
    "name": "combination",
    "world": {"source": "synthetic", "n_users": 120, "n_items": 80, "signal": 2.0,
              "mean_ratings_per_user": 20, "min_ratings_per_user": 5},
    "population": {"policy": "fixed"},
    "platform": {
        "retrain_every": 1, "first_epochs": 3, "epochs": 1, "factors": 8,
        "metamf": {"user_dim": 8, "memory_dim": 8, "hidden": 16, "item_dim": 8, "rank": 4,
                   "validation": 0.0},
    },
    "simulation": {"steps": 2, "seed": 0, "device": "cpu"},
    "output": {"plots": False, "agents_table": False},
}
STEPS = 2
# Models, privacy defenses and attacker sets that must all combine (no refusal).
REQUIRED_MODELS = ("bpr", "mf", "metamf")
REQUIRED_DEFENSES = ("adversarial", "unlearning", "dp", "apr")


@dataclass(frozen=True)
class Cell:
    """One platform model, defense set and attacker set."""

    model: str
    defenses: tuple[str, ...]
    attackers: str

    @property
    def defense_label(self) -> str:
        return "+".join(self.defenses) or "none"

    @property
    def id(self) -> str:
        return f"{self.model}-{self.defense_label}-{self.attackers}"

    def settings(self) -> dict[str, Any]:
        """The cell's scenario as plain settings (a fresh copy)."""
        data = json.loads(json.dumps(BASE))
        data["platform"]["model"] = self.model
        data["platform"]["defenses"] = {d: dict(DEFENSE_SETTINGS[d]) for d in self.defenses}
        data["attackers"] = json.loads(json.dumps(ATTACKER_SETS[self.attackers]))
        return data


CELLS: list[Cell] = [Cell(model, defenses, attackers) for attackers in ATTACKER_SETS
                     for model in MODELS for defenses in DEFENSE_SETS]
REQUIRED: list[Cell] = [cell for cell in CELLS if cell.model in REQUIRED_MODELS
                        and len(cell.defenses) == 1 and cell.defenses[0] in REQUIRED_DEFENSES]


def validate(cell: Cell) -> Scenario | str:
    """The cell's validated scenario, or the first line of the scenario check's refusal."""
    try:
        return build_scenario(cell.settings(), "scenario")
    except (ScenarioError, ValueError) as exc:
        return str(exc).splitlines()[0].removeprefix("scenario: ")


def refusal(cell: Cell) -> str | None:
    """Why the scenario check refuses the cell, or None when it accepts it."""
    found = validate(cell)
    return found if isinstance(found, str) else None


# Metrics that are undefined in some cells, and when: these may be NaN.
MAY_BE_UNDEFINED = {
    "detection_precision": "nothing was flagged",
    "detection_recall": "there are no fake accounts",
    "observed_success": "the shilling attacker is not adaptive (it has no probes)",
    "unlearning_probe_auc_before": "unlearning runs its steps without probes (stop: steps)",
    "unlearning_probe_auc_after": "unlearning runs its steps without probes (stop: steps)",
}


def run_problems(cell: Cell) -> list[str]:
    """Run an accepted cell for two steps; what is wrong with the run (empty: it passes).

    It must finish; every metric must be finite except those in MAY_BE_UNDEFINED (NaN
    where undefined, never infinite); no training may diverge; every configured defense must
    be listed by some retrain as having acted, and none that is not configured. Detection
    acts by screening the table before each retrain: it reports how many accounts it
    flagged, which may be none (then its precision is undefined), and without fake accounts
    its recall is undefined.
    """
    from simulator.simulation.model import PrivacyModel

    scenario = validate(cell)
    if isinstance(scenario, str):
        return [f"refused: {scenario}"]
    model = PrivacyModel(scenario)
    for _ in range(STEPS):
        model.step()
    problems: list[str] = []
    rows = model.records.metrics
    if len(rows) != STEPS:
        problems.append(f"recorded {len(rows)} steps, not {STEPS}")
    for row in rows:
        for name, value in row.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                continue
            if math.isinf(value) or (math.isnan(value) and name not in MAY_BE_UNDEFINED):
                problems.append(f"step {row['step']}: {name} = {value}")
    events = model.records.events
    retrains = [json.loads(e["detail"]) for e in events
                if e["kind"] == "retrain" and e["agent"] == "platform"]
    if not retrains:
        problems.append("the platform never retrained")
    for event in events:
        if event["kind"] == "training_diverged":
            problems.append(f"step {event['step']}: training diverged: {event['detail']}")
    listed = {name for detail in retrains for name in detail["defenses"]}
    for name in cell.defenses:
        if name not in listed:
            problems.append(f"defenses.{name} is configured but no retrain lists it as acting")
        if name == "detection" and not any(
                math.isfinite(d.get("detection_flagged", math.nan)) for d in retrains):
            problems.append("defenses.detection reported no count of flagged accounts")
    for name in sorted(listed - set(cell.defenses)):
        problems.append(f"defenses.{name} is listed as acting but not configured")
    return problems


# --- the document ------------------------------------------------------------------------

RUNS = "✓"
HEADER = """# Combinations of models, defenses and attackers

Which platform models, defense sets and attacker sets can be combined in one scenario.
Generated by `python -m tests.combinations`; `tests/test_combinations.py` checks every cell
and fails when this file is stale.

A cell is one scenario: a small synthetic world ({users} users, {items} items), fixed
disclosure, the platform retraining every step, run for {steps} steps, with the platform model
(`platform.model`), the defenses (`platform.defenses`) and the attackers (`attackers`) of its
row, column and table. The inference attacker reads the user embeddings and infers gender
and age.

The platform besides its model: `{platform}`.

The defenses' settings (kept small):

{settings}

In the tables:

- {runs}: the scenario check accepts the cell, and the test runs it for {steps} steps. It passes
  when the run finishes, every metric is finite where it is defined, no training diverges,
  and every configured defense is listed by a retrain as having acted (a retrain lists a
  defense only when it acted on it).
- ✗ (N): the scenario check refuses the cell before anything runs, with refusal N below;
  the test checks the refusal still happens with that reason.

Fake-profile detection (`detection`) runs with a z-score threshold and no assumed attack
size, so it flags only accounts that stand out. It acts by screening the platform's table
before every retrain and reports how many accounts it flagged (`detection_flagged`). That
count may be zero: with no fake accounts there may be nothing to flag, which is a screening
that found nothing, not a defense that did nothing.

Metrics that may be undefined (NaN), and when:

{undefined}
"""


def _flow(value: dict[str, Any]) -> str:
    """Settings as one line of YAML."""
    return yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=1000).strip()


def _footnotes(refusals: dict[Cell, str | None]) -> dict[str, int]:
    numbers: dict[str, int] = {}
    for reason in refusals.values():
        if reason is not None and reason not in numbers:
            numbers[reason] = len(numbers) + 1
    return numbers


def document(refusals: dict[Cell, str | None] | None = None) -> str:
    """The text of docs/combinations.md for the given refusals (default: the scenario
    check's refusals of every cell now)."""
    if refusals is None:
        refusals = {cell: refusal(cell) for cell in CELLS}
    numbers = _footnotes(refusals)
    undefined = "\n".join(f"- `{name}`: when {when}." for name, when in MAY_BE_UNDEFINED.items())
    settings = "\n".join(f"- `{name}: {_flow(value)}`" for name, value in DEFENSE_SETTINGS.items())
    lines = [HEADER.format(steps=STEPS, runs=RUNS, undefined=undefined, settings=settings,
                           platform=_flow(BASE["platform"]),
                           users=BASE["world"]["n_users"], items=BASE["world"]["n_items"])]
    for attackers in ATTACKER_SETS:
        kinds = ", ".join(f"`{_flow(a)}`" for a in ATTACKER_SETS[attackers])
        lines += [f"## {ATTACKER_TITLES[attackers]}", "",
                  f"Attackers: {kinds}. Cell ids end in `-{attackers}`.", ""]
        labels = ["none" if not d else "+".join(d) for d in DEFENSE_SETS]
        lines.append("| model | " + " | ".join(labels) + " |")
        lines.append("|---|" + "---|" * len(labels))
        for model in MODELS:
            marks = []
            for defenses in DEFENSE_SETS:
                reason = refusals[Cell(model, defenses, attackers)]
                marks.append(RUNS if reason is None else f"✗ ({numbers[reason]})")
            lines.append(f"| {model} | " + " | ".join(marks) + " |")
        lines.append("")
    lines += ["## Refusals", ""]
    if not numbers:
        lines += ["None: the scenario check accepts every cell.", ""]
    for reason, number in numbers.items():
        cells = [cell.id for cell in CELLS if refusals[cell] == reason]
        lines += [f"({number}) {reason}", "",
                  "Cells: " + ", ".join(f"`{c}`" for c in cells) + ".", ""]
    return "\n".join(lines).rstrip("\n") + "\n"


_ROW = re.compile(r"^\| (\w+) \| (.+) \|$")
_NOTE = re.compile(r"^\((\d+)\) (.+)$")


def recorded(text: str | None = None) -> dict[str, str | None]:
    """Each cell's outcome as docs/combinations.md records it: None (runs) or the reason
    it is refused; cells missing from the file are left out."""
    if text is None:
        text = DOC.read_text(encoding="utf-8") if DOC.is_file() else ""
    reasons = {int(m.group(1)): m.group(2) for line in text.splitlines()
               if (m := _NOTE.match(line))}
    found: dict[str, str | None] = {}
    section = None
    titles = {title: key for key, title in ATTACKER_TITLES.items()}
    for line in text.splitlines():
        if line.startswith("## "):
            section = titles.get(line[3:])
        elif section is not None and (m := _ROW.match(line)) and m.group(1) in MODELS:
            for defenses, mark in zip(DEFENSE_SETS, m.group(2).split(" | "), strict=False):
                cell = Cell(m.group(1), defenses, section)
                note = re.fullmatch(r"✗ \((\d+)\)", mark.strip())
                found[cell.id] = None if note is None else reasons.get(
                    int(note.group(1)), f"refusal ({note.group(1)}), not found in the file")
    return found


if __name__ == "__main__":
    DOC.write_text(document(), encoding="utf-8")
    print(f"wrote {DOC}")
