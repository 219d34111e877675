"""The platform models by name, with the capabilities each declares.

Capabilities say what a model offers beyond fit-and-score, so that defenses and attackers
state what they need and the scenario check refuses an impossible pairing before anything
runs (without importing torch: the classes are imported when a model is built).
`tests/test_recommenders.py` checks that every class has the methods its capabilities name.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from simulator.recommenders.base import ModelParams, Recommender

CAPABILITIES = {
    "gradient_perturbation": "trains with a row perturbation (`set_perturbation`)",
    "dense_training": "can train as dense per-example tables (`dense_training`)",
    "user_adversary": "trains against an adversary on the user embeddings (`set_adversary`)",
    "user_scorer": "scores from a substitute user table (`user_scorer`)",
    "item_features": "learns from item side information (`set_item_features`)",
    "settable_items": "has free item embeddings (`set_item_embeddings`)",
    "item_parameters": "exposes each item's own parameters to white-box attackers "
    "(`item_parameters`, `set_item_parameters`, `score_item_parameters`)",
}
_FACTOR = frozenset(CAPABILITIES) - {"item_parameters"}
_META = frozenset({"gradient_perturbation", "dense_training", "user_adversary", "user_scorer",
                   "item_parameters"})
_GRAPH = frozenset({"gradient_perturbation", "user_adversary", "user_scorer", "settable_items"})


@dataclass(frozen=True)
class ModelEntry:
    """A registered model: where its class lives and what it can do."""

    path: str  # "module:Class"
    capabilities: frozenset[str]
    # Why the model lacks a capability, where the reason is not obvious from the model.
    lacks: tuple[tuple[str, str], ...] = ()


MODELS: dict[str, ModelEntry] = {
    "bpr": ModelEntry("simulator.recommenders.bpr:BPR", _FACTOR),
    "mf": ModelEntry("simulator.recommenders.mf:MF", _FACTOR),
    "metamf": ModelEntry("simulator.recommenders.metamf:MetaMF", _META),
    "nometamf": ModelEntry("simulator.recommenders.metamf:NoMetaMF", _META),
    "lightgcn": ModelEntry(
        "simulator.recommenders.lightgcn:LightGCN", _GRAPH,
        lacks=(("dense_training", "per-example gradients do not separate through LightGCN's "
                "graph propagation: every example's loss reads the whole graph"),
               ("item_features", "LightGCN learns from the interaction graph alone"))),
}


def available_models() -> list[str]:
    """Names accepted by `make_recommender`, sorted."""
    return sorted(MODELS)


def _entry(name: str) -> ModelEntry:
    try:
        return MODELS[name]
    except KeyError:
        known = ", ".join(available_models())
        raise ValueError(f"unknown recommender {name!r}; available: {known}") from None


def capabilities(name: str) -> frozenset[str]:
    """What the model called `name` declares it can do."""
    return _entry(name).capabilities


def why_lacking(name: str, needed: frozenset[str]) -> str:
    """` (reason)` for each capability in `needed` that the model called `name` lacks and
    whose reason its entry gives (in name order), to end a refusal with; else empty."""
    reasons = dict(_entry(name).lacks)
    missing = sorted(needed - _entry(name).capabilities)
    return "".join(f" ({reasons[need]})" for need in missing if need in reasons)


def models_with(needed: frozenset[str]) -> list[str]:
    """The models that have every capability in `needed`, in registry order."""
    return [name for name, entry in MODELS.items() if needed <= entry.capabilities]


def recommender_class(name: str) -> type[Recommender]:
    """The class of the model called `name`; an unknown name raises ValueError."""
    module, _, attribute = _entry(name).path.partition(":")
    cls: type[Recommender] = getattr(importlib.import_module(module), attribute)
    return cls


def make_recommender(
    name: str,
    n_users: int,
    n_items: int,
    params: ModelParams,
    device: torch.device | str,
    seed: int,
) -> Recommender:
    """Build the model called `name`; an unknown name raises ValueError listing the known ones."""
    import torch

    return recommender_class(name)(n_users, n_items, params, torch.device(device), seed)
