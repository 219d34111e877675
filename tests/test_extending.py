"""A new defense, attacker and measurement each take one module and one registry entry, and
are picked up by the scenario schema, the reference, the combination matrix and the outputs
check without any other edit (`docs/extending.md`).

The toys are installed the way a researcher's own package adds them, through entry points
(`simulator.foundations.plugins`): a folder holding the package and its `dist-info`, put on
the path of a fresh Python process. Their registry entry is the entry point; privsim's own
components are listed in the registries' source instead, which the same code reads.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

TOY_DEFENSE = '''
"""A toy defense: drops the ratings below a threshold from every training table."""

from pydantic import Field

from simulator.defenses.protocol import Defense
from simulator.foundations.columns import Column
from simulator.foundations.settings import DefenseSection


class ToySettings(DefenseSection):
    """Ratings below `threshold` are left out of training."""

    threshold: float = Field(2.0, ge=1.0, le=5.0)


class ToyDefense(Defense):
    key = "toy"
    settings = ToySettings
    columns = (Column("toy_dropped", 0.0, float("inf")),)
    example = {"threshold": 2.0}

    def metric_names(self):
        return ["toy_dropped"]

    def prepare(self, retrain):
        if not self.active(retrain.step):
            return None
        table = retrain.table
        keep = table.rating >= self.config.threshold
        return table.subset(keep), {"toy_dropped": float((~keep).sum())}
'''

TOY_ATTACKER = '''
"""A toy attacker: counts the public ratings after every retrain (it changes nothing)."""

from typing import Literal

from simulator.attacks.protocol import Attacker
from simulator.foundations.settings import Section


class ToyAttackerSettings(Section):
    """A watcher of the public ratings."""

    kind: Literal["toy"] = "toy"


class ToyAttacker(Attacker):
    kind = "toy"
    title = "a toy watcher"
    settings = ToyAttackerSettings
    label_prefix = "toy"
    reads = ("public ratings",)
    phases = ("probe",)
    example = {"kind": "toy"}

    def probe(self, board):
        self.seen = len(board.public)
        board.event("toy_watch", self.label, float(self.seen), 0.0, {})
'''

TOY_MEASUREMENT = '''
"""A toy measurement: the share of genuine users still active, and HR@k over it."""

from simulator.foundations.columns import Column
from simulator.measurements.base import Measurement


class ToyMeasurement(Measurement):
    columns = (Column("toy_active_share", 0.0, 1.0), Column("toy_hr_per_active", 0.0, 1.0e9))
    reads = ("accuracy",)

    def measure(self, model, board):
        share = float(model.population.active.mean())
        hits = board.columns[f"hr_{model.scenario.metrics.k}"]
        return {"toy_active_share": share, "toy_hr_per_active": hits / max(share, 1e-9)}
'''

ENTRY_POINTS = """
[privsim.defenses]
toy = privsim_toys.defense:ToyDefense

[privsim.attackers]
toy = privsim_toys.attacker:ToyAttacker

[privsim.measurements]
toy = privsim_toys.measurement:ToyMeasurement
"""

CHECK = '''
import json

from simulator.attacks.registry import ATTACKER_KINDS
from simulator.defenses.registry import DEFENSES
from simulator.measurements.registry import REGISTRY
from simulator.scenario.reference import reference as document
from simulator.simulation.model import PrivacyModel
from tests.combinations import CELLS, Cell, run_problems, validate
from tests.test_outputs_doc import undocumented

found = {}
found["defenses"] = [d.key for d in DEFENSES]
found["attackers"] = list(ATTACKER_KINDS)
reference = document()
found["reference"] = ["platform.defenses.toy" in reference, "(kind: toy)" in reference]
cells = [c for c in CELLS if "toy" in c.defenses or c.attackers == "toy"]
found["cells"] = len(cells)
cell = Cell("mf", ("toy",), "toy")
found["problems"] = run_problems(cell)
model = PrivacyModel(validate(cell))
model.run()
row = model.records.metrics[-1]
found["columns"] = [c for c in row if c.startswith("toy")]
found["order"] = REGISTRY.names().index("toy") > REGISTRY.names().index("accuracy")
found["events"] = sorted({e["kind"] for e in model.records.events if e["agent"] == "toy0"})
found["undocumented"] = undocumented(set(found["columns"]), "metrics")
print(json.dumps(found))
'''


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the toy package and its entry points, as pip would install them."""
    site = tmp_path_factory.mktemp("site")
    package = site / "privsim_toys"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name, text in (("defense", TOY_DEFENSE), ("attacker", TOY_ATTACKER),
                       ("measurement", TOY_MEASUREMENT)):
        (package / f"{name}.py").write_text(textwrap.dedent(text))
    info = site / "privsim_toys-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: privsim-toys\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    return site


def test_a_toy_defense_attacker_and_measurement_are_picked_up_everywhere(
    installed: Path,
) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(installed), str(ROOT)])}
    out = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True,
                         cwd=ROOT, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    import json

    found = json.loads(out.stdout.strip().splitlines()[-1])
    assert found["defenses"][-1] == "toy" and found["attackers"][-1] == "toy"
    assert found["reference"] == [True, True]
    # Every model beside the toy defense and each attacker set, and every model and defense
    # set beside the toy attacker.
    from simulator.recommenders.registry import MODELS

    models = len(MODELS)
    assert found["cells"] == models * 4 + models * 11 - models
    assert found["problems"] == []  # the toy defense acted at every retrain
    assert sorted(found["columns"]) == ["toy_active_share", "toy_dropped", "toy_hr_per_active"]
    assert found["order"] is True
    assert found["events"] == ["toy_watch"]
    # The outputs check reports the new columns until docs/outputs.md documents them.
    assert found["undocumented"] == sorted(found["columns"])


def test_without_the_toys_none_of_them_is_listed() -> None:
    from simulator.attacks.registry import ATTACKER_KINDS
    from simulator.defenses.registry import DEFENSES
    from simulator.measurements.registry import REGISTRY

    assert "toy" not in [d.key for d in DEFENSES] and "toy" not in ATTACKER_KINDS
    assert "toy" not in REGISTRY.names()
