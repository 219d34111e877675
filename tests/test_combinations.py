"""Every platform model x defense set x attacker set runs two steps with every configured
defense acting, or is refused by the scenario check as `docs/combinations.md` records
(`tests/combinations.py`, `python -m tests.combinations` to regenerate the file)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from tests.combinations import (
    ATTACKER_SETS,
    CELLS,
    DEFENSE_SETS,
    DOC,
    MODELS,
    REQUIRED,
    Cell,
    document,
    recorded,
    refusal,
    run_problems,
)

pytestmark = pytest.mark.heavy  # long tests: started first (tests/conftest.py)

RECORDED = recorded()
STALE = "docs/combinations.md is stale: run python -m tests.combinations"


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """The cells' models are tiny: one torch thread each is fastest, above all when other
    processes share the cores (idle threads spin)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def test_the_doc_is_current() -> None:
    assert DOC.read_text(encoding="utf-8") == document(), STALE


def test_the_doc_records_every_cell() -> None:
    assert sorted(RECORDED) == sorted(cell.id for cell in CELLS)
    assert len({cell.id for cell in CELLS}) == len(CELLS) == (
        len(MODELS) * len(DEFENSE_SETS) * len(ATTACKER_SETS))


@pytest.mark.parametrize("cell", CELLS, ids=lambda cell: cell.id)
def test_cell(cell: Cell) -> None:
    """A refused cell is refused with the recorded reason; any other runs two steps, with
    finite metrics where defined and every configured defense acting."""
    found = refusal(cell)
    expected = RECORDED.get(cell.id, "(not in the file)")
    if found is not None:
        assert found == expected, f"refused: {found}\nrecorded: {expected or 'runs'}\n{STALE}"
        return
    assert expected is None, f"accepted now, recorded as refused: {expected}\n{STALE}"
    assert run_problems(cell) == []


def test_privacy_defenses_combine_with_every_attacker_set() -> None:
    """BPR, MF and MetaMF each take every privacy defense alone (adversarial training,
    attribute unlearning, DP-SGD, APR) beside an inference attacker, a shilling attacker or
    an item owner: none of these scenarios may be refused."""
    refused = [f"{cell.id}: {reason}" for cell in REQUIRED
               if (reason := refusal(cell)) is not None]
    assert refused == [], "\n".join(refused)


def test_the_doc_parses_back() -> None:
    """What the file records is what it was generated from (refusals by cell)."""
    outcomes = {cell: (None if i % 3 else f"reason {i % 4}") for i, cell in enumerate(CELLS)}
    assert recorded(document(outcomes)) == {c.id: r for c, r in outcomes.items()}


def test_the_check_sees_a_defense_that_does_not_act(monkeypatch) -> None:
    """A configured defense that never acts fails its cell."""
    from simulator.defenses.apr.defense import APR

    monkeypatch.setattr(APR, "configure", lambda self, retrain: False)
    problems = run_problems(Cell("mf", ("apr",), "inference"))
    assert problems == ["defenses.apr is configured but no retrain lists it as acting"]
