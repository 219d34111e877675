"""Imports point down the layers (`tests/layers.py`, also `python -m tests.layers`)."""

from __future__ import annotations

from tests.layers import import_graph, layer_of, violations


def test_no_import_points_up_the_layers() -> None:
    assert violations() == []


def test_every_module_has_a_layer() -> None:
    assert [m for m in import_graph() if layer_of(m) is None] == []


def test_the_check_sees_an_upward_import(monkeypatch) -> None:
    """A recommender importing a defense would be reported."""
    import tests.layers as layers

    real = layers.import_graph

    def with_upward(**kwargs: bool) -> dict[str, set[str]]:
        graph = real(**kwargs)
        graph["simulator.recommenders.bpr"].add("simulator.defenses.apr.defense")
        graph["simulator.attacks.inference"].add("simulator.metrics.classification")
        graph["simulator.metrics.classification"].add("simulator.attacks.inference")
        return graph

    monkeypatch.setattr(layers, "import_graph", with_upward)
    found = layers.violations()
    assert any("simulator.recommenders.bpr (layer 2) imports simulator.defenses.apr.defense"
               in p
               for p in found)
    assert any("import each other" in p for p in found)


def test_the_folders_point_down() -> None:
    """The drawing of the house: no folder imports one above it or one that imports it."""
    from tests.layers import folder_graph

    drawing = folder_graph()
    upward = [(f, t) for f, targets in drawing.items() for t in targets
              if (layer_of(t) or 0) > (layer_of(f) or 0)]
    two_way = [(f, t) for f, targets in drawing.items() for t in targets
               if f in drawing.get(t, set())]
    assert upward == [] and two_way == []


def test_every_module_sits_on_its_folders_layer() -> None:
    from tests.layers import folder_of

    assert [m for m in import_graph() if layer_of(m) != layer_of(folder_of(m))] == []


def test_no_import_circle_runs() -> None:
    """Circles closed only by annotations are listed, each with its reason; none runs."""
    from tests.layers import TYPE_ONLY_CIRCLES, circles

    assert circles(import_graph(at_run_time=True)) == []
    assert {tuple(c) for c in circles(import_graph())} == set(TYPE_ONLY_CIRCLES)


def test_the_circle_finder_sees_a_circle() -> None:
    from tests.layers import circles

    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert circles(graph) == [["a", "b", "c"]]


def test_the_readme_layout_names_every_folder_and_no_other() -> None:
    """The README's layout section lists the project's folders as the tree has them."""
    import re

    from tests.layers import ROOT

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("## Layout", 1)[1].split("```")[1]
    named = {m.group(1) for m in re.finditer(r"^ *([a-z_]+)/ ", block, re.M)}
    inner = {p.name for p in (ROOT / "simulator").iterdir()
             if p.is_dir() and (p / "__init__.py").is_file()}
    top = {"simulator", "agents", "scenarios", "docs", "benchmarks", "examples", "tests",
           "outputs"}
    assert named == inner | top
    assert all((ROOT / name).is_dir() for name in top - {"outputs"})
