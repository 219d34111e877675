"""Property-based fuzzing of what users hand privsim: scenario files, `--set` overrides, sweep
files, odd paths, tiny runs with odd settings or output folders, and damaged MovieLens folders
(generators in `tests/fuzz_inputs.py`).

Every generated command runs in-process through the command line (`CliRunner`) and must end
cleanly: exit status 0 or 2, no traceback, a refusal of at most 12 lines, no line over 1,000
characters, under 20 s and under 2 GiB more memory, whatever the console's encoding (the
cases are run under UTF-8 and ASCII consoles, as `PYTHONIOENCODING=ascii` gives). A
damaged MovieLens folder is read by the world reader, which must either refuse it in one line
naming the file, or accept exactly the rating lines its line-by-line reader accepts.

The default run draws a fixed sequence of about 3,000 examples (Hypothesis, derandomized):
the same every time, about a minute on 2 CPU cores. A longer or different search:

    PRIVSIM_FUZZ_SCALE=15 python -m pytest tests/test_fuzz.py   # 15 times the examples (~15 min)
    PRIVSIM_FUZZ_SEED=7 python -m pytest tests/test_fuzz.py     # another sequence of examples
"""

from __future__ import annotations

import os
import re
import resource
import signal
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar
from unittest import mock

import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings
from typer.testing import CliRunner

from simulator.cli import app
from simulator.foundations.errors import DataFormatError, PrivsimError
from simulator.world.movielens import load_movielens
from tests.fuzz_inputs import (
    CliCase,
    DataCase,
    movielens_cases,
    path_cases,
    rating_file_name,
    run_cases,
    scenario_file_cases,
    set_cases,
    sweep_cases,
)

pytestmark = pytest.mark.heavy  # long tests: started first (tests/conftest.py)

MAX_SECONDS = 20.0
MAX_MEMORY = 2 << 30  # address space a case may add
MAX_LINES = 12  # of a refusal
MAX_LINE = 1_000  # characters

SCALE = float(os.environ.get("PRIVSIM_FUZZ_SCALE", "1") or 1)
SEED = os.environ.get("PRIVSIM_FUZZ_SEED")

F = TypeVar("F", bound=Callable[..., Any])


def fuzz(default_examples: int) -> Callable[[F], F]:
    """Hypothesis settings of a fuzz target: `default_examples` times PRIVSIM_FUZZ_SCALE;
    derandomized unless PRIVSIM_FUZZ_SEED is set; nothing stored."""

    def decorate(test: F) -> F:
        configured = settings(
            max_examples=max(1, round(default_examples * SCALE)), derandomize=SEED is None,
            database=None, deadline=None, suppress_health_check=list(HealthCheck),
            phases=[Phase.explicit, Phase.generate, Phase.shrink],
        )(test)
        return seed(int(SEED))(configured) if SEED is not None else configured

    return decorate


class TooSlow(BaseException):
    """Raised into a case that runs past MAX_SECONDS (a BaseException, so that no handler
    of the code under test takes it for its own error)."""


@contextmanager
def bounded() -> Iterator[None]:
    """Run a block under MAX_SECONDS of wall time and MAX_MEMORY more address space (where
    the platform allows: a case that wants more gets MemoryError)."""

    def stop(signum: int, frame: Any) -> None:
        raise TooSlow(f"a case ran for over {MAX_SECONDS:.0f} s")

    # Signals reach the main thread only; elsewhere the time is checked after the case.
    alarm = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGALRM, stop) if alarm else None
    limits = resource.getrlimit(resource.RLIMIT_AS)
    used = _address_space()
    if used is not None:
        cap = used + MAX_MEMORY
        resource.setrlimit(resource.RLIMIT_AS, (cap if limits[1] == resource.RLIM_INFINITY
                                                else min(cap, limits[1]), limits[1]))
    if alarm:
        signal.setitimer(signal.ITIMER_REAL, MAX_SECONDS)
    try:
        yield
    finally:
        if alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
        resource.setrlimit(resource.RLIMIT_AS, limits)


def _address_space() -> int | None:
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE")


def run_cli(case: CliCase, folder: Path) -> tuple[int, str, BaseException | None]:
    """Write the case's files into `folder`, run its command line; (exit code, output,
    exception), having checked it kept to the time and memory bounds."""
    for name, content in case.files.items():
        (folder / name).write_bytes(content)
    argv = [arg.replace("{tmp}", str(folder)) for arg in case.argv]
    start = time.perf_counter()
    with bounded():
        result = CliRunner(charset=case.charset).invoke(app, argv)
    seconds = time.perf_counter() - start
    assert seconds < MAX_SECONDS, f"{seconds:.1f} s"
    return result.exit_code, result.output, result.exception


def check_clean(code: int, output: str, exception: BaseException | None) -> None:
    """Exit 0 or 2, no traceback, a short refusal, no overlong line."""
    assert exception is None or isinstance(exception, SystemExit), "".join(
        traceback.format_exception(exception))[-3000:]
    assert "Traceback" not in output, output[-3000:]
    assert code in (0, 2), f"exit {code}: {output[-3000:]}"
    lines = output.splitlines()
    longest = max(map(len, lines), default=0)
    assert longest <= MAX_LINE, f"a line of {longest:,} characters: {output[:300]!r}"
    if code == 2:
        assert len(lines) <= MAX_LINES, f"{len(lines)} lines: {output[:3000]}"


def _check_case(case: CliCase) -> None:
    with tempfile.TemporaryDirectory(prefix="privsim-fuzz-") as folder:
        check_clean(*run_cli(case, Path(folder)))


@fuzz(700)
@given(scenario_file_cases())
def test_fuzz_scenario_files(case: CliCase) -> None:
    _check_case(case)


@fuzz(700)
@given(set_cases())
def test_fuzz_set_overrides(case: CliCase) -> None:
    _check_case(case)


@fuzz(600)
@given(path_cases())
def test_fuzz_paths(case: CliCase) -> None:
    _check_case(case)


@fuzz(100)
@given(sweep_cases())
def test_fuzz_sweep_files(case: CliCase) -> None:
    """Only the validation of a sweep: a sweep that passes it stops before running."""
    stop = PrivsimError("validated; stopped before running")
    with mock.patch("simulator.experiments.sweep._claim_folder", side_effect=stop):
        _check_case(case)


@fuzz(100)
@given(run_cases())
def test_fuzz_tiny_runs(case: CliCase) -> None:
    import simulator.experiments.runner  # noqa: F401  (imported outside the memory bound)

    _check_case(case)


# --- MovieLens folders --------------------------------------------------------------------

_INT = re.compile(r"[+-]?[0-9]+")
_NUMBER = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)")


def _bad_rating_line(line: str, sep: str) -> str | None:
    """Why a line is not a rating (user, item, rating 1..5, timestamp >= 0; integers in ASCII
    digits, the rating a decimal number), or None."""
    parts = line.split(sep)
    if len(parts) != 4:
        return f"{len(parts)} fields"
    user, item, rating, timestamp = parts
    for name, text in (("user", user), ("item", item), ("timestamp", timestamp)):
        if not _INT.fullmatch(text):
            return f"{name} {text[:40]!r} is not an integer"
    if not _NUMBER.fullmatch(rating) or not 1 <= float(rating) <= 5:
        return f"rating {rating[:40]!r}"
    if int(timestamp) < 0:
        return "negative timestamp"
    return None


def check_folder(case: DataCase) -> None:
    """Read a damaged MovieLens folder: a one-line refusal naming the folder, or a world
    holding exactly the file's rating lines, each a valid one."""
    with tempfile.TemporaryDirectory(prefix="privsim-fuzz-") as name:
        folder = Path(name)
        for file_name, content in case.files.items():
            (folder / file_name).write_bytes(content)
        error = None
        start = time.perf_counter()
        with bounded():
            try:
                world = load_movielens(folder)
            except DataFormatError as exc:
                error = str(exc)
        assert time.perf_counter() - start < MAX_SECONDS
        if error is not None:
            assert "\n" not in error and len(error) <= MAX_LINE, error[:3000]
            assert str(folder) in error, error
            assert "could not be read as a rating file" not in error, (
                f"the bulk reader refused a file the line reader accepts: {error}")
            return
        ratings = rating_file_name(case)
        sep = "\t" if ratings == "u.data" else "::"
        lines = [(number, line.removesuffix("\r")) for number, line in enumerate(
            case.files[ratings].decode("latin-1").split("\n"), start=1)]
        lines = [(number, line) for number, line in lines if line]
        for number, line in lines:
            problem = _bad_rating_line(line, sep)
            assert problem is None, f"accepted {ratings}:{number} {line[:80]!r}: {problem}"
        assert len(world.ratings) == len(lines)


@fuzz(1000)
@given(movielens_cases())
def test_fuzz_movielens_folders(case: DataCase) -> None:
    check_folder(case)
