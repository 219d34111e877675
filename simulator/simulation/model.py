"""The Mesa model: runs the phases of each step over the agents and records the rows.

Construction lives in `simulator.simulation.build`, scheduled events in
`simulator.simulation.events`,
what is measured in `simulator.measurements`, and the recorded rows in
`simulator.simulation.records`. With poisoning attackers a clean twin of the platform (same
model, seed and schedule, genuine ratings only) trains alongside, so every step also
measures what the attack changed against the same platform without it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import mesa
import numpy as np
import torch

from agents import AttackerAgent, CleanTwin, PlatformAgent, UserPopulation
from agents.board import StepBoard
from simulator.attacks.inference_attacker import InferenceAttacker
from simulator.attacks.item_owner import ItemOwner
from simulator.attacks.protocol import Attacker
from simulator.attacks.shilling_attacker import ShillingAttacker
from simulator.measurements.suite import Measurer
from simulator.scenario.loading import build_scenario
from simulator.scenario.schema import Scenario
from simulator.simulation.build import build_model
from simulator.simulation.events import announce_breaches, apply_scheduled_events
from simulator.simulation.records import Records
from simulator.world import Interactions, World

__all__ = ["PrivacyModel", "Records"]


class PrivacyModel(mesa.Model):
    """A privacy-dynamics simulation of one scenario.

    Mesa's own `steps` counts the steps: Mesa adds one just before `step` runs, so the step
    being run is `steps - 1` and, between steps, `steps` is how many have run.

    The phases of one step, in order. Agent phases run through Mesa's agent sets
    (`agents_by_type[Kind].do(phase, board)`, agents of a kind in the order they were
    made), each given the step's `StepBoard`:

    1. scheduled events: opt-outs, deletion and unlearning requests, type conversions,
       breach announcements (`simulator.simulation.events`);
    2. `UserPopulation.disclose`: users update their budgets and disclose new ratings;
    3. `PlatformAgent.receive`, `CleanTwin.receive`: the platform and its clean twin take
       in the disclosures;
    4. the attackers' `inject`, then their `pick_items` (`AttackerAgent.act`; the phases
       are listed in `simulator.attacks.protocol.PHASES`): poisoners act on what is public;
    5. when a retrain is due, the measurements' `before_retrain` hooks (the audit before
       deletion), then `PlatformAgent.retrain_if_due`;
    6. only after a retrain: the attackers' `perturb`, then their `probe`, then the
       measurements' `after_retrain` hooks (deletion and membership audits);
    7. `CleanTwin.retrain_if_due`;
    8. the attackers' `infer`: attribute inference on the platform's current model;
    9. measurement: the scenario's measurements in registry order (`simulator.measurements`);
    10. `UserPopulation.observe`: users take in this step's recommendation quality;
    then the step's rows are recorded (`records`).
    """

    scenario: Scenario
    records: Records
    device: torch.device
    world: World
    train: Interactions
    test: Interactions
    train_step: np.ndarray
    agent_table_users: np.ndarray
    population: UserPopulation
    n_genuine: int
    n_platform_users: int
    account_attributes: dict[str, np.ndarray]  # declared at sign-up, every platform account
    attackers: list[Attacker]  # in the order the scenario lists them
    poisoned: bool
    platform: PlatformAgent
    clean_platform: CleanTwin | None
    measurer: Measurer

    def __init__(self, scenario: Scenario | Mapping[str, Any], world: World | None = None) -> None:
        """Build the model of `scenario` (a `Scenario`, or a plain dict of its settings,
        validated as a scenario file is); `world` replaces loading the scenario's world."""
        if not isinstance(scenario, Scenario):
            scenario = build_scenario(dict(scenario), "settings")
        super().__init__(rng=scenario.simulation.seed)
        self.scenario = scenario
        self.records = Records()
        build_model(self, world)

    @classmethod
    def from_settings(
        cls, settings: Mapping[str, Any], overrides: Mapping[str, Any] | None = None
    ) -> PrivacyModel:
        """The model of a plain dict of scenario settings, with dotted-path `overrides`
        (`{"simulation.steps": 3}`); bad keys or values raise `ScenarioError`."""
        return cls(build_scenario(dict(settings), "settings", values=dict(overrides or {})))

    @property
    def attacker(self) -> InferenceAttacker | None:
        """The inference attacker, if the scenario has one."""
        return next((a for a in self.attackers if isinstance(a, InferenceAttacker)), None)

    @property
    def shillers(self) -> list[ShillingAttacker]:
        """The shilling attackers, in the scenario's order."""
        return [a for a in self.attackers if isinstance(a, ShillingAttacker)]

    @property
    def item_owners(self) -> list[ItemOwner]:
        """The item owners, in the scenario's order."""
        return [a for a in self.attackers if isinstance(a, ItemOwner)]

    @property
    def step_index(self) -> int:
        """Steps run so far (Mesa's `steps`), i.e. the index of the next step."""
        return self.steps

    def unlearning_requests(self) -> np.ndarray:
        """Users who asked for unlearning, over every platform account (fakes never ask)."""
        requests = self.population.unlearning_requests()
        if self.n_platform_users == self.n_genuine:
            return requests
        padded = np.zeros(self.n_platform_users, dtype=bool)
        padded[: self.n_genuine] = requests
        return padded

    # --- stepping ----------------------------------------------------------------------

    def step(self) -> None:
        """Run the phases of one step (see the class docstring) and record its rows."""
        board = StepBoard(self.steps - 1, self.records.event, self.platform,
                          self.clean_platform)
        with board.timed("seconds_agents"):
            self._apply_events(board.step)
            board.breaches = announce_breaches(self.scenario, board)
            self._phase(UserPopulation, "disclose", board)
        with board.timed("seconds_training"):
            self._phase(PlatformAgent, "receive", board)
            self._phase(CleanTwin, "receive", board)
            self._attack("inject", board)
            self._attack("pick_items", board)
            if self.platform.due(board.step):
                self.measurer.before_retrain(self, board)
            self._phase(PlatformAgent, "retrain_if_due", board)
        if board.retrained:
            self._attack("perturb", board)
            self._attack("probe", board)
            self.measurer.after_retrain(self, board)
        if self.clean_platform is not None:
            with board.timed("seconds_clean_training"):
                self._phase(CleanTwin, "retrain_if_due", board)
        started = time.perf_counter()
        self._attack("infer", board)
        board.timings["seconds_attack"] = time.perf_counter() - started
        row, group_rows = self.measurer.measure(self, board)
        board.timings["seconds_measurement"] = time.perf_counter() - started  # attack included
        self._phase(UserPopulation, "observe", board)
        self._record(board, row, group_rows)

    def _phase(self, kind: type[mesa.Agent], method: str, *args: object) -> None:
        """Run `method` on every agent of `kind` (none: nothing)."""
        agents = self.agents_by_type.get(kind)
        if agents is not None:
            agents.do(method, *args)

    def _attack(self, phase: str, board: StepBoard) -> None:
        """Run attacker phase `phase` (`simulator.attacks.protocol.PHASES`) on every attacker
        that declares it, in the scenario's order."""
        self._phase(AttackerAgent, "act", phase, board)

    def _apply_events(self, step: int) -> None:
        """The scheduled events of `step` other than breaches."""
        apply_scheduled_events(self, step)

    def _record(
        self, board: StepBoard, row: dict[str, object], group_rows: list[dict[str, object]]
    ) -> None:
        """The step's metrics row (timings last), group rows and, when kept, agent rows."""
        agent_rows = None
        if self.scenario.output.agents_table:
            users = self.agent_table_users
            agent_rows = {"step": np.full(len(users), board.step),
                          **self.population.snapshot(users)}
        self.records.add_step({**row, **board.timings}, group_rows, agent_rows)

    def run(self, steps: int | None = None) -> None:
        """Run the configured number of steps (`simulation.stop_after`, else all; or `steps`)."""
        for _ in range(steps if steps is not None else self.scenario.simulation.run_steps):
            self.step()
