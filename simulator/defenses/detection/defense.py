"""Fake-profile detection: before every retrain from `start_step` on, the platform screens
its accounts and leaves the flagged ones' ratings out of training (`defenses.screening`)."""

from __future__ import annotations

from simulator.defenses.detection.settings import DetectionConfig
from simulator.defenses.protocol import Defense, Retrain
from simulator.foundations.columns import COUNT, SHARE, Column
from simulator.world.base import Interactions


class FakeProfileDetection(Defense):
    """Screens the training table while active."""

    key = "detection"
    summary_columns = ("detection_precision", "detection_recall")
    columns = (Column("detection_flagged", *COUNT), Column("detection_precision", *SHARE),
               Column("detection_recall", *SHARE))
    example = {"method": "threshold", "assumed_attack_size": None, "z": 2.0}
    settings = DetectionConfig
    on_clean_twin = False  # the attack-free twin has nothing to detect

    def metric_names(self) -> list[str]:
        """How many accounts were flagged, and the precision and recall of the flags."""
        return ["detection_flagged", "detection_precision", "detection_recall"]

    def prepare(self, retrain: Retrain) -> tuple[Interactions, dict[str, float]] | None:
        """The table without the flagged accounts' ratings."""
        if not self.active(retrain.step):
            return None
        from simulator.defenses.detection.screening import screen

        config = self.config
        assert isinstance(config, DetectionConfig)
        screening = screen(retrain.table, retrain.recommender.n_items, self.context.n_genuine,
                           config, retrain.seed)
        return screening.table, screening.metrics
