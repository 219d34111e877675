"""The test suite.

NumPy's OpenBLAS chooses its kernels by CPU, and the last bits of that choice reach the
attackers that run many dense updates (scikit-learn's MLP), so the recorded reference
metrics (`tests/reference_metrics.json`) would differ between machines. Every x86-64 machine
with AVX2 runs the same kernel here; it is set before NumPy loads, for the tests and for
`python -m tests.reference_metrics`.
"""

import os
import sys

BLAS_KERNEL = "Haswell"


def _has_avx2() -> bool:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            return " avx2" in info.read()
    except OSError:
        return False


if "numpy" not in sys.modules and _has_avx2():
    os.environ.setdefault("OPENBLAS_CORETYPE", BLAS_KERNEL)
