"""Generators of hostile inputs for `tests/test_fuzz.py` (Hypothesis strategies).

Every input is drawn from dictionaries of tokens known to trip parsers: YAML tags
(`!!int "abc"`, `!!timestamp x`), dates YAML 1.1 reads as dates (`2001-13-45`), digits that
are not ASCII (`²`, `٣`), lone surrogates, values of 100,000 characters, containers where a
scalar belongs, and names too long to be a file name. Scenario and sweep files are the
shipped ones with keys deleted, renamed, retyped or replaced by such tokens; MovieLens
folders are the small fixture folders of `tests/test_world_movielens.py` with one or more
fields, lines or separators corrupted.
"""

from __future__ import annotations

import json
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from hypothesis import strategies as st
from pydantic import BaseModel

from tests.test_world_movielens import ML1M_FILES, ML100K_FILES

ROOT = Path(__file__).resolve().parents[1]
SCENARIO_FILES = sorted((ROOT / "scenarios").glob("*.yaml"))
SWEEP_FILES = sorted((ROOT / "scenarios" / "sweeps").glob("*.yaml"))
TINY = ("name: t\nworld: {n_users: 60, n_items: 40, mean_ratings_per_user: 10, "
        "min_ratings_per_user: 3}\nsimulation: {steps: 2}\n")


@dataclass
class CliCase:
    """A command line (`{tmp}` stands for the case's folder), the files written first (name
    relative to the folder -> bytes) and the console's encoding."""

    argv: list[str]
    files: dict[str, bytes] = field(default_factory=dict)
    charset: str = "utf-8"

    def __repr__(self) -> str:  # what a failing case is printed as: long values abridged
        files = {name: _abridged(content) for name, content in self.files.items()}
        return (f"CliCase(argv={[_abridged(a) for a in self.argv]!r}, files={files!r}, "
                f"charset={self.charset!r})")

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # Hypothesis prints this
        printer.text(repr(self))


def _abridged(value: str | bytes, limit: int = 300) -> str | bytes:
    if len(value) <= limit:
        return value
    return value[:limit // 2] + (b"..." if isinstance(value, bytes) else "...") + \
        value[-limit // 2:]


# --- tokens -------------------------------------------------------------------------------

# Scalars and small containers as YAML text: each is written where a value belongs.
VALUE_TOKENS = [
    # tags whose constructor can fail, or that build something no setting takes
    '!!int "abc"', '!!int ""', "!!int 1.5", '!!float "x"', "!!float", "!!float 1e999",
    "!!bool maybe", "!!timestamp x", "!!timestamp 2001-13-45", "!!timestamp 2001-01-01",
    '!!binary "@@"', "!!binary aGk=", "!!null x", "!!str 5", "!!seq x", "!!map x",
    "!!set {a: null}", "!!omap [a: 1]", "!!pairs [a: 1]", "!!omap x", "!python/name:os.system",
    "!!python/object/apply:os.system [ls]", "!custom 1", "!<tag:x> 1",
    # dates and times YAML 1.1 reads as such, valid or not
    "2001-13-45", "2001-01-01", "2001-02-30", "2001-12-14t21:59:43.10-05:00",
    "2001-01-01 25:61:61", "9999-12-31 23:59:59", "0000-01-01", "12:30:45", "1:2:3.5", "190:20:30",
    # numbers in their odd spellings
    "0x1F", "0o17", "017", "0b101", "1_000", "+.inf", "-.inf", ".nan", "1e400", "-1e400",
    "1e-400", "-1", "0", "1", "2", "3", "4294967296", "9" * 30, "1.5", "0.5", "-0.0", "1e0",
    # digits that are not ASCII
    "²", "٣", "١٢", "１", "Ⅷ", '"²"', "'٣'", "3²",
    # booleans and nulls of YAML 1.1
    "true", "false", "yes", "no", "on", "off", "y", "NULL", "~", "null",
    # strings
    '""', "''", "abc", "mf", "metamf", "shilling", "Shilling", "inference", "movielens",
    "synthetic", '"[/x]"', "'$x$'", '"a\\nb"', '"\\t"', '"\\x00"', '"\\0"', '"\\udcff"',
    '"\\ud800"', '"\\U0001F600"', "é", "名前", "${PRIVSIM_DATA}", "${PRIVSIM_NOT_SET_X}",
    "${X:-/tmp}", "${", "a: b", "- a", "&a 1", "*a", "'", '"', "[", "{", "? a",
    # containers where a scalar belongs
    "[]", "{}", "[1]", "[[1]]", "[a]", "[null]", "[{}]", "{a: 1}", "{a: [1, {b: 2}]}",
    "[1, 2, 3]", "{kind: shilling}", "[{kind: inference}]",
]
# Values worth writing in place of a whole section, then reaching into with a deeper key.
CONTAINER_TOKENS = ["[1]", "[a]", "[null]", "[1, 2]", "[true]", "['']", "[1.5]", "[é]",
                    "[[]]", "[{}]", "5", "abc", "{}", "[]", "null", "{a: 1}", "[[1]]", "'x'"]
# List indices in key paths (`attackers.N.x`): str.isdigit() takes all but the last line's.
INDEX_TOKENS = ["0", "1", "5", "00", "99999999999999999999", "9" * 5000,
                "²", "³", "¹", "①", "⁵", "٣", "١", "１",
                "-1", "+0", " 0", "x", "", "0x1", "1.0", "0 "]
# Names in place of keys (of a file, or a segment of a `--set` key path).
KEY_TOKENS = ["", " ", "x", "kind", "Kind", "modle", "é", "名前", "\u00b2", "0", "1", "-1",
              "null", "true", "[1]", "{a: 1}", "!!int \"abc\"", "2001-13-45", "${X}", "a.b",
              "a" * 300, "\udcff"]
SECTION_PATHS = ["attackers", "events", "world", "platform", "platform.defenses",
                 "population.types", "population", "attackers.0", "events.0",
                 "population.beta_overrides", "simulation", "report.headline"]
SUB_PATHS = ["0.kind", "0", "kind", "0.top_k", "x.y", "0.0", "0.step", "pragmatist.beta",
             "dp.start_step", "1.kind", "0.x.y"]
# Lists every scenario has (its attackers, with their defaults), to address by index.
LIST_PATHS = ["attackers", "attackers", "attackers.0.classifiers", "attackers.0.attributes"]


@cache
def huge_tokens() -> list[str]:
    """Values too long for any setting (built once: some are 100 KB; containers of a few
    thousand entries, which take YAML a while to read)."""
    return [
        "a" * 100_000, "9" * 100_000, "9" * 5_000, "1." + "0" * 100_000, "-" * 100_000,
        "1:" * 60_000 + "1", "[" + "1, " * 3_000 + "1]", "{" + ", ".join(
            f"k{i}: {i}" for i in range(1_000)) + "}",
        '"' + "\\udcff" * 1_000 + '"', "é" * 50_000, "!!" + "t" * 100_000 + " 1",
        "x" * 300, "&" + "a" * 10_000 + " 1",
    ]


@cache
def file_huge_tokens() -> list[str]:
    """A value nearly as long as a scenario file may be (800 KB of a YAML 1.1 base-60
    integer, `1:1:...`)."""
    return ["1:" * 400_000 + "1"]


@st.composite
def raw_value(draw: st.DrawFn, in_file: bool = False) -> str:
    """A value as YAML text: a token, a long token, or a token inside a container (in a
    file, now and then one nearly as long as a file may be)."""
    kind = draw(st.sampled_from(["token"] * 48 + ["huge"] * 4 + ["nested"] * 8
                                + (["file huge"] if in_file else [])))
    if kind == "file huge":
        return draw(st.sampled_from(file_huge_tokens()))
    if kind == "huge":
        return draw(st.sampled_from(huge_tokens()))
    token = draw(st.sampled_from(VALUE_TOKENS))
    if kind == "nested":
        return draw(st.sampled_from([f"[{token}]", f"{{a: {token}}}", f"[[{token}]]",
                                     f"{{kind: shilling, model: {token}}}"]))
    return token


# --- key paths of the schema --------------------------------------------------------------

@cache
def key_paths() -> list[str]:
    """Every setting's key path, lists and name-keyed maps addressed by a sample entry
    (`attackers.0.top_k`, `population.types.pragmatist.beta`)."""
    from simulator.attacks.registry import ATTACKER_CLASSES
    from simulator.scenario.schema import Scenario

    found: list[str] = []

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, info in model.model_fields.items():
            key = f"{prefix}{name}"
            found.append(key)
            for inner, suffix in _nested_models(info.annotation):
                walk(inner, f"{key}{suffix}.")

    walk(Scenario, "")
    for attacker in ATTACKER_CLASSES.values():
        walk(attacker, "attackers.0.")
    found += ["population.beta_overrides.1", "population.types.everyone.share",
              "attackers.1.kind", "events.1.step"]
    return sorted(set(found))


def _nested_models(annotation: Any) -> list[tuple[type[BaseModel], str]]:
    """The models a field holds, with the key suffix that reaches one (`.0`, `.pragmatist`)."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [(annotation, "")]
    if origin is list and args:
        return [(m, ".0" + s) for m, s in _nested_models(args[0])]
    if origin is dict and len(args) == 2:
        return [(m, ".pragmatist" + s) for m, s in _nested_models(args[1])]
    if origin is typing.Annotated:
        return _nested_models(args[0])
    return [found for arg in args for found in _nested_models(arg)]


@st.composite
def key_path(draw: st.DrawFn) -> str:
    """A settings key path, possibly with one segment replaced by an odd index or name."""
    parts = draw(st.sampled_from(key_paths())).split(".")
    how = draw(st.sampled_from(["as is"] * 3 + ["index", "name", "append", "cut"]))
    digits = [i for i, p in enumerate(parts) if p.isdigit()]
    if how == "index" and digits:
        parts[draw(st.sampled_from(digits))] = draw(st.sampled_from(INDEX_TOKENS))
    elif how in ("name", "index"):
        parts[draw(st.integers(0, len(parts) - 1))] = draw(st.sampled_from(KEY_TOKENS))
    elif how == "append":
        parts.append(draw(st.sampled_from([*INDEX_TOKENS[:6], *KEY_TOKENS[:8]])))
    elif how == "cut" and len(parts) > 1:
        parts = parts[:-1]
    return ".".join(parts)


# --- scenario and sweep files -------------------------------------------------------------

@cache
def _shipped(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _places(data: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """The path of every node below `data` (dict keys and list indices)."""
    found = [at]
    if isinstance(data, dict):
        for key, value in data.items():
            found += _places(value, (*at, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            found += _places(value, (*at, index))
    return found


def _node(data: Any, at: tuple[Any, ...]) -> Any:
    for part in at:
        data = data[part]
    return data


@st.composite
def mutated_yaml(draw: st.DrawFn, files: list[Path],
                 first: Callable[[st.DrawFn, Any, Callable[[str], str]], None] | None = None,
                 ) -> str:
    """A shipped YAML file with one to three keys deleted, renamed, retyped or replaced
    (after `first(draw, data, placeholder)`, if given, has changed it)."""
    data = _copy(_shipped(draw(st.sampled_from(files))))
    raws: dict[str, str] = {}

    def placeholder(raw: str) -> str:  # stands for YAML text until the data is written
        name = f"FUZZPLACEHOLDER{len(raws)}X"
        raws[name] = raw
        return name

    if first is not None:
        first(draw, data, placeholder)
    for _ in range(draw(st.integers(0, 1) if first else st.integers(1, 3))):
        at = draw(st.sampled_from(_places(data)))
        how = draw(st.sampled_from(["replace"] * 4 + ["delete", "rename", "insert", "wrap"]))
        if not at:
            how = "insert"
        if how == "insert":
            target = _node(data, at)
            if isinstance(target, dict):
                key = draw(st.sampled_from([*KEY_TOKENS, "steps", "seed", "path", "kind",
                                            "top_k", "source"]))
                target[placeholder(key or "''")] = placeholder(
                    draw(raw_value(in_file=True)))
            elif isinstance(target, list):
                target.append(placeholder(draw(raw_value(in_file=True))))
            continue
        parent, last = _node(data, at[:-1]), at[-1]
        if how == "replace":
            parent[last] = placeholder(draw(raw_value(in_file=True)))
        elif how == "delete":
            del parent[last]
        elif how == "wrap":
            parent[last] = draw(st.sampled_from([[parent[last]], {"a": parent[last]},
                                                 [[parent[last]]]]))
        elif how == "rename" and isinstance(parent, dict):
            value = parent.pop(last)
            parent[placeholder(draw(st.sampled_from(KEY_TOKENS)) or "''")] = value
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=1 << 30)
    for name, raw in raws.items():
        text = text.replace(name, raw)
    return text


def _copy(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _copy(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_copy(v) for v in data]
    return data


def _encode(text: str) -> bytes:
    """Text as a file holds it; lone surrogates become the (invalid UTF-8) bytes they name."""
    return text.encode("utf-8", "surrogatepass")


CHARSETS = st.sampled_from(["utf-8"] * 3 + ["ascii"])


@st.composite
def scenario_file_cases(draw: st.DrawFn) -> CliCase:
    """`privsim validate` of a mutated shipped scenario."""
    text = draw(mutated_yaml(SCENARIO_FILES))
    return CliCase(["validate", "{tmp}/s.yaml"], {"s.yaml": _encode(text)}, draw(CHARSETS))


@st.composite
def set_strings(draw: st.DrawFn) -> list[str]:
    """One to three `key.path=value` overrides; often a section replaced by a value and then
    reached into (`attackers=[1]` then `attackers.0.kind=x`), or a list addressed by an odd
    index (`attackers.².top_k=1`)."""
    sets: list[str] = []
    pattern = draw(st.sampled_from(["plain"] * 4 + ["into a value", "list index"]))
    if pattern == "into a value":
        section = draw(st.sampled_from(SECTION_PATHS))
        sets.append(f"{section}={draw(st.sampled_from(CONTAINER_TOKENS))}")
        sets.append(f"{section}.{draw(st.sampled_from(SUB_PATHS))}={draw(raw_value())}")
    elif pattern == "list index":
        index = draw(st.sampled_from(INDEX_TOKENS))
        rest = draw(st.sampled_from(["", ".top_k", ".kind", ".x"]))
        sets.append(f"{draw(st.sampled_from(LIST_PATHS))}.{index}{rest}={draw(raw_value())}")
    for _ in range(draw(st.integers(0 if sets else 1, 2))):
        shape = draw(st.sampled_from(["key=value"] * 8 + ["odd"]))
        if shape == "odd":
            sets.append(draw(st.sampled_from([
                "nokey", "=5", "==", "a..b=1", " =1", ".=1", "simulation.=1", "a" * 100_000,
                "a" * 100_000 + "=1", "simulation.steps", "simulation.steps=\udcff",
                "name=\udcff", "\udcff=1", "world.path=\ud800", "simulation.steps=\x00",
            ])))
        else:
            sets.append(f"{draw(key_path())}={draw(raw_value())}")
    return sets


@st.composite
def set_cases(draw: st.DrawFn) -> CliCase:
    """`privsim validate SCENARIO --set ...` with odd overrides."""
    scenario = draw(st.sampled_from(["quickstart"] * 3 + [p.stem for p in SCENARIO_FILES]))
    argv = ["validate", scenario]
    for text in draw(set_strings()):
        argv += ["--set", text]
    return CliCase(argv, {}, draw(CHARSETS))


SWEEP_KEYS = ["replications", "seeds", "grid"] * 3 + ["root_seed", "set", "base", "workers",
                                                      "report", "name"]
# How many points a sweep has: absurd counts, seed lists and grids, and modest ones.
SWEEP_HUGE = {
    "replications": ["1000000", "4294967296", "9" * 30, "1_000_000"],
    "seeds": ["[" + ", ".join(["0"] * 50_000) + "]", "[" + ", ".join(map(str, range(9000))) + "]"],
    "grid": ["{" + ", ".join(f"platform.factors{'.x' * i}: [1, 2]" for i in range(40)) + "}",
             "{" + ", ".join(f"world.seed{'.x' * i}: [1, 2, 3]" for i in range(12)) + "}"],
}
SWEEP_MODEST = {
    "replications": ["3", "300", "0", "-1"],
    "seeds": ["[0, 1]", "[" + ", ".join(map(str, range(300))) + "]", "[-1]", "[" + "9" * 30 + "]"],
    "grid": ["{platform.factors: [1, 2]}",
             "{platform.factors: [" + ", ".join(map(str, range(1, 301))) + "]}"],
}


def _sweep_key(draw: st.DrawFn, data: Any, placeholder: Callable[[str], str]) -> None:
    """Set a key of a sweep file to a token; for the keys that say how many points there
    are, often to a count from modest to absurd (dropping the key it excludes)."""
    key = draw(st.sampled_from(SWEEP_KEYS))
    if key in ("replications", "root_seed"):
        data.pop("seeds", None)
    elif key == "seeds":
        data.pop("replications", None)
    size = draw(st.sampled_from(["huge", "huge", "modest", "token"])) if key in SWEEP_HUGE \
        else "token"
    value = (draw(st.sampled_from(SWEEP_HUGE[key])) if size == "huge" else
             draw(st.sampled_from(SWEEP_MODEST[key])) if size == "modest" else draw(raw_value()))
    data[key] = placeholder(value)


@st.composite
def sweep_cases(draw: st.DrawFn) -> CliCase:
    """`privsim sweep` of a mutated shipped sweep (the test stops it once it is validated):
    often with a key that decides how many points there are set to a token."""
    text = draw(mutated_yaml(SWEEP_FILES, _sweep_key if draw(st.booleans()) else None))
    argv = ["sweep", "{tmp}/w.yaml", "--out", "{tmp}/o"]
    if draw(st.booleans()):
        argv += ["--workers", draw(st.sampled_from(["0", "1", "-1", "99999999999999999999"]))]
    return CliCase(argv, {"w.yaml": _encode(text)}, draw(CHARSETS))


# --- tiny runs ----------------------------------------------------------------------------

RUN_SETTINGS = {
    "output.agents_sample": ["0.01", "1e-300", "0.5", "1"],
    "output.agents_table": ["false", "true"],
    "report.headline": ["[hr_10]", "[nothing]", "[" + "x" * 5000 + "]", "[é, hr_10]", "[]",
                        "[" + ", ".join(["hr_10"] * 20) + "]"],
    "name": ["é", "x" * 300, "a.b", "\udcff"],
    "simulation.steps": ["1", "2", "3"],
    "simulation.stop_after": ["1", "2"],
    "world.n_users": ["2", "3", "10", "60"],
    "world.n_items": ["2", "3", "40"],
    "world.min_ratings_per_user": ["1", "2"],
    "world.mean_ratings_per_user": ["1", "2", "40"],
    "world.test_fraction": ["0.01", "0.99"],
    "metrics.k": ["1", "1000"],
    "metrics.group_share": ["0.001", "0.3333"],
    "platform.model": ["mf", "bpr"],
    "platform.factors": ["1", "2"],
    "population.policy": ["privacy_calculus", "sensitivity_aware", "social"],
    "population.types": ["{a: {share: 1, beta: 0}}", "{a: {share: 1, beta: 1e-9}}"],
    "attackers.0.known_fraction": ["0.01", "0.99"],
    "attackers.0.folds": ["2", "20"],
    "events": ["[{step: 0, kind: deletion, share: 1}]", "[{step: 1, kind: opt_out, share: 1}]",
               "[{step: 0, kind: breach}]"],
}
# Odd output folders (for --out, or output.dir without it): all inside the case's folder but
# one that exists outside it and is refused.
OUT_FOLDERS = ["{tmp}/" + "o" * 300, "{tmp}/été", "{tmp}/\udcff", "{tmp}/a\udcffb/c",
               "{tmp}/\ud800", "{tmp}/a/b/c", "{tmp}/s.yaml", "{tmp}/s.yaml/x", "{tmp}/out\x00",
               "/dev/null", "{tmp}"]


@st.composite
def run_cases(draw: st.DrawFn) -> CliCase:
    """`privsim run` of a tiny synthetic world (60 users, 2 steps) with odd settings, or
    with an odd output folder (and nothing else odd, so that the folder is what is tried);
    every folder it writes is under the case's own."""
    argv = ["run", "{tmp}/s.yaml", "--no-progress", "--set", "output.plots=false",
            "--set", "attackers.0.classifiers=[logreg]"]
    # One case in four runs into a new folder; the others are refused before any work.
    if draw(st.sampled_from([False, True, True, True])):
        folder = draw(st.sampled_from(OUT_FOLDERS))
        # In a YAML value the folder is written with JSON's (and YAML's) escapes: "\udcff".
        argv += draw(st.sampled_from([["--out", folder],
                                      ["--set", f"output.dir={json.dumps(folder)}"]]))
        return CliCase(argv, {"s.yaml": TINY.encode()}, draw(CHARSETS))
    argv += ["--out", "{tmp}/out"]
    for key in draw(st.lists(st.sampled_from(sorted(RUN_SETTINGS)), max_size=3, unique=True)):
        argv += ["--set", f"{key}={draw(st.sampled_from(RUN_SETTINGS[key]))}"]
    option = draw(st.sampled_from([None, "--first", "--seed", "--checkpoint-every"]))
    if option is not None:
        argv += [option, draw(st.sampled_from(["1", "0", "-1", "2", "4294967296", "²"]))]
    return CliCase(argv, {"s.yaml": TINY.encode()}, draw(CHARSETS))


# --- odd paths ----------------------------------------------------------------------------

SCENARIO_ARGUMENTS = [
    "x" * 300, "x" * 300 + ".yaml", "a/" * 2100, "a" * 5000, "", " ", ".", "/", "é",
    "été.yaml", "quickstart ", "quickstart\n", "\udcff", "\ud800", "x\x00y", "/dev/null",
    "/proc/self/status", "/proc/self/pagemap", "/etc/passwd", "~", "${HOME}", "-", "[x]",
]
FILE_NAMES = ["été.yaml", "名前.yaml", "\udcff.yaml", "a" * 250 + ".yaml", "sp ace.yaml",
              "[x].yaml", "-x.yaml", "s.yml", "noext", "ÉTÉ", "x.yaml.yaml"]
WORLD_PATHS = [
    "a" * 300, "/tmp/" + "a" * 300, "\udcff", "\ud800", "x\x00y", "a/" * 2100, "", ".",
    "/dev/null", "${PRIVSIM_NOT_SET_X}", "${" + "A" * 5000 + "}", "~/ml-100k", "é",
    "/proc/self/status", "${PRIVSIM_DATA:-../shared/data}/ml-100k", "../shared/data/ml-100k",
]


@st.composite
def path_cases(draw: st.DrawFn) -> CliCase:
    """Odd scenario arguments, scenario files with odd names, and odd `world.path`s."""
    charset = draw(st.sampled_from(["utf-8", "ascii"]))
    how = draw(st.sampled_from(["argument", "named file", "world file", "world set"]))
    if how == "argument":
        return CliCase(["validate", draw(st.sampled_from(SCENARIO_ARGUMENTS))], {}, charset)
    if how == "named file":
        name = draw(st.sampled_from(FILE_NAMES))
        text = draw(st.sampled_from([TINY, "name: ok\n", "{}", "x: 1\n"]))
        return CliCase(["validate", "{tmp}/" + name], {name: _encode(text)}, charset)
    path = draw(st.sampled_from(WORLD_PATHS))
    source = draw(st.sampled_from(["movielens", "movielens", "synthetic"]))
    if how == "world file":
        # JSON's string escapes are YAML's: "\udcff" and "\u0000" arrive as such characters.
        text = f"world: {{source: {source}, path: {json.dumps(path)}}}\n"
        return CliCase(["validate", "{tmp}/s.yaml"], {"s.yaml": _encode(text)}, charset)
    return CliCase(["validate", "quickstart", "--set", f"world.source={source}",
                    "--set", f"world.path={path}"], {}, charset)


# --- MovieLens folders --------------------------------------------------------------------

DATA_TOKENS = [
    "1e0", "1e9", "1E0", "1.5", "1.0", "1.", ".5", "+1", "-1", "0", " 1", "1 ", "١", "１",
    "²", "0x1", "1_0", "nan", "inf", "-inf", "", "9223372036854775807",
    "9223372036854775808", "-9223372036854775809", "99999999999999999999999", "5e0", "4.5",
    "3.0", "é", "\x00", "M", "F", "X", "25", "56", "other", "2024-01-01", "1\r", "1\r2",
    "1\t2", "1::2", "1|2", "\"1\"", "'1'", "#1", "1#", "a" * 100_000, "9" * 100_000,
    "1" * 5_000, "-" + "9" * 100_000, "0" * 100 + "1",
]


@dataclass
class DataCase:
    """A MovieLens folder: file name -> bytes."""

    files: dict[str, bytes]

    def __repr__(self) -> str:
        return f"DataCase({ {k: _abridged(v) for k, v in self.files.items()}!r})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))


@st.composite
def movielens_cases(draw: st.DrawFn) -> DataCase:
    """A small ML-100K or ML-1M folder with one to three fields, lines or files damaged."""
    fixture = draw(st.sampled_from([ML100K_FILES, ML1M_FILES]))
    files = {name: list(lines) for name, lines in fixture.items()}
    seps = {"u.data": "\t", "u.user": "|", "u.item": "|", "u.occupation": "\n",
            "ratings.dat": "::", "users.dat": "::", "movies.dat": "::"}
    ratings = "u.data" if "u.data" in files else "ratings.dat"
    for _ in range(draw(st.integers(1, 3))):
        # The rating file, where the bulk reader works, is damaged most often.
        name = draw(st.sampled_from([ratings] * 3 + sorted(files)))
        lines = files[name]
        how = draw(st.sampled_from(["field"] * 6 + ["line", "blank", "repeat", "drop",
                                                    "separator", "empty"]))
        if how == "empty":
            files[name] = []
            continue
        if not lines:
            continue
        row = draw(st.integers(0, len(lines) - 1))
        sep = seps[name]
        if how == "field":
            parts = lines[row].split(sep)
            parts[draw(st.integers(0, len(parts) - 1))] = draw(st.sampled_from(DATA_TOKENS))
            lines[row] = sep.join(parts)
        elif how == "line":
            lines[row] = draw(st.sampled_from(DATA_TOKENS))
        elif how == "blank":
            lines.insert(row, draw(st.sampled_from(["", " ", "\r", "\t"])))
        elif how == "repeat":
            lines.insert(row, lines[row])
        elif how == "drop":
            del lines[row]
        else:
            lines[row] = lines[row].replace(sep, draw(st.sampled_from(
                ["\t", "::", "|", ",", " ", ":", sep + sep, "\t\t"])), 1)
    return DataCase({name: b"".join(_latin1(line) + b"\n" for line in lines)
                     for name, lines in files.items()})


def _latin1(text: str) -> bytes:
    """A line as the Latin-1 files hold it; characters Latin-1 lacks as their UTF-8 bytes."""
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8")


def rating_file_name(case: DataCase) -> str:
    return "u.data" if "u.data" in case.files else "ratings.dat"
