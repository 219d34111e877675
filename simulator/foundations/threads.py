"""How many threads the parallel libraries use, and how their idle threads wait.

The OpenMP runtimes inside PyTorch, XGBoost and scikit-learn (each its own libgomp) by
default spin on a core for a while before an idle thread sleeps. On a machine shared with
another busy process, a spinning thread holds the core that its descheduled sibling needs,
and a run took twice as long instead of a third longer. So privsim asks them to wait
passively (`OMP_WAIT_POLICY=PASSIVE`, read once when each runtime loads, which is why
`import simulator` sets it before anything heavy is imported; a value already in the
environment is kept), and a run uses as many threads as the cores the process may actually
run on: its CPU affinity, lowered by a cgroup CPU quota where one is set (containers, SLURM,
systemd), or `PRIVSIM_THREADS` where that is given (sweep workers get their share of it).

No library reads cgroup quotas and affinity together, hence these few functions.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

THREADS_VARIABLE = "PRIVSIM_THREADS"
WAIT_VARIABLE = "OMP_WAIT_POLICY"
# Modules that load an OpenMP runtime: once one is imported, its wait policy is fixed.
OPENMP_MODULES = ("torch", "xgboost", "sklearn", "opacus")
_CGROUP = Path("/sys/fs/cgroup")

_wait_policy_at_load: str | None = None
_policy_recorded = False


def wait_passively() -> None:
    """Ask OpenMP threads to sleep when idle, unless the environment already says how they
    should wait or a runtime has loaded (then it is too late); remembers the policy the
    runtimes started with, for the manifest."""
    global _wait_policy_at_load, _policy_recorded
    if _policy_recorded:
        return
    _policy_recorded = True
    if any(name in sys.modules for name in OPENMP_MODULES):
        _wait_policy_at_load = None  # unknown: loaded before privsim could say
        return
    os.environ.setdefault(WAIT_VARIABLE, "PASSIVE")
    _wait_policy_at_load = os.environ[WAIT_VARIABLE]


def cgroup_cpu_limit(root: Path = _CGROUP, membership: str | None = None) -> float | None:
    """The CPU quota of this process's cgroup in cores, the tightest along its path (cgroup
    v2 `cpu.max`, or v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`); None without a quota.
    `membership` is the text of /proc/self/cgroup (read when not given)."""
    if membership is None:
        try:
            membership = Path("/proc/self/cgroup").read_text()
        except OSError:
            membership = ""
    limits = []
    for line in membership.splitlines():
        _, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        if controllers == "":  # v2: one hierarchy
            folders = _ancestors(root, path)
            limits += [_v2_limit(folder / "cpu.max") for folder in folders]
        elif "cpu" in controllers.split(","):
            limits += [_v1_limit(folder) for folder in _ancestors(root / "cpu", path)]
            limits += [_v1_limit(folder) for folder in _ancestors(root / controllers, path)]
    found = [limit for limit in limits if limit is not None]
    return min(found) if found else None


def _ancestors(base: Path, path: str) -> list[Path]:
    """`base/path` and every folder above it up to `base` (inside a container whose cgroup
    namespace hides the path, `base` itself is its cgroup)."""
    parts = [part for part in path.strip("/").split("/") if part and part != ".."]
    return [base.joinpath(*parts[:length]) for length in range(len(parts), -1, -1)]


def _v2_limit(cpu_max: Path) -> float | None:
    try:
        quota, period = _split_cpu_max(cpu_max.read_text())
    except (OSError, ValueError):
        return None
    return None if quota is None else quota / period


def _v1_limit(folder: Path) -> float | None:
    try:
        quota = int((folder / "cpu.cfs_quota_us").read_text())
        period = int((folder / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota / period if quota > 0 and period > 0 else None


def _split_cpu_max(text: str) -> tuple[int | None, int]:
    """`cpu.max` holds "QUOTA PERIOD", QUOTA being "max" without a limit."""
    quota, period = text.split()
    if int(period) <= 0:
        raise ValueError(text)
    return (None if quota == "max" else int(quota)), int(period)


def available_cores() -> tuple[int, str]:
    """How many cores this process can use, and what said so (`affinity`, `cgroup quota`)."""
    try:
        cores, source = len(os.sched_getaffinity(0)), "affinity"
    except (AttributeError, OSError):  # not Linux
        cores, source = os.cpu_count() or 1, "cpu count"
    quota = cgroup_cpu_limit()
    if quota is not None and math.ceil(quota) < cores:
        cores, source = max(1, math.ceil(quota)), "cgroup quota"
    return max(1, cores), source


def thread_budget() -> tuple[int, str]:
    """The threads a run uses: `PRIVSIM_THREADS` where given, else the available cores."""
    given = os.environ.get(THREADS_VARIABLE, "").strip()
    if given:
        if not given.isascii() or not given.isdigit() or int(given) < 1:
            from simulator.foundations.errors import PrivsimError

            raise PrivsimError(f"{THREADS_VARIABLE}={given[:40]!r}: expected a whole number "
                               "of threads, at least 1")
        return int(given), THREADS_VARIABLE
    return available_cores()


def threads_per_worker(workers: int) -> int:
    """Each of `workers` processes' share of the thread budget (at least one): a worker
    that took more would wait on threads its siblings' cores are busy with."""
    return max(1, thread_budget()[0] // max(1, workers))


@contextmanager
def run_threads() -> Iterator[dict[str, Any]]:
    """Set PyTorch's, OpenBLAS's and the OpenMP runtimes' thread counts to the budget for
    the duration (restored afterwards); yields what was set, for the manifest. XGBoost takes
    PyTorch's count (`n_jobs`)."""
    import torch
    from threadpoolctl import threadpool_info, threadpool_limits

    threads, source = thread_budget()
    cores, _ = available_cores()
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with threadpool_limits(limits=threads):
            yield {
                "threads": threads,
                "from": source,
                "cores_available": cores,
                "torch_intra_op": torch.get_num_threads(),
                "xgboost": torch.get_num_threads(),
                "blas": max((pool["num_threads"] for pool in threadpool_info()
                             if pool["user_api"] == "blas"), default=None),
                "omp_wait_policy": openmp_wait_policy(),
            }
    finally:
        torch.set_num_threads(before)


def openmp_wait_policy() -> str:
    """How this process's OpenMP threads wait: the policy the runtimes loaded with
    (`default`: spinning a while first), or `unknown` where they loaded before privsim."""
    if not _policy_recorded:
        wait_passively()
    if _wait_policy_at_load is None:
        return "unknown"
    return _wait_policy_at_load or "default"
