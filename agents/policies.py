"""Disclosure policies: how users' budgets beta evolve, vectorised over all users."""

from __future__ import annotations

from typing import Protocol

import numpy as np


class DisclosurePolicy(Protocol):
    """Updates every user's disclosure budget in place at the start of a step."""

    name: str

    def update(self, beta: np.ndarray, step: int) -> None:
        """Adjust `beta` (one entry per user) before the step's disclosures are chosen."""


class FixedPolicy:
    """Each user keeps the budget of its inclination type (or its override) forever."""

    name = "fixed"

    def update(self, beta: np.ndarray, step: int) -> None:
        """Budgets never change under the fixed policy."""
        return None


def make_policy(name: str) -> DisclosurePolicy:
    """The policy of that name."""
    policies: dict[str, type] = {"fixed": FixedPolicy}
    if name not in policies:
        raise ValueError(f"unknown disclosure policy '{name}'; choose one of {sorted(policies)}")
    return policies[name]()
