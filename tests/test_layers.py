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

    def with_upward() -> dict[str, set[str]]:
        graph = real()
        graph["simulator.recommenders.bpr"].add("simulator.defenses.apr")
        graph["simulator.attacks.inference"].add("simulator.metrics.leakage")
        graph["simulator.metrics.leakage"].add("simulator.attacks.inference")
        return graph

    monkeypatch.setattr(layers, "import_graph", with_upward)
    found = layers.violations()
    assert any("simulator.recommenders.bpr (layer 1) imports simulator.defenses.apr" in p
               for p in found)
    assert any("import each other" in p for p in found)
