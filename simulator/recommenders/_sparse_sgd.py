"""Minibatch SGD on embedding tables without scatter-adds: the machinery BPR and MF share.

Why this exists: on CPU every PyTorch scatter (`index_add_`, `index_put_(accumulate=True)`,
autograd's embedding backward) costs 50-110 ns per row, serial or sort-based, and a BPR epoch on
an ML-1M-sized table scatters three million rows. No library offers fast sparse-row SGD on CPU,
so the models write their gradients by hand and turn every scatter into a *gather-reduce*:

- each batch is listed twice, once grouped by user and once grouped by item, so the gradient of
  every touched row is the weighted sum of a contiguous "bag" of rows of the other table,
  which `embedding_bag(mode="sum", per_sample_weights=...)` computes in one fast, parallel,
  deterministic call (the learning rate is folded into the per-sample weights);
- the per-sample scores come from one sampled dense-dense product (`sparse.sampled_addmm`) over
  the user-grouped listing, which reads each needed row once and writes no (batch, d) temporary;
- user and item factors live in one table, users first, so a single call covers both sides;
  biases are kept in a separate vector because rows of exactly `factors` floats (64, not 65)
  made both kernels about 40% faster;
- the L2 term of every touched row is applied as one dense multiplicative decay per batch,
  ``(1 - lr * reg) ** count``: the per-sample decays of the row, applied in sequence.

Batches are a fresh random partition of the rows in every epoch (random labels, two stable
sorts); the number of batches is a power of two so labels come from random bytes with a mask.

Threads: on CPU with a budget of two or more torch threads, batches are prepared (listing,
negative sampling, bag layout: everything that does not read the parameters) in a background
thread while the caller's thread applies the previous ones, and torch's intra-op threads are
split between the two for the duration of the fit. Besides overlapping the two halves, this
avoids thousands of tiny OpenMP regions per epoch: when another process occupied one of the two
cores, a 2-thread OpenMP epoch took 7.2 s against 0.2-0.3 s for the pipelined one.
"""

from __future__ import annotations

import contextlib
import math
import queue
import threading
import time
import warnings
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch

from simulator.world.base import Interactions

# A dense (users x 2**item_bits) membership bitmap is used up to this many entries (64 MB of
# bools); beyond it known positives are looked up by binary search in the sorted keys.
_BITMAP_LIMIT = 1 << 26
MAX_AUTO_BATCH = 65_536
MIN_AUTO_BATCH = 2_048
_PREFETCH_DEPTH = 3

Plan = TypeVar("Plan")


def auto_batch_size(n_rows: int) -> int:
    """About 16 batches per epoch, each between 2,048 and 65,536 rows.

    The per-batch cost includes dense passes over both tables, so large batches are fastest;
    small tables still get enough updates per epoch.
    """
    return int(min(MAX_AUTO_BATCH, max(MIN_AUTO_BATCH, math.ceil(n_rows / 16))))


def n_batches_for(n_rows: int, batch_size: int) -> int:
    """The smallest power of two of batches whose mean size is at most `batch_size`."""
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    needed = max(1, math.ceil(n_rows / batch_size))
    return 1 << (needed - 1).bit_length()


def draw_negatives(
    pairs: PairIndex, user: torch.Tensor, n_items: int, generator: torch.Generator,
    dtype: torch.dtype = torch.int64,
) -> torch.Tensor:
    """One uniform item per entry of `user`, as `dtype`; a draw that hits a known positive
    of its user (`pairs`) is redrawn once (vectorised, so the redraw itself is not
    checked)."""
    device = user.device
    draws = torch.randint(n_items, (len(user),), generator=generator, device=device, dtype=dtype)
    redraw = pairs.contains(user, draws.long()).nonzero().squeeze(1)
    fresh = torch.randint(n_items, (len(redraw),), generator=generator, device=device,
                          dtype=dtype)
    return draws.index_copy_(0, redraw, fresh)


def decay_factors(counts: torch.Tensor, lr_reg: float) -> torch.Tensor:
    """(1 - lr*reg) ** count per row, as a column for broadcasting over the factors."""
    return torch.exp(counts.to(torch.float32) * math.log1p(-lr_reg)).unsqueeze(1)


def random_labels(n: int, n_labels: int, generator: torch.Generator) -> torch.Tensor:
    """`n` uniform labels in [0, n_labels) for a power-of-two `n_labels`, from random bytes.

    One 63-bit draw yields several labels, four to eight times cheaper than `randint`.
    """
    device = generator.device
    if n_labels == 1:
        return torch.zeros(n, dtype=torch.uint8, device=device)
    bits = n_labels.bit_length() - 1
    # random_() fills int64 with values in [0, 2**63): every piece but the top bit is uniform.
    dtype = torch.uint8 if bits <= 7 else torch.int16 if bits <= 15 else torch.int32
    per_word = 8 // torch.empty(0, dtype=dtype).element_size()
    words = torch.empty((n + per_word - 1) // per_word, dtype=torch.int64, device=device)
    words.random_(generator=generator)
    return words.view(dtype)[:n].bitwise_and_(n_labels - 1)


def _narrow(values: torch.Tensor, bound: int) -> torch.Tensor:
    """`values` (all in [0, bound)) as the narrowest signed integer type: radix sorts of int16
    are about four times faster than of int64."""
    if bound <= 1 << 15:
        return values.to(torch.int16)
    if bound <= 1 << 31:
        return values.to(torch.int32)
    return values


class PairIndex:
    """The (user, item[, value]) rows of one fit, packed and ordered user-major and item-major.

    `key_user_major` holds ``user << item_bits | item`` grouped by user (input order within a
    user); `key_item_major` the same keys grouped by item, and `user_of_item_major` maps each
    item-major row to its user-major row.
    """

    def __init__(
        self,
        data: Interactions,
        n_users: int,
        n_items: int,
        device: torch.device,
        with_values: bool = False,
    ) -> None:
        self.n = len(data)
        self.n_users = n_users
        self.n_items = n_items
        self.item_bits = max(1, (n_items - 1).bit_length())
        if (max(1, n_users - 1)).bit_length() + self.item_bits > 62:
            raise ValueError("n_users * n_items is too large to pack into 64-bit keys")
        self.item_mask = (1 << self.item_bits) - 1
        user = torch.as_tensor(np.ascontiguousarray(data.user), dtype=torch.int64, device=device)
        item = torch.as_tensor(np.ascontiguousarray(data.item), dtype=torch.int64, device=device)
        order = torch.sort(_narrow(user, n_users), stable=True).indices
        key = ((user << self.item_bits) | item).index_select(0, order)
        self.key_user_major = key
        self.values_user_major: torch.Tensor | None = None
        if with_values:
            rating = torch.as_tensor(
                np.ascontiguousarray(data.rating), dtype=torch.float32, device=device
            )
            self.values_user_major = rating.index_select(0, order)
        items_user_major = _narrow(key & self.item_mask, n_items)
        self.user_of_item_major = torch.sort(items_user_major, stable=True).indices
        self.key_item_major = key.index_select(0, self.user_of_item_major)
        self._bitmap: torch.Tensor | None = None
        self._sorted_keys: torch.Tensor | None = None
        if (n_users << self.item_bits) <= _BITMAP_LIMIT:
            self._bitmap = torch.zeros(n_users << self.item_bits, dtype=torch.bool, device=device)
            self._bitmap.index_fill_(0, key, True)
        else:
            self._sorted_keys = torch.sort(key).values

    def contains(self, user: torch.Tensor, item: torch.Tensor) -> torch.Tensor:
        """Boolean mask: is (user[k], item[k]) one of the rows?"""
        key = (user << self.item_bits) | item
        if self._bitmap is not None:
            return self._bitmap.index_select(0, key)
        assert self._sorted_keys is not None
        pos = torch.searchsorted(self._sorted_keys, key).clamp_(max=self.n - 1)
        return self._sorted_keys.index_select(0, pos) == key


@dataclass
class Batch:
    """One batch, listed user-major (the sample order) and item-major.

    `item_major_to_sample[t]` is the sample (user-major position) of item-major row t.
    """

    user: torch.Tensor
    item: torch.Tensor
    value: torch.Tensor | None
    item_major_user: torch.Tensor
    item_major_item: torch.Tensor
    item_major_to_sample: torch.Tensor

    def __len__(self) -> int:
        return len(self.user)


def epoch_batches(pairs: PairIndex, n_batches: int, generator: torch.Generator) -> Iterator[Batch]:
    """A fresh random partition of all rows into `n_batches` batches, visited in random order.

    Every row is in exactly one batch. Random labels are stably sorted twice, once in the
    user-major and once in the item-major order, which lists each batch grouped by user and
    grouped by item without any per-batch sorting.
    """
    n = pairs.n
    device = pairs.key_user_major.device
    labels = random_labels(n, n_batches, generator)
    rows_user_major = torch.sort(labels, stable=True).indices
    labels_item_major = labels.index_select(0, pairs.user_of_item_major)
    rows_item_major = torch.sort(labels_item_major, stable=True).indices
    # Position of every user-major row in the batch listing, seen from the item-major side.
    listing_pos = torch.empty_like(rows_user_major).index_copy_(
        0, rows_user_major, torch.arange(n, device=device)
    )
    listing_pos_item_major = listing_pos.index_select(0, pairs.user_of_item_major)
    counts = torch.bincount(labels, minlength=n_batches).tolist()
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).tolist()
    visit = torch.randperm(n_batches, generator=generator, device=device).tolist()
    bits, mask = pairs.item_bits, pairs.item_mask
    for b in visit:
        size, start = counts[b], starts[b]
        if size == 0:
            continue
        rows = rows_user_major[start : start + size]
        key = pairs.key_user_major.index_select(0, rows)
        value = None
        if pairs.values_user_major is not None:
            value = pairs.values_user_major.index_select(0, rows)
        rows_c = rows_item_major[start : start + size]
        key_c = pairs.key_item_major.index_select(0, rows_c)
        yield Batch(
            user=key >> bits,
            item=key & mask,
            value=value,
            item_major_user=key_c >> bits,
            item_major_item=key_c & mask,
            item_major_to_sample=listing_pos_item_major.index_select(0, rows_c).sub_(start),
        )


def bag_offsets(counts: list[torch.Tensor]) -> torch.Tensor:
    """Bag boundaries (with the final end) for consecutive groups of the given sizes."""
    sizes = torch.cat(counts)
    offsets = torch.zeros(len(sizes) + 1, dtype=torch.int64, device=sizes.device)
    torch.cumsum(sizes, 0, out=offsets[1:])
    return offsets


def sampled_scores(
    table: torch.Tensor, n_users: int, row_offsets: torch.Tensor, columns: torch.Tensor
) -> torch.Tensor:
    """table[u] . table[c] for every entry c of the user-grouped CSR (rows = users).

    One sampled dense-dense product: cheaper than gathering (batch, d) row copies on the
    CPU. On CUDA the entries are gathered instead: cuSPARSE expects sorted, distinct
    columns in a row, and a user's entries here repeat items and are not sorted.
    """
    if table.is_cuda:
        rows = torch.repeat_interleave(
            torch.arange(n_users, device=table.device), row_offsets.diff())
        return (table[rows] * table[columns]).sum(1)
    with warnings.catch_warnings():
        # torch flags every sparse CSR tensor as beta; the layout used here is plain CSR.
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        csr = torch.sparse_csr_tensor(
            row_offsets,
            columns,
            torch.zeros(len(columns), dtype=table.dtype, device=table.device),
            size=(n_users, table.shape[0]),
            check_invariants=False,
        )
    out = torch.sparse.sampled_addmm(csr, table[:n_users], table.t(), beta=0.0)
    return out.values()


def bag_sums(
    table: torch.Tensor, rows: torch.Tensor, offsets: torch.Tensor, weights: torch.Tensor
) -> torch.Tensor:
    """For each bag, the weighted sum of its rows of `table` (one row per bag, empty bags 0)."""
    return torch.nn.functional.embedding_bag(
        rows, table, offsets, mode="sum", per_sample_weights=weights, include_last_offset=True
    )


@contextlib.contextmanager
def pipeline_threads(device: torch.device) -> Iterator[bool]:
    """Yield whether to prepare batches in a second thread; if so, split torch's threads.

    The intra-op thread count is halved for the duration (two stages share the budget) and
    restored afterwards. A budget of one thread, or a CUDA device, trains sequentially.
    """
    threads = torch.get_num_threads()
    if device.type != "cpu" or threads < 2:
        yield False
        return
    torch.set_num_threads(max(1, threads // 2))
    try:
        yield True
    finally:
        torch.set_num_threads(threads)


class _End:
    """Marks the end of a prefetched stream, carrying the producer's exception if any."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


def prefetch(
    produce: Callable[[], Iterator[Plan]], depth: int = _PREFETCH_DEPTH
) -> Generator[Plan, None, None]:
    """Iterate over `produce()` run in a background thread, at most `depth` items ahead.

    Exceptions of the producer are re-raised here; closing the iterator stops the producer.
    """
    items: queue.Queue[Plan | _End] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: Plan | _End) -> bool:
        while not stop.is_set():
            try:
                items.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def run() -> None:
        try:
            for item in produce():
                if not put(item):
                    return
            put(_End())
        except BaseException as error:  # handed to the consumer, which re-raises it
            put(_End(error))

    worker = threading.Thread(target=run, name="privsim-batch-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item = items.get()
            if isinstance(item, _End):
                if item.error is not None:
                    raise item.error
                return
            yield item
    finally:
        stop.set()
        worker.join()


@dataclass
class EpochLog:
    """Mean loss and wall time of each epoch of one fit."""

    losses: list[float]
    seconds: list[float]


def train_epochs(
    pairs: PairIndex,
    n_batches: int,
    epochs: int,
    generator: torch.Generator,
    plan: Callable[[Batch], Plan],
    apply: Callable[[Plan], torch.Tensor],
    pipelined: bool,
    end_epoch: Callable[[int, float], bool] | None = None,
) -> EpochLog:
    """Run `epochs` epochs of minibatch updates.

    `plan(batch)` prepares a batch from the data and the generator alone (it may run in the
    prefetch thread, so it must not read the parameters); `apply(plan)` updates the parameters
    and returns the batch's summed loss. Losses are averaged over the rows of an epoch.
    `pipelined` (from `pipeline_threads`) runs the planning in a prefetch thread.
    `end_epoch(epoch, loss)` (0-based epoch, its mean loss) runs after each epoch; returning
    False stops training there (that epoch stays in the log).
    """
    device = pairs.key_user_major.device

    def produce() -> Generator[Plan | None, None, None]:
        for _ in range(epochs):
            for batch in epoch_batches(pairs, n_batches, generator):
                yield plan(batch)
            yield None  # end of epoch

    log = EpochLog([], [])
    stream = prefetch(produce) if pipelined else produce()
    with contextlib.closing(stream):
        total = torch.zeros((), dtype=torch.float64, device=device)
        tick = time.perf_counter()
        for item in stream:
            if item is None:
                log.losses.append(float(total) / pairs.n)
                log.seconds.append(time.perf_counter() - tick)
                if end_epoch is not None and not end_epoch(len(log.losses) - 1, log.losses[-1]):
                    break
                total = torch.zeros((), dtype=torch.float64, device=device)
                tick = time.perf_counter()
            else:
                total += apply(item)
    return log


@dataclass
class RowGroups:
    """Occurrences of table rows grouped by row, so that per-occurrence values (e.g. gradients
    of gathered rows) are summed per distinct row by one gather-reduce instead of a scatter.

    `rows` holds the distinct rows in ascending order, `counts` their occurrences, `inverse`
    the position in `rows` of every occurrence; `order` lists the occurrences row by row and
    `offsets` bounds each row's bag in it.
    """

    rows: torch.Tensor
    counts: torch.Tensor
    inverse: torch.Tensor
    order: torch.Tensor
    offsets: torch.Tensor

    @classmethod
    def of(cls, occurrences: torch.Tensor) -> RowGroups:
        """Group a 1-d tensor of row indices."""
        rows, inverse, counts = torch.unique(
            occurrences, sorted=True, return_inverse=True, return_counts=True
        )
        order = torch.sort(inverse, stable=True).indices
        return cls(rows, counts, inverse, order, bag_offsets([counts]))

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        """Per distinct row, the sum of the rows of `values` (one per occurrence), in input
        order within a row: deterministic on every device."""
        return torch.nn.functional.embedding_bag(
            self.order, values, self.offsets, mode="sum", include_last_offset=True
        )
