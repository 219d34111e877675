"""The import layers of privsim, and every import that points up them.

`python -m tests.layers` prints each module's layer and every upward or two-way import (none
is allowed); `tests/test_layers.py` fails on any. Every import counts, including those under
`TYPE_CHECKING` and those inside functions.

Layers, bottom up (a module may import its own layer's package and anything below):
foundations (errors, settings, devices, threads, random streams, run folders, worlds) <
recommenders < attacks, defenses, metrics (side by side; no two of them import each other
both ways) < the scenario schema < agents < the model and its measurements < analysis of
finished runs < experiments (which run scenarios and summarise them) and the dashboard < the
API and CLI.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# (module prefix, layer); the longest matching prefix wins.
LAYERS: list[tuple[str, int]] = [
    ("simulator.core.errors", 0),
    ("simulator.core.settings", 0),
    ("simulator.core.device", 0),
    ("simulator.core.threads", 0),
    ("simulator.core.random_streams", 0),
    ("simulator.core.timeline", 0),
    ("simulator.core.outputs", 0),
    ("simulator.core.run_lock", 0),
    ("simulator._allocator", 0),
    ("simulator.world", 0),
    ("simulator.recommenders", 1),
    ("simulator.attacks", 2),
    ("simulator.defenses", 2),
    ("simulator.metrics", 2),
    ("simulator.core.social", 2),
    ("simulator.core.schedule", 3),
    ("simulator.core.changes", 3),
    ("simulator.core.config", 3),
    ("simulator.core.memory", 3),
    ("agents", 4),
    ("simulator.core", 5),
    ("simulator.measurements", 5),
    ("simulator.analysis", 6),
    ("simulator.experiments", 7),
    ("simulator.dashboard", 7),
    ("simulator.api", 8),
    ("simulator.cli", 8),
    ("simulator.__main__", 8),
    ("simulator", 8),
]
SIDE_BY_SIDE = ("simulator.attacks", "simulator.defenses", "simulator.metrics")


def layer_of(module: str) -> int | None:
    """The layer of a privsim module (None for other libraries)."""
    best: tuple[int, int] | None = None
    for prefix, layer in LAYERS:
        if (module == prefix or module.startswith(prefix + ".")) and (
                best is None or len(prefix) > best[0]):
            best = (len(prefix), layer)
    return None if best is None else best[1]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """Every privsim module `path` imports, wherever the import statement stands."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {m for m in found if m.split(".")[0] in ("simulator", "agents")}


def _package(module: str) -> str:
    return next((p for p in SIDE_BY_SIDE if module == p or module.startswith(p + ".")), module)


def import_graph() -> dict[str, set[str]]:
    """Module -> the privsim modules it imports (names that are not modules are dropped)."""
    paths = sorted(p for d in ("simulator", "agents") for p in (ROOT / d).rglob("*.py"))
    modules = {module_name(p): p for p in paths}
    return {name: {m for m in imports_of(path) if m in modules} for name, path in modules.items()}


def violations() -> list[str]:
    """Every import that points up the layers, and every two-way import between packages
    of the same layer."""
    graph = import_graph()
    problems = []
    for module, targets in sorted(graph.items()):
        own = layer_of(module)
        for target in sorted(targets):
            layer = layer_of(target)
            if own is not None and layer is not None and layer > own:
                problems.append(f"{module} (layer {own}) imports {target} (layer {layer})")
    pairs: dict[tuple[str, str], str] = {}
    for module, targets in graph.items():
        for target in targets:
            a, b = _package(module), _package(target)
            if a != b and a in SIDE_BY_SIDE and b in SIDE_BY_SIDE:
                pairs.setdefault((a, b), f"{module} -> {target}")
    for (a, b), example in sorted(pairs.items()):
        if (b, a) in pairs and a < b:
            problems.append(f"{a} and {b} import each other ({example}; {pairs[(b, a)]})")
    return problems


def main() -> int:
    graph = import_graph()
    for module in sorted(graph):
        print(f"{layer_of(module)}  {module}")
    problems = violations()
    print(f"\n{len(problems)} upward or two-way imports")
    for problem in problems:
        print("  " + problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
