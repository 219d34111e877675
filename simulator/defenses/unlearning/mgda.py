"""Two-task MGDA (Sener & Koltun 2018): the min-norm convex combination of two gradients."""

from __future__ import annotations

import torch

_TINY = 1e-20


def mgda_weight(g1: torch.Tensor, g2: torch.Tensor) -> float:
    """alpha* = clip(((g2 - g1) . g2) / ||g1 - g2||^2, 0, 1); 0.5 when g1 equals g2.

    alpha* * g1 + (1 - alpha*) * g2 is the point of the segment [g1, g2] nearest the origin.
    """
    a, b = g1.detach().reshape(-1).double(), g2.detach().reshape(-1).double()
    diff = b - a
    denom = float(diff.dot(diff))
    if denom <= _TINY * max(float(a.dot(a)), float(b.dot(b)), _TINY):
        return 0.5
    return float(min(max(float(diff.dot(b)) / denom, 0.0), 1.0))


def mgda_direction(g1: torch.Tensor, g2: torch.Tensor) -> tuple[torch.Tensor, float]:
    """The common descent direction alpha* g1 + (1 - alpha*) g2 and alpha*.

    Its inner product with each of g1 and g2 is non-negative, so a small step against it
    does not increase either loss to first order.
    """
    alpha = mgda_weight(g1, g2)
    return g1 * alpha + g2 * (1.0 - alpha), alpha
