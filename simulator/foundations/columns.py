"""The columns a measurement or a defense writes, declared with the values they can take."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

PLACEHOLDER = re.compile(r"\{[a-z_]+\}")  # a part of a column name a scenario chooses


@dataclass(frozen=True)
class Column:
    """A column a measurement writes: its name, in which a `{placeholder}` part stands for
    what the scenario chooses (`{k}` a list length, `{attribute}`, `{classifier}`), and the
    values it can take (NaN aside: a value undefined at a step). The outputs doc, the
    checks of every recorded column and the results table's intervals read these."""

    name: str
    low: float = -math.inf
    high: float = math.inf

    def matches(self, column: str) -> bool:
        """Whether `column` is this column with its placeholders filled in."""
        parts = PLACEHOLDER.split(self.name)
        pattern = "[A-Za-z0-9_]+".join(re.escape(part) for part in parts)
        return re.fullmatch(pattern, column) is not None


SHARE = (0.0, 1.0)  # rates, AUCs and shares
COUNT = (0.0, math.inf)  # counts and errors
CHANGE = (-1.0, 1.0)  # the change of a share
