"""Shared test fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

DEFAULT_DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data"


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
    """The BLAS kernel the run uses, since the reference metrics depend on it."""
    import numpy  # noqa: F401  (loads its OpenBLAS)
    from threadpoolctl import threadpool_info

    kernels = sorted({str(pool.get("architecture")) for pool in threadpool_info()
                      if pool.get("internal_api") == "openblas"})
    return f"OpenBLAS kernels: {', '.join(kernels) or 'none'}"
