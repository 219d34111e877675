"""The privsim command line: run, validate, scenarios, sweep, and failure exits."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from simulator.cli import app
from simulator.experiments.catalog import load_scenario
from tests.test_simulation import SMALL

pytestmark = pytest.mark.heavy  # long tests: started first (tests/conftest.py)

runner = CliRunner()
SETS = [arg for item in SMALL for arg in ("--set", item)]


def test_run_writes_a_complete_folder(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = runner.invoke(app, ["run", "quickstart", "--seed", "3", "--out", str(out), *SETS])
    assert result.exit_code == 0, result.output
    assert "hr_10" in result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "completed" and manifest["seed"] == 3
    assert len(pd.read_parquet(out / "metrics.parquet")) == 4
    # Provenance: the package version, the source's commit, and which config ran.
    from simulator.runs.outputs import git_commit, privsim_version
    from simulator.simulation.checkpoint import scenario_digest

    provenance = manifest["provenance"]
    assert provenance["privsim"] == privsim_version() != "unknown"
    assert provenance["git_commit"] == git_commit()
    assert provenance["config_sha256"] == scenario_digest(load_scenario(str(out / "config.yaml")))


def test_the_summary_flags_a_platform_below_the_popularity_list(tmp_path: Path) -> None:
    from simulator.analysis.baselines import below_popularity

    out = tmp_path / "mf"
    result = runner.invoke(app, ["run", "quickstart", "--out", str(out), *SETS, "--set",
                                 "platform.model=mf", "--set", "output.plots=false"])
    assert result.exit_code == 0, result.output
    metrics = pd.read_parquet(out / "metrics.parquet")
    last = metrics.iloc[-1]
    assert last["hr_10"] < last["pop_hr_10"]  # explicit MF ranks by predicted rating
    flag = below_popularity(metrics)
    assert flag is not None and f"by {last['pop_hr_10'] - last['hr_10']:.3f}" in flag
    assert "platform below popularity: HR@10 " in result.output
    assert "recommends better than this platform" in " ".join(result.output.split())
    report = runner.invoke(app, ["report", str(out)])
    assert report.exit_code == 0, report.output
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "<b>Platform below popularity:</b> HR@10 " in html


def test_version() -> None:
    from simulator.runs.outputs import git_commit, privsim_version

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    commit = git_commit()
    assert result.output.strip() == f"privsim {privsim_version()}" + (
        f" (git {commit})" if commit else "")


def test_validate_and_scenarios() -> None:
    result = runner.invoke(app, ["validate", "quickstart"])
    assert result.exit_code == 0 and "valid scenario 'quickstart'" in result.output
    listing = runner.invoke(app, ["scenarios"])
    assert listing.exit_code == 0
    assert "quickstart" in listing.output and "ml100k-baseline" in listing.output
    for text in ("run time: about ", "MovieLens 100K", " s\n", " min "):
        assert text in listing.output
    from simulator.experiments.catalog import describe_source, run_time_class

    quickstart, baseline = load_scenario("quickstart"), load_scenario("ml100k-baseline")
    assert describe_source(quickstart) == "synthetic (1,000 users, ~60,000 ratings)"
    assert describe_source(baseline) == "MovieLens 100K"
    assert run_time_class(quickstart) == "under a minute"
    longer = load_scenario("ml100k-baseline", ["platform.model=metamf"])
    assert run_time_class(longer) in ("minutes", "under an hour")  # MetaMF: ~600x BPR a rating


def _cli(*args: str, cwd: Path, env: dict[str, str] | None = None
         ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "simulator", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=120, env=os.environ | (env or {}))


def test_bad_scenarios_exit_nonzero_with_one_line_and_leave_no_run(tmp_path: Path) -> None:
    cases = {
        "platform.epoch=3": "platform.epoch: unknown key",
        "population.types.pragmatist.beta=1.5": "population.types.pragmatist.beta",
        # the default ML-100K path, under a PRIVSIM_DATA that does not hold it
        "world.source=movielens": "data folder not found",
        f"world.path={tmp_path / 'missing'}": "data folder not found",
    }
    for override, expected in cases.items():
        extra = ["--set", "world.source=movielens"] if override.startswith("world.path") else []
        done = _cli("run", "--set", override, *extra, cwd=tmp_path,
                    env={"PRIVSIM_DATA": str(tmp_path / "no-data")})
        assert done.returncode == 2, done.stderr
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and expected in lines[0], done.stderr
        assert not (tmp_path / "outputs").exists()


def test_malformed_data_names_file_and_line_and_leaves_no_run(tmp_path: Path) -> None:
    folder = tmp_path / "ml"
    folder.mkdir()
    (folder / "u.user").write_text("1|24|M|technician|85711\n2|53|F|other|94043\n")
    (folder / "u.item").write_text("".join(
        f"{i}|Film {i}|01-Jan-1995||http://x|" + "|".join(["0"] * 18 + ["1"]) + "\n"
        for i in (1, 2)))
    (folder / "u.data").write_text("1\t1\t5\t881250949\n1\t2\tfive\t881250950\n")
    done = _cli("run", "--set", "world.source=movielens", "--set", f"world.path={folder}",
                cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "u.data:2" in lines[0], done.stderr
    assert not (tmp_path / "outputs").exists()


def test_unknown_beta_override_user(tmp_path: Path) -> None:
    done = _cli("run", "--set", "population.beta_overrides={99999: 0.5}", cwd=tmp_path)
    assert done.returncode == 2
    assert "unknown user ids [99999]" in done.stderr


def test_unknown_scenario_file(tmp_path: Path) -> None:
    done = _cli("validate", str(tmp_path / "nope.yaml"), cwd=tmp_path)
    assert done.returncode == 2
    assert "nope.yaml: scenario file not found" in done.stderr


def test_sweep_runs_every_point_and_combines(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep.yaml"
    sets = [*SMALL, "simulation.steps=2", "attackers.0.classifiers=[logreg]",
            "output.plots=false"]
    sweep.write_text(
        "name: tiny\nbase: quickstart\n"
        f"set: {json.dumps(sets)}\n"
        "grid:\n  world.signal: [0.0, 1.5]\nseeds: [0, 1]\nworkers: 2\n"
    )
    out = tmp_path / "sweep-out"
    result = runner.invoke(app, ["sweep", str(sweep), "--out", str(out)])
    assert result.exit_code == 0, result.output
    points = pd.read_parquet(out / "points.parquet")
    assert len(points) == 4 and (points["status"] == "completed").all()
    combined = pd.read_parquet(out / "results.parquet")
    assert len(combined) == 4 * 2
    assert set(combined["world.signal"]) == {0.0, 1.5}
    assert set(combined["seed"]) == {0, 1}
    for label in points["run_dir"]:
        assert json.loads((out / label / "manifest.json").read_text())["status"] == "completed"
    # A line per finished point, also when the output is not a terminal (as here).
    lines = result.output.splitlines()
    assert "4 of 4 points to run (0 already done), 2 at a time" in lines[0]
    finished = [line for line in lines if line.startswith("[")]
    assert [line.split("]")[0] for line in finished] == ["[1/4", "[2/4", "[3/4", "[4/4"]
    assert all(" completed (" in line for line in finished)
    assert sorted(line.split()[1] for line in finished) == sorted(points["run_dir"])


def test_sweep_with_an_invalid_point_runs_nothing(tmp_path: Path) -> None:
    sweep = tmp_path / "bad.yaml"
    sweep.write_text("base: quickstart\ngrid:\n  population.types.pragmatist.beta: [0.5, 2.0]\n")
    result = runner.invoke(app, ["sweep", str(sweep), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert not (tmp_path / "o").exists()


def test_scale_commands_name_what_is_wrong(tmp_path: Path) -> None:
    cases = [
        (["resume", str(tmp_path)], "not a run folder"),
        (["report", str(tmp_path)], str(tmp_path)),
        (["compare", str(tmp_path)], str(tmp_path)),
        (["sweep", "scenarios/sweeps/scale-demo.yaml", "--executor", "ray"], "--executor"),
    ]
    for args, expected in cases:
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert expected in result.output, (args, result.output)


def test_run_with_checkpoints_then_report_and_compare(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = runner.invoke(app, ["run", "quickstart", "--out", str(out), "--checkpoint-every",
                                 "2", *SETS])
    assert result.exit_code == 0, result.output
    assert not (out / "checkpoint.zip").exists()  # removed once the run completed
    report = runner.invoke(app, ["report", str(out)])
    assert report.exit_code == 0, report.output
    assert (out / "report.html").stat().st_size > 10_000
    compared = runner.invoke(app, ["compare", str(out), "--out", str(tmp_path / "cmp")])
    assert compared.exit_code == 0, compared.output
    assert (tmp_path / "cmp" / "compare.csv").exists()


def test_messages_are_printed_verbatim_not_as_markup(capsys: pytest.CaptureFixture[str]) -> None:
    import typer

    from simulator.cli import _fail

    result = CliRunner().invoke(app, ["run", "--set", "simulation.steps=[/x]]"])
    assert result.exit_code == 2
    assert "simulation.steps=[/x]]" in result.output
    assert "Traceback" not in result.output
    with pytest.raises(typer.Exit):
        _fail("install it: pip install -e '.[dashboard]' ([bold]not bold[/bold])")
    err = capsys.readouterr().err
    assert "'.[dashboard]'" in err and "[bold]not bold[/bold]" in err


def _tiny_scenario(path: Path) -> Path:
    path.write_text("name: t\nworld: {n_users: 60, n_items: 40, mean_ratings_per_user: 10, "
                    "min_ratings_per_user: 3}\nsimulation: {steps: 2}\n", encoding="utf-8")
    return path


def test_a_console_that_cannot_print_a_name_escapes_it(tmp_path: Path) -> None:
    """Under PYTHONIOENCODING=ascii (stdout strict, stderr backslashreplace, as CliRunner's
    charset gives) a non-ASCII path is printed escaped, in output and errors alike."""
    path = _tiny_scenario(tmp_path / "\u00e9t\u00e9.yaml")
    ascii_runner = CliRunner(charset="ascii")
    result = ascii_runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 0 and result.exception is None, result.exc_info
    assert "\\xe9t\\xe9.yaml: valid scenario 't'" in " ".join(result.output.split())
    refused = ascii_runner.invoke(app, ["validate", str(path), "--set", "name=\u00e9"])
    assert refused.exit_code == 2 and "Traceback" not in refused.output
    surrogate = _tiny_scenario(tmp_path / "\udcff.yaml")  # a file name that is not UTF-8
    result = CliRunner().invoke(app, ["validate", str(surrogate)])
    assert result.exit_code == 0, result.exc_info
    assert "\\udcff.yaml: valid scenario" in " ".join(result.output.split())


def test_an_ascii_console_in_a_real_process(tmp_path: Path) -> None:
    import os

    path = _tiny_scenario(tmp_path / "\u00e9t\u00e9.yaml")
    done = subprocess.run([sys.executable, "-m", "simulator", "validate", str(path)],
                          capture_output=True, cwd=tmp_path, timeout=120,
                          env={**os.environ, "PYTHONIOENCODING": "ascii"})
    assert done.returncode == 0, done.stderr.decode("ascii", "replace")
    assert b"\\xe9t\\xe9.yaml: valid scenario" in b" ".join(done.stdout.split())


def test_a_path_option_that_cannot_be_a_path_is_one_line(tmp_path: Path) -> None:
    long = str(tmp_path / ("x" * 300))
    commands = [["run", "quickstart", "--out", long], ["resume", long], ["report", long],
                ["compare", long], ["sweep", long], ["results", long, "--no-run"],
                ["run", "quickstart", "--out", str(tmp_path / "\udcff")]]
    for argv in commands:
        result = runner.invoke(app, argv)
        assert result.exit_code == 2, (argv[0], result.exc_info)
        assert result.exception is None or isinstance(result.exception, SystemExit)
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and len(lines[0]) < 1_000, (argv[0], result.output)


def test_a_long_line_is_cut_to_what_an_ascii_console_prints() -> None:
    from simulator.cli import MAX_LINE, _readable

    line = "sweep point {'platform.model': '" + "\u00e9" * 5000 + "'}: unknown model"
    cut = _readable(line)
    assert len(cut.encode("ascii", "backslashreplace")) <= MAX_LINE
    assert cut.endswith(f"(the rest of a line of {len(line):,} characters left out)")
    assert _readable("short") == "short"


def test_what_a_command_prints_stays_readable(tmp_path: Path) -> None:
    """A valid scenario's 100,000-character name and a headline metric of 5,000 characters
    are printed cut, with their length."""
    long_name = runner.invoke(app, ["validate", "quickstart", "--set", "name=" + "a" * 100_000])
    assert long_name.exit_code == 0, long_name.output[:300]
    assert "valid scenario '" + "a" * 100 + "...' (100,000 characters)" in long_name.output
    path = _tiny_scenario(tmp_path / "s.yaml")
    result = runner.invoke(app, ["run", str(path), "--out", str(tmp_path / "out"), "--set",
                                 "output.plots=false", "--set", "report.headline=[" + "x" * 5000
                                 + "]", "--set", "attackers.0.classifiers=[logreg]"])
    assert result.exit_code == 0, result.output[-2000:]
    assert "not measured in this run: " + "x" * 100 + "... (5,000 characters)" in result.output
    for output in (long_name.output, result.output):
        assert max(map(len, output.splitlines())) <= 1_000
