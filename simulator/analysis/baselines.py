"""Whether the platform recommends worse than the popularity list it is measured against.

Every run measures, beside the platform's HR@k, the HR@k of a most-popular list on the same
held-out items (`pop_hr_k`). A platform below that list recommends worse than a platform
would ship, so every top-N effect read from it describes a platform no one would run; the
run's summary, its report and the dashboard say so.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

_POPULARITY_HR = re.compile(r"^pop_hr_(\d+)$")


def below_popularity(metrics: pd.DataFrame) -> str | None:
    """A line when the platform's HR@k at the last step measuring both is below the
    popularity list's: `HR@10 0.440 is below the popularity list's 0.775 by 0.335 at step 3
    (below at 2 of 2 measured steps)`; None when it is not, or either is not measured."""
    for column in metrics.columns:
        found = _POPULARITY_HR.match(str(column))
        if found is None or f"hr_{found.group(1)}" not in metrics:
            continue
        k = found.group(1)
        both = metrics[["step", f"hr_{k}", column]].dropna()
        if both.empty:
            return None
        ours, popular = both[f"hr_{k}"].to_numpy(float), both[column].to_numpy(float)
        if ours[-1] >= popular[-1]:
            return None
        below = int(np.sum(ours < popular))
        return (f"HR@{k} {ours[-1]:.3f} is below the popularity list's {popular[-1]:.3f} by "
                f"{popular[-1] - ours[-1]:.3f} at step {int(both['step'].iloc[-1])} (below at "
                f"{below} of {len(both)} measured steps): a most-popular list recommends "
                "better than this platform")
    return None
