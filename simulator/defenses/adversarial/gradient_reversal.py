"""Privacy-adversarial read-outs on user embeddings (Resheff et al.): gradient reversal.

Read-out heads predict protected attributes from p_u and are trained to minimise their
cross-entropy; through a gradient-reversal layer (GRL) the user rows receive -lambda times the
gradient of that cross-entropy, so the recommender's objective becomes
min_{P,Q} max_W L_rec - lambda * L_CE.

Models with hand-written SGD call `step` after each batch on the batch's distinct users and
apply the returned gradient with their own learning rate; autograd models add `loss` to their
batch loss and call `step_heads` after the backward pass. Per-example trainers (DP-SGD) add
`penalty` to each example's loss and train the heads with `fit_heads` on every account's row.

The heads are trained with Adam: p_u's scale differs by orders of magnitude between models
(BPR rows of norm ~1, MetaMF's p_u of std 0.01) and drifts during training, and Adam's
per-parameter step sizes let one learning rate track the moving embeddings in every case,
where plain SGD would need a learning rate tuned to each model's embedding scale.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from simulator.world.base import World

READOUTS = ("linear", "mlp")


class GradReverse(torch.autograd.Function):
    """Identity in the forward pass; the backward pass multiplies the gradient by -weight."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: float) -> torch.Tensor:
        ctx.weight = weight
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad.mul(-ctx.weight), None


def grad_reverse(x: torch.Tensor, weight: float) -> torch.Tensor:
    """`x` unchanged, with its incoming gradient scaled by -weight in the backward pass."""
    return GradReverse.apply(x, weight)


def _head(dim: int, out: int, readout: str, hidden: int) -> nn.Module:
    if readout == "linear":
        return nn.Linear(dim, out)
    return nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, out))


class AttributeAdversary:
    """Gradient-reversal read-outs for protected attributes of the users.

    `attributes` maps a name to one int code per user (-1: label unknown to the platform, left
    out of every loss); `n_classes` gives each attribute's number of classes (default: largest
    code + 1). Two classes get one logistic unit, more get a softmax. `readout` is "linear" or
    "mlp" (one ReLU hidden layer of `hidden` units); `weight` is lambda; `lr` is the heads'
    Adam learning rate. Heads are built by `bind` (called by `Recommender.set_adversary`) from
    `seed`, on the model's device.

    Per-epoch statistics of the heads on the training batches (mean cross-entropy and accuracy
    over labelled users, per attribute) are appended to `history` by `end_epoch`.
    """

    def __init__(
        self,
        attributes: Mapping[str, np.ndarray],
        *,
        n_classes: Mapping[str, int] | None = None,
        weight: float = 1.0,
        readout: str = "linear",
        hidden: int = 32,
        lr: float = 0.01,
        head_steps: int = 1,
        seed: int = 0,
        device: torch.device | str = "cpu",
    ) -> None:
        if not attributes:
            raise ValueError("at least one protected attribute is needed")
        if readout not in READOUTS:
            raise ValueError(f"readout must be one of {READOUTS}, got {readout!r}")
        if not weight >= 0 or not math.isfinite(weight):
            raise ValueError(f"weight must be finite and >= 0, got {weight}")
        if hidden <= 0 or head_steps <= 0 or not lr > 0:
            raise ValueError("hidden, head_steps and lr must be positive")
        self.names = list(attributes)
        self.codes = {k: np.asarray(v, dtype=np.int64) for k, v in attributes.items()}
        lengths = {len(c) for c in self.codes.values()}
        if len(lengths) != 1:
            raise ValueError("every attribute needs one code per user")
        self.n_users = lengths.pop()
        given = dict(n_classes or {})
        self.n_classes = {
            k: int(given.get(k, int(c.max(initial=-1)) + 1)) for k, c in self.codes.items()
        }
        for k, c in self.codes.items():
            if self.n_classes[k] < 2:
                raise ValueError(f"attribute {k!r} needs at least two classes")
            if c.min(initial=0) < -1 or c.max(initial=0) >= self.n_classes[k]:
                raise ValueError(f"codes of {k!r} must lie in [-1, {self.n_classes[k]})")
        self.weight = float(weight)
        self.readout, self.hidden, self.lr, self.seed = readout, hidden, float(lr), seed
        self.head_steps = head_steps
        self.device = torch.device(device)
        self.dim: int | None = None
        self.heads = nn.ModuleDict()
        self.optimizer: torch.optim.Optimizer | None = None
        self._labels: dict[str, torch.Tensor] = {}
        self._running = torch.zeros(0)
        self.history: list[dict[str, dict[str, float]]] = []

    @classmethod
    def from_world(
        cls,
        world: World,
        attributes: Sequence[str],
        known: np.ndarray | None = None,
        **kwargs: Any,
    ) -> AttributeAdversary:
        """Read-outs for the named attributes of `world`; users outside the boolean mask
        `known` (default: all known) count as unlabelled."""
        codes = {}
        for name in attributes:
            code = np.asarray(world.attributes[name], dtype=np.int64).copy()
            if known is not None:
                code[~np.asarray(known, dtype=bool)] = -1
            codes[name] = code
        n_classes = {name: len(world.attribute_labels[name]) for name in attributes}
        return cls(codes, n_classes=n_classes, **kwargs)

    # -- set-up ------------------------------------------------------------------------------
    def bind(self, n_users: int, dim: int, device: torch.device | str) -> None:
        """Prepare for embeddings of width `dim` on `device`: builds seeded heads the first
        time and whenever `dim` changes; otherwise keeps the trained heads (moved if needed)."""
        if n_users != self.n_users:
            raise ValueError(f"attribute codes cover {self.n_users} users, the model {n_users}")
        device = torch.device(device)
        if self.dim != dim:
            generator = torch.Generator().manual_seed(self.seed)
            heads = self._new_heads(dim)
            with torch.no_grad():
                for module in heads.modules():
                    if isinstance(module, nn.Linear):
                        nn.init.xavier_normal_(module.weight, generator=generator)
                        module.bias.zero_()
            self.heads, self.dim = heads, dim
            self.optimizer = None
            self.history = []
        self.heads.to(device)
        if self.optimizer is None or device != self.device:
            self.optimizer = torch.optim.Adam(self.heads.parameters(), lr=self.lr)
        self.device = device
        self._labels = {k: torch.as_tensor(c, device=device) for k, c in self.codes.items()}
        self._running = torch.zeros(len(self.names), 3, dtype=torch.float64, device=device)

    def _new_heads(self, dim: int) -> nn.ModuleDict:
        heads = nn.ModuleDict()
        for name in self.names:
            out = 1 if self.n_classes[name] == 2 else self.n_classes[name]
            heads[name] = _head(dim, out, self.readout, self.hidden)
        return heads

    def checkpoint_rebuild(self, name: str) -> nn.Module | torch.optim.Optimizer:
        """Empty heads or their optimiser, shaped as saved, for a checkpoint to load into."""
        if name == "heads" and self.dim is not None:
            return self._new_heads(self.dim).to(self.device)
        if name == "optimizer":
            return torch.optim.Adam(self.heads.parameters(), lr=self.lr)
        raise ValueError(f"no {name} to rebuild")

    def _optimizer(self) -> torch.optim.Optimizer:
        if self.optimizer is None:
            raise RuntimeError("bind the adversary to a model (set_adversary) before training")
        return self.optimizer

    # -- training ----------------------------------------------------------------------------
    def loss(
        self,
        users: torch.Tensor,
        embeddings: torch.Tensor,
        mean: bool = True,
        record: bool = True,
    ) -> torch.Tensor:
        """Read-out cross-entropy of the rows `embeddings` (p_u of the distinct `users`) taken
        through the GRL: summed over attributes, and per attribute the mean (or, with
        mean=False, the sum) over labelled users. Backward gives the heads dCE/dW and the rows
        -weight * dCE/dp_u. Records the heads' statistics."""
        z = grad_reverse(embeddings, self.weight)
        total = embeddings.new_zeros(())
        stats = []
        for name in self.names:
            label = self._labels[name].index_select(0, users)
            known = label >= 0
            mask = known.to(embeddings.dtype)
            target = label.clamp(min=0)
            logits = self.heads[name](z)
            if self.n_classes[name] == 2:
                logit = logits.squeeze(1)
                ce = F.binary_cross_entropy_with_logits(
                    logit, target.to(logit.dtype), reduction="none"
                )
                correct = (logit > 0) == (target == 1)
            else:
                ce = F.cross_entropy(logits, target, reduction="none")
                correct = logits.argmax(1) == target
            ce_sum = (ce * mask).sum()
            count = mask.sum()
            total = total + (ce_sum / count.clamp(min=1.0) if mean else ce_sum)
            stats.append(torch.stack([ce_sum.detach(), (correct & known).sum(), count]))
        if record:
            self._running += torch.stack(stats).to(self._running.dtype)
        return total

    def zero_grad(self) -> None:
        """Clear the heads' gradients (before a backward pass that includes `loss`)."""
        self._optimizer().zero_grad(set_to_none=True)

    def step_heads(self) -> None:
        """One Adam step of the heads from the gradients of the last backward pass."""
        self._optimizer().step()

    def step(self, users: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
        """One adversarial step on the distinct `users` with rows `embeddings`: updates the
        heads on the summed cross-entropy and returns the gradient the rows receive through
        the GRL, -weight * dCE/dp_u (one row per user; a model applies -lr times it)."""
        with torch.enable_grad():
            fixed = embeddings.detach()
            for _ in range(self.head_steps - 1):
                self.zero_grad()
                self.loss(users, fixed, mean=False, record=False).backward()
                self.step_heads()
            rows = fixed.clone().requires_grad_(True)
            self.zero_grad()
            self.loss(users, rows, mean=False).backward()
            self.step_heads()
        assert rows.grad is not None
        return rows.grad

    def penalty(self, users: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """Each example's reversed read-out term, (B,): -weight times the heads' cross-entropy
        on its user's row (`users[b]`, `rows[b]`), summed over attributes, 0 where the user's
        label is unknown. The heads are held fixed (their parameters enter detached), so a
        backward pass moves only the rows; per-example trainers (DP-SGD) add it to each
        example's loss."""
        total = rows.new_zeros(len(users))
        for name in self.names:
            head = self.heads[name]
            fixed = {key: value.detach() for key, value in head.named_parameters()}
            logits = torch.func.functional_call(head, fixed, (rows,))
            label = self._labels[name].index_select(0, users)
            target = label.clamp(min=0)
            if self.n_classes[name] == 2:
                logit = logits.squeeze(1)
                ce = F.binary_cross_entropy_with_logits(
                    logit, target.to(logit.dtype), reduction="none")
            else:
                ce = F.cross_entropy(logits, target, reduction="none")
            total = total + ce * (label >= 0).to(ce.dtype)
        return total * -self.weight

    def fit_heads(self, rows: torch.Tensor) -> None:
        """`head_steps` Adam steps of the heads on every account's row (`rows`: the whole
        user table, (n_users, dim)), mean cross-entropy over labelled accounts; the last
        step's statistics are recorded for `end_epoch`."""
        users = torch.arange(self.n_users, device=self.device)
        fixed = rows.detach()
        for index in range(self.head_steps):
            self.zero_grad()
            self.loss(users, fixed, record=index == self.head_steps - 1).backward()
            self.step_heads()

    def end_epoch(self) -> None:
        """Append the heads' mean cross-entropy and accuracy since the last call to
        `history` (attributes without labelled users in the epoch are left out)."""
        if self._running.numel() == 0:
            return
        entry = {}
        for name, (ce, correct, count) in zip(self.names, self._running.tolist(), strict=True):
            if count > 0:
                entry[name] = {"loss": ce / count, "accuracy": correct / count}
        self.history.append(entry)
        self._running.zero_()

    @torch.no_grad()
    def predict_proba(self, embeddings: torch.Tensor) -> dict[str, torch.Tensor]:
        """Class probabilities of each attribute from the current heads, (n, n_classes)."""
        out = {}
        for name in self.names:
            logits = self.heads[name](embeddings.to(self.device))
            if self.n_classes[name] == 2:
                p = torch.sigmoid(logits)
                out[name] = torch.cat([1 - p, p], 1)
            else:
                out[name] = torch.softmax(logits, 1)
        return out
