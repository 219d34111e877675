"""docs/outputs.md documents every file and column that runs, sweeps and comparisons write.

The names come from real outputs: the recorded metrics of all shipped scenarios
(`tests/reference_metrics.json`, kept current by test_reference_metrics), and small real runs
made here - a one-point sweep of a social-policy run with every kind of scheduled event, an
inference attacker and membership audits (run in the sweep's worker process), a run with an
inference attacker, two poisoning attackers and fake-profile detection, a comparison of the
sweep, and the study tables computed from real frames. The document lists names in the first
column of the tables that follow `<!-- columns: KEY -->` markers; a name with `{placeholder}`
parts is a pattern in which each placeholder stands for `[A-Za-z0-9_]+`.

Both ways are checked: every name the outputs hold is documented, and every documented name
still exists - it occurs in the outputs made here or, for what these small runs cannot make
(a diverged retrain, a resumed run, a checkpoint, an externality folder), its fixed parts
still occur among the string constants of the simulator's source.
"""

from __future__ import annotations

import ast
import json
import re
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from tests.reference_metrics import COMMON, REFERENCE, SYNTHETIC

pytestmark = pytest.mark.heavy  # long tests: started first (tests/conftest.py)

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "outputs.md"
SOURCES = (ROOT / "simulator", ROOT / "agents")
MARKER = re.compile(r"<!-- columns: ([a-z-]+) -->")
PLACEHOLDER = re.compile(r"(\{[^}]*\})")
PREFIXED = re.compile(r"attacker\d+_(.+)")

GRID_KEY = "platform.retrain_every"
# A social-policy run with every kind of scheduled event, an inference attacker, membership
# audits and the agents table: the sweep's single point.
EVENTS = ("events=[{step: 1, kind: breach, severity: 2.0, reach: 0.5}, "
          "{step: 1, kind: opt_out, share: 0.1}, {step: 1, kind: unlearning_request, share: 0.2}, "
          "{step: 2, kind: convert, share: 0.2, types: [pragmatist], to: fundamentalist}, "
          "{step: 2, kind: deletion, share: 0.1}]")
SOCIAL = [*COMMON, *SYNTHETIC, "simulation.steps=4", "simulation.stop_after=null",
          "output.agents_table=true", "metrics.membership=true",
          "attackers.0.folds=2", EVENTS]
# An explicit-rating platform with detection, an inference attacker, an adaptive shilling
# attacker and an item owner (so the poisoning columns carry attacker prefixes), and every
# plot.
POISONED = [*COMMON, *SYNTHETIC, "simulation.steps=4", "simulation.stop_after=null",
            "output.plots=true", "platform.model=mf", "platform.retrain_every=1",
            "platform.factors=8",
            "platform.defenses.detection={method: pca, assumed_attack_size: 0.03, start_step: 1}",
            "attackers=[{kind: inference, known_fraction: 0.5, attributes: [gender], "
            "classifiers: [logreg], folds: 2}, "
            "{kind: shilling, model: random, intent: push, target_popularity: unpopular, "
            "attack_size: 0.03, filler_size: 0.03, start_step: 1, adaptive: true, probes: 3, "
            "goal: 0.5, reserve: 0.5}, "
            "{kind: item_perturbation, item_popularity: unpopular, n_items: 1, "
            "segment_attribute: gender, segment_value: 0, epsilon: 1.0, method: fgsm, "
            "start_step: 1}]"]


# -- the document ------------------------------------------------------------------------


def _cells(row: str) -> list[str]:
    return [c.strip() for c in re.split(r"(?<!\\)\|", row.strip()[1:-1])]


def doc_tables() -> dict[str, list[list[str]]]:
    """Every marked table's body rows (as cells), by marker key; one key may mark several
    tables."""
    lines = DOC.read_text(encoding="utf-8").splitlines()
    tables: dict[str, list[list[str]]] = defaultdict(list)
    for index, line in enumerate(lines):
        found = MARKER.fullmatch(line.strip())
        if not found:
            continue
        rows = []
        for following in lines[index + 1:]:
            if not following.startswith("|"):
                break
            rows.append(following)
        assert len(rows) >= 3, f"{DOC.name}: marker {found.group(1)} has no table below it"
        tables[found.group(1)] += [_cells(row) for row in rows[2:]]
    return tables


def tokens(cell: str) -> list[str]:
    """The names in a table cell: its `code` spans."""
    return re.findall(r"`([^`]+)`", cell)


def pattern(name: str) -> re.Pattern[str]:
    """A documented name as a regular expression: each {placeholder} is [A-Za-z0-9_]+."""
    return re.compile("".join("[A-Za-z0-9_]+" if PLACEHOLDER.fullmatch(part) else re.escape(part)
                              for part in PLACEHOLDER.split(name)))


def first_column(key: str) -> list[str]:
    """The names documented in the first column of the tables marked `key`. A name that is a
    placeholder alone (`{grid key}`) stands for names the user chooses, which the checks
    leave out, and is skipped."""
    names = [name for row in TABLES[key] for name in tokens(row[0])]
    assert names, f"{DOC.name}: no table marked {key}"
    return [name for name in names if not PLACEHOLDER.fullmatch(name)]


def undocumented(names: set[str], key: str) -> list[str]:
    """The names that no documented name of the tables marked `key` covers."""
    patterns = [pattern(n) for n in first_column(key)]
    return sorted(n for n in names if not any(p.fullmatch(n) for p in patterns))


TABLES = doc_tables()


# -- the real outputs --------------------------------------------------------------------


def _tree(folder: Path) -> set[str]:
    """Every file under `folder`, as a path relative to it."""
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def _manifest(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "manifest.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Real outputs: a sweep of one social-policy point, a poisoned run, a comparison of the
    sweep, and the study tables from real frames."""
    import torch

    from simulator.analysis.attack_protocol import protocol_table
    from simulator.analysis.attack_study import VALUES, attack_table
    from simulator.analysis.budget import budget_table
    from simulator.analysis.compare import compare
    from simulator.analysis.externality_stats import paired_differences, summarise
    from simulator.experiments.catalog import load_scenario
    from simulator.experiments.runner import run_scenario
    from simulator.experiments.sweep import run_sweep

    base = tmp_path_factory.mktemp("outputs")
    spec = base / "doc.yaml"
    spec.write_text(yaml.safe_dump({"name": "doc", "base": "social-contagion", "set": SOCIAL,
                                    "grid": {GRID_KEY: [1]}, "seeds": [0], "workers": 1}),
                    encoding="utf-8")
    # The sweep's point runs in a worker process while this one runs the poisoned scenario
    # (on one torch thread: the two share the cores).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor(1) as background:
            swept = background.submit(run_sweep, spec, out=base / "sweep", workers=1)
            poisoned = run_scenario(load_scenario("quickstart", POISONED),
                                    out=base / "poisoned", progress=False).path
            sweep = swept.result()
    finally:
        torch.set_num_threads(threads)
    points = pd.read_parquet(sweep / "points.parquet")
    assert (points["status"] == "completed").all(), points["error"].tolist()
    social = sweep / str(points["run_dir"].iloc[0])
    comparison = compare([sweep], base / "compare")
    runs = (social, poisoned)
    metrics = {r: pd.read_parquet(r / "metrics.parquet") for r in runs}
    groups = {r: pd.read_parquet(r / "groups.parquet") for r in runs}
    events = pd.concat([pd.read_parquet(r / "events.parquet") for r in runs])

    ids = {"point": 0, "seed": 0}
    budget_metrics = metrics[poisoned].assign(**ids, beta_mean=1.0)
    budget_groups = groups[poisoned].assign(**ids, **{"platform.model": "mf"})
    attack = pd.DataFrame({**ids, "step": [0], "attackers.0.model": ["random"],
                           "attackers.0.attack_size": [0.03], "world.n_items": [100],
                           "world.item_sample": ["random"], **{c: [0.0] for c in VALUES}})
    protocol = pd.DataFrame({"point": [0, 1], "seed": [0, 1], "step": [0, 0],
                             "platform.model": ["lightgcn"] * 2,
                             "attackers.0.model": ["random"] * 2,
                             **{f"target_{m}_50{s}": [0.0, 0.1] for m in ("hr", "ndcg")
                                for s in ("", "_clean")}})
    social_groups = groups[social]
    differences = paired_differences({0: social_groups}, {0: social_groups}, ["hr_10"])

    reference = json.loads(REFERENCE.read_text(encoding="utf-8"))
    return {
        "sweep": sweep, "social": social, "poisoned": poisoned,
        "run-files": _tree(social) | _tree(poisoned),
        "manifest": {key for r in runs for key in _manifest(r)},
        "manifest-world": {key for r in runs for key in _manifest(r)["world"]},
        "manifest-threads": {key for r in runs for key in _manifest(r)["threads"]},
        "manifest-timings": {key for r in runs for key in _manifest(r)["timings"]},
        "metrics": ({c for table in metrics.values() for c in table.columns}
                    | {c for columns in reference.values() for c in columns}),
        "groups": {c for table in groups.values() for c in table.columns},
        "group-kinds": set(pd.concat(groups.values())["group_kind"]),
        "group-names": pd.concat(groups.values()).groupby("group_kind")["group"].unique(),
        "agents": set(pd.read_parquet(social / "agents.parquet").columns),
        "events": set(events.columns),
        "event-rows": events,
        "graph": set(pd.read_parquet(social / "graph.parquet").columns),
        "sweep-files": {p.name + ("/" if p.is_dir() else "") for p in sweep.iterdir()},
        "sweep-manifest": set(_manifest(sweep)),
        "points": set(points.columns) - {GRID_KEY},
        "sweep-ids": ((set(pd.read_parquet(sweep / "results.parquet").columns)
                       - set(metrics[social].columns))
                      | (set(pd.read_parquet(sweep / "groups.parquet").columns)
                         - set(groups[social].columns))) - {GRID_KEY},
        "compare": set(pd.read_csv(comparison / "compare.csv").columns),
        "compare-files": _tree(comparison),
        "budget": set(budget_table(budget_metrics, budget_groups).columns),
        "attack": set(attack_table(attack).columns),
        "attack-protocol": set(protocol_table(protocol).columns),
        "externality": {"changed_group", *summarise(differences).columns},
    }


CHECKED = ("run-files", "manifest", "manifest-world", "manifest-threads", "manifest-timings",
           "metrics", "groups",
           "group-kinds", "agents", "events", "graph", "sweep-files", "sweep-manifest",
           "points", "sweep-ids", "compare", "compare-files", "budget", "attack", "attack-protocol",
           "externality")


# -- every real name is documented -----------------------------------------------------


@pytest.mark.parametrize("key", CHECKED)
def test_every_output_name_is_documented(outputs: dict[str, Any], key: str) -> None:
    names = outputs[key]
    assert names, f"no {key} names were found in the outputs"
    missing = undocumented(names, key)
    assert not missing, f"{DOC.relative_to(ROOT)} lacks these {key} names: {missing}"


def test_every_declared_column_is_documented() -> None:
    """What the measurements and defenses declare they write (`Column`), without a run: a
    `{placeholder}` part stands for any name, as in the document."""
    from simulator.measurements.registry import REGISTRY

    declared = {PLACEHOLDER.sub("x1", column.name) for column in REGISTRY.columns()}
    missing = undocumented(declared, "metrics")
    assert not missing, f"{DOC.relative_to(ROOT)} lacks these declared columns: {missing}"


def test_prefixed_poisoning_columns_are_documented_columns(outputs: dict[str, Any]) -> None:
    inner = {m.group(1) for c in outputs["metrics"] if (m := PREFIXED.fullmatch(c))}
    assert inner, "the poisoned run has no attacker-prefixed columns"
    assert not undocumented(inner, "metrics"), undocumented(inner, "metrics")


def test_fixed_group_names_are_documented(outputs: dict[str, Any]) -> None:
    rows = {tokens(row[0])[0]: row for row in TABLES["group-kinds"]}
    for kind in ("all", "involvement", "disclosure"):
        names = set(outputs["group-names"][kind])
        listed = set(tokens(rows[kind][1]))
        assert names <= listed, f"groups of kind {kind} not documented: {names - listed}"


def test_every_event_kind_agent_and_detail_key_is_documented(outputs: dict[str, Any]) -> None:
    rows = {kind: row for row in TABLES["event-kinds"] for kind in tokens(row[0])}
    events = outputs["event-rows"]
    metrics_names = first_column("metrics")
    kinds = set(events["kind"])
    assert {"retrain", "attribute_inference", "breach", "opt_out", "deletion",
            "unlearning_request", "convert", "profile_injection", "attack_observation",
            "item_perturbation"} <= kinds, kinds
    for kind, part in events.groupby("kind"):
        assert kind in rows, f"event kind {kind} is not documented"
        agent_cell, detail_cell = rows[kind][1], rows[kind][-1]
        agents = [pattern(a) for a in tokens(agent_cell)]
        for agent in set(part["agent"]):
            assert any(p.fullmatch(agent) for p in agents), f"{kind}: agent {agent}"
        keys = {key for detail in part["detail"] for key in json.loads(detail)}
        allowed = [pattern(k) for k in tokens(detail_cell)]
        if kind == "retrain":  # a retrain also reports its defenses' metric columns
            allowed += [pattern(m) for m in metrics_names]
        missing = sorted(k for k in keys if not any(p.fullmatch(k) for p in allowed))
        assert not missing, f"{kind}: detail keys {missing} are not documented"


# -- every documented name still exists -------------------------------------------------


def _source_strings() -> set[str]:
    """Every string constant (f-string parts included) of the simulator and its agents."""
    found: set[str] = set()
    for folder in SOURCES:
        for path in folder.rglob("*.py"):
            try:
                tree = ast.parse(path.read_text(encoding="utf-8"))
            except SyntaxError:  # a file being edited; the others still count
                continue
            found |= {node.value for node in ast.walk(tree)
                      if isinstance(node, ast.Constant) and isinstance(node.value, str)}
    return found


def _in_source(name: str, strings: set[str]) -> bool:
    """Whether a documented name still occurs in the source: a literal name (a folder
    without its `/`) as a string constant, a pattern's fixed parts (between placeholders and
    path separators) each within one."""
    if not PLACEHOLDER.search(name):
        return name.rstrip("/") in strings
    parts = [p.strip("_.-") for p in re.split(r"\{[^}]*\}|/", name)]
    return all(any(p in s for s in strings) for p in parts if p)


def test_every_documented_name_still_exists(outputs: dict[str, Any]) -> None:
    strings = _source_strings()
    observed = {key: outputs[key] for key in CHECKED}
    observed["event-kinds"] = set(outputs["event-rows"]["kind"])
    stale = []
    for key in [*CHECKED, "event-kinds", "externality-files"]:
        names = observed.get(key, set())
        for name in first_column(key):
            if any(pattern(name).fullmatch(n) for n in names):
                continue
            if not _in_source(name, strings):
                stale.append(f"{key}: {name}")
    events = outputs["event-rows"]
    for row in TABLES["event-kinds"]:
        part = events[events["kind"].isin(tokens(row[0]))]
        seen = {*part["agent"], *(k for detail in part["detail"] for k in json.loads(detail))}
        for name in [*tokens(row[1]), *tokens(row[-1])]:
            if name not in seen and not _in_source(name, strings):
                stale.append(f"event {tokens(row[0])[0]}: {name}")
    assert not stale, f"{DOC.relative_to(ROOT)} documents names that no longer exist: {stale}"


# -- links -----------------------------------------------------------------------------


def _anchors(path: Path) -> set[str]:
    """GitHub's anchors of a Markdown file's headings."""
    headings = re.findall(r"^#+ (.+)$", path.read_text(encoding="utf-8"), flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h.lower().replace("`", "")).strip().replace(" ", "-")
            for h in headings}


def test_relative_links_of_readme_and_docs_resolve() -> None:
    broken = []
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue
            file, _, anchor = target.partition("#")
            path = (page.parent / file).resolve() if file else page
            if not path.exists() or anchor and path.suffix == ".md" \
                    and anchor not in _anchors(path):
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert not broken, broken
