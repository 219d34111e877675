"""The `privsim` command line."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import IO, Annotated, Any, cast

import typer
from rich.console import Console
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from simulator.experiments.catalog import list_scenarios, load_scenario
from simulator.foundations.errors import PrivsimError, shown

app = typer.Typer(
    help="privsim: simulate privacy dynamics in recommender systems.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class _Escaping:
    """sys.stdout or sys.stderr (looked up at each write) as the consoles write to it: a
    character its encoding cannot hold, such as an accented file name under
    PYTHONIOENCODING=ascii or the lone surrogate of a file name that is not UTF-8, is
    written as its escape (\\xe9) instead of ending the command with a traceback."""

    def __init__(self, name: str) -> None:
        self._stream_name = name

    def write(self, text: str) -> int:
        stream = getattr(sys, self._stream_name)
        try:
            return int(stream.write(text))
        except UnicodeEncodeError:
            encoding = getattr(stream, "encoding", None) or "utf-8"
            return int(stream.write(text.encode(encoding, "backslashreplace").decode(encoding)))

    def __getattr__(self, name: str) -> Any:
        if name == "_stream_name":  # not set yet (a copy being made)
            raise AttributeError(name)
        return getattr(getattr(sys, self._stream_name), name)


# Nothing printed is read as rich markup: messages quote user text (file names, values,
# `--set` arguments) that may contain brackets. Lines are not wrapped at the console's
# width, so a printed path stays one piece to copy (tables still fit the width).
console = Console(file=cast(IO[str], _Escaping("stdout")), markup=False, highlight=False,
                  soft_wrap=True)
errors = Console(file=cast(IO[str], _Escaping("stderr")), markup=False, highlight=False,
                 soft_wrap=True)
MAX_LINE = 1_000  # characters of one line of an error message

def _print_version(value: bool) -> None:
    if value:
        from simulator.runs.outputs import git_commit, privsim_version

        commit = git_commit()
        console.print(f"privsim {privsim_version()}" + (f" (git {commit})" if commit else ""))
        raise typer.Exit()


@app.callback()
def _process_settings(
    version: Annotated[bool, typer.Option(
        "--version", help="Print privsim's version (and git commit) and exit.",
        callback=_print_version, is_eager=True)] = False,
) -> None:
    """What the command line (not `import simulator`) sets for its own process: glibc keeps
    freed memory (much faster training), and matplotlib draws off-screen."""
    import os

    from simulator.foundations.allocator import keep_freed_memory

    keep_freed_memory()
    os.environ.setdefault("MPLBACKEND", "Agg")


SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a scenario key: path.to.key=value (repeatable)."),
]


def _check_paths(*paths: tuple[str, Path | None], tables: bool = True) -> None:
    """Refuse at once, naming it, a path given on the command line that the system cannot
    look up or list (a name too long, a NUL, a folder not to be entered), or, for a folder
    whose tables privsim reads or writes (`tables`), whose name is not UTF-8 (Parquet takes
    UTF-8 names only), before a command works with it."""
    for what, path in paths:
        if path is None:
            continue
        if tables and not str(path).isascii():
            try:
                str(path).encode("utf-8")
            except UnicodeEncodeError:
                _fail(f"{what} {shown(str(path), 300)}: the name is not UTF-8 text, which "
                      "the tables of a run need")
        try:
            if "\0" in str(path):  # pathlib reads such a name as missing
                raise ValueError("embedded null byte")
            if path.is_dir():
                next(path.iterdir(), None)
            else:
                path.exists()
        except (OSError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            _fail(f"{what} {shown(str(path), 300, quote=False)}: cannot be used "
                  f"({shown(str(reason), quote=False)})")


def _fail(message: str) -> None:
    lines = [_readable(line) for line in message.split("\n")]
    errors.print(Text.assemble(("error:", "bold red"), " ", "\n".join(lines)), soft_wrap=True)
    raise typer.Exit(code=2)


def _readable(line: str) -> str:
    """A line of a message cut to MAX_LINE characters as an ASCII console prints it (escapes
    included). Values a message quotes are cut where it is written; this keeps any line that
    still runs long (one quoting a sweep point's parameters, say) readable."""
    if len(line.encode("ascii", "backslashreplace")) <= MAX_LINE:
        return line
    kept, width = 0, 0
    for kept, char in enumerate(line):  # noqa: B007  (kept is read after the loop)
        width += len(char.encode("ascii", "backslashreplace"))
        if width > MAX_LINE - 100:
            break
    return f"{line[:kept]} ... (the rest of a line of {len(line):,} characters left out)"


@app.command()
def run(
    scenario: Annotated[
        str | None, typer.Argument(help="Scenario file or shipped name (default: quickstart).")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Override simulation.seed.")] = None,
    out: Annotated[Path | None, typer.Option(help="Run folder (new or empty).")] = None,
    set_: SetOption = None,
    progress: Annotated[
        bool | None, typer.Option("--progress/--no-progress", help="Progress bar.")
    ] = None,
    checkpoint_every: Annotated[int | None, typer.Option(
        help="Save the simulation every K steps (privsim resume continues from there).")] = None,
    first: Annotated[int | None, typer.Option(
        help="Run only the first K steps, the schedule unchanged (simulation.stop_after).")
    ] = None,
) -> None:
    """Run one scenario and write its results folder."""
    _check_paths(("--out", out))
    overrides = list(set_ or [])
    if seed is not None:
        overrides.append(f"simulation.seed={seed}")
    if first is not None:
        overrides.append(f"simulation.stop_after={first}")
    try:
        loaded = load_scenario(scenario, overrides)
        # Imported once the scenario is valid: a bad one is refused before the seconds
        # that PyTorch and scikit-learn take to load.
        from simulator.experiments.runner import run_scenario

        result = run_scenario(loaded, out=out, progress=progress, command=shlex.join(sys.argv),
                              checkpoint_every=checkpoint_every)
    except PrivsimError as exc:
        _fail(str(exc))
        return
    except KeyboardInterrupt as exc:
        _interrupted(exc)
    _summary(result, list(loaded.report.headline))


def _interrupted(exc: KeyboardInterrupt) -> None:
    """One line for Ctrl-C or SIGTERM (the run folder says `interrupted`), exit 130/143."""
    from simulator.experiments.runner import Terminated

    reason = "stopped by SIGTERM" if isinstance(exc, Terminated) else "interrupted"
    errors.print(Text.assemble(("error:", "bold red"), f" {reason}; the run folder's manifest "
                               "says interrupted (privsim resume continues a run that was "
                               "checkpointed)"), soft_wrap=True)
    raise typer.Exit(code=143 if isinstance(exc, Terminated) else 130)


@app.command()
def resume(
    run_dir: Annotated[Path, typer.Argument(help="The folder of a run that stopped.")],
    progress: Annotated[
        bool | None, typer.Option("--progress/--no-progress", help="Progress bar.")
    ] = None,
) -> None:
    """Continue a stopped run from its last checkpoint."""
    from simulator.experiments.runner import resume_run

    _check_paths(("run folder", run_dir))
    try:
        result = resume_run(run_dir, progress=progress)
    except PrivsimError as exc:
        _fail(str(exc))
        return
    except KeyboardInterrupt as exc:
        _interrupted(exc)
    _summary(result, list(load_scenario(str(run_dir / "config.yaml")).report.headline))
    console.print(f"resumed from step {result.manifest['resumed_from_step']} "
                  f"(the run had {result.manifest.get('resumed_after')})")


def _summary(result: Any, headline: list[str]) -> None:
    """The headline metrics at the last step (`report.headline`, or accuracy, disclosure and
    leakage), each with its reference and its change since the first step; then where the
    results are and what to run next."""
    from simulator.analysis.baselines import below_popularity
    from simulator.analysis.defense_activity import skipped_defenses
    from simulator.analysis.headlines import headline_rows

    metrics = result.metrics
    steps = int(metrics["step"].iloc[-1]) + 1
    rows, missing = headline_rows(metrics, headline)
    title = result.manifest.get("title") or result.manifest["scenario"]
    summary = Table(title=f"{title}: after step {steps - 1} ({steps} steps)")
    # Metric names are what users look up and type: never cut.
    summary.add_column("metric", no_wrap=True,
                       min_width=max((len(row.metric) for row in rows), default=6))
    summary.add_column("value", justify="right")
    summary.add_column(f"change since step {int(metrics['step'].iloc[0])}", justify="right")
    summary.add_column("reference")
    for row in rows:
        reference = "" if row.reference is None else f"{row.reference:.4f} ({row.reference_name})"
        summary.add_row(row.metric, f"{row.last:.4f}", f"{row.change:+.4f}", reference)
    console.print(summary)
    changes = result.manifest.get("changes")
    if changes:
        console.print(f"changes from {changes['from']}: {', '.join(changes['settings'])}",
                      soft_wrap=True)
    for line in skipped_defenses(result.events):
        console.print(f"defense {line}", soft_wrap=True)
    below = below_popularity(metrics)
    if below is not None:
        console.print(f"platform below popularity: {below}", soft_wrap=True)
    if missing:
        named = ", ".join(shown(name, quote=False) for name in missing)
        console.print(f"report.headline: not measured in this run: {named}")
    console.print(f"results: {result.path}")
    if result.path is not None:
        if (result.path / "plots").is_dir():
            console.print(f"plots: {result.path / 'plots'}")
        console.print(f"next: privsim report {result.path}  |  "
                      f"privsim dashboard {result.path.parent}", soft_wrap=True)


@app.command()
def validate(
    scenario: Annotated[str, typer.Argument(help="Scenario file or shipped name.")],
    set_: SetOption = None,
) -> None:
    """Check a scenario without running it."""
    try:
        loaded = load_scenario(scenario, list(set_ or []))
    except PrivsimError as exc:
        _fail(str(exc))
        return
    from simulator.scenario.schedule import describe_schedule

    console.print(f"{shown(scenario, 300, quote=False)}: valid scenario {shown(loaded.name)} "
                  f"({loaded.simulation.steps} steps, model {loaded.platform.model})",
                  highlight=False)
    console.print("schedule:", highlight=False)
    for line in describe_schedule(loaded):
        console.print(f"  {line}", highlight=False, markup=False, soft_wrap=True)
    from simulator.scenario.run_time import estimate_run_time

    console.print(f"run time: {estimate_run_time(loaded).text()}, estimated for 2 CPU cores",
                  highlight=False, soft_wrap=True)
    if loaded.world.source == "synthetic":
        from simulator.scenario.memory import GIB, check_fits, estimate_memory, synthetic_size

        estimate = estimate_memory(loaded, *synthetic_size(loaded))
        console.print(f"memory: about {estimate.host_bytes / GIB:.1f} GiB "
                      f"({estimate.n_ratings:,} ratings)", highlight=False)
        try:
            check_fits(estimate, "cpu", "synthetic")
        except PrivsimError as exc:
            _fail(str(exc))


@app.command()
def scenarios() -> None:
    """List the shipped scenarios: the data each runs on, its steps and its estimated run time
    on 2 CPU cores."""
    from simulator.experiments.catalog import describe_source
    from simulator.scenario.run_time import estimate_run_time

    shipped = list_scenarios()
    rows = []
    for name, path in shipped.items():
        try:
            scenario = load_scenario(str(path))
        except PrivsimError as exc:
            rows.append((name, "", "", "", f"(invalid here: {exc})"))
            continue
        description = scenario.description.strip().splitlines()[0] \
            if scenario.description else ""
        rows.append((name, describe_source(scenario), str(scenario.simulation.steps),
                     estimate_run_time(scenario).short(), description))
    title = "Shipped scenarios (run time: estimated on 2 CPU cores)"
    # Names are what users type: never cut or wrapped. A terminal too narrow for a table
    # gets one block per scenario instead.
    longest = max((len(name) for name in shipped), default=4)
    if console.width < longest + 80:
        console.print(title)
        for name, data, steps, run_time, description in rows:
            console.print(Text(name, style="bold"), soft_wrap=True)
            console.print(Text(f"  {data}; {steps} steps; run time: {run_time}"))
            if description:
                console.print(Padding(Text(description), (0, 0, 0, 2)))
        return
    table = Table(title=title)
    table.add_column("name", no_wrap=True, min_width=longest)
    for column in ("data", "steps", "run time", "description"):
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    console.print(table)


@app.command()
def sweep(
    sweep_file: Annotated[Path, typer.Argument(help="Sweep YAML: base, grid, seeds.")],
    out: Annotated[Path | None, typer.Option(help="Sweep folder (rerun it to resume).")] = None,
    workers: Annotated[int | None, typer.Option(help="Parallel processes.")] = None,
    executor: Annotated[str, typer.Option(help="local (process pool) or dask.")] = "local",
    scheduler: Annotated[str | None, typer.Option(
        help="dask: scheduler address (default: a local Dask cluster).")] = None,
) -> None:
    """Run a base scenario over a grid of overrides and seeds (finished points are kept)."""
    from simulator.experiments.sweep import run_sweep

    if executor not in ("local", "dask"):
        _fail(f"--executor must be local or dask, got {shown(executor)}")
    _check_paths(("sweep file", sweep_file), tables=False)
    _check_paths(("--out", out))
    try:
        folder = run_sweep(sweep_file, out=out, workers=workers, executor=executor,
                           scheduler=scheduler,
                           report=lambda line: console.print(line, soft_wrap=True))
    except PrivsimError as exc:
        _fail(str(exc))
        return
    console.print(f"sweep results: {folder}")
    from simulator.runs.outputs import read_manifest

    manifest = read_manifest(folder)
    if manifest["failed"]:
        _fail(f"{manifest['failed']} of {manifest['points']} points failed (their errors are "
              f"in {folder / 'points.parquet'}; rerun the sweep with --out {folder} to retry "
              "them)")


@app.command()
def compare(
    folders: Annotated[list[Path], typer.Argument(help="Run and sweep folders.")],
    out: Annotated[Path, typer.Option(help="Where the table and figures go.")] = Path(
        "outputs/compare"),
    metric: Annotated[list[str] | None, typer.Option(
        "--metric", help="A metrics.parquet column to compare (repeatable; default: accuracy "
        "and leakage).")] = None,
) -> None:
    """Combine runs into one table (means and 95% CIs over seeds) and the standard figures."""
    from simulator.analysis.compare import compare as compare_runs

    _check_paths(*(("folder", folder) for folder in folders), ("--out", out))
    try:
        folder = compare_runs(folders, out, metric or None)
    except (PrivsimError, ValueError) as exc:
        _fail(str(exc))
        return
    console.print(f"comparison: {folder}")


@app.command()
def report(
    folder: Annotated[Path, typer.Argument(help="A run or sweep folder.")],
    out: Annotated[Path | None, typer.Option(help="HTML file (default: FOLDER/report.html).")]
    = None,
) -> None:
    """Write a self-contained HTML report (and PNG/PDF figures) of a run or sweep."""
    from simulator.analysis.report import write_report

    _check_paths(("folder", folder), ("--out", out))
    try:
        path = write_report(folder, out, question=_shipped_question(folder))
    except (PrivsimError, ValueError) as exc:
        _fail(str(exc))
        return
    console.print(f"report: {path}")


def _shipped_question(folder: Path) -> str | None:
    """The `# Question:` of the shipped scenario a run folder ran, if it ran one."""
    import json

    from simulator.experiments.catalog import list_scenarios
    from simulator.experiments.results import scenario_question
    from simulator.foundations.yaml_files import read_yaml

    manifest = folder / "manifest.json"
    if not manifest.is_file():
        return None
    try:
        name = json.loads(manifest.read_text(encoding="utf-8")).get("scenario")
    except (OSError, ValueError):
        return None
    shipped = list_scenarios()
    if not isinstance(name, str) or name not in shipped:
        return None
    # Read, not validated: a report needs neither the run's data nor a valid scenario.
    question = scenario_question(name, Path("."))
    description = str(read_yaml(shipped[name]).get("description", ""))
    return question if question != " ".join(description.split()) else None


@app.command()
def dashboard(
    outputs: Annotated[Path, typer.Argument(help="Folder with runs and sweeps.")] = Path(
        "outputs"),
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 8501,
) -> None:
    """Browse runs and sweeps in a local Streamlit app (http://127.0.0.1:PORT); stopping
    this command (Ctrl-C, SIGTERM, a closed terminal) stops the server."""
    from simulator.dashboard.server import serve

    try:
        import streamlit  # noqa: F401
    except ImportError:
        _fail("the dashboard needs streamlit: pip install -e '.[dashboard]'")
    app_path = Path(__file__).parent / "dashboard" / "app.py"
    command = [sys.executable, "-m", "streamlit", "run", str(app_path),
               "--server.address", "127.0.0.1", "--server.port", str(port),
               "--server.headless", "true", "--browser.gatherUsageStats", "false",
               "--client.toolbarMode", "minimal",
               "--", "--outputs", str(outputs)]
    raise typer.Exit(serve(command))


@app.command()
def externality(
    scenario: Annotated[str, typer.Argument(help="Scenario file or shipped name.")],
    group: Annotated[list[str], typer.Option(
        "--group", help="A group whose disclosure changes, kind:name (repeatable), e.g. "
        "involvement:High; all groups must share one kind.")],
    beta: Annotated[float, typer.Option(help="Their disclosure budget in the changed runs.")] = 0.1,
    seeds: Annotated[int, typer.Option(help="Paired runs per group (seeds 0..N-1).")] = 5,
    out: Annotated[Path | None, typer.Option(help="Output folder.")] = None,
    workers: Annotated[int, typer.Option(help="Parallel processes.")] = 2,
    set_: SetOption = None,
) -> None:
    """Paired counterfactual runs: how one group's disclosure changes every group's
    accuracy and leakage (differences with 95% confidence intervals, and heatmaps)."""
    from simulator.experiments.externality import plan_runs, run_externality

    if seeds < 2:
        _fail("--seeds must be at least 2 for confidence intervals")
    _check_paths(("--out", out))
    try:
        plan = plan_runs(scenario, group, beta, list(range(seeds)), list(set_ or []))
        folder = run_externality(plan, out=out, workers=workers)
    except PrivsimError as exc:
        _fail(str(exc))
        return
    console.print(f"externality results: {folder}")


@app.command()
def counterfactual(
    scenario: Annotated[str, typer.Argument(help="Scenario file or shipped name.")],
    without: Annotated[list[str], typer.Option(
        "--without", help="What the counterfactual arm changes, key=value (repeatable), e.g. "
        "platform.defenses.unlearning=null.")],
    seeds: Annotated[int, typer.Option(help="Paired runs (seeds 0..N-1).")] = 5,
    out: Annotated[Path | None, typer.Option(help="Output folder (rerun it to resume).")] = None,
    workers: Annotated[int, typer.Option(help="Parallel processes.")] = 2,
    set_: SetOption = None,
) -> None:
    """A scenario against its counterfactual (the same with --without applied), paired on
    each seed: every metric's difference at every step with its 95% interval."""
    import pandas as pd

    from simulator.experiments.counterfactual import (
        headline_lines,
        key_metrics,
        plan_counterfactual,
        run_counterfactual,
    )

    if seeds < 2:
        _fail("--seeds must be at least 2 for confidence intervals")
    _check_paths(("--out", out))
    try:
        plan = plan_counterfactual(scenario, list(without), list(range(seeds)),
                                   list(set_ or []))
        from simulator.scenario.run_time import estimate_run_time

        seconds = sum(estimate_run_time(arm).seconds for arm in plan.runs.values())
        console.print(f"{plan.title}: {seeds} seeds x 2 arms ({len(plan.runs)} runs), "
                      f"without = {' '.join(without)}; about {seconds / 60:.0f} min of runs "
                      f"on 2 CPU cores (estimated; finished runs are kept)", soft_wrap=True)
        folder = run_counterfactual(plan, out=out, workers=workers)
    except PrivsimError as exc:
        _fail(str(exc))
        return
    summary = pd.read_parquet(folder / "counterfactual.parquet")
    first = next(iter(plan.runs.values()))
    console.print("with minus without, mean over seeds [95% interval]:")
    for line in headline_lines(summary, key_metrics(first, list(summary["metric"].unique()))):
        console.print(f"  {line}", soft_wrap=True)
    from simulator.analysis.report import write_report

    console.print(f"counterfactual results: {folder}", soft_wrap=True)
    console.print(f"report: {write_report(folder)}", soft_wrap=True)


@app.command()
def results(
    spec: Annotated[Path, typer.Argument(help="Results file: headlines and studies.")] = Path(
        "scenarios/results/headlines.yaml"),
    out: Annotated[Path, typer.Option(help="Where the runs go (rerun to resume).")] = Path(
        "outputs/results"),
    doc: Annotated[Path | None, typer.Option(
        help="The Markdown table written (default: OUT/results.md; the project's own is "
        "docs/results.md).")] = None,
    workers: Annotated[int | None, typer.Option(help="Parallel processes.")] = None,
    only: Annotated[list[str] | None, typer.Option(
        help="Run only headlines (and study sweeps) whose name starts with this "
        "(repeatable); the document still lists every row.")] = None,
    run_all: Annotated[bool, typer.Option(
        "--all", help="Run every headline and study (hours on 2 cores).")] = False,
    no_run: Annotated[bool, typer.Option(
        "--no-run", help="Only rewrite the document from the runs already there.")] = False,
) -> None:
    """Run the headlines over their seeds (resumable) and write the results table: prints the
    plan first, and runs everything only with --all (or the rows chosen with --only)."""
    from simulator.experiments.results import plan_results, run_results, write_results_doc

    doc = out / "results.md" if doc is None else doc
    _check_paths(("results file", spec), ("--doc", doc), tables=False)
    _check_paths(("--out", out))
    try:
        if not no_run:
            plan = plan_results(spec, only)
            total = sum(plan.runs.values())
            classes = ", ".join(f"{n} {kind}" for kind, n in plan.runs.items())
            console.print(f"plan: {total} runs ({classes}), about {plan.hours:.1f} h on 2 CPU "
                          f"cores (estimated; finished runs in {out} are kept)", soft_wrap=True)
            for name, cost in sorted(plan.rows.items(), key=lambda item: -item[1]):
                console.print(f"  {name}: about {cost / 60:.1f} min", soft_wrap=True,
                              highlight=False)
            if not only and not run_all:
                _fail(f"the whole table is {total} runs: choose rows with --only NAME, or "
                      "run them all with --all")
                return
            run_results(spec, out, workers=workers, only=only)
        rows = write_results_doc(spec, out, doc)
    except PrivsimError as exc:
        _fail(str(exc))
        return
    for row in rows:
        console.print(f"{row.verdict:>14}  {row.row.name}", highlight=False, markup=False)
    console.print(f"results: {doc}", highlight=False)


def main() -> None:
    """Entry point for `python -m simulator`."""
    app()
