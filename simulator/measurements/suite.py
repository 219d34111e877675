"""Running a model's measurements: the metrics row and the group rows of each step."""

from __future__ import annotations

import numpy as np

from agents.board import StepBoard
from simulator.measurements.base import Columns, Measurement, ModelView, Shared
from simulator.measurements.registry import REGISTRY, MeasurementRegistry
from simulator.metrics.errors_and_hits import RankingEvaluator
from simulator.metrics.groups import (
    Group,
    build_groups,
    disclosure_groups,
    involvement_groups,
)


class Measurer:
    """The measurements a model's scenario gets (from the registry), run in column order,
    and the user groups their grouped columns are sliced by: the fixed groups (everyone,
    inclination types, involvement, attribute values) and, each step, users by the share
    they disclosed."""

    def __init__(self, model: ModelView, registry: MeasurementRegistry = REGISTRY) -> None:
        world, population = model.world, model.population
        involvement = involvement_groups(world.ratings_per_user(),
                                         model.scenario.metrics.group_share)
        self.groups: list[Group] = build_groups(
            population.type_names, population.inclination, involvement, world.attributes,
            world.attribute_labels,
        )
        ranking = RankingEvaluator(model.test, n_users=world.n_users, n_items=world.n_items,
                                   k=model.scenario.metrics.k, device=model.device)
        self.shared = Shared(ranking, self.groups, np.ones(world.n_users, dtype=bool))
        self.measurements: dict[str, Measurement] = registry.build(model, self.shared)

    def before_retrain(self, model: ModelView, board: StepBoard) -> None:
        """A retrain is due: the measurements that look just before it do."""
        for measurement in self.measurements.values():
            measurement.before_retrain(model, board)

    def after_retrain(self, model: ModelView, board: StepBoard) -> None:
        """The platform retrained: the measurements that look right after do."""
        for measurement in self.measurements.values():
            measurement.after_retrain(model, board)

    def measure(
        self, model: ModelView, board: StepBoard
    ) -> tuple[Columns, list[dict[str, object]]]:
        """The step's metrics row (`board.columns`, filled in registry order) and one row
        per group."""
        board.disclosure_fraction = model.population.disclosure_fraction
        for measurement in self.measurements.values():
            board.columns.update(measurement.measure(model, board))
        grouped = [m for m in self.measurements.values() if m.grouped]
        dynamic = disclosure_groups(model.population.n_disclosed, board.disclosure_fraction)
        group_rows: list[dict[str, object]] = []
        for group in [*self.groups, *dynamic]:
            key = (group.kind, group.name) if group.kind != "disclosure" else None
            values: Columns = {}
            for measurement in grouped:
                values.update(measurement.group_columns(model, board, group.mask, key))
            group_rows.append({"group_kind": group.kind, "group": group.name,
                               "n_users": int(group.mask.sum()), **values})
        return board.columns, group_rows

    def regroup_inclination(self, inclination: np.ndarray, type_names: list[str]) -> None:
        """Inclination groups follow users who changed type (cached slices are dropped)."""
        for group in self.groups:
            if group.kind == "inclination":
                group.mask[:] = inclination == type_names.index(group.name)
        for measurement in self.measurements.values():
            measurement.groups_changed()
