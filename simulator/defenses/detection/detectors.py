"""Fake-profile (shilling) detection the platform runs on its rating table before training.

Three detectors, all returning a boolean mask over users (True = flagged as fake):

- `pca_varselect`: Mehta & Nejdl's unsupervised PCA VarSelect; told how many users to flag.
- `threshold_detect`: outlier test on the generic profile features of `profile_features`
  (RDMA, WDMA, DegSim, LengthVar; Chirita et al. 2005, Williams et al. 2007).
- `supervised_detector` / `supervised_detect`: a random forest over the same features,
  trained on profiles the platform labelled itself (its own injected attack profiles plus
  genuine users).

`detection_report` scores a mask against the ground truth and `remove_users` drops the
flagged users' ratings before the recommender is retrained.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from sklearn.ensemble import RandomForestClassifier
from sklearn.utils.extmath import randomized_svd

from simulator.world.base import Interactions

FEATURE_NAMES: tuple[str, ...] = ("rdma", "wdma", "degsim", "lengthvar", "popularity")
# Which tail of each feature is suspicious (+1 high, -1 low, 0 unused), and why:
# - rdma, wdma (+1): random fillers land on sparsely rated items, where a rating deviates most
#   from the thin agreement and 1/count_i is large; the pushed target is far from its mean too;
# - degsim (-1): with the cosine form used here, a profile filled with noise around item means
#   shares no taste with anyone, so even its nearest neighbours are far (on MovieLens 100K
#   with a 3% average attack, low degsim separates fakes from genuine users with AUC 0.995).
#   Near-identical template clones would instead be each other's neighbours: pass +1 then;
# - lengthvar (0, left out of the threshold score): attacks choose ordinary profile lengths
#   (fillers of about the genuine density), so typical fakes sit in the middle; with it the
#   score's top 22 held 0 of 28 fakes on that MovieLens 100K attack, without it 21. It stays a
#   feature for supervised detectors, which learn when length matters;
# - popularity (-1): the mean log rating count of the user's items. Fillers drawn uniformly
#   over the catalogue land in the long tail, while genuine users mostly rate what is popular.
FEATURE_DIRECTIONS: tuple[int, ...] = (1, 1, -1, 0, -1)
# rdma and wdma are ratios spanning orders of magnitude (1 / count_i), so they are compared on
# a log scale; otherwise the heavy right tail of genuine fans of rare items swamps the z-scores.
FEATURE_LOG_SCALE: tuple[bool, ...] = (True, True, False, False, False)

_SVD_SEED = 0  # fixed solver seed: the randomized SVD is a numerical method, not a model draw
_SIM_BLOCK = 1024  # rows of the user-user similarity computed at once (bounds memory)
_MAD_TO_STD = 1.4826  # median absolute deviation -> standard deviation under normality


# --------------------------------------------------------------------------- validation


def _check_sizes(n_users: int, n_items: int) -> None:
    if int(n_users) < 1:
        raise ValueError(f"n_users must be a positive integer, got {n_users!r}")
    if int(n_items) < 1:
        raise ValueError(f"n_items must be a positive integer, got {n_items!r}")


def _check_ratings(ratings: Interactions, n_users: int, n_items: int) -> None:
    _check_sizes(n_users, n_items)
    if len(ratings) == 0:
        return
    if ratings.user.min() < 0 or ratings.user.max() >= n_users:
        raise ValueError(f"ratings.user must lie in [0, {n_users}), the n_users given")
    if ratings.item.min() < 0 or ratings.item.max() >= n_items:
        raise ValueError(f"ratings.item must lie in [0, {n_items}), the n_items given")


def _check_n_flag(n_flag: int, n_users: int) -> int:
    if not 0 <= int(n_flag) <= n_users:
        raise ValueError(f"n_flag must be an integer in [0, {n_users}], got {n_flag!r}")
    return int(n_flag)


def _as_mask(mask: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(mask)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D mask over users, got shape {arr.shape}")
    if arr.dtype != bool and not np.isin(arr, (0, 1)).all():
        raise ValueError(f"{name} must be boolean (or 0/1), got values outside {{0, 1}}")
    return arr.astype(bool)


def _check_features(features: np.ndarray) -> np.ndarray:
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] < 1:
        raise ValueError(f"features must be a 2-D (users, features) array, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("features must be finite")
    return x


# --------------------------------------------------------------------------- rating table


def _latest_ratings(ratings: Interactions) -> Interactions:
    """One rating per (user, item): the most recent one, so matrices never sum repeats."""
    if len(ratings) == 0:
        return ratings
    order = np.lexsort((ratings.timestamp, ratings.item, ratings.user))
    u, i = ratings.user[order], ratings.item[order]
    last = np.ones(len(order), dtype=bool)
    last[:-1] = (u[1:] != u[:-1]) | (i[1:] != i[:-1])
    return ratings.subset(order[last])


def _matrix(
    user: np.ndarray, item: np.ndarray, values: np.ndarray, n_users: int, n_items: int
) -> sp.csr_matrix:
    return sp.csr_matrix(
        (values.astype(np.float64), (user, item)), shape=(n_users, n_items)
    )


# --------------------------------------------------------------------------- features


def _deviation_features(
    table: Interactions, n_users: int, n_items: int, counts_u: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """RDMA and WDMA per user (Chirita, Nejdl, Zamfir 2005)."""
    r = table.rating.astype(np.float64)
    count_i = np.bincount(table.item, minlength=n_items).astype(np.float64)
    mean_i = np.bincount(table.item, weights=r, minlength=n_items) / np.maximum(count_i, 1)
    dev = np.abs(r - mean_i[table.item])
    n_i = count_i[table.item]  # >= 1 for every rated item
    denom = np.maximum(counts_u, 1)
    rdma = np.bincount(table.user, weights=dev / n_i, minlength=n_users) / denom
    wdma = np.bincount(table.user, weights=dev / n_i**2, minlength=n_users) / denom
    return rdma, wdma


def _degsim(table: Interactions, n_users: int, n_items: int, k: int) -> np.ndarray:
    """Mean similarity of each user to its k most similar other users."""
    if n_users < 2 or len(table) == 0:
        return np.zeros(n_users)
    r = table.rating.astype(np.float64)
    counts = np.bincount(table.user, minlength=n_users)
    mean_u = np.bincount(table.user, weights=r, minlength=n_users) / np.maximum(counts, 1)
    centred = _matrix(table.user, table.item, r - mean_u[table.user], n_users, n_items)
    norms = np.sqrt(np.asarray(centred.multiply(centred).sum(axis=1)).ravel())
    inv = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    unit = sp.diags(inv) @ centred
    unit_t = unit.T.tocsr()
    k = min(k, n_users - 1)
    out = np.zeros(n_users)
    for start in range(0, n_users, _SIM_BLOCK):
        stop = min(start + _SIM_BLOCK, n_users)
        sims = (unit[start:stop] @ unit_t).toarray()
        sims[np.arange(stop - start), np.arange(start, stop)] = -np.inf  # not one's own peer
        top = np.partition(sims, n_users - k, axis=1)[:, n_users - k:]
        out[start:stop] = top.mean(axis=1)
    out[norms == 0] = 0.0
    return out


def _length_var(counts_u: np.ndarray) -> np.ndarray:
    """LengthVar: |n_u - mean n| / sum_v (n_v - mean n)^2 over users with ratings."""
    rated = counts_u > 0
    out = np.zeros(len(counts_u))
    if not rated.any():
        return out
    n = counts_u[rated].astype(np.float64)
    spread = np.sum((n - n.mean()) ** 2)
    if spread > 0:
        out[rated] = np.abs(n - n.mean()) / spread
    return out


def profile_features(
    ratings: Interactions, n_users: int, n_items: int, k: int = 10
) -> np.ndarray:
    """Generic detection features per user, (n_users, 5), columns in FEATURE_NAMES order.

    - rdma: mean over the user's items of |r_ui - mean_i| / count_i;
    - wdma: the same with count_i**2, stressing sparsely rated items;
    - degsim: mean similarity to the user's k most similar users. Pearson over co-rated items
      is approximated by the cosine of user-mean-centred rows with missing = 0: the numerator
      is exactly the co-rated Pearson numerator, the norms run over all of each user's items;
    - lengthvar: |n_u - mean n| / sum_v (n_v - mean n)^2 over users with ratings;
    - popularity: mean over the user's items of log(1 + count_i).

    Item statistics use every rating in the table (as the platform sees it); a repeated
    (user, item) pair counts once, with its latest rating. Users with no ratings get zeros.
    """
    if int(k) < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    _check_ratings(ratings, n_users, n_items)
    table = _latest_ratings(ratings)
    counts_u = np.bincount(table.user, minlength=n_users).astype(np.float64)
    rdma, wdma = _deviation_features(table, n_users, n_items, counts_u)
    degsim = _degsim(table, n_users, n_items, int(k))
    log_count = np.log1p(np.bincount(table.item, minlength=n_items).astype(np.float64))
    weighted: np.ndarray = np.bincount(table.user, weights=log_count[table.item],
                                       minlength=n_users)
    popularity = weighted / np.maximum(counts_u, 1.0)
    features = np.column_stack([rdma, wdma, degsim, _length_var(counts_u), popularity])
    features[counts_u == 0] = 0.0
    return features


# --------------------------------------------------------------------------- detectors


def _lowest(scores: np.ndarray, n_flag: int) -> np.ndarray:
    """Mask of the n_flag lowest scores; ties broken by user index, so it is deterministic."""
    flagged = np.zeros(len(scores), dtype=bool)
    flagged[np.argsort(scores, kind="stable")[:n_flag]] = True
    return flagged


def pca_varselect(
    ratings: Interactions, n_users: int, n_items: int, n_flag: int, components: int = 3
) -> np.ndarray:
    """PCA VarSelect (Mehta & Nejdl 2009): flag the n_flag users the top PCs explain least.

    Each item column is z-scored over its observed ratings (centred on the item mean, divided
    by the item's rating std) and missing entries are 0, so an item weighs in the principal
    directions with the evidence behind it. The top `components` right singular vectors come
    from a seeded randomized SVD. A user's score is the sum of squared projections of its row,
    scaled to unit length, onto them: its communality, the share of its profile the shared
    directions explain (Mehta's users are unit-variance variables, which this mirrors; it
    also keeps short genuine profiles from looking suspicious merely for being short).
    Attack fillers drawn around item statistics carry no shared taste and score low. A row
    at exactly the item means scores 0; users with no ratings are never flagged.
    """
    _check_ratings(ratings, n_users, n_items)
    n_flag = _check_n_flag(n_flag, n_users)
    if not 1 <= int(components) < min(n_users, n_items):
        raise ValueError(
            f"components must be an integer in [1, {min(n_users, n_items)}), got {components!r}"
        )
    if n_flag == 0:
        return np.zeros(n_users, dtype=bool)
    table = _latest_ratings(ratings)
    r = table.rating.astype(np.float64)
    count_i = np.maximum(np.bincount(table.item, minlength=n_items), 1)
    mean_i = np.bincount(table.item, weights=r, minlength=n_items) / count_i
    dev = r - mean_i[table.item]
    std_i = np.sqrt(np.bincount(table.item, weights=dev**2, minlength=n_items) / count_i)
    inv_std = np.divide(1.0, std_i, out=np.zeros_like(std_i), where=std_i > 0)
    zval = dev * inv_std[table.item]
    z = _matrix(table.user, table.item, zval, n_users, n_items)
    _, _, vt = randomized_svd(z, int(components), random_state=_SVD_SEED)
    energy = np.bincount(table.user, weights=zval**2, minlength=n_users)
    explained = ((z @ vt.T) ** 2).sum(axis=1)
    scores = np.divide(explained, energy, out=np.zeros(n_users), where=energy > 0)
    scores[np.bincount(table.user, minlength=n_users) == 0] = np.inf
    return _lowest(scores, n_flag)


def _robust_z(x: np.ndarray) -> np.ndarray:
    """Column-wise (x - median) / (1.4826 MAD), falling back to the std when MAD is 0."""
    med = np.median(x, axis=0)
    scale = _MAD_TO_STD * np.median(np.abs(x - med), axis=0)
    scale = np.where(scale > 0, scale, x.std(axis=0))
    safe = np.where(scale > 0, scale, 1.0)
    return np.where(scale > 0, (x - med) / safe, 0.0)


def _log_columns(x: np.ndarray, log_scale: np.ndarray) -> np.ndarray:
    """Natural log of the chosen non-negative columns, zeros floored at the column's minimum."""
    out = x.copy()
    for col in np.flatnonzero(log_scale):
        v = x[:, col]
        if (v < 0).any():
            raise ValueError(f"feature column {col} is log-scaled but has negative values")
        positive = v[v > 0]
        floor = positive.min() if len(positive) else 1.0
        out[:, col] = np.log(np.maximum(v, floor))
    return out


def suspicion_scores(
    features: np.ndarray,
    directions: np.ndarray | None = None,
    log_scale: np.ndarray | None = None,
) -> np.ndarray:
    """Combined outlier score: sum_f max(0, d_f z_f) / sqrt(F) over robust feature z-scores.

    z_f is (x - median) / (1.4826 MAD) over users with a profile, so the fakes being looked
    for do not inflate the scale they are measured against; d_f (+1 or -1) picks the
    suspicious tail, 0 leaves the feature out. Only the suspicious side counts: a profile
    that looks ordinary on one feature is not cleared of being outlying on another. Columns
    with `log_scale` True are logged first. Both default to FEATURE_DIRECTIONS /
    FEATURE_LOG_SCALE, which need the FEATURE_NAMES layout. All-zero rows (users without
    ratings) score 0.
    """
    x = _check_features(features)
    n_cols = x.shape[1]
    if (directions is None or log_scale is None) and n_cols != len(FEATURE_NAMES):
        raise ValueError(
            f"features has {n_cols} columns; pass directions and log_scale, or use the "
            f"{len(FEATURE_NAMES)} FEATURE_NAMES columns"
        )
    d = np.asarray(FEATURE_DIRECTIONS if directions is None else directions, dtype=np.float64)
    if d.shape != (n_cols,) or not np.isin(d, (-1.0, 0.0, 1.0)).all() or not d.any():
        raise ValueError(
            f"directions must hold {n_cols} values, each +1, -1 or 0 (unused), not all 0"
        )
    logs = np.asarray(FEATURE_LOG_SCALE if log_scale is None else log_scale, dtype=bool)
    if logs.shape != (n_cols,):
        raise ValueError(f"log_scale must hold {n_cols} booleans")
    present = np.any(x != 0, axis=1)
    scores = np.zeros(len(x))
    if present.any():
        z = _robust_z(_log_columns(x[present], logs))
        scores[present] = np.clip(z * d, 0.0, None).sum(axis=1) / np.sqrt(np.abs(d).sum())
    return scores


def threshold_detect(
    features: np.ndarray,
    n_flag: int | None = None,
    z: float = 2.0,
    directions: np.ndarray | None = None,
    log_scale: np.ndarray | None = None,
) -> np.ndarray:
    """Flag the n_flag most suspicious profiles, or (n_flag None) all scoring above `z`.

    The score is `suspicion_scores`; users without ratings are never flagged.
    """
    score = suspicion_scores(features, directions, log_scale)
    present = np.any(np.asarray(features) != 0, axis=1)
    if n_flag is not None:
        n_flag = _check_n_flag(n_flag, len(score))
        return _lowest(np.where(present, -score, np.inf), n_flag)
    if not np.isfinite(z):
        raise ValueError(f"z must be a finite number, got {z!r}")
    return present & (score > z)


def supervised_detector(
    features_train: np.ndarray, labels_train: np.ndarray, seed: int
) -> RandomForestClassifier:
    """A class-balanced random forest fitted on labelled profiles (label True = fake)."""
    x = _check_features(features_train)
    y = _as_mask(labels_train, "labels_train")
    if len(y) != len(x):
        raise ValueError(
            f"labels_train must have one label per features_train row ({len(x)}), got {len(y)}"
        )
    if y.all() or not y.any():
        raise ValueError("labels_train must contain both fake (True) and genuine (False) users")
    model = RandomForestClassifier(
        n_estimators=200, min_samples_leaf=2, class_weight="balanced", random_state=int(seed),
        n_jobs=1,
    )
    return model.fit(x, y)


def supervised_detect(model: RandomForestClassifier, features: np.ndarray) -> np.ndarray:
    """Mask of users the fitted classifier labels fake."""
    x = _check_features(features)
    if x.shape[1] != model.n_features_in_:
        raise ValueError(
            f"features must have {model.n_features_in_} columns like the training data, "
            f"got {x.shape[1]}"
        )
    return np.asarray(model.predict(x), dtype=bool)


# --------------------------------------------------------------------------- evaluation


@dataclass(frozen=True)
class DetectionReport:
    """How well a flag mask matches the true fakes (precision NaN if nothing was flagged,
    recall NaN if there are no fakes)."""

    flagged: np.ndarray
    precision: float
    recall: float
    n_flagged: int
    n_fake: int


def detection_report(flagged: np.ndarray, is_fake: np.ndarray) -> DetectionReport:
    """Precision and recall of a flag mask against the ground-truth fake mask."""
    f = _as_mask(flagged, "flagged")
    t = _as_mask(is_fake, "is_fake")
    if f.shape != t.shape:
        raise ValueError(
            f"flagged and is_fake must have the same shape, got {f.shape} and {t.shape}"
        )
    hits = int(np.sum(f & t))
    n_flagged, n_fake = int(f.sum()), int(t.sum())
    return DetectionReport(
        flagged=f,
        precision=hits / n_flagged if n_flagged else float("nan"),
        recall=hits / n_fake if n_fake else float("nan"),
        n_flagged=n_flagged,
        n_fake=n_fake,
    )


def remove_users(ratings: Interactions, flagged: np.ndarray) -> Interactions:
    """The ratings of unflagged users only (flagged is a mask over all users)."""
    mask = _as_mask(flagged, "flagged")
    if len(ratings) and (ratings.user.min() < 0 or ratings.user.max() >= len(mask)):
        raise ValueError(
            f"flagged must have an entry for every user in ratings (more than "
            f"{ratings.user.max()}), got length {len(mask)}"
        )
    return ratings.subset(~mask[ratings.user])
