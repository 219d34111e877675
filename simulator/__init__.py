"""privsim: an agent-based simulator of privacy dynamics in recommender systems.

The Python API, for notebooks and scripts::

    import simulator
    result = simulator.run("quickstart", overrides={"simulation.steps": 5})
    result.metrics          # one row per step (DataFrames: metrics, groups, events, agents)
    result.plot("hr_10", "leak_gender_auc")
    again = simulator.load("outputs/quickstart-20260101-120000")
    scenario = simulator.Scenario(name="mine", simulation={"steps": 4})

Importing the package imports nothing heavy until one of these names is used, and changes
no global state (no plotting backend, no allocator setting) but one: unless the environment
already says otherwise, OpenMP threads wait passively (`OMP_WAIT_POLICY=PASSIVE`), which must
be set before PyTorch or XGBoost load their runtime (`simulator.foundations.threads`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from simulator.foundations.threads import wait_passively

wait_passively()

__version__ = "0.1.0"
__all__ = ["Counterfactual", "Run", "Scenario", "counterfactual", "load", "run"]

if TYPE_CHECKING:
    from simulator.api import Counterfactual, Run, counterfactual, load, run
    from simulator.scenario.schema import Scenario


def __getattr__(name: str) -> Any:
    """The API's names, imported on first use (so `privsim --help` stays fast)."""
    if name in ("Counterfactual", "Run", "counterfactual", "load", "run"):
        from simulator import api

        return getattr(api, name)
    if name == "Scenario":
        from simulator.scenario.schema import Scenario

        return Scenario
    raise AttributeError(f"module 'simulator' has no attribute {name!r}")
