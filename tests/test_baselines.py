"""The flag for a platform that recommends worse than the popularity list."""

from __future__ import annotations

import numpy as np
import pandas as pd

from simulator.analysis.baselines import below_popularity


def _metrics(ours: list[float], popular: list[float], k: int = 10) -> pd.DataFrame:
    return pd.DataFrame({"step": range(len(ours)), f"hr_{k}": ours, f"pop_hr_{k}": popular})


def test_a_platform_below_the_popularity_list_is_named_with_the_gap() -> None:
    line = below_popularity(_metrics([0.30, 0.50, 0.44], [0.70, 0.45, 0.775]))
    assert line is not None
    assert line.startswith("HR@10 0.440 is below the popularity list's 0.775 by 0.335 at step 2")
    assert "(below at 2 of 3 measured steps)" in line
    # the cut-off comes from the columns the run measured
    assert below_popularity(_metrics([0.1], [0.2], k=20)).startswith("HR@20 0.100")


def test_no_flag_at_or_above_popularity_or_without_both_measures() -> None:
    assert below_popularity(_metrics([0.30, 0.80], [0.70, 0.75])) is None
    assert below_popularity(_metrics([0.5], [0.5])) is None
    assert below_popularity(pd.DataFrame({"step": [0], "hr_10": [0.1]})) is None
    assert below_popularity(_metrics([np.nan, np.nan], [0.2, 0.3])) is None
    # steps that measured only one of the two are left out
    line = below_popularity(_metrics([0.2, np.nan], [0.3, 0.9]))
    assert line is not None and "at step 0 (below at 1 of 1 measured steps)" in line
