"""The inference attacker against its reference, run as `python benchmarks/bench_attacker.py`.

For each scenario and seed the scenario runs to its last step without its attacker; then,
on the same features (what the attacker sees at that step) and the same known users, two
attackers infer every attribute:

- reference: scikit-learn logistic regression and XGBoost (80 rounds at rate 0.15), each
  5-fold cross-validated and refitted on all known users, the one with the higher
  cross-validated AUC predicting (the attacker privsim had before this one);
- current: `simulator.attacks.inference.infer_attribute` (torch logistic regression batched
  over folds, XGBoost stopped early, predictions by the mean of the fold models).

It prints, per scenario and attribute, the leakage AUC and balanced accuracy of each
attacker's chosen classifier on the users it did not know (mean and 95% interval over the
seeds), the mean per-seed difference current - reference with its interval, and the
seconds each took. `quickstart-null` is quickstart with `world.signal=0` (taste carries no
attribute): both attackers should sit at chance there. The MovieLens scenarios need
`../shared/data` (or `PRIVSIM_DATA`); they are skipped, saying so, without it.

A second table runs each scenario whole with its attacker cross-validating every attack
(`selection_every: 1`, the default) and every 5th (`selection_every: 5`, refits in
between), and compares the leakage AUC they report, averaged over the steps after the
first retrain and at the last step, with the seconds the attacks took.

Options: `--seeds 0 1 2` (default), `--scenarios NAME ...`, `--skip-runs`.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.model_selection import StratifiedKFold  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import MaxAbsScaler, StandardScaler  # noqa: E402
from xgboost import XGBClassifier  # noqa: E402

from simulator.analysis.intervals import t_half_width  # noqa: E402
from simulator.attacks.features import build_features  # noqa: E402
from simulator.attacks.inference import infer_attribute, pick_best  # noqa: E402
from simulator.experiments.catalog import load_scenario  # noqa: E402
from simulator.foundations.errors import PrivsimError  # noqa: E402
from simulator.metrics.classification import leakage_scores, macro_ovr_auc  # noqa: E402
from simulator.simulation.model import PrivacyModel  # noqa: E402

SCENARIOS = {
    "quickstart": ("quickstart", []),
    "quickstart-null": ("quickstart", ["world.signal=0"]),
    "ml100k-baseline": ("ml100k-baseline", []),
    "ml1m-head-baseline": ("ml1m-head-baseline", []),
}


def _reference_classifier(name: str, seed: int, sparse: bool):
    scaler = MaxAbsScaler() if sparse else StandardScaler()
    if name == "logreg":
        return make_pipeline(scaler, LogisticRegression(C=1.0, max_iter=1000))
    if name == "xgboost":
        return XGBClassifier(
            n_estimators=80, max_depth=3, learning_rate=0.15, subsample=0.8, max_bin=64,
            tree_method="hist", n_jobs=1, random_state=seed, verbosity=0,
        )
    raise ValueError(f"the reference attacker has no '{name}'")


def reference_attack(x, labels, known, classifiers, folds, seed) -> tuple[np.ndarray, float]:
    """The previous attacker: k-fold CV for the choice, then one refit on all known users.
    Returns the chosen classifier's probabilities over the codes present among known users
    (for every user) and its CV AUC."""
    x_known, y_known = x[known], labels[known]
    present = np.unique(y_known)
    codes = np.searchsorted(present, y_known)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    sparse = not isinstance(x, np.ndarray)
    best, best_cv = None, -np.inf
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        splits = list(splitter.split(np.zeros(len(codes)), codes))
        for name in classifiers:
            out_of_fold = np.zeros((len(codes), len(present)))
            for train, held_out in splits:
                model = _reference_classifier(name, seed, sparse).fit(x_known[train], codes[train])
                out_of_fold[held_out] = model.predict_proba(x_known[held_out])
            cv = macro_ovr_auc(codes, out_of_fold)
            if cv > best_cv:
                refit = _reference_classifier(name, seed, sparse).fit(x_known, codes)
                best, best_cv = refit.predict_proba(x), cv
    return best, best_cv


def _features(scenario_name: str, overrides: list[str], seed: int):
    scenario = load_scenario(scenario_name, [*overrides, f"simulation.seed={seed}",
                                             "simulation.device=cpu"])
    model = PrivacyModel(scenario)
    attacker, model.attacker = model.attacker, None
    for _ in range(scenario.simulation.steps):
        model.step()
    platform = model.platform
    x = build_features(attacker.threat, platform.recommender, platform.data.table,
                       attacker.top_k)[: len(attacker.known)]
    return x, attacker


def _summary(values: list[float]) -> str:
    array = np.asarray(values, dtype=float)
    half = t_half_width(np.array([array.std(ddof=1)]), np.array([len(array)]))[0]
    return f"{array.mean():.3f} +/- {half:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--scenarios", nargs="+", default=list(SCENARIOS))
    parser.add_argument("--skip-runs", action="store_true", help="only the first table")
    args = parser.parse_args()
    torch.set_num_threads(min(2, torch.get_num_threads()))
    print(f"seeds {args.seeds}; mean +/- 95% t-interval half-width over seeds")
    header = (f"{'scenario':<20} {'attribute':<9} {'reference AUC':>15} {'current AUC':>15} "
              f"{'diff AUC':>15} {'reference BAcc':>15} {'current BAcc':>15} "
              f"{'ref s':>6} {'cur s':>6}")
    print(header)
    for label in args.scenarios:
        name, overrides = SCENARIOS[label]
        rows: dict[str, dict[str, list[float]]] = {}
        try:
            runs = [(seed, *_features(name, overrides, seed)) for seed in args.seeds]
        except PrivsimError as error:
            print(f"{label:<20} skipped: {error}")
            continue
        for seed, x, attacker in runs:
            for attribute, labels in attacker.attributes.items():
                known, unknown = attacker.known, ~attacker.known
                present = np.unique(labels[known])
                started = time.perf_counter()
                reference, _ = reference_attack(x, labels, known, attacker.classifiers,
                                                attacker.folds, seed)
                reference_seconds = time.perf_counter() - started
                started = time.perf_counter()
                outcomes = infer_attribute(x, labels, known, attacker.n_classes[attribute],
                                           attacker.classifiers, attacker.folds, seed)
                current_seconds = time.perf_counter() - started
                full = np.zeros((len(labels), attacker.n_classes[attribute]))
                full[:, present] = reference
                old = leakage_scores(labels[unknown], full[unknown])
                new = leakage_scores(labels[unknown], pick_best(outcomes).proba[unknown])
                row = rows.setdefault(attribute, {})
                for key, value in [("ref_auc", old["auc"]), ("cur_auc", new["auc"]),
                                   ("diff", new["auc"] - old["auc"]),
                                   ("ref_bacc", old["bacc"]), ("cur_bacc", new["bacc"]),
                                   ("ref_s", reference_seconds), ("cur_s", current_seconds)]:
                    row.setdefault(key, []).append(value)
        for attribute, row in rows.items():
            print(f"{label:<20} {attribute:<9} {_summary(row['ref_auc']):>15} "
                  f"{_summary(row['cur_auc']):>15} {_summary(row['diff']):>15} "
                  f"{_summary(row['ref_bacc']):>15} {_summary(row['cur_bacc']):>15} "
                  f"{np.mean(row['ref_s']):>6.2f} {np.mean(row['cur_s']):>6.2f}", flush=True)
    if not args.skip_runs:
        selection_table(args.scenarios, args.seeds)


def _run_leakage(name: str, overrides: list[str], seed: int, every: int):
    scenario = load_scenario(name, [*overrides, f"simulation.seed={seed}",
                                    "simulation.device=cpu",
                                    f"attackers.0.selection_every={every}"])
    model = PrivacyModel(scenario)
    model.run()
    metrics = pd.DataFrame(model.records.metrics)
    return metrics, list(scenario.attackers[0].attributes)


def selection_table(labels: list[str], seeds: list[int]) -> None:
    """Whole runs: the attacker cross-validating every attack against every 5th."""
    print("\nwhole runs: selection_every 1 vs 5 (leakage AUC, mean over steps / last step)")
    print(f"{'scenario':<20} {'attribute':<9} {'every 1 mean':>15} {'every 5 mean':>15} "
          f"{'diff mean':>15} {'diff last':>15} {'attack s 1':>10} {'attack s 5':>10}")
    for label in labels:
        name, overrides = SCENARIOS[label]
        rows: dict[str, dict[str, list[float]]] = {}
        try:
            for seed in seeds:
                one, attributes = _run_leakage(name, overrides, seed, 1)
                five, _ = _run_leakage(name, overrides, seed, 5)
                for attribute in attributes:
                    column = f"leak_{attribute}_auc"
                    row = rows.setdefault(attribute, {})
                    for key, value in [
                        ("one", one[column].mean()), ("five", five[column].mean()),
                        ("diff", five[column].mean() - one[column].mean()),
                        ("last", five[column].iloc[-1] - one[column].iloc[-1]),
                        ("s1", one["seconds_attack"].sum()),
                        ("s5", five["seconds_attack"].sum()),
                    ]:
                        row.setdefault(key, []).append(float(value))
        except PrivsimError as error:
            print(f"{label:<20} skipped: {error}")
            continue
        for attribute, row in rows.items():
            print(f"{label:<20} {attribute:<9} {_summary(row['one']):>15} "
                  f"{_summary(row['five']):>15} {_summary(row['diff']):>15} "
                  f"{_summary(row['last']):>15} {np.mean(row['s1']):>10.2f} "
                  f"{np.mean(row['s5']):>10.2f}", flush=True)


if __name__ == "__main__":
    main()
