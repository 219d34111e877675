"""How well user embeddings separate attribute classes: Gaussian KL and multi-kernel MMD.

Both losses are differentiable in the embeddings and close to zero when every class has the
same distribution (the Gaussian KL of a finite sample is pushed to zero, below what two
samples of one distribution show; the MMD loss is centred on the no-difference level).
Labels are integer codes; -1 marks a user whose class is unknown.
"""

from __future__ import annotations

from typing import Literal

import torch

Covariance = Literal["diagonal", "shrunk"]
MMD_KERNELS = 5  # bandwidths sigma_bar * 2^(t - 2), t = 0..4
MMD_MAX_PER_CLASS = 1024
_VAR_FLOOR = 1e-6


def _class_groups(embeddings: torch.Tensor, labels: torch.Tensor) -> list[torch.Tensor]:
    """Embeddings of each class with at least two labelled members, in code order."""
    known = labels >= 0
    groups = []
    for code in torch.unique(labels[known]).tolist():
        members = (labels == code).nonzero().squeeze(1)
        if len(members) >= 2:
            groups.append(embeddings.index_select(0, members))
    return groups


def ledoit_wolf_shrinkage(centered: torch.Tensor) -> float:
    """Ledoit-Wolf weight rho of the scaled identity in (1 - rho) S + rho (tr S / d) I.

    `centered` is (n, d) with zero column means; S = X^T X / n. Computed without gradient.
    """
    x = centered.detach().double()
    n, d = x.shape
    cov = x.t() @ x / n
    target = torch.trace(cov) / d
    d2 = float((cov - target * torch.eye(d, dtype=x.dtype, device=x.device)).square().sum())
    if d2 <= 0.0:
        return 1.0
    # (1/n^2) sum_k ||x_k x_k^T - S||_F^2 = (sum_k ||x_k||^4 - n ||S||_F^2) / n^2
    b2 = float((x.square().sum(1).square().sum() - n * cov.square().sum()) / n**2)
    return min(max(b2, 0.0), d2) / d2


def gaussian_fit(
    x: torch.Tensor, covariance: Covariance
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and covariance of a sample: a variance vector (diagonal) or a shrunk matrix."""
    mean = x.mean(0)
    centered = x - mean
    if covariance == "diagonal":
        var = centered.square().mean(0)
        return mean, var + _VAR_FLOOR * (1.0 + var.detach().mean())
    if covariance != "shrunk":
        raise ValueError(f"covariance must be 'diagonal' or 'shrunk', got {covariance!r}")
    d = x.shape[1]
    cov = centered.t() @ centered / len(x)
    rho = ledoit_wolf_shrinkage(centered)
    scale = torch.trace(cov) / d
    eye = torch.eye(d, dtype=x.dtype, device=x.device)
    shrunk = cov * (1.0 - rho) + eye * (rho * scale)
    return mean, shrunk + eye * (_VAR_FLOOR * (1.0 + float(scale.detach())))


def symmetric_kl(
    a: tuple[torch.Tensor, torch.Tensor], b: tuple[torch.Tensor, torch.Tensor]
) -> torch.Tensor:
    """KL(N_a || N_b) + KL(N_b || N_a) for (mean, covariance) pairs from `gaussian_fit`.

    The log-determinants cancel: the sum is
    1/2 [tr(S_b^-1 S_a) + tr(S_a^-1 S_b) + dm^T (S_a^-1 + S_b^-1) dm] - d.
    """
    (mu_a, s_a), (mu_b, s_b) = a, b
    dm = mu_a - mu_b
    d = mu_a.shape[0]
    if s_a.dim() == 1:
        # s_a/s_b + s_b/s_a - 2 = (s_a - s_b)^2 / (s_a s_b): exact and non-negative.
        traces = ((s_a - s_b).square() / (s_a * s_b)).sum()
        quad = (dm.square() * (1.0 / s_a + 1.0 / s_b)).sum()
        return 0.5 * (traces + quad)
    chol_a, chol_b = torch.linalg.cholesky(s_a), torch.linalg.cholesky(s_b)
    rhs = torch.cat([s_a, dm.unsqueeze(1)], 1)
    solved_b = torch.cholesky_solve(rhs, chol_b)  # S_b^-1 [S_a | dm]
    lhs = torch.cat([s_b, dm.unsqueeze(1)], 1)
    solved_a = torch.cholesky_solve(lhs, chol_a)  # S_a^-1 [S_b | dm]
    traces = torch.trace(solved_b[:, :d]) + torch.trace(solved_a[:, :d])
    quad = dm.dot(solved_b[:, d]) + dm.dot(solved_a[:, d])
    return 0.5 * (traces + quad) - d


def kl_distinguishability(
    embeddings: torch.Tensor, labels: torch.Tensor, covariance: Covariance = "diagonal"
) -> torch.Tensor:
    """Symmetric Gaussian KL summed over every pair of classes (0 with fewer than two)."""
    fits = [gaussian_fit(g, covariance) for g in _class_groups(embeddings, labels)]
    total = embeddings.new_zeros(())
    for i in range(len(fits)):
        for j in range(i + 1, len(fits)):
            total = total + symmetric_kl(fits[i], fits[j])
    return total


def mmd2_terms(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Unbiased MMD^2 estimates, one per bandwidth, with
    k_t(a, b) = exp(-||a - b||^2 / (sigma_bar 2^(t-2))), t = 0..4.

    sigma_bar is the mean squared distance between distinct points of the pooled sample,
    treated as a constant. The estimator leaves out each point's kernel with itself, so its
    expectation is 0 when x and y come from one distribution: a finite sample then scores
    around 0, on either side. (The biased estimator, which keeps those terms, is positive for
    any finite sample; driving it to 0 forces the two samples to match more closely than two
    samples of one distribution do, and the edit then encodes the sample's own noise.)
    """
    pooled = torch.cat([x, y])
    n, nx = len(pooled), len(x)
    sq = torch.cdist(pooled, pooled).square()
    sigma = torch.clamp(sq.detach().sum() / max(n * n - n, 1), min=1e-12)
    off_x = max(nx * (nx - 1), 1)
    off_y = max((n - nx) * (n - nx - 1), 1)
    terms = []
    for t in range(MMD_KERNELS):
        kernel = torch.exp(-sq / (sigma * 2.0 ** (t - 2)))
        k_xx = (kernel[:nx, :nx].sum() - nx) / off_x  # k(a, a) = 1 left out
        k_yy = (kernel[nx:, nx:].sum() - (n - nx)) / off_y
        terms.append(k_xx + k_yy - 2.0 * kernel[:nx, nx:].mean())
    return torch.stack(terms)


def _subsample(x: torch.Tensor, limit: int, generator: torch.Generator | None) -> torch.Tensor:
    """At most `limit` rows of x drawn without replacement (all rows when x is small)."""
    if len(x) <= limit:
        return x
    order = torch.randperm(len(x), generator=generator, device="cpu")[:limit]
    return x.index_select(0, order.to(x.device))


def mmd_distinguishability(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    generator: torch.Generator | None = None,
    max_per_class: int = MMD_MAX_PER_CLASS,
) -> torch.Tensor:
    """Sum over classes (against an anchor class, the largest one) and bandwidths of the
    squared unbiased MMD^2 estimate (`mmd2_terms`): zero where each estimate is at its
    no-difference expectation, and pulled back from either side.

    A class with more than `max_per_class` users enters through a fresh uniform subsample of
    that size at each call, so the kernel matrices stay small; repeated calls (one per
    optimisation step) then see every user.
    """
    groups = _class_groups(embeddings, labels)
    if len(groups) < 2:
        return embeddings.new_zeros(())
    anchor_index = max(range(len(groups)), key=lambda i: len(groups[i]))
    anchor = _subsample(groups[anchor_index], max_per_class, generator)
    total = embeddings.new_zeros(())
    for i, group in enumerate(groups):
        if i != anchor_index:
            sample = _subsample(group, max_per_class, generator)
            total = total + mmd2_terms(sample, anchor).square().sum()
    return total


def distinguishability(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    kind: Literal["kl", "mmd"],
    covariance: Covariance = "diagonal",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The loss named by `kind` ('kl' or 'mmd') on the labelled users."""
    if kind == "kl":
        return kl_distinguishability(embeddings, labels, covariance)
    if kind == "mmd":
        return mmd_distinguishability(embeddings, labels, generator)
    raise ValueError(f"distance must be 'kl' or 'mmd', got {kind!r}")
