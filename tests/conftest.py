"""Shared test fixtures, and how the suite spreads over the machine's cores.

The README's test command runs the suite on pytest-xdist workers, one per available core
(`simulator.foundations.threads.available_cores`: CPU affinity and cgroup quota); each worker's
runs and libraries then use its share of the cores (`PRIVSIM_THREADS`), so the workers do
not oversubscribe the machine.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import pytest
import typer.testing

from simulator.foundations.threads import THREADS_VARIABLE, available_cores

DEFAULT_DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data"


# typer's test runner rebuilds the click command from the function signatures at every
# invoke (about 15 ms: it evaluates every annotation); the suite invokes the CLI thousands of
# times, so the command of each app is built once. A typer without the hook is used as is.
if hasattr(typer.testing, "_get_command"):
    typer.testing._get_command = functools.cache(typer.testing._get_command)


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """`-n auto`: one worker per core this process may use."""
    return available_cores()[0]


def pytest_configure(config: pytest.Config) -> None:
    """In a worker, hold every library to the worker's share of the cores; write the example
    shop the shipped scenario `own-data-recbole` reads (`tests/shop.py`)."""
    from tests.shop import ensure_shop

    ensure_shop()
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1 and THREADS_VARIABLE not in os.environ:
        os.environ[THREADS_VARIABLE] = str(max(1, available_cores()[0] // workers))
    if THREADS_VARIABLE in os.environ:
        import torch
        from threadpoolctl import threadpool_limits

        threads = int(os.environ[THREADS_VARIABLE])
        torch.set_num_threads(threads)
        threadpool_limits(limits=threads)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Modules marked `heavy` first: each xdist worker takes whole modules (`--dist
    loadscope`), so the long ones start early and the many short ones fill in at the end,
    and the workers finish together."""
    items.sort(key=lambda item: item.get_closest_marker("heavy") is None)  # a stable sort


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The folder holding the MovieLens copies: $PRIVSIM_DATA, else shared/data beside the
    repository. Tests that need it are skipped when it is absent."""
    path = Path(os.environ.get("PRIVSIM_DATA", DEFAULT_DATA_DIR))
    if not path.is_dir():
        pytest.skip(
            f"MovieLens data folder {path} not found; set PRIVSIM_DATA to a folder "
            "holding ml-100k/ and ml-1m-head/"
        )
    return path


def pytest_report_header() -> str:
    """The BLAS kernel and the thread budget the run uses."""
    import numpy  # noqa: F401  (loads its OpenBLAS)
    from threadpoolctl import threadpool_info

    kernels = sorted({str(pool.get("architecture")) for pool in threadpool_info()
                      if pool.get("internal_api") == "openblas"})
    cores, source = available_cores()
    return (f"OpenBLAS kernels: {', '.join(kernels) or 'none'}; {cores} cores ({source}); "
            f"{THREADS_VARIABLE}={os.environ.get(THREADS_VARIABLE, 'unset')}")
