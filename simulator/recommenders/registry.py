"""Look up platform models by name."""

from __future__ import annotations

import torch

from simulator.recommenders.base import ModelParams, Recommender
from simulator.recommenders.bpr import BPR
from simulator.recommenders.metamf import MetaMF, NoMetaMF
from simulator.recommenders.mf import MF

_MODELS: dict[str, type[Recommender]] = {
    BPR.name: BPR,
    MF.name: MF,
    MetaMF.name: MetaMF,
    NoMetaMF.name: NoMetaMF,
}


def available_models() -> list[str]:
    """Names accepted by `make_recommender`, sorted."""
    return sorted(_MODELS)


def recommender_class(name: str) -> type[Recommender]:
    """The class of the model called `name`; an unknown name raises ValueError."""
    try:
        return _MODELS[name]
    except KeyError:
        known = ", ".join(available_models())
        raise ValueError(f"unknown recommender {name!r}; available: {known}") from None


def make_recommender(
    name: str,
    n_users: int,
    n_items: int,
    params: ModelParams,
    device: torch.device | str,
    seed: int,
) -> Recommender:
    """Build the model called `name`; an unknown name raises ValueError listing the known ones."""
    return recommender_class(name)(n_users, n_items, params, torch.device(device), seed)
