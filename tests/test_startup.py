"""The command line starts without the heavy libraries: they load where they are used."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "sklearn", "xgboost", "opacus", "pandas", "pyarrow")


def _loaded_after(code: str) -> set[str]:
    probe = f"{code}\nimport sys\nprint(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True)
    return set(out.stdout.split())


def test_cli_import_loads_no_heavy_library() -> None:
    assert _loaded_after("import simulator.cli") == set()


def test_validating_a_scenario_loads_no_heavy_library() -> None:
    code = ("from simulator.experiments.catalog import load_scenario\n"
            "load_scenario('ml100k-baseline', [])")
    assert _loaded_after(code) == set()


def test_world_readers_still_resolve_from_the_package() -> None:
    code = ("from simulator.world import generate_synthetic\n"
            "w = generate_synthetic(n_users=20, n_items=30, mean_ratings_per_user=8,\n"
            "                       min_ratings_per_user=5, seed=0)\n"
            "assert w.n_users == 20")
    assert "torch" in _loaded_after(code)
