"""The example shop the shipped scenario `own-data-recbole` reads, generated for the tests.

The scenario reads `$PRIVSIM_SHOP`; where it is unset, `ensure_shop` writes the shop
(`simulator.world.example_shop`) into a folder of this process that is removed at exit, and
points the variable at it.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

VARIABLE = "PRIVSIM_SHOP"


def ensure_shop() -> Path:
    """The folder `$PRIVSIM_SHOP` names, written first when the variable is unset."""
    if VARIABLE in os.environ:
        return Path(os.environ[VARIABLE])
    from simulator.world.example_shop import write_shop

    root = Path(tempfile.mkdtemp(prefix="privsim-shop-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    folder = write_shop(root / "shop")
    os.environ[VARIABLE] = str(folder)
    return folder
