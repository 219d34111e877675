"""DP-SGD training of the models with dense per-example training (MF, BPR, MetaMF) through
Opacus.

Privacy unit: one example is one rating (BPR: one (u, i, j) triple built from one positive
(u, i)), so the (epsilon, delta) guarantee is *rating-level*: it bounds what the released
parameters reveal about the presence of any single rating. It is not user-level DP: a user
with k ratings is covered only through group privacy (about k times the epsilon, and
delta grows too). User-level DP would need one example per user.

Mechanics: the factors, biases and (MF) a global offset are dense `nn.Embedding` tables in a
small module; Opacus clips each example's gradient to `max_grad_norm` with ghost clipping
(per-example norms without per-example gradients), adds Gaussian noise of std
noise_multiplier * max_grad_norm to every parameter at every step, and samples batches by
Poisson sampling; its RDP accountant turns (noise multiplier, sample rate, steps, delta) into
epsilon. BPR negatives are drawn uniformly over all items from a seeded generator, without
rejecting the user's known positives, so an example depends on its own rating only.

APR (a row perturbation the APR defense sets on the model) composes with DP-SGD: each
example's loss becomes its APR objective l(theta) + weight * l(theta + D), D the
fast-gradient perturbation of the rows that example reads (user and item factors), each row
normalised to norm epsilon. D is built from the example's own gradient (in closed form, held
constant as in APR), not from the batch's summed one as in non-private APR, so the objective
of an example depends on that example alone; its gradient is clipped and noised like any
other, and the accountant's epsilon holds unchanged.

Adversarial training (read-out heads on the user rows, gradient reversal) composes the same
way: each example's loss gains its own user's reversed read-out term, -weight times the heads'
cross-entropy on that user's row (heads held fixed), so the term is part of the clipped and
noised per-example gradient. The heads themselves train after every step on every labelled
account's current row and declared attributes, never on the sampled batch: the rows are the
released iterate (post-processing) and the attributes are profile data outside the
rating-level unit, so the heads' training costs no epsilon, and the batch's composition
(private through Poisson sampling) never reaches them.

Data-independent starting point: a cold start uses the model's own seeded initialisation and,
for MF, the scale midpoint 3 as the starting global offset (the exact mean rating would be an
unprotected statistic); the offset itself is trained under DP as a one-entry embedding.

Optimiser: Adam. The noised gradient is a mean over about `batch` examples, so its scale
shrinks with the batch and differs by orders of magnitude between popular and rare rows;
Adam's per-coordinate normalisation makes one learning rate work across noise levels and
batch sizes, and it only post-processes the privatised gradient, so it costs no privacy.

Randomness (Poisson sampling, noise, negatives) comes from torch generators seeded from `seed`
with Opacus's `secure_mode` off: reproducible on CPU, fine for simulation, not a
cryptographically secure deployment.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from opacus import PrivacyEngine
from opacus.grad_sample.utils import register_norm_sampler
from torch import nn
from torch.utils.data import DataLoader, Dataset

from simulator.defenses.dp.settings import DPConfig
from simulator.recommenders.base import Recommender, TrainingReport
from simulator.recommenders.dense import DenseTable
from simulator.world.base import Interactions

DEFAULT_LR = 0.01
BATCHES_PER_EPOCH = 100  # default batch = n / 100, i.e. sample rate about 1 %
MIN_BATCH, MAX_BATCH = 64, 8192


@dataclass
class DPTrainingReport(TrainingReport):
    """A DP fit: the usual report (losses are mean per sampled example) plus its privacy cost.

    `epsilon` is the rating-level epsilon of this fit alone at `delta` (Opacus RDP accountant).
    """

    epsilon: float = 0.0
    delta: float = 0.0
    noise_multiplier: float = 0.0
    sample_rate: float = 0.0
    steps: int = 0


class _Rows(Dataset):
    """Parallel tensors; a batch is gathered in one `index_select` per column."""

    def __init__(self, *columns: torch.Tensor) -> None:
        self.columns = columns

    def __len__(self) -> int:
        return len(self.columns[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, ...]:
        return tuple(c[index] for c in self.columns)

    def __getitems__(self, indices: list[int]) -> torch.Tensor:
        return torch.as_tensor(indices, dtype=torch.int64)

    def gather(self, index: Any) -> tuple[torch.Tensor, ...]:
        """The columns at the given rows (the loader's collate function; the sampler's
        indices are on the CPU, the columns on the model's device)."""
        index = index.to(self.columns[0].device)
        return tuple(c.index_select(0, index) for c in self.columns)


@register_norm_sampler(DenseTable)
def _table_norm_sample(
    layer: DenseTable, activations: list[torch.Tensor], backprops: torch.Tensor
) -> dict[torch.Tensor, torch.Tensor]:
    """Per-example gradient norms of an embedding looked up k times per example.

    Example b's gradient is the sum of its k backprops at their rows, so its squared norm is
    the sum of g_a . g_c over the pairs (a, c) of its lookups that hit the same row. Same
    result as Opacus's generic embedding rule, without its `unique` over the batch.
    """
    ids = activations[0].reshape(activations[0].shape[0], -1)
    grads = backprops.reshape(ids.shape[0], ids.shape[1], -1)
    if ids.shape[1] == 1:
        squared = grads.square().sum((1, 2))
    else:
        same_row = ids.unsqueeze(2) == ids.unsqueeze(1)
        squared = (grads @ grads.transpose(1, 2)).mul(same_row).sum((1, 2))
    return {layer.weight: squared.clamp_min(0.0).sqrt()}


class _Objective(nn.Module):
    """Per-example loss (squared error or -log sigmoid). With a perturbation of weight w or a
    penalty the output has several columns (clean, [shifted], [penalty]) and the loss is
    l(clean) [+ w * l(shifted)] [+ penalty]. `reduction` as in torch losses (Opacus switches
    it)."""

    def __init__(self, loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                 apr_weight: float | None = None, penalised: bool = False,
                 reduction: str = "mean") -> None:
        super().__init__()
        self.loss, self.apr_weight, self.reduction = loss, apr_weight, reduction
        self.penalised = penalised

    def per_example(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The clean loss of each example (the first column of a several-column output)."""
        return self.loss(output if output.dim() == 1 else output[:, 0], target)

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        loss = self.per_example(output, target)
        if self.apr_weight is not None:
            loss = loss + self.apr_weight * self.loss(output[:, 1], target)
        if self.penalised:
            loss = loss + output[:, -1]
        if self.reduction == "none":
            return loss
        return loss.sum() if self.reduction == "sum" else loss.mean()


@contextmanager
def _opacus_notices_silenced() -> Iterator[None]:
    """Hide Opacus's notice that secure RNG is off (by design here, see the module docstring)
    and torch's full-backward-hook notice that ghost clipping's second pass triggers."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Secure RNG turned off")
        warnings.filterwarnings("ignore", message="Full backward hook is firing")
        yield


def default_batch_size(n: int) -> int:
    """About n / 100 examples per batch (sample rate ~1 %), within [64, 8192]."""
    return int(min(MAX_BATCH, max(MIN_BATCH, round(n / BATCHES_PER_EPOCH))))


def _generators(
    seed: int, device: torch.device
) -> tuple[torch.Generator, torch.Generator, torch.Generator]:
    """Independent seeded generators for sampling and negatives (on the CPU: the same
    batches and negatives on every device) and for the noise (on the parameters' device,
    where Opacus draws it)."""
    a, b, c = (int(s) >> 1 for s in np.random.SeedSequence(seed).generate_state(3, np.uint64))
    return torch.Generator().manual_seed(a), torch.Generator(device).manual_seed(b), \
        torch.Generator().manual_seed(c)


def dp_fit(
    model: Recommender,
    data: Interactions,
    epochs: int,
    warm_start: bool,
    settings: DPConfig,
    seed: int,
    *,
    batch_size: int | None = None,
    lr: float = DEFAULT_LR,
) -> DPTrainingReport:
    """Train `model` (one with dense training: MF, BPR, MetaMF) with DP-SGD on `data` and
    write the parameters back into it; with a row perturbation set on the model
    (`set_perturbation`, e.g. by APR) on the per-example perturbed objective, and with an
    adversary set (`set_adversary`) on the per-example reversed read-out objective.

    A cold start first re-initialises the model from its seed; a warm start continues from
    its current parameters. delta defaults to 1 / len(data). With `settings.target_epsilon`
    the noise multiplier is the smallest that keeps epsilon at or below the target after
    `epochs` epochs. Training runs on the model's device (batches are sampled on the CPU).
    """
    dense_training = getattr(model, "dense_training", None)
    if not callable(dense_training):
        raise TypeError(
            f"dp_fit trains models with dense per-example training (mf, bpr, metamf), got "
            f"{type(model).__name__}")
    start, nothing = model.start_fit(data, epochs, warm_start)
    n = len(data)
    delta = settings.delta if settings.delta is not None else 1.0 / max(n, 1)
    if nothing is not None:
        return DPTrainingReport(0, [], nothing.seconds, warm_start, delta=delta)

    sampling, noise, negatives = _generators(seed, model.device)
    training = dense_training(data)
    perturbation = getattr(model, "perturbation", None)
    net = training.net
    rows = _Rows(*training.columns)
    criterion = _Objective(training.loss, perturbation.weight if perturbation else None,
                           training.penalised)

    batch = batch_size or default_batch_size(n)
    loader = DataLoader(rows, batch_size=batch, collate_fn=rows.gather, generator=sampling)
    with _opacus_notices_silenced():
        engine = PrivacyEngine(accountant="rdp")
        common = dict(
            module=net, optimizer=torch.optim.Adam(net.parameters(), lr=lr),
            criterion=criterion, data_loader=loader, max_grad_norm=settings.max_grad_norm,
            poisson_sampling=True, noise_generator=noise,
            # Ghost clipping: per-example gradient norms without materialising the
            # per-example gradients; `make_private` then also returns the criterion that
            # does the second backward pass (the 4-tuple below).
            grad_sample_mode="ghost",
        )
        if settings.target_epsilon is not None:
            private = engine.make_private_with_epsilon(
                target_epsilon=settings.target_epsilon, target_delta=delta, epochs=epochs,
                **common,
            )
        else:
            assert settings.noise_multiplier is not None
            private = engine.make_private(noise_multiplier=settings.noise_multiplier, **common)
        module, optimizer, dp_criterion, dp_loader = private
        losses: list[float] = []
        for _ in range(epochs):
            if training.resample is not None:
                training.resample(negatives)
            total, seen = 0.0, 0
            for inputs in dp_loader:
                optimizer.zero_grad()
                output = module(*inputs)
                loss = dp_criterion(output, inputs[-1])
                loss.backward()
                optimizer.step()
                if training.after_step is not None:
                    training.after_step()
                # Reported: the clean loss, as the non-private fit reports it.
                total += float(criterion.per_example(output.detach(), inputs[-1]).sum())
                seen += len(inputs[0])
            losses.append(total / max(seen, 1))
            if training.end_epoch is not None:
                training.end_epoch()

    training.write_back()
    noise_multiplier, sample_rate, steps = engine.accountant.history[0]
    return DPTrainingReport(
        epochs=epochs,
        losses=losses,
        seconds=time.perf_counter() - start,
        warm_start=warm_start,
        epsilon=float(engine.get_epsilon(delta)),
        delta=delta,
        noise_multiplier=float(noise_multiplier),
        sample_rate=float(sample_rate),
        steps=int(sum(h[2] for h in engine.accountant.history)),
    )
