"""The per-user agents table, spilled to disk step by step so that no run holds it whole.

With a million users, keeping every step's row per user in memory until the end costs
gigabytes; instead each step's rows go to their own Parquet file in a hidden folder of the
run, and `finish` streams them, in step order, into `agents.parquet`. A resumed run
rewrites the files of the steps it runs again, so the table is the same as an unbroken
run's.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from simulator.runs.outputs import atomic_path

SPILL_FOLDER = ".agents-steps"


def agents_frame(rows: list[dict[str, np.ndarray]], type_names: list[str]) -> pd.DataFrame:
    """Recorded per-step snapshots as one table (inclination as a categorical)."""
    if not rows:
        return pd.DataFrame()
    frame = pd.DataFrame({key: np.concatenate([row[key] for row in rows]) for key in rows[0]})
    frame["inclination"] = pd.Categorical.from_codes(frame["inclination"], pd.Index(type_names))
    return frame


class AgentTableSpill:
    """Writes each step's agent rows to `<run>/.agents-steps/step-NNNNNN.parquet`."""

    def __init__(self, run_dir: Path, type_names: list[str]) -> None:
        self.folder = run_dir / SPILL_FOLDER
        self.type_names = type_names
        self.seconds = 0.0  # spent writing, for the run's timings

    def write(self, rows: list[dict[str, np.ndarray]]) -> None:
        """Write (and so release) the snapshots recorded since the last call."""
        if not rows:
            return
        started = time.perf_counter()
        self.folder.mkdir(exist_ok=True)
        for row in rows:
            step = int(row["step"][0]) if len(row["step"]) else -1
            if step < 0:
                continue
            frame = agents_frame([row], self.type_names)
            with atomic_path(self.folder / f"step-{step:06d}.parquet") as tmp:
                frame.to_parquet(tmp, index=False, engine="pyarrow")
        self.seconds += time.perf_counter() - started

    def finish(self, path: Path, steps: int) -> None:
        """Stream the steps' files, in order, into one Parquet table at `path` (atomically),
        then remove them. Files of steps at or after `steps` are not part of the run."""
        started = time.perf_counter()
        files = [self.folder / f"step-{step:06d}.parquet" for step in range(steps)]
        files = [file for file in files if file.is_file()]
        with atomic_path(path) as tmp:
            if not files:
                pd.DataFrame().to_parquet(tmp, index=False, engine="pyarrow")
            else:
                schema = pq.read_schema(files[0])
                with pq.ParquetWriter(tmp, schema) as writer:
                    for file in files:
                        writer.write_table(pq.read_table(file, schema=schema))
        shutil.rmtree(self.folder, ignore_errors=True)
        self.seconds += time.perf_counter() - started


def read_agents(path: Path) -> pd.DataFrame:
    """A run's agents table (empty when the run kept none)."""
    table = pq.read_table(path)
    return table.to_pandas() if table.num_columns else pd.DataFrame()

