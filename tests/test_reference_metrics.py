"""Every shipped scenario, on small settings, still gives the metrics recorded before the
simulator was restructured (`tests/reference_metrics.json`), on any machine.

Which columns are exact and which are compared within a tolerance is decided by measurement
(`python -m tests.reference_metrics --spread`, written to `tests/reference_spread.json`):
every scenario ran again with the machine-dependent kernels changed (OpenBLAS's CPU kernel,
PyTorch's and MKL's instruction sets, NumPy's dispatched loops, one thread or two). A column
belongs to a family of metrics computed the same way (`FAMILIES`: rankings, classifier
decisions, classifier scores, model outputs; any other column is its own); a family that
none of those changes moved is deterministic and compared exactly (to float64 rounding);
the others went through machine-dependent arithmetic (BLAS in scikit-learn's MLP and
logistic regression, threaded reductions in training, ties in rankings) and are compared
within `MARGIN` times the largest difference measured in their family.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from tests.reference_metrics import CONFIGURATIONS, REFERENCE, SPREAD, metrics_of, small_scenario

pytestmark = pytest.mark.heavy  # long tests: started first (tests/conftest.py)

RECORDED = json.loads(REFERENCE.read_text(encoding="utf-8"))
MEASURED = json.loads(SPREAD.read_text(encoding="utf-8"))
# Another machine may combine the kernels in ways these configurations did not: three times
# the largest measured difference, still a few users' worth of a metric on these small worlds.
MARGIN = 3.0
EXACT_RTOL = 1e-9  # float64 rounding, nothing more


# Families of metrics computed the same way from a trained model's or a classifier's
# outputs, first match wins; any other column is a family of its own.
FAMILIES = (
    (r"^pop_", None),  # the popularity list: counts of disclosed ratings
    (r"(^|_)(hr|ndcg)_\d+", "rankings"),
    (r"_(acc|bacc)(_|$)|_tpr_", "classifier decisions"),  # thresholded: moves a user at a time
    (r"auc", "classifier scores"),
    (r"^(mae|rmse)|shift|gain|^unlearning_(distance|alpha)", "model outputs"),
    # Users who weigh what the platform gives them back (privacy calculus, social) follow
    # its accuracy.
    (r"beta_mean|disclosure_mean|perceived_benefit", "user choices"),
)


def family(column: str) -> str:
    """The family whose measured spread sets a column's tolerance."""
    if column.endswith(("_chance", "_majority")):
        return column  # from the attribute shares alone
    for pattern, name in FAMILIES:
        if re.search(pattern, column):
            return name or column
    return column


def tolerances() -> dict[str, float]:
    """Each column's absolute tolerance: 0 where its family never moved, else MARGIN times
    the largest difference measured in its family."""
    largest = MEASURED["largest_difference"]
    by_family: dict[str, float] = {}
    for column, difference in largest.items():
        by_family[family(column)] = max(by_family.get(family(column), 0.0), difference)
    return {column: MARGIN * by_family[family(column)] for column in largest}


TOLERANCE = tolerances()


def test_every_shipped_scenario_has_a_reference() -> None:
    from simulator.experiments.catalog import list_scenarios

    assert sorted(RECORDED) == sorted(list_scenarios())


def test_the_spread_was_measured_for_every_column_on_several_kernels_and_thread_counts() -> None:
    columns = {column for values in RECORDED.values() for column in values}
    assert set(MEASURED["largest_difference"]) == columns
    assert MEASURED["configurations"] == CONFIGURATIONS
    kernels = {c["OPENBLAS_CORETYPE"] for c in CONFIGURATIONS.values()}
    assert len(kernels - {"Haswell"}) >= 2
    assert {c["PRIVSIM_THREADS"] for c in CONFIGURATIONS.values()} == {"1", "2"}


def test_deterministic_families_are_exact_and_kernel_dependent_ones_are_not() -> None:
    exact = {column for column, tolerance in TOLERANCE.items() if tolerance == 0.0}
    assert {"step", "n_platform_ratings", "n_active", "dp_epsilon_retrain",
            "leak_gender_auc_chance", "pop_hr_10", "fake_profiles"} <= exact
    # The MLP attacker, rankings after training, the held-out probes and the budgets of
    # users who follow the platform's accuracy moved.
    assert {"leak_gender_auc_mlp", "leak_age_cv_auc_mlp", "hr_10", "target_hr_10_clean",
            "unlearning_probe_auc_after", "beta_mean", "disclosure_mean"}.isdisjoint(exact)
    # Tolerances stay within a few users of a 120-user world.
    assert max(TOLERANCE.values()) < 0.1


@pytest.mark.parametrize("name", sorted(RECORDED))
def test_metrics_match_the_reference(name: str) -> None:
    world = small_scenario(name).world
    if world.source == "movielens" and not Path(str(world.path)).is_dir():
        pytest.skip(f"MovieLens data folder {world.path} not found")
    found = metrics_of(name)
    expected = RECORDED[name]
    assert sorted(found) == sorted(expected), set(found) ^ set(expected)
    for column, values in expected.items():
        tolerance = TOLERANCE[column]
        how = "exactly" if tolerance == 0.0 else f"within {tolerance:.3g} (kernel-dependent)"
        assert np.allclose(found[column], values, rtol=EXACT_RTOL, atol=tolerance,
                           equal_nan=True), (column, how, found[column], values)


def test_new_columns_are_recorded_and_a_moved_value_is_refused(tmp_path, monkeypatch) -> None:
    """`--new-columns` adds what a new measurement writes and refuses if anything moved."""
    import tests.reference_metrics as reference

    name = sorted(RECORDED)[0]
    for path, target in ((REFERENCE, "reference.json"), (SPREAD, "spread.json")):
        (tmp_path / target).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    monkeypatch.setattr(reference, "REFERENCE", tmp_path / "reference.json")
    monkeypatch.setattr(reference, "SPREAD", tmp_path / "spread.json")
    steps = len(RECORDED[name]["step"])
    written = {**RECORDED[name], "toy_share": [0.5] * steps}
    monkeypatch.setattr(reference, "metrics_of", lambda scenario: dict(written))
    reference.record_new_columns([name])
    after = json.loads((tmp_path / "reference.json").read_text(encoding="utf-8"))
    spread = json.loads((tmp_path / "spread.json").read_text(encoding="utf-8"))
    assert after[name]["toy_share"] == [0.5] * steps
    assert after[name]["step"] == RECORDED[name]["step"]
    assert spread["largest_difference"]["toy_share"] == 0.0
    written["step"] = [s + 1 for s in RECORDED[name]["step"]]
    with pytest.raises(SystemExit, match="recorded values moved"):
        reference.record_new_columns([name])
