"""Recording the metrics rows: privsim's `Records` against Mesa's `DataCollector`.

Run as `python benchmarks/bench_records.py [REPEATS]`. Builds and runs the quickstart
(20 steps, CPU) with the rows kept in `Records` only, and with a `DataCollector` that also
collects each step's metrics row (one dict-valued model reporter: the columns differ by
scenario and appear as what they measure first exists, so they cannot be declared up
front), interleaving the two so that load from other processes hits both alike. Then the
cost of one `collect` against one list append on a quickstart-sized row. Prints seconds
(median and minimum over the repeats) and checks that both give the same metrics table.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import mesa
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from simulator.experiments.catalog import load_scenario  # noqa: E402
from simulator.simulation.model import PrivacyModel  # noqa: E402


class CollectedModel(PrivacyModel):
    """The model with a Mesa `DataCollector` collecting every step's metrics row too."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.datacollector = mesa.DataCollector(
            model_reporters={"row": lambda m: m.records.metrics[-1]})

    def step(self) -> None:
        """One step, then collect."""
        super().step()
        self.datacollector.collect(self)


def run_once(cls: type[PrivacyModel]) -> tuple[float, PrivacyModel]:
    """Seconds to build and run the quickstart on the CPU."""
    scenario = load_scenario("quickstart", ["simulation.device=cpu", "output.plots=false"])
    started = time.perf_counter()
    model = cls(scenario)
    model.run()
    return time.perf_counter() - started, model


def per_row(row: dict[str, object], repeats: int = 20_000) -> tuple[float, float]:
    """Seconds per row appended to a list, and per `DataCollector.collect` of it."""
    class Holder(mesa.Model):
        latest = row

    holder = Holder(rng=0)
    collector = mesa.DataCollector(model_reporters={"row": lambda m: m.latest})
    kept: list[dict[str, object]] = []
    started = time.perf_counter()
    for _ in range(repeats):
        kept.append(row)
    appended = (time.perf_counter() - started) / repeats
    started = time.perf_counter()
    for _ in range(repeats):
        collector.collect(holder)
    collected = (time.perf_counter() - started) / repeats
    return appended, collected


def main() -> None:
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    run_once(PrivacyModel)  # warm up imports and torch
    plain, collected = [], []
    for _ in range(repeats):
        seconds, model = run_once(PrivacyModel)
        plain.append(seconds)
        seconds, other = run_once(CollectedModel)
        collected.append(seconds)
    assert isinstance(other, CollectedModel)
    frame = pd.DataFrame(list(other.datacollector.model_vars["row"]))
    timings = [c for c in frame.columns if str(c).startswith("seconds")]
    same = frame.drop(columns=timings).equals(
        pd.DataFrame(model.records.metrics).drop(columns=timings))
    for name, times in (("records", plain), ("records+datacollector", collected)):
        print(f"quickstart_{name}_seconds: median {statistics.median(times):.3f} "
              f"min {min(times):.3f} (n={repeats})")
    print(f"same_metrics_table: {same}")
    appended, collect = per_row(model.records.metrics[-1])
    print(f"per_row_list_append_us: {appended * 1e6:.2f}")
    print(f"per_row_datacollector_collect_us: {collect * 1e6:.2f}")


if __name__ == "__main__":
    main()
