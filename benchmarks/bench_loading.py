"""Reading a world from files: the MovieLens loader against the same ratings as a CSV table,
a Parquet table and RecBole atomic files (the generic loader, `simulator.world.files`).

Run as `python benchmarks/bench_loading.py [FOLDER] [REPEATS]` (default: the shared
MovieLens 1M head, 3 repeats). Writes the folder's ratings in each format to a temporary
folder, checks that every loader gives the same ratings, and prints each loader's best time
and its ratio to the MovieLens loader measured in the same run (interleaved, so load from
other processes hits them alike).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from simulator.world.base import World  # noqa: E402
from simulator.world.files import load_files, load_recbole  # noqa: E402
from simulator.world.movielens import load_movielens  # noqa: E402

DEFAULT = Path(os.environ.get("PRIVSIM_DATA", "../shared/data")) / "ml-1m-head"


def write_copies(world: World, folder: Path) -> None:
    """The world's ratings, with its original ids, as CSV, Parquet and RecBole files."""
    import pandas as pd

    r = world.ratings
    frame = pd.DataFrame({"user_id": world.user_ids[r.user], "item_id": world.item_ids[r.item],
                          "rating": r.rating.astype(float), "timestamp": r.timestamp})
    frame.to_csv(folder / "ratings.csv", index=False)
    frame.to_parquet(folder / "ratings.parquet", index=False)
    (folder / "recbole").mkdir()
    typed = {"user_id": "user_id:token", "item_id": "item_id:token",
             "rating": "rating:float", "timestamp": "timestamp:float"}
    frame.rename(columns=typed).to_csv(folder / "recbole" / "copy.inter", sep="\t",
                                       index=False)


def main() -> None:
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    reference = load_movielens(source)
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        write_copies(reference, folder)
        loaders: dict[str, Callable[[], World]] = {
            "movielens": lambda: load_movielens(source),
            "csv": lambda: load_files(folder / "ratings.csv"),
            "parquet": lambda: load_files(folder / "ratings.parquet"),
            "recbole": lambda: load_recbole(folder / "recbole"),
        }
        times: dict[str, list[float]] = {label: [] for label in loaders}
        for _ in range(repeats):
            for label, load in loaders.items():
                started = time.perf_counter()
                world = load()
                times[label].append(time.perf_counter() - started)
                for part in ("user", "item", "rating", "timestamp"):
                    assert np.array_equal(getattr(world.ratings, part),
                                          getattr(reference.ratings, part)), (label, part)
    base = min(times["movielens"])
    print(f"{source.name}: {len(reference.ratings):,} ratings, {reference.n_users:,} users, "
          f"{reference.n_items:,} items; best of {repeats}")
    for label, found in times.items():
        print(f"  {label:<10} {min(found):6.2f} s  {min(found) / base:5.2f}x the MovieLens loader")


if __name__ == "__main__":
    main()
