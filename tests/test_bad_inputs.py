"""Every bad input of the corpus ends in one clear message, exit status 2 and nothing
half-written: no traceback, the file, key or value at fault named, no run folder made."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from simulator.cli import app
from tests.bad_inputs import CASES, Case, write_files

runner = CliRunner()


def test_the_corpus_is_large_and_distinct() -> None:
    assert len(CASES) >= 150
    assert len({case.id for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_is_handled_cleanly(case: Case, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # default output folders land here, where they are checked
    monkeypatch.setenv("COLUMNS", "400")
    argv = write_files(case, tmp_path)
    before = set(tmp_path.rglob("*"))
    result = runner.invoke(app, argv)
    output = " ".join(result.output.split())
    assert result.exc_info is None or result.exc_info[0] is SystemExit, result.exc_info
    assert "Traceback" not in result.output
    assert result.exit_code == 2, result.output
    assert case.expect.replace("{tmp}", str(tmp_path)) in output, result.output
    assert max(map(len, result.output.splitlines()), default=0) <= 1_000, result.output[:2000]
    made = set(tmp_path.rglob("*")) - before
    assert not [p for p in made if (p / "manifest.json").exists() or p.name == "out"], made
