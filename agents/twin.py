"""The clean twin: the platform as it would be without the poisoning attack."""

from __future__ import annotations

from agents.board import StepBoard
from agents.platform import PlatformAgent


class CleanTwin(PlatformAgent):
    """Same model, seed, schedule and defenses (detection aside) as the platform, trained on
    the genuine users' ratings only, so every step can measure what the attack changed.

    A class of its own so that the model's phases reach it through Mesa's `agents_by_type`
    apart from the platform: it retrains after the platform's reactions, and logs nothing.
    """

    def retrain_if_due(self, board: StepBoard) -> None:
        """Phase: retrain when the schedule says so (no events: the twin is a yardstick)."""
        if self.due(board.step):
            self.retrain(board.step)
