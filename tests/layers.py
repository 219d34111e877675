"""The import layers of privsim, and every import that points up them.

`python -m tests.layers` prints each module's layer and every upward or two-way import (none
is allowed); `tests/test_layers.py` fails on any. Every import counts, including those under
`TYPE_CHECKING` and those inside functions.

Layers, bottom up; each folder sits on one, and a module may import its own layer's package
and anything below: foundations (errors, settings, devices, threads, random streams) and run
folders (`runs/`) < the world (`world/`) < recommenders < attacks, defenses, metrics (side by
side; no two of them import each other both ways) < the scenario schema (`scenario/`) <
agents < the simulation (the model, its build and events) and its measurements < analysis of
finished runs < experiments (which run scenarios and summarise them) and the dashboard < the
API and CLI. `python -m tests.layers --folders` draws the folders and their imports.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# (folder or module prefix, layer); the longest matching prefix wins. Every folder has one
# layer, so the drawing of the folders (`python -m tests.layers --folders`) follows it.
LAYERS: list[tuple[str, int]] = [
    ("simulator.foundations", 0),
    ("simulator.runs", 0),
    ("simulator.world", 1),
    ("simulator.recommenders", 2),
    ("simulator.attacks", 3),
    ("simulator.defenses", 3),
    ("simulator.metrics", 3),
    ("simulator.scenario", 4),
    ("agents", 5),
    ("simulator.simulation", 6),
    ("simulator.measurements", 6),
    ("simulator.analysis", 7),
    ("simulator.experiments", 8),
    ("simulator.dashboard", 8),
    ("simulator.api", 9),
    ("simulator.cli", 9),
    ("simulator.__main__", 9),
    ("simulator", 9),
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


def imports_of(path: Path, *, at_run_time: bool = False) -> set[str]:
    """Every privsim module `path` imports, wherever the import statement stands; with
    `at_run_time`, those under `if TYPE_CHECKING:` (read by type checkers only) are left out."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    type_only: set[int] = set()
    if at_run_time:
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                type_only.update(id(inner) for child in node.body for inner in ast.walk(child))
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {m for m in found if m.split(".")[0] in ("simulator", "agents")}


def _package(module: str) -> str:
    return next((p for p in SIDE_BY_SIDE if module == p or module.startswith(p + ".")), module)


def import_graph(*, at_run_time: bool = False) -> dict[str, set[str]]:
    """Module -> the privsim modules it imports (names that are not modules are dropped)."""
    paths = sorted(p for d in ("simulator", "agents") for p in (ROOT / d).rglob("*.py"))
    modules = {module_name(p): p for p in paths}
    return {name: {m for m in imports_of(path, at_run_time=at_run_time) if m in modules}
            for name, path in modules.items()}


def folder_of(module: str) -> str:
    """The top-level folder (room) a module sits in: `agents`, `simulator.<folder>`, or
    `simulator` for the modules at the package's top (the API and the CLI)."""
    parts = module.split(".")
    if parts[0] == "agents" or len(parts) == 1:
        return parts[0]
    return ".".join(parts[:2]) if (ROOT / parts[0] / parts[1]).is_dir() else parts[0]


def folder_graph() -> dict[str, set[str]]:
    """The drawing of the house: folder -> the other folders its modules import."""
    drawing: dict[str, set[str]] = {}
    for module, targets in import_graph().items():
        own = folder_of(module)
        drawing.setdefault(own, set()).update(
            folder_of(t) for t in targets if folder_of(t) != own)
    return drawing


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import circles of `graph`: its strongly connected components of two or more
    modules (networkx), each sorted."""
    import networkx as nx

    directed = nx.DiGraph()
    directed.add_nodes_from(graph)
    directed.add_edges_from((module, target) for module, targets in graph.items()
                            for target in targets)
    return sorted(sorted(component) for component in nx.strongly_connected_components(directed)
                  if len(component) > 1)


# Import circles that close only through annotations (`if TYPE_CHECKING:` imports, which
# never run): a module names the type of an object handed to it by the module that imports
# it. Each would go with an extra module holding only a Protocol; they are listed instead.
TYPE_ONLY_CIRCLES: dict[tuple[str, ...], str] = {
    ("agents.board", "agents.platform", "agents.twin"):
        "the step board names the platform agents whose phases read and write it",
    ("simulator.recommenders.base", "simulator.recommenders.bpr",
     "simulator.recommenders.dense", "simulator.recommenders.factor_model",
     "simulator.recommenders.metamf", "simulator.recommenders.metamf_dense",
     "simulator.recommenders.metamf_items", "simulator.recommenders.mf",
     "simulator.recommenders.user_scores"):
        "the recommender interface names the hook and scorer types its models return",
    ("simulator.scenario.schedule", "simulator.scenario.schema"):
        "the schedule check reads the scenario type that calls it",
    ("simulator.simulation.build", "simulator.simulation.events",
     "simulator.simulation.model"):
        "building and scheduled events name the model that runs them",
}


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
    if "--folders" in sys.argv:
        for folder, targets in sorted(folder_graph().items(), key=lambda f: layer_of(f[0]) or 0):
            shown = ", ".join(f"{t} ({layer_of(t)})" for t in sorted(targets, key=layer_of))
            print(f"{layer_of(folder)}  {folder} -> {shown}")
    else:
        for module in sorted(graph):
            print(f"{layer_of(module)}  {module}")
    problems = violations()
    print(f"\n{len(problems)} upward or two-way imports")
    for problem in problems:
        print("  " + problem)
    print(f"\nimport circles (type-only, listed in TYPE_ONLY_CIRCLES): {len(circles(graph))}")
    for circle in circles(import_graph(at_run_time=True)):
        print("  at run time: " + " -> ".join(circle))
        problems.append(str(circle))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
