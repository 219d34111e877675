"""A corpus of bad inputs, as a careless colleague or a hostile file would give them.

Each case is a command line plus the files it reads; handled cleanly means: exit status 2,
no traceback, a message containing `expect` (the file, key or value at fault), and no run
folder left behind. `tests/test_bad_inputs.py` runs every case.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from tests.test_world_movielens import ML100K_BAD, ML100K_FILES


@dataclass(frozen=True)
class Case:
    """One bad input: `argv` (with `{tmp}` for the case's folder), files written first."""

    id: str
    argv: tuple[str, ...]
    expect: str
    files: dict[str, str | bytes] = field(default_factory=dict)


# A surrogate written as a YAML escape ("\\udcff") is refused by libyaml's parser as invalid
# YAML at its line; PyYAML's pure-Python parser (where PyYAML lacks libyaml) reads it, and then
# the check of every text value refuses it.
LIBYAML = bool(yaml.__with_libyaml__)


def escaped_surrogate(at: str, key: str) -> str:
    """What refuses `key: "...\\udcff"` given at `at` (a file and line, or a --set)."""
    if LIBYAML:
        return f"{at}: invalid YAML: found invalid Unicode character escape code"
    return f"{key}: '\\udcff' is not valid text"


TINY = ("name: t\nworld: {n_users: 60, n_items: 40, mean_ratings_per_user: 10, "
        "min_ratings_per_user: 3}\nsimulation: {steps: 2}\n")


def write_files(case: Case, folder: Path) -> list[str]:
    """Write the case's files into `folder`; its command line with `{tmp}` filled in."""
    for name, content in case.files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            path.write_text(content.replace("{tmp}", str(folder)), encoding="utf-8")
        else:
            path.write_bytes(content)
    return [arg.replace("{tmp}", str(folder)) for arg in case.argv]


def _validate_set(key_value: str, expect: str, *extra: str) -> Case:
    sets: list[str] = []
    for item in (*extra, key_value):
        sets += ["--set", item]
    return Case(f"set {key_value[:60]}", ("validate", "quickstart", *sets), expect)


def _scenario(case_id: str, text: str | bytes, expect: str) -> Case:
    return Case(case_id, ("validate", "{tmp}/s.yaml"), expect, {"s.yaml": text})


SET_CASES = [
    _validate_set("platform.lr=.inf", "platform.lr: Input should be a finite number"),
    _validate_set("platform.lr=.nan", "platform.lr"),
    _validate_set("platform.lr=1000", "allowed: > 0 and <= 10"),
    _validate_set("platform.lr=0", "platform.lr"),
    _validate_set("platform.lr=-1", "platform.lr"),
    _validate_set("platform.lr=abc", "platform.lr"),
    _validate_set("platform.lr=true", "not true/false"),
    _validate_set("simulation.seed=4294967296", "simulation.seed"),
    _validate_set("simulation.seed=-1", "simulation.seed"),
    _validate_set("simulation.seed=1.5", "simulation.seed"),
    _validate_set("simulation.steps=1000000000000", "simulation.steps"),
    _validate_set("simulation.steps=0", "simulation.steps"),
    _validate_set("simulation.steps=[/x]]", "[/x]]"),
    _validate_set("simulation.steps=null", "simulation.steps"),
    _validate_set("world.n_users=1000000000", "world.n_users"),
    _validate_set("world.n_users=1", "world.n_users"),
    _validate_set("platform.metamf.hidden=1000000000", "platform.metamf.hidden",
                  "platform.model=metamf"),
    _validate_set("platform.metamf.item_dim=16384", "platform.metamf.hidden, item_dim",
                  "platform.model=metamf", "platform.metamf.hidden=16384"),
    _validate_set("platform.factors=0", "platform.factors"),
    _validate_set("platform.factors=100000", "platform.factors"),
    _validate_set("population.perturbation={epsilon: .inf}", "epsilon"),
    _validate_set("attackers.0.folds=1", "attackers.0.folds"),
    _validate_set("attackers.0.folds=50", "attackers.0.folds"),
    _validate_set("attackers.5.folds=3", "index below"),
    _validate_set("attackers.0.kind=laser", "unknown kind 'laser'"),
    _validate_set("platform.defenses.dp={noise_multiplier: -1}", "noise_multiplier"),
    _validate_set("metrics.k=0", "metrics.k"),
    _validate_set("output.agents_sample=2", "output.agents_sample"),
    _validate_set("simulation.device=tpu", "simulation.device"),
    _validate_set("nokey", "nokey"),
    _validate_set("=5", "="),
    _validate_set("simulation.steps.x=5", "simulation.steps"),
    _validate_set("population.types.unconcerned.share=2", "share"),
    _validate_set("population.beta_overrides={0: 2.0}", "beta_overrides"),
    _validate_set("events=[{step: 100}]", "step"),
    _validate_set("world.test_fraction=1.0", "world.test_fraction"),
    _validate_set("platform.retrain_every=0", "platform.retrain_every"),
    _validate_set("platform.epochs=100000", "platform.epochs"),
    _validate_set("platform.modle=mf", "unknown key"),
    _validate_set("platform.model=svd", "platform.model"),
    _validate_set("population.policy=random", "population.policy"),
    _validate_set("population.types={\"a$\\\\frac$\": {share: 1.0, beta: 0.5}}", "type name"),
    _validate_set("world.source=csv", "world.source"),
    _validate_set("simulation.stop_after=50", "stop_after"),
    _validate_set("attackers=[{kind: inference}, {kind: inference}]", "attackers"),
    _validate_set("world.signal=-1", "world.signal"),
    _validate_set("platform.batch_size=0", "platform.batch_size"),
    _validate_set("platform.defenses.apr={epsilon: 1000}", "epsilon"),
    _validate_set("population.calculus.rate=0", "rate"),
    # digits int() refuses, a list item that is a value, values YAML cannot build
    _validate_set("attackers.\u00b2.top_k=?", "--set attackers.\u00b2: expected an index below 1"),
    _validate_set("attackers.\u0663.top_k=1", "expected an index below 1"),
    _validate_set("attackers.0.kind=Shilling", "attackers.0 is a value, not a section",
                  "attackers=[1]"),
    _validate_set("events.0.step=1", "events.0 is a value, not a section", "events=[abc]"),
    _validate_set("simulation.seed=2001-13-45", "simulation.seed: Input should be a valid "
                  "integer, unable to parse string as an integer (got '2001-13-45')"),
    _validate_set("simulation.seed=2001-01-01", "(got '2001-01-01')"),
    _validate_set('simulation.steps=!!int "abc"', "'abc' cannot be read as !!int"),
    _validate_set("simulation.seed=!!timestamp x", "'x' cannot be read as !!timestamp"),
    _validate_set("simulation.seed=!!bool maybe", "'maybe' cannot be read as !!bool"),
    _validate_set("simulation.steps=" + "9" * 5000, "an integer of 5,000 characters is too long"),
    _validate_set("name=\udcff", "not valid YAML"),
    # a value of 100,000 characters is quoted in part, with its length
    _validate_set("simulation.steps=" + "a" * 100_000, "(100,000 characters)); allowed"),
    _validate_set("a" * 100_000 + "=1", "(100,002 characters): ", ),
    _validate_set("world.source=movielens", "cannot be used (File name too long)",
                  "world.path=" + "a" * 300),
    _validate_set('world.path="\\udcff"', "invalid Unicode character escape code" if LIBYAML
                  else "world.path: '\\udcff' is not valid text"),
]

# Every numeric setting of the quickstart: infinite, true/false and absurdly large.
NUMERIC_KEYS = [
    "world.signal", "world.n_users", "world.n_items", "world.mean_ratings_per_user",
    "world.min_ratings_per_user", "world.test_fraction", "world.seed", "platform.factors",
    "platform.epochs", "platform.first_epochs", "platform.retrain_every", "platform.reg",
    "platform.batch_size", "simulation.steps", "simulation.seed", "metrics.k",
    "metrics.group_share", "output.agents_sample", "attackers.0.known_fraction",
    "attackers.0.top_k", "attackers.0.selection_every",
    "population.types.pragmatist.beta", "population.types.pragmatist.share",
    "population.types.pragmatist.concern", "population.calculus.benefit_weight",
]
NUMERIC_CASES = [
    _validate_set(f"{key}={value}", key)
    for key in NUMERIC_KEYS for value in (".inf", "true", "1e30")
]

ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
    f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
    f"*{chr(97 + i)}]\n" for i in range(8))

FILE_CASES = [
    _scenario("yaml syntax", TINY + "world: {n_users: 60\n", "s.yaml:5: invalid YAML"),
    _scenario("yaml tab", TINY + "platform:\n\tmodel: mf\n", "s.yaml:5: invalid YAML"),
    _scenario("yaml list", "- a\n- b\n", "mapping"),
    _scenario("yaml duplicate key", TINY + "simulation: {steps: 3}\n", "twice"),
    _scenario("yaml alias bomb", ALIAS_BOMB, "100,000"),
    _scenario("yaml deep", "a: " + "[" * 5000 + "]" * 5000 + "\n",
              "exceeded maximum nesting depth" if LIBYAML else "nested too deeply"),
    _scenario("yaml binary", b"\xff\xfe\x00\x01binary", "UTF-8"),
    _scenario("yaml huge", "description: " + "x" * (1_100_000) + "\n", "limited to 1,048,576"),
    _scenario("yaml python tag", "name: !!python/object/apply:os.system ['true']\n",
              "s.yaml:1: invalid YAML"),
    _scenario("unknown top key", TINY + "wrold: {}\n", "unknown key"),
    _scenario("unknown nested key", TINY + "platform: {modle: mf}\n", "platform.modle"),
    _scenario("steps text", "simulation: {steps: abc}\n", "simulation.steps"),
    _scenario("steps bool", "simulation: {steps: true}\n", "simulation.steps"),
    _scenario("steps float", "simulation: {steps: 1.5}\n", "simulation.steps"),
    _scenario("negative users", "world: {n_users: -5}\n", "world.n_users"),
    _scenario("lr inf", "platform: {lr: .inf}\n", "platform.lr"),
    _scenario("lr nan", "platform: {lr: .nan}\n", "platform.lr"),
    _scenario("name escapes", "name: ../x\n", "name"),
    _scenario("shares", "population: {types: {a: {share: 0.5, beta: 1}}}\n", "types"),
    _scenario("no types", "population: {types: {}}\n", "types"),
    _scenario("type dollar", "population: {types: {'a$x$': {share: 1, beta: 1}}}\n",
              "type name"),
    _scenario("event late", TINY + "events: [{step: 9}]\n", "events"),
    _scenario("events mapping", TINY + "events: {step: 1}\n", "events"),
    _scenario("attacker kind", TINY + "attackers: [{kind: laser}]\n", "laser"),
    _scenario("world string", "world: abc\n", "world"),
    _scenario("missing data", "world: {source: movielens, path: /nonexistent/ml}\n",
              "/nonexistent/ml"),
    _scenario("stop after", TINY.replace("steps: 2", "steps: 2, stop_after: 5"), "stop_after"),
    _scenario("retrain text", "platform: {retrain_every: often}\n", "platform.retrain_every"),
    _scenario("defense typo", "platform: {defenses: {adversrial: {}}}\n", "adversrial"),
    _scenario("markup in key", TINY + "'[/x]': 1\n", "[/x]"),
    _scenario("yaml int tag", 'simulation: {steps: !!int "abc"}\n',
              "s.yaml:1: invalid YAML: 'abc' cannot be read as !!int"),
    _scenario("yaml empty int tag", 'simulation: {steps: !!int ""}\n',
              "s.yaml:1: invalid YAML: '' cannot be read as !!int"),
    _scenario("yaml float tag", 'platform: {lr: !!float "x"}\n',
              "s.yaml:1: invalid YAML: 'x' cannot be read as !!float"),
    _scenario("yaml map tag", "platform: !!map x\n", "s.yaml:1: invalid YAML"),
    _scenario("yaml bad date", "simulation: {seed: 2001-13-45}\n",
              "s.yaml: simulation.seed: Input should be a valid integer"),
    _scenario("yaml date", "simulation:\n  seed: 2001-01-01\n", "(got '2001-01-01')"),
    _scenario("yaml timestamp tag", "simulation: {seed: !!timestamp x}\n",
              "s.yaml:1: invalid YAML: 'x' cannot be read as !!timestamp"),
    _scenario("yaml bad timestamp tag", "name: t\nsimulation: {seed: !!timestamp 2001-13-45}\n",
              "s.yaml:2: invalid YAML: '2001-13-45' cannot be read as !!timestamp (month must "
              "be in 1..12)"),
    _scenario("yaml long base 60", "simulation: {seed: " + "1:" * 150_000 + "1}\n",
              "an integer of 300,001 characters is too long"),
    _scenario("yaml long tag", "name: !!" + "t" * 100_000 + " 1\n", "characters)"),
    _scenario("long value", "platform: {model: " + "a" * 100_000 + "}\n",
              "(100,000 characters))"),
    _scenario("world path too long",
              "world: {source: movielens, path: " + "a" * 300 + "}\n", "File name too long"),
    _scenario("world path surrogate", 'world: {source: movielens, path: "\\udcff"}\n',
              escaped_surrogate("s.yaml:1", "s.yaml: world.path")),
    _scenario("world path nul", 'world: {source: movielens, path: "a\\0b"}\n',
              "data folder not found: 'a\\x00b'"),
    Case("scenario name too long", ("validate", "x" * 300),
         "(300 characters): not a scenario file or shipped name (File name too long)"),
    Case("no such scenario", ("validate", "nosuchscenario"), "nosuchscenario"),
    Case("scenario is a folder", ("validate", "{tmp}"), "{tmp}"),
]

CLI_CASES = [
    Case("run seed negative", ("run", "{tmp}/s.yaml", "--seed", "-1"), "simulation.seed",
         {"s.yaml": TINY}),
    Case("run seed huge", ("run", "{tmp}/s.yaml", "--seed", "4294967296"), "simulation.seed",
         {"s.yaml": TINY}),
    Case("run seed text", ("run", "{tmp}/s.yaml", "--seed", "abc"),
         "Invalid value for '--seed'", {"s.yaml": TINY}),
    Case("run checkpoint zero", ("run", "{tmp}/s.yaml", "--checkpoint-every", "0"),
         "at least 1", {"s.yaml": TINY}),
    Case("run first zero", ("run", "{tmp}/s.yaml", "--first", "0"), "stop_after",
         {"s.yaml": TINY}),
    Case("run first past end", ("run", "{tmp}/s.yaml", "--first", "9"), "stop_after",
         {"s.yaml": TINY}),
    Case("run missing scenario", ("run", "nosuchscenario"), "nosuchscenario"),
    Case("run out is a file", ("run", "{tmp}/s.yaml", "--out", "{tmp}/s.yaml"), "exists",
         {"s.yaml": TINY}),
    Case("run out under a file", ("run", "{tmp}/s.yaml", "--out", "{tmp}/s.yaml/x"),
         "not a folder", {"s.yaml": TINY}),
    Case("run out too long", ("run", "{tmp}/s.yaml", "--out", "{tmp}/" + "o" * 300),
         "cannot be used (File name too long)", {"s.yaml": TINY}),
    Case("run out not utf-8", ("run", "{tmp}/s.yaml", "--out", "{tmp}/\udcff"),
         "the name is not UTF-8 text", {"s.yaml": TINY}),
    Case("run output dir too long", ("run", "{tmp}/s.yaml", "--set",
                                     "output.dir={tmp}/" + "o" * 300),
         "cannot be an output folder (File name too long)", {"s.yaml": TINY}),
    Case("run no held-out rating", ("run", "{tmp}/s.yaml", "--set", "world.mean_ratings_per_user=1",
                                    "--set", "world.min_ratings_per_user=1"),
         "world: no user has a held-out rating to measure accuracy on", {"s.yaml": TINY}),
    Case("run attacker knows no one", ("run", "{tmp}/s.yaml", "--set", "world.n_users=2",
                                       "--set", "attackers.0.known_fraction=0.01"),
         "attackers.0.known_fraction: 0.01 of the 2 users of the world is no user",
         {"s.yaml": TINY}),
    Case("run output dir nul", ("run", "{tmp}/s.yaml", "--set", 'output.dir="{tmp}/o\\0"'),
         "a folder name cannot hold a NUL character", {"s.yaml": TINY}),
    Case("run output dir not utf-8", ("run", "{tmp}/s.yaml", "--set",
                                      'output.dir="{tmp}/\\udcff"'),
         "invalid Unicode character escape code" if LIBYAML
         else "output.dir: '{tmp}/\\udcff' is not valid text", {"s.yaml": TINY}),
    Case("run out unwritable", ("run", "{tmp}/s.yaml", "--out", "/proc/privsim-x"),
         "not writable", {"s.yaml": TINY}),
    Case("run out not empty", ("run", "{tmp}/s.yaml", "--out", "{tmp}/full"), "not an empty",
         {"s.yaml": TINY, "full/x": "x"}),
    Case("run set markup", ("run", "{tmp}/s.yaml", "--set", "simulation.steps=[/x]]"),
         "[/x]]", {"s.yaml": TINY}),
    Case("resume no run", ("resume", "{tmp}"), "not a run folder"),
    Case("resume missing", ("resume", "{tmp}/nothing"), "not a run folder"),
    Case("resume completed", ("resume", "{tmp}/r"), "already completed",
         {"r/manifest.json": '{"status": "completed"}'}),
    Case("resume no checkpoint", ("resume", "{tmp}/r"), "no checkpoint.zip",
         {"r/manifest.json": '{"status": "failed"}'}),
    Case("resume pickle", ("resume", "{tmp}/r"), "never loaded",
         {"r/manifest.json": '{"status": "failed"}', "r/checkpoint.pkl": b"\x80\x04N."}),
    Case("resume bad zip", ("resume", "{tmp}/r"), "not a readable privsim checkpoint",
         {"r/manifest.json": '{"status": "failed"}', "r/checkpoint.zip": b"PK junk",
          "r/config.yaml": TINY}),
    Case("resume bad manifest", ("resume", "{tmp}/r"), "manifest.json",
         {"r/manifest.json": "{not json", "r/checkpoint.zip": b"x"}),
    Case("compare missing", ("compare", "{tmp}/nothing"), "nothing"),
    Case("compare empty", ("compare", "{tmp}/e", "--out", "{tmp}/c"), "e",
         {"e/.keep": ""}),
    Case("report missing", ("report", "{tmp}/nothing"), "nothing"),
    Case("sweep missing", ("sweep", "{tmp}/missing.yaml"), "missing.yaml"),
    Case("sweep unknown key", ("sweep", "{tmp}/w.yaml", "--out", "{tmp}/o"), "wrong.key",
         {"w.yaml": "base: {tmp}/s.yaml\ngrid: {wrong.key: [1, 2]}\n", "s.yaml": TINY}),
    Case("sweep empty grid", ("sweep", "{tmp}/w.yaml", "--out", "{tmp}/o"), "grid",
         {"w.yaml": "base: {tmp}/s.yaml\ngrid: {platform.factors: []}\n", "s.yaml": TINY}),
    Case("sweep bad seed", ("sweep", "{tmp}/w.yaml", "--out", "{tmp}/o"), "seed",
         {"w.yaml": "base: {tmp}/s.yaml\nseeds: [-1]\ngrid: {platform.factors: [4]}\n",
          "s.yaml": TINY}),
    Case("sweep bad base", ("sweep", "{tmp}/w.yaml", "--out", "{tmp}/o"), "nosuchbase",
         {"w.yaml": "base: nosuchbase\ngrid: {platform.factors: [4]}\n"}),
    Case("sweep duplicate key", ("sweep", "{tmp}/w.yaml", "--out", "{tmp}/o"), "twice",
         {"w.yaml": "base: quickstart\nbase: quickstart\ngrid: {platform.factors: [4]}\n"}),
    Case("sweep bad value", ("sweep", "{tmp}/w.yaml", "--out", "{tmp}/o"), "platform.lr",
         {"w.yaml": "base: {tmp}/s.yaml\ngrid: {platform.lr: [.inf]}\n", "s.yaml": TINY}),
    Case("sweep workers zero", ("sweep", "{tmp}/w.yaml", "--workers", "0", "--out", "{tmp}/o"),
         "workers", {"w.yaml": "base: {tmp}/s.yaml\ngrid: {platform.factors: [4]}\n",
                     "s.yaml": TINY}),
    Case("sweep executor", ("sweep", "{tmp}/w.yaml", "--executor", "ray"), "ray",
         {"w.yaml": "base: quickstart\ngrid: {platform.factors: [4]}\n"}),
    Case("sweep not yaml", ("sweep", "{tmp}/w.yaml"), "w.yaml", {"w.yaml": b"\xff\xfe"}),
    Case("sweep replications", ("sweep", "{tmp}/w.yaml", "--out", "{tmp}/o"),
         "1,000,000 runs (grid 1, 1,000,000 replications each); a sweep is limited to 5,000",
         {"w.yaml": "base: {tmp}/s.yaml\nreplications: 1000000\n", "s.yaml": TINY}),
    Case("sweep replications overflow", ("sweep", "{tmp}/w.yaml", "--out", "{tmp}/o"),
         "a sweep is limited to 5,000 runs",
         {"w.yaml": "base: {tmp}/s.yaml\nreplications: " + "9" * 30 + "\n", "s.yaml": TINY}),
    Case("sweep grid product", ("sweep", "{tmp}/w.yaml", "--out", "{tmp}/o"),
         "1,099,511,627,776 runs (grid 2 x 2", {"w.yaml": "base: {tmp}/s.yaml\ngrid: {" + ", ".join(
             f"platform.factors{'.x' * i}: [1, 2]" for i in range(40)) + "}\n",
             "s.yaml": TINY}),
    Case("sweep seeds", ("sweep", "{tmp}/w.yaml", "--out", "{tmp}/o"), "50,000 seeds each",
         {"w.yaml": "base: {tmp}/s.yaml\nseeds: [" + ", ".join(["0"] * 50_000) + "]\n",
          "s.yaml": TINY}),
    Case("sweep long grid value", ("sweep", "{tmp}/w.yaml", "--out", "{tmp}/o"),
         "characters left out)", {"w.yaml": "base: {tmp}/s.yaml\ngrid: {platform.model: ["
                                  + "\u00e9" * 50_000 + "]}\n", "s.yaml": TINY}),
    Case("externality bad group", ("externality", "{tmp}/s.yaml", "--group", "nonsense"),
         "nonsense", {"s.yaml": TINY}),
    Case("results missing", ("results", "{tmp}/missing.yaml"), "missing.yaml"),
]


def _movielens_case(name: str, line: int, text: str, problem: str) -> Case:
    files: dict[str, str | bytes] = {}
    for file_name, lines in ML100K_FILES.items():
        lines = list(lines)
        if file_name == name:
            lines[line - 1] = text
        files[f"ml/{file_name}"] = ("\n".join(lines) + "\n").encode("latin-1")
    files["s.yaml"] = ("world: {source: movielens, path: {tmp}/ml}\nsimulation: {steps: 2}\n"
                       "output: {dir: {tmp}/outputs}\n")
    return Case(f"movielens {name}:{line} {text[:40]}",
                ("run", "{tmp}/s.yaml", "--out", "{tmp}/out"), f"{name}:{line}: ", files)


DATA_CASES = [_movielens_case(*bad) for bad in ML100K_BAD]

CASES = [*SET_CASES, *NUMERIC_CASES, *FILE_CASES, *CLI_CASES, *DATA_CASES]


def census(source: str | None = None) -> list[tuple[str, str]]:
    """Run every case as a user would (`python -m simulator ...` in a fresh process, with the
    privsim found at `source` if given) and return (case id, problem) for those not handled
    cleanly: a way to count how a version of privsim fares on the corpus."""
    import os
    import subprocess
    import sys
    import tempfile

    problems = []
    env = {**os.environ, "COLUMNS": "400"}
    if source:
        env["PYTHONPATH"] = source
    for case in CASES:
        with tempfile.TemporaryDirectory() as folder:
            tmp = Path(folder)
            argv = write_files(case, tmp)
            before = set(tmp.rglob("*"))
            done = subprocess.run([sys.executable, "-m", "simulator", *argv], cwd=tmp, env=env,
                                  capture_output=True, text=True, timeout=300)
            output = " ".join((done.stdout + done.stderr).split())
            made = [p for p in set(tmp.rglob("*")) - before
                    if (p / "manifest.json").exists() or p.name == "out"]
            problem = ("traceback" if "Traceback" in output else
                       f"exit {done.returncode}" if done.returncode != 2 else
                       "message does not name the input" if case.expect.replace(
                           "{tmp}", folder) not in output else
                       "left a run folder" if made else "")
            if problem:
                problems.append((case.id, problem))
    return problems


if __name__ == "__main__":
    import sys

    found = census(sys.argv[1] if len(sys.argv) > 1 else None)
    print(f"bad inputs tried {len(CASES)}, handled cleanly {len(CASES) - len(found)}")
    for case_id, problem in found:
        print(f"  {case_id}: {problem}")
