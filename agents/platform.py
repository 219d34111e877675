"""The platform: holds what users disclosed and retrains its recommender on a schedule."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import mesa
import numpy as np

from agents.board import StepBoard
from simulator.defenses.stack import PlatformDefenses
from simulator.recommenders.base import Recommender, TrainingReport
from simulator.scenario.schema import PlatformConfig
from simulator.world.base import Interactions


class PlatformData:
    """The platform's own copy of the ratings users disclosed (never the world's truth)."""

    def __init__(self) -> None:
        self._parts: list[Interactions] = []
        self._table: Interactions | None = Interactions.empty()
        self.revision = 0  # changes whenever the held ratings change
        self.rewrites = 0  # changes whenever ratings are removed (not only appended)

    def ingest(self, ratings: Interactions) -> None:
        """Append newly disclosed ratings."""
        if len(ratings):
            self._parts.append(ratings)
            self._table = None
            self.revision += 1

    def drop_users(self, users: np.ndarray) -> Interactions:
        """Forget every rating of `users` (accounts that rewrote or deleted their profile);
        returns the ratings forgotten."""
        if not (len(users) and len(self)):
            return Interactions.empty()
        gone = np.isin(self.table.user, users)
        dropped = self.table.subset(gone)
        self._table = self.table.subset(~gone)
        self._parts = [self._table]
        if len(dropped):
            self.revision += 1
            self.rewrites += 1
        return dropped

    @property
    def table(self) -> Interactions:
        """Every disclosed rating, in the order received."""
        if self._table is None:
            self._table = Interactions.concat(self._parts)
            self._parts = [self._table]
        return self._table

    def __len__(self) -> int:
        return len(self.table)


@dataclass
class RetrainEvent:
    """What one retrain did."""

    step: int
    warm_start: bool
    epochs: int
    n_ratings: int
    final_loss: float
    seconds: float
    defenses: list[str] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    diverged: str | None = None


class PlatformAgent(mesa.Agent):
    """Ingests disclosures every step and retrains every `retrain_every` steps.

    The first training (and every training when warm starts are off) starts from scratch
    for `first_epochs`; later ones continue from the last model for `epochs`. Every retrain
    goes through `defenses` (DP-SGD, adversarial training, unlearning, as configured).
    """

    def __init__(
        self,
        model: mesa.Model,
        *,
        recommender: Recommender,
        settings: PlatformConfig,
        defenses: PlatformDefenses,
    ) -> None:
        super().__init__(model)
        self.recommender = recommender
        self.defenses = defenses
        self.retrain_every = settings.retrain_every
        self.epochs = settings.epochs
        self.first_epochs = settings.first_epochs or settings.epochs
        self.warm_start = settings.warm_start
        self.data = PlatformData()
        self.version = 0  # increments at every retrain
        self.trained = False
        self.last_report: TrainingReport | None = None
        self.deletion = settings.deletion
        self.pending_deletion = np.zeros(0, dtype=np.int64)
        self.deleted_ratings = Interactions.empty()  # what deletions removed (for audits)

    def due(self, step: int) -> bool:
        """Whether the platform retrains at this step."""
        return step % self.retrain_every == 0

    def ingest(self, ratings: Interactions) -> None:
        """Receive this step's disclosed ratings."""
        self.data.ingest(ratings)

    def request_deletion(self, users: np.ndarray) -> None:
        """Users ask for their data to be deleted; honoured at the next retrain."""
        self.pending_deletion = np.union1d(self.pending_deletion, users)

    def retrain(self, step: int) -> RetrainEvent | None:
        """Retrain on everything disclosed so far; None when nothing has been disclosed.

        Pending deletion requests are honoured first: the users' ratings are dropped and the
        model is retrained from scratch without them (`deletion: retrain`, exact) or their
        rows are zeroed and training continues from the current model (`finetune`,
        approximate: item factors and biases keep traces of them).
        """
        cold = False
        if len(self.pending_deletion):
            dropped = self.data.drop_users(self.pending_deletion)
            self.deleted_ratings = Interactions.concat([self.deleted_ratings, dropped])
            if self.deletion == "retrain":
                cold = True
            elif self.trained:
                embeddings = self.recommender.user_embeddings()
                embeddings[self.pending_deletion] = 0.0
                self.recommender.set_user_embeddings(embeddings)
            self.pending_deletion = np.zeros(0, dtype=np.int64)
        table = self.data.table
        if len(table) == 0:
            return None
        warm = self.warm_start and self.trained and not cold
        epochs = self.epochs if warm else self.first_epochs
        started = time.perf_counter()
        outcome = self.defenses.retrain(step, self.recommender, table, epochs, warm)
        report = outcome.report
        seconds = time.perf_counter() - started
        self.trained = True
        self.version += 1
        self.last_report = report
        final_loss = report.losses[-1] if report.losses else float("nan")
        return RetrainEvent(
            step, report.warm_start, epochs, len(table), float(final_loss), seconds,
            outcome.defenses, outcome.metrics, report.diverged,
        )

    def seen_items(self) -> tuple[np.ndarray, np.ndarray]:
        """(user, item) pairs the platform holds, for excluding them from rankings."""
        table = self.data.table
        return table.user, table.item

    # --- phases (run by the model through Mesa's AgentSet) ----------------------------------

    def receive(self, board: StepBoard) -> None:
        """Phase: take in what users disclosed this step."""
        self.ingest(board.disclosed)

    def retrain_if_due(self, board: StepBoard) -> None:
        """Phase: retrain when the schedule says so, and log the retrain."""
        if not self.due(board.step):
            return
        event = self.retrain(board.step)
        if event is None:
            return
        board.retrained = True
        board.event("retrain", "platform", event.final_loss, event.seconds, {
            "warm_start": event.warm_start, "epochs": event.epochs,
            "n_ratings": event.n_ratings, "defenses": event.defenses, **event.metrics,
        })
        for defense in self.defenses.defenses:  # active here, yet it did not act
            if defense.active(board.step) and defense.key not in event.defenses:
                reason = ("the training diverged and was rolled back" if event.diverged
                          else defense.skip_reason(event.metrics))
                board.event("defense_skipped", "platform", math.nan, 0.0,
                            {"defense": defense.key, "reason": reason})
        if event.diverged is not None:
            board.event("training_diverged", "platform", event.final_loss, 0.0,
                        {"reason": event.diverged})
