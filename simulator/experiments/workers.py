"""The worker processes of sweeps and externality studies on this machine.

A spawned worker is a fresh interpreter that spends seconds importing PyTorch, scikit-learn
and XGBoost before its first point. Workers are forked instead from a server process that
imported the simulator once (multiprocessing's `forkserver`, preloaded): each starts in
milliseconds, and a process that runs several sweeps or studies pays the imports once. The
server is a clean single-threaded process, so forking it copies no running threads (forking
the caller could: OpenMP pools, a dashboard's server). Where `forkserver` is missing
(Windows), workers are spawned.

The server keeps the working folder and environment it started with; `caller_state` and
`adopt` carry the caller's current ones to each point, so a worker resolves relative paths
and reads environment variables as the caller would.
"""

from __future__ import annotations

import multiprocessing
import os
from multiprocessing.context import BaseContext
from typing import Any

# The simulator, and PyTorch's compiler front end, which torch imports at the first optimiser
# a process makes (a second each; a worker that had to import it would pay that per point).
PRELOAD = ["simulator.experiments.runner", "torch._dynamo"]


def worker_context() -> BaseContext:
    """The multiprocessing context workers start from (see the module docstring)."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    return context


def caller_state() -> dict[str, Any]:
    """The caller's working folder and environment, for `adopt` in a worker."""
    return {"cwd": os.getcwd(), "env": dict(os.environ)}


def adopt(state: dict[str, Any] | None) -> None:
    """Take the caller's working folder and environment (a forked worker starts with the
    server's). Variables that a library reads when it loads (OpenMP, OpenBLAS) keep the
    values the server loaded it with."""
    if not state:
        return
    os.chdir(state["cwd"])
    os.environ.clear()
    os.environ.update(state["env"])
