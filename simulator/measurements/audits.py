"""Membership-inference audits: of deleted users, and of the users the platform trained on."""

from __future__ import annotations

import math

import numpy as np

from agents.board import StepBoard
from simulator.attacks.membership import deletion_audit
from simulator.foundations.columns import COUNT, SHARE, Column
from simulator.measurements.base import Columns, Measurement, ModelView, Shared
from simulator.world.base import Interactions


def never_seen(model: ModelView, step: int) -> Interactions:
    """Ratings that users the platform never saw anything from (non-members) have
    experienced up to `step`: the same time window as the members' ratings, since tastes
    and popularity drift over time and a later window would tell the two apart by itself."""
    population = model.population
    unseen = (population.n_disclosed == 0) & ~population.deleted
    return model.train.subset(unseen[model.train.user] & (model.train_step <= step))


class DeletionAudit(Measurement):
    """Membership inference of deleted users against never-seen users: on the model that
    still holds the users about to be deleted (`before_retrain`, the retrain that deletes
    them), and on the retrained model for every user deleted so far (`after_retrain`).
    The columns describe the latest retrain and are kept between retrains."""

    COLUMNS = ("mia_auc_before_deletion", "mia_auc", "mia_tpr_at_1pct_fpr", "deleted_users")
    columns = (Column("mia_auc_before_deletion", *SHARE), Column("mia_auc", *SHARE),
               Column("mia_tpr_at_1pct_fpr", *SHARE), Column("deleted_users", *COUNT))

    def __init__(self, model: ModelView, shared: Shared) -> None:
        self.latest: Columns = dict.fromkeys(self.COLUMNS, math.nan)
        self._before: Columns = {}

    def before_retrain(self, model: ModelView, board: StepBoard) -> None:
        """Audit the users whose deletion the coming retrain honours (none pending, or no
        model yet: nothing)."""
        platform = model.platform
        self._before = {}
        if len(platform.pending_deletion) and platform.trained:
            table = platform.data.table
            members = table.subset(np.isin(table.user, platform.pending_deletion))
            result = deletion_audit(platform.recommender, members, never_seen(model, board.step))
            self._before = {"mia_auc_before_deletion": result.auc}

    def after_retrain(self, model: ModelView, board: StepBoard) -> None:
        """Audit every deleted user's former ratings on the new model."""
        audit = dict(self._before)
        self._before = {}
        deleted = model.platform.deleted_ratings
        if len(deleted) == 0:
            audit["deleted_users"] = 0.0
        else:
            result = deletion_audit(model.platform.recommender, deleted,
                                    never_seen(model, board.step))
            audit.update({"mia_auc": result.auc, "mia_tpr_at_1pct_fpr": result.tpr_at_1pct_fpr,
                          "deleted_users": float(len(np.unique(deleted.user)))})
        self.latest = {name: audit.get(name, math.nan) for name in self.COLUMNS}

    def measure(self, model: ModelView, board: StepBoard) -> Columns:
        """The latest retrain's audit."""
        return dict(self.latest)


class MembershipAudit(Measurement):
    """Membership inference of the genuine users the platform trained on against users it
    never saw, after every retrain (kept between retrains)."""

    COLUMNS = ("mia_members_auc", "mia_members_tpr_at_1pct_fpr")
    columns = (Column("mia_members_auc", *SHARE), Column("mia_members_tpr_at_1pct_fpr", *SHARE))

    def __init__(self, model: ModelView, shared: Shared) -> None:
        self.latest: Columns = dict.fromkeys(self.COLUMNS, math.nan)

    def after_retrain(self, model: ModelView, board: StepBoard) -> None:
        """Audit the members of the new model."""
        table = model.platform.data.table
        members = table.subset(table.user < model.n_genuine)
        result = deletion_audit(model.platform.recommender, members,
                                never_seen(model, board.step))
        self.latest = {"mia_members_auc": result.auc,
                       "mia_members_tpr_at_1pct_fpr": result.tpr_at_1pct_fpr}

    def measure(self, model: ModelView, board: StepBoard) -> Columns:
        """The latest retrain's audit."""
        return dict(self.latest)
