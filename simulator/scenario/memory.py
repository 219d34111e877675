"""How much memory a run will need, estimated before anything is allocated.

A synthetic world's size follows from its settings (users x mean ratings per user), so a
world that cannot fit is refused before it is generated, naming the setting to lower.
The coefficients were measured on this code (peak resident memory of `privsim run
quickstart` at 20k-100k users and 2-6M ratings, CPU): about 180 bytes per rating (the
world, its train/test split, the disclosure schedule, the platform's copy and the training
tensors), 1.6 KB per user plus 16 bytes per user and item per latent factor (the model
and its optimiser state), and 0.75 GiB for the interpreter, its libraries and the
generator's working chunk. `benchmarks/bench_scale.py` prints the estimate beside the
measured peak.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from simulator.scenario.schema import SYNTHETIC_ITEMS, SYNTHETIC_USERS, Scenario

BYTES_PER_RATING = 180
BYTES_PER_USER = 1600
BYTES_PER_FACTOR_ROW = 16  # float32 parameter, its gradient and two Adam moments
BASE_BYTES = int(0.75 * 2**30)
# What a run may plan to use of the memory available when it starts.
USABLE_SHARE = 0.9
GIB = 2**30


@dataclass
class MemoryEstimate:
    """Estimated peak bytes of a run, in host memory and on the GPU."""

    n_users: int
    n_items: int
    n_ratings: int
    host_bytes: int
    device_bytes: int
    model_bytes: int = 0
    model_settings: str = "platform.factors"


def estimate_memory(
    scenario: Scenario, n_users: int, n_items: int, n_ratings: int
) -> MemoryEstimate:
    """The peak memory a run of `scenario` on a world of that size should need."""
    model = _model_parameters(scenario, n_users, n_items) * BYTES_PER_FACTOR_ROW
    host = BASE_BYTES + BYTES_PER_RATING * n_ratings + BYTES_PER_USER * n_users + model
    # On a GPU: the model, the training ratings (indices, values, sorted keys) and one
    # ranking chunk of 1,024 users x all items (scores, mask, relevance).
    device = model + 40 * n_ratings + 1024 * n_items * 12
    settings = ("platform.metamf.hidden, item_dim or rank"
                if scenario.platform.model in ("metamf", "nometamf") else "platform.factors")
    return MemoryEstimate(n_users, n_items, n_ratings, host, device, model, settings)


def _model_parameters(scenario: Scenario, n_users: int, n_items: int) -> int:
    """How many parameters the platform's model holds (MetaMF: its generator networks and
    per-item rows, which grow with the hidden width)."""
    platform = scenario.platform
    if platform.model not in ("metamf", "nometamf"):
        return (n_users + n_items) * platform.factors
    m = platform.metamf
    mid = m.item_dim // 4
    return (n_users * m.user_dim + m.user_dim * m.memory_dim + 3 * m.memory_dim * m.hidden
            + m.hidden * (m.item_dim * mid + 2 * mid + 1 + m.rank * m.item_dim)
            + n_items * (m.rank * m.hidden + m.rank))


def synthetic_size(scenario: Scenario) -> tuple[int, int, int]:
    """(users, items, ratings) of the synthetic world the scenario asks for."""
    world = scenario.world
    n_users = world.n_users or SYNTHETIC_USERS
    n_items = world.n_items or SYNTHETIC_ITEMS
    per_user = min(world.mean_ratings_per_user, n_items // 2)
    return n_users, n_items, int(n_users * per_user)


def available_host_bytes() -> int | None:
    """Memory available to a new allocation now (Linux MemAvailable), else physical memory;
    None when neither can be read."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_fits(estimate: MemoryEstimate, device_type: str, source: str) -> None:
    """Refuse a run that will not fit in host (or GPU) memory, naming what to lower."""
    from simulator.foundations.errors import ScenarioError

    settings = ("world.n_users or world.mean_ratings_per_user" if source == "synthetic"
                else "world.n_items (or use a smaller data set)")
    if estimate.model_bytes > estimate.host_bytes / 2:  # the model, not the world, is large
        settings = estimate.model_settings
    available = available_host_bytes()
    if available is not None and estimate.host_bytes > USABLE_SHARE * available:
        raise ScenarioError(
            f"a world of {estimate.n_users:,} users, {estimate.n_items:,} items and about "
            f"{estimate.n_ratings:,} ratings needs about {estimate.host_bytes / GIB:.1f} GiB "
            f"of memory; {available / GIB:.1f} GiB is available: lower {settings}"
        )
    if device_type == "cuda":
        import torch

        free, _ = torch.cuda.mem_get_info()
        if estimate.device_bytes > USABLE_SHARE * free:
            raise ScenarioError(
                f"a world of {estimate.n_users:,} users and about {estimate.n_ratings:,} "
                f"ratings needs about {estimate.device_bytes / GIB:.1f} GiB of GPU memory; "
                f"{free / GIB:.1f} GiB is free: lower {settings} or platform.factors, or "
                f"set simulation.device=cpu"
            )
