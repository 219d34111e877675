"""User groups that metrics are sliced by."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

INVOLVEMENT = ("Low", "Med", "High")


@dataclass(frozen=True)
class Group:
    """A named set of users: `kind` is what splits them (e.g. 'inclination'), `name` the part."""

    kind: str
    name: str
    mask: np.ndarray


def involvement_groups(rating_counts: np.ndarray, share: float) -> np.ndarray:
    """Low / Med / High involvement, each round(share * n) users; -1 for everyone else.

    Low = fewest ratings, High = most, Med = closest to the median count (ties by index).
    """
    n = len(rating_counts)
    size = max(1, int(round(share * n)))
    label = np.full(n, -1, dtype=np.int64)
    by_count = np.argsort(rating_counts, kind="stable")
    label[by_count[:size]] = 0
    label[by_count[n - size :]] = 2
    distance = np.abs(rating_counts - np.median(rating_counts)).astype(np.float64)
    distance[label >= 0] = np.inf
    label[np.argsort(distance, kind="stable")[:size]] = 1
    return label


def build_groups(
    type_names: list[str],
    inclination: np.ndarray,
    involvement: np.ndarray,
    attributes: dict[str, np.ndarray],
    attribute_labels: dict[str, tuple[str, ...]],
) -> list[Group]:
    """All groups: everyone, each inclination type, Low/Med/High, each attribute value."""
    n = len(inclination)
    groups = [Group("all", "all", np.ones(n, dtype=bool))]
    groups += [Group("inclination", t, inclination == i) for i, t in enumerate(type_names)]
    groups += [Group("involvement", g, involvement == i) for i, g in enumerate(INVOLVEMENT)]
    for attribute, codes in attributes.items():
        labels = attribute_labels[attribute]
        groups += [
            Group(attribute, labels[c], codes == c)
            for c in range(len(labels))
            if np.any(codes == c)
        ]
    return groups


DISCLOSURE_BUCKETS = ("none", "under_half", "half_or_more", "all")


def disclosure_groups(n_disclosed: np.ndarray, fraction: np.ndarray) -> list[Group]:
    """Users by the share of what they experienced that they disclosed so far.

    `fraction` is that share (NaN for users who have experienced nothing yet). `none` holds
    users who disclosed nothing, those included; the platform still holds a representation
    of them.
    """
    masks = (n_disclosed == 0, (n_disclosed > 0) & (fraction < 0.5),
             (fraction >= 0.5) & (fraction < 1.0), (n_disclosed > 0) & (fraction >= 1.0))
    return [Group("disclosure", name, mask) for name, mask in
            zip(DISCLOSURE_BUCKETS, masks, strict=True)]
