"""Pick the torch device a run computes on."""

from __future__ import annotations

import torch


def resolve_device(choice: str) -> torch.device:
    """`auto` picks CUDA when present, else CPU; `cuda` without a GPU is an error."""
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice == "cuda" and not torch.cuda.is_available():
        from simulator.foundations.errors import PrivsimError

        raise PrivsimError("simulation.device is 'cuda' but no CUDA device is available")
    return torch.device(choice)
