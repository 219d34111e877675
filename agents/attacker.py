"""The Mesa agent that runs an attacker (`simulator.attacks`) in the model's phases."""

from __future__ import annotations

import mesa

from agents.board import StepBoard
from simulator.attacks.protocol import Attacker


class AttackerAgent(mesa.Agent):
    """One attacker on the model: `act(phase, board)` runs the attacker's method of that
    name when it declares the phase (`Attacker.phases`), and does nothing otherwise."""

    def __init__(self, model: mesa.Model, *, attacker: Attacker) -> None:
        super().__init__(model)
        self.attacker = attacker

    def act(self, phase: str, board: StepBoard) -> None:
        """Phase `phase` of the step: the attacker acts if it declared the phase."""
        if phase in self.attacker.phases:
            getattr(self.attacker, phase)(board)
