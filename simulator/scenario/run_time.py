"""How long a run will take, before it starts: a cost model calibrated on measured runs.

A run's time is split into the parts its manifest and metrics measure: training (the
platform's retrains with their defenses, and the clean twin's when a poisoning attacker
runs), the inference attacker, measurement (full rankings, leakage, groups), the users'
decisions, and the rest (start-up, loading the world, writing tables and figures). Each
part is a sum of coefficients times work counts read from the scenario alone (`workload`):
ratings disclosed x epochs per model, edited users x unlearning retrains, users x
attributes x steps per attacker classifier, users x items x steps for rankings, ...

The coefficients (`run_time.json`, seconds per unit) are fitted by non-negative least
squares to every shipped scenario run on a 2-core machine (`benchmarks/bench_run_time.py
--fit`, which also prints each scenario's estimate against its actual time, and the
estimate from coefficients fitted without it). Hand-written: the work counts are privsim's
own, and the fit is one `scipy.optimize.nnls` per part.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from simulator.attacks.inference_attacker import InferenceAttackerConfig
from simulator.attacks.registry import attacker_class, poisons
from simulator.scenario.memory import synthetic_size
from simulator.scenario.schema import Scenario

COEFFICIENTS = Path(__file__).with_name("run_time.json")
PARTS = ("training", "attacker", "measurement", "agents", "rest")
# (users, items, ratings) of the MovieLens releases a scenario can name.
MOVIELENS_SIZES = {"ml-100k": (943, 1682, 100_000), "ml-1m-head": (2999, 3706, 487_650),
                   "ml-1m": (6040, 3706, 1_000_209)}
MODELS = ("bpr", "mf", "metamf", "nometamf", "lightgcn")

Workload = dict[str, dict[str, float]]


@dataclass(frozen=True)
class RunTimeEstimate:
    """Estimated seconds of a run on the calibrated machine, in all and by part."""

    seconds: float
    parts: dict[str, float] = field(default_factory=dict)

    def short(self) -> str:
        """`about 1 min 20 s`."""
        return f"about {_duration(self.seconds)}"

    def text(self) -> str:
        """`about 1 min 20 s (training 52 s, attacker 9 s, ...)` for the command line."""
        shown = ", ".join(f"{part} {_duration(seconds)}" for part, seconds in
                          self.parts.items() if seconds >= 0.5)
        return f"about {_duration(self.seconds)}" + (f" ({shown})" if shown else "")


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, rest = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {rest} s" if minutes < 10 else f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60} min"


def world_size(scenario: Scenario) -> tuple[int, int, int]:
    """(users, items, ratings) the scenario's world will have, without loading it."""
    world = scenario.world
    if world.source == "synthetic":
        return synthetic_size(scenario)
    if world.source == "movielens":
        users, items, ratings = MOVIELENS_SIZES.get(Path(str(world.path)).name,
                                                    MOVIELENS_SIZES["ml-1m"])
    else:
        users, items, ratings = table_size(scenario)
    kept = min(world.n_users or users, users) / users * min(world.n_items or items, items) / items
    return min(world.n_users or users, users), min(world.n_items or items, items), \
        int(ratings * kept)


def table_size(scenario: Scenario) -> tuple[int, int, int]:
    """(users, items, ratings) of a world read from files, from their id columns only."""
    from simulator.world.files import id_counts

    world = scenario.world
    return id_counts(str(world.path), world.source == "recbole", world.columns.user,
                     world.columns.item)


def _disclosed_share(scenario: Scenario) -> float:
    """The share of ratings users disclose at first: their types' budgets by share."""
    types = scenario.population.types.values()
    return sum(t.share * t.beta for t in types) / max(sum(t.share for t in types), 1e-12)


def _epochs(scenario: Scenario, steps: int) -> tuple[int, int]:
    """(retrains, epochs trained over them) in the first `steps` steps."""
    platform = scenario.platform
    retrains = -(-steps // platform.retrain_every)
    first = platform.first_epochs or platform.epochs
    if platform.warm_start:
        return retrains, first + platform.epochs * (retrains - 1)
    return retrains, first * retrains


def _consumption_factor(scenario: Scenario) -> float:
    """Training work of a model ranked by consumption against the same model by score: MF
    steps every consumption row as it steps a rating (1 + negatives more rows per rating);
    MetaMF's head rows cost little beside its generated networks (measured 1.2-1.6x per run
    on ml100k-baseline and ml1m-head-baseline, 4 steps)."""
    ranking = scenario.platform.ranking
    if ranking.method != "consumption":
        return 1.0
    if scenario.platform.model == "mf":
        return 2.0 + float(ranking.negatives or 0)
    return 1.4


def workload(scenario: Scenario) -> Workload:
    """Work counts per part of the run (`PARTS`), from the scenario alone."""
    users, items, ratings = world_size(scenario)
    steps = scenario.simulation.run_steps
    retrains, epochs = _epochs(scenario, steps)
    defenses = scenario.platform.defenses
    work = ratings * _disclosed_share(scenario) * epochs
    twins = 2.0 if poisons(scenario.attackers) else 1.0
    model_work = work * _consumption_factor(scenario)
    training = {f"epochs_{scenario.platform.model}": model_work * twins,
                "retrains": retrains * twins}
    for name in ("dp", "apr"):
        if getattr(defenses, name, None) is not None:
            training[f"{name}_epochs"] = work * twins
    if defenses.dp is not None and defenses.apr is not None:  # APR's attack per example
        training["dp_apr_epochs"] = work * twins
    adversarial = defenses.adversarial
    if adversarial is not None:  # its read-out trains beside the model
        training[f"adversarial_{getattr(adversarial, 'readout', 'linear')}_epochs"] = \
            work * twins
    unlearning = getattr(defenses, "unlearning", None)
    if unlearning is not None:
        active = len([s for s in range(0, steps, scenario.platform.retrain_every)
                      if s >= unlearning.start_step])
        # An edit runs until the probes are at chance, so its length follows how much the
        # embeddings leak: MovieLens edits ran ~10x longer per user than the synthetic
        # world's (44-126 steps against 1-6), so each world kind has its own coefficient.
        kind = "synthetic" if scenario.world.source == "synthetic" else "movielens"  # real data
        training[f"unlearning_users_{kind}"] = users * active * twins
    if getattr(defenses, "detection", None) is not None:
        training["detection_users"] = users * retrains
    attacker: dict[str, float] = {}
    for config in scenario.attackers:
        if isinstance(config, InferenceAttackerConfig):
            for name in config.classifiers:
                attacker[f"fit_{name}"] = (users * len(config.attributes) * steps
                                           * config.folds / 5)
        elif attacker_class(config).poisons:
            attacker["poisoning_steps"] = attacker.get("poisoning_steps", 0.0) + steps
    social = scenario.population.policy == "social"
    return {
        "training": training,
        "attacker": attacker,
        "measurement": {"rankings": users * items * steps * twins, "user_steps": users * steps},
        "agents": {"user_steps": users * steps, "social_user_steps": users * steps * social},
        "rest": {"runs": 1.0, "steps": steps, "ratings": ratings, "users": users},
    }


def measured_parts(folder: Path, wall_seconds: float) -> dict[str, float]:
    """A finished run's seconds per part: sums of its per-step timings, and the rest of
    `wall_seconds` (the whole command) as `rest`."""
    import pandas as pd

    metrics = pd.read_parquet(folder / "metrics.parquet")

    def total(*columns: str) -> float:
        return float(sum(metrics[c].sum() for c in columns if c in metrics.columns))

    attacker = total("seconds_attack")  # timed inside the measurement
    parts = {"training": total("seconds_training", "seconds_clean_training"),
             "attacker": attacker, "measurement": total("seconds_measurement") - attacker,
             "agents": total("seconds_agents")}
    parts["rest"] = max(wall_seconds - sum(parts.values()), 0.0)
    return parts


def fit_coefficients(samples: list[tuple[Workload, dict[str, float]]]) -> dict[str, dict[str,
                                                                                       float]]:
    """Seconds per unit of every work count, per part: non-negative least squares over the
    samples (each a workload and the seconds measured per part), each count scaled to its
    largest value so that counts of very different sizes weigh alike."""
    from scipy.optimize import nnls

    fitted: dict[str, dict[str, float]] = {}
    for part in PARTS:
        names = sorted({name for work, _ in samples for name in work.get(part, {})})
        if not names:
            fitted[part] = {}
            continue
        design = np.array([[work.get(part, {}).get(name, 0.0) for name in names]
                           for work, _ in samples], dtype=float)
        target = np.array([seconds.get(part, 0.0) for _, seconds in samples])
        scale = np.where(design.max(0) > 0, design.max(0), 1.0)
        # Relative errors matter, not absolute ones: weigh each run by its own size.
        weight = 1.0 / np.maximum(target, 1.0)
        solution, _ = nnls(design / scale * weight[:, None], target * weight)
        fitted[part] = {name: float(value / s) for name, value, s
                        in zip(names, solution, scale, strict=True)}
    return fitted


def load_coefficients() -> dict[str, dict[str, float]]:
    """The shipped coefficients (`run_time.json`)."""
    data: dict[str, dict[str, float]] = json.loads(COEFFICIENTS.read_text(encoding="utf-8"))
    return data


def estimate_run_time(scenario: Scenario,
                      coefficients: dict[str, dict[str, float]] | None = None
                      ) -> RunTimeEstimate:
    """The run's estimated seconds on a 2-core machine like the calibrated one, by part."""
    coefficients = coefficients if coefficients is not None else load_coefficients()
    parts = {}
    for part, counts in workload(scenario).items():
        known = coefficients.get(part, {})
        parts[part] = sum(known.get(name, 0.0) * value for name, value in counts.items())
    seconds = sum(parts.values())
    return RunTimeEstimate(seconds if math.isfinite(seconds) else math.nan, parts)
