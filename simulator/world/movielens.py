"""Loaders for the GroupLens MovieLens folders: ML-100K and ML-1M (the whole release or a
prefix of its rating file read the same way).

The rating file is parsed in bulk with pandas; only when that fails, or a parsed value is
out of range, is the file scanned line by line to name the first offending line. The bulk
parse takes only what the line reader takes: pandas would also read `1e0` or `1.0` as the
integer 1, ` 1` as 1 and a tab as the separator of an ML-1M file, so a file holding a byte
other than digits, signs, separators and line ends, or a `.` outside the rating field, is
left to the line reader. The user and item files are a few thousand lines and are read line
by line directly.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from simulator.foundations.errors import DataFormatError, shown
from simulator.world.assembly import (
    DUPLICATE_POLICIES,
    RatingRows,
    Side,
    assemble,
    without_duplicates,
)
from simulator.world.base import AGE_BRACKETS, GENDERS, World

ML1M_OCCUPATIONS: tuple[str, ...] = (
    "other", "academic/educator", "artist", "clerical/admin", "college/grad student",
    "customer service", "doctor/health care", "executive/managerial", "farmer", "homemaker",
    "K-12 student", "lawyer", "programmer", "retired", "sales/marketing", "scientist",
    "self-employed", "technician/engineer", "tradesman/craftsman", "unemployed", "writer",
)
ML1M_GENRES: tuple[str, ...] = (
    "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi",
    "Thriller", "War", "Western",
)
ML100K_GENRES: tuple[str, ...] = ("unknown", *ML1M_GENRES)  # the order of u.genre
ML1M_AGE_CODES: tuple[int, ...] = (1, 18, 25, 35, 45, 50, 56)  # index = AGE_BRACKETS index
AGE_LOWER_BOUNDS: tuple[int, ...] = (18, 25, 35, 45, 50, 56)  # real age -> bracket edges
NO_GENRES = "(no genres listed)"

_INT = re.compile(r"[+-]?[0-9]+")
_NUMBER = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)")
_INT64_MAX = 2**63 - 1
_INT64_DIGITS = len(str(_INT64_MAX))
_OTHER_SEPARATORS = ("\t", "::", "|", ",", ";", ":", " ")


@dataclass(frozen=True)
class _Format:
    name: str
    ratings: str
    users: str
    items: str
    sep: str


ML100K = _Format("ml-100k", "u.data", "u.user", "u.item", "\t")
ML1M = _Format("ml-1m", "ratings.dat", "users.dat", "movies.dat", "::")


@dataclass(frozen=True)
class _Users:
    ids: np.ndarray  # original ids, file order
    gender: np.ndarray
    age: np.ndarray
    occupation: np.ndarray
    occupation_labels: tuple[str, ...]


@dataclass(frozen=True)
class _Items:
    ids: np.ndarray
    features: np.ndarray
    feature_names: tuple[str, ...]


@dataclass(frozen=True)
class _Ratings:
    user: np.ndarray  # original ids
    item: np.ndarray
    rating: np.ndarray
    timestamp: np.ndarray


def load_movielens(
    path: str | os.PathLike[str], n_users: int | None = None, duplicates: str = "error",
) -> World:
    """Load an ML-100K or ML-1M folder (format detected from its files) as a World.

    Users and items are the ones that have ratings, indexed in order of original id.
    ``n_users`` keeps only the first n_users of those users (by original id) and the items
    they rated. Malformed files raise DataFormatError naming the file and line. A user
    rating the same item twice is an error naming both lines (``duplicates="error"``), or
    keeps the latest of the ratings (``"latest"``: largest timestamp, then later line).
    """
    if duplicates not in DUPLICATE_POLICIES:
        raise ValueError(f"duplicates must be one of {DUPLICATE_POLICIES}, got {duplicates!r}")
    if n_users is not None and (isinstance(n_users, bool) or not isinstance(n_users, int)
                                or n_users < 1):
        raise ValueError(f"n_users must be a positive integer or None, got {n_users!r}")
    folder = Path(path)
    fmt = _detect_format(folder)
    if fmt is ML100K:
        users = _read_users_100k(folder / fmt.users, folder / "u.occupation")
        items = _read_items_100k(folder / fmt.items)
    else:
        users = _read_users_1m(folder / fmt.users)
        items = _read_items_1m(folder / fmt.items)
    path = folder / fmt.ratings
    ratings = _read_ratings(path, fmt.sep, users.ids, items.ids)
    rows = without_duplicates(
        RatingRows(ratings.user, ratings.item, ratings.rating, ratings.timestamp), duplicates,
        path, lambda row: _row_lines(path, row)[row])
    return _assemble(fmt.name, users, items, _Ratings(rows.user, rows.item, rows.rating,
                                                      rows.timestamp), n_users)


def _row_lines(path: Path, up_to: int) -> list[int]:
    """The file line of each parsed rating row (blank lines are skipped), up to a row."""
    lines = []
    for line_no, _ in _lines_of(path.read_bytes()):
        lines.append(line_no)
        if len(lines) > up_to:
            break
    return lines


def _detect_format(folder: Path) -> _Format:
    expected = (f"expected {', '.join(_names(ML100K))} (ML-100K) "
                f"or {', '.join(_names(ML1M))} (ML-1M)")
    if not folder.is_dir():
        raise DataFormatError(folder, None, f"MovieLens folder not found; {expected}")
    for fmt in (ML100K, ML1M):
        if (folder / fmt.ratings).is_file():
            missing = [name for name in _names(fmt) if not (folder / name).is_file()]
            if missing:
                raise DataFormatError(
                    folder, None,
                    f"missing {', '.join(missing)}: an {fmt.name.upper()} folder needs "
                    f"{', '.join(_names(fmt))}",
                )
            return fmt
    raise DataFormatError(folder, None, f"no MovieLens rating file found; {expected}")


def _names(fmt: _Format) -> tuple[str, str, str]:
    return fmt.ratings, fmt.users, fmt.items


# --- line-level helpers -------------------------------------------------------------------


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(1-based line number, text) of every non-empty line of a file."""
    return _lines_of(path.read_bytes())


def _fields(path: Path, line_no: int, line: str, sep: str, n: int) -> list[str]:
    parts = line.split(sep)
    if len(parts) == n:
        return parts
    problem = f"expected {n} fields separated by {sep!r}, found {len(parts)}"
    if len(parts) == 1:
        others = [s for s in _OTHER_SEPARATORS if s != sep and s in line]
        if others:
            problem += f" (wrong separator? the line contains {others[0]!r})"
    raise DataFormatError(path, line_no, problem)


def _int(path: Path, line_no: int, text: str, what: str) -> int:
    if not _INT.fullmatch(text):
        raise DataFormatError(path, line_no, f"{what} {shown(text)} is not an integer")
    # More digits than an int64 has are out of range before int() (which refuses 4,300).
    if len(text) > _INT64_DIGITS and len(text.lstrip("+-").lstrip("0")) > _INT64_DIGITS:
        raise DataFormatError(path, line_no, f"{what} {shown(text)} is out of range")
    value = int(text)
    if abs(value) > _INT64_MAX:
        raise DataFormatError(path, line_no, f"{what} {shown(text)} is out of range")
    return value


def _rating(path: Path, line_no: int, text: str) -> float:
    if not _NUMBER.fullmatch(text):
        raise DataFormatError(path, line_no, f"rating {shown(text)} is not a number")
    value = float(text)
    if not 1.0 <= value <= 5.0:
        raise DataFormatError(path, line_no,
                              f"rating {shown(text, quote=False)} is outside 1..5")
    return value


def _check_new_id(path: Path, line_no: int, seen: dict[int, int], value: int, what: str) -> None:
    if value in seen:
        raise DataFormatError(
            path, line_no, f"{what} id {value} appears twice (first on line {seen[value]})"
        )
    seen[value] = line_no


def _gender(path: Path, line_no: int, text: str) -> int:
    if text not in GENDERS:
        raise DataFormatError(path, line_no,
                              f"unknown gender {shown(text)} (expected M or F)")
    return GENDERS.index(text)


# --- user and item files ------------------------------------------------------------------


def _read_users_100k(path: Path, occupation_path: Path) -> _Users:
    known = _read_occupations(occupation_path) if occupation_path.is_file() else None
    seen: dict[int, int] = {}
    rows: list[tuple[int, int, int, str]] = []
    for line_no, line in _lines(path):
        uid, age_text, gender_text, occupation, _zip = _fields(path, line_no, line, "|", 5)
        user_id = _int(path, line_no, uid, "user id")
        _check_new_id(path, line_no, seen, user_id, "user")
        age = _int(path, line_no, age_text, "age")
        if not 0 <= age <= 150:
            raise DataFormatError(path, line_no, f"age {age} is not a valid age in years")
        if known is not None and occupation not in known:
            raise DataFormatError(
                path, line_no,
                f"unknown occupation {shown(occupation)} (not in {occupation_path.name})"
            )
        rows.append((user_id, age, _gender(path, line_no, gender_text), occupation))
    labels = known if known is not None else tuple(sorted({r[3] for r in rows}))
    codes = {name: i for i, name in enumerate(labels)}
    ages = np.array([r[1] for r in rows], dtype=np.int64)
    return _Users(
        ids=np.array([r[0] for r in rows], dtype=np.int64),
        gender=np.array([r[2] for r in rows], dtype=np.int64),
        age=np.searchsorted(np.array(AGE_LOWER_BOUNDS), ages, side="right").astype(np.int64),
        occupation=np.array([codes[r[3]] for r in rows], dtype=np.int64),
        occupation_labels=labels,
    )


def _read_occupations(path: Path) -> tuple[str, ...]:
    return tuple(line.strip() for _, line in _lines(path) if line.strip())


def _read_users_1m(path: Path) -> _Users:
    seen: dict[int, int] = {}
    rows: list[tuple[int, int, int, int]] = []
    for line_no, line in _lines(path):
        uid, gender_text, age_text, occupation_text, _zip = _fields(path, line_no, line, "::", 5)
        user_id = _int(path, line_no, uid, "user id")
        _check_new_id(path, line_no, seen, user_id, "user")
        gender = _gender(path, line_no, gender_text)
        age_code = _int(path, line_no, age_text, "age code")
        if age_code not in ML1M_AGE_CODES:
            raise DataFormatError(
                path, line_no,
                f"unknown age code {age_code} (expected one of "
                f"{', '.join(map(str, ML1M_AGE_CODES))})",
            )
        occupation = _int(path, line_no, occupation_text, "occupation code")
        if not 0 <= occupation < len(ML1M_OCCUPATIONS):
            raise DataFormatError(
                path, line_no,
                f"unknown occupation code {occupation} (expected 0..{len(ML1M_OCCUPATIONS) - 1})",
            )
        rows.append((user_id, gender, ML1M_AGE_CODES.index(age_code), occupation))
    table = np.array(rows, dtype=np.int64).reshape(-1, 4)
    return _Users(table[:, 0].copy(), table[:, 1].copy(), table[:, 2].copy(),
                  table[:, 3].copy(), ML1M_OCCUPATIONS)


def _read_items_100k(path: Path) -> _Items:
    n_fields = 5 + len(ML100K_GENRES)
    seen: dict[int, int] = {}
    ids: list[int] = []
    flags: list[list[float]] = []
    for line_no, line in _lines(path):
        parts = _fields(path, line_no, line, "|", n_fields)
        item_id = _int(path, line_no, parts[0], "item id")
        _check_new_id(path, line_no, seen, item_id, "item")
        row = parts[5:]
        bad = [flag for flag in row if flag not in ("0", "1")]
        if bad:
            raise DataFormatError(path, line_no, f"genre flag {shown(bad[0])} is not 0 or 1")
        ids.append(item_id)
        flags.append([float(flag) for flag in row])
    features = np.array(flags, dtype=np.float32).reshape(-1, len(ML100K_GENRES))
    return _Items(np.array(ids, dtype=np.int64), features, ML100K_GENRES)


def _read_items_1m(path: Path) -> _Items:
    index = {name: i for i, name in enumerate(ML1M_GENRES)}
    seen: dict[int, int] = {}
    ids: list[int] = []
    rows: list[np.ndarray] = []
    for line_no, line in _lines(path):
        item_text, _title, genres = _fields(path, line_no, line, "::", 3)
        item_id = _int(path, line_no, item_text, "item id")
        _check_new_id(path, line_no, seen, item_id, "item")
        row = np.zeros(len(ML1M_GENRES), dtype=np.float32)
        for genre in ([] if genres == NO_GENRES else genres.split("|")):
            if genre not in index:
                raise DataFormatError(path, line_no, f"unknown genre {shown(genre)}")
            row[index[genre]] = 1.0
        ids.append(item_id)
        rows.append(row)
    features = np.array(rows, dtype=np.float32).reshape(-1, len(ML1M_GENRES))
    return _Items(np.array(ids, dtype=np.int64), features, ML1M_GENRES)


# --- rating file --------------------------------------------------------------------------


def _read_ratings(path: Path, sep: str, user_ids: np.ndarray, item_ids: np.ndarray) -> _Ratings:
    """Bulk-parse and validate the rating file; on any failure, scan it line by line."""
    raw = path.read_bytes()
    reason: str | None
    ratings, reason = _parse_bulk(raw, sep)
    if ratings is not None:
        reason = _bulk_problem(ratings, user_ids, item_ids)
        if reason is None:
            return ratings
    if not _scan_ratings(path, raw, sep, set(user_ids.tolist()), set(item_ids.tolist())):
        raise DataFormatError(path, None, "the file holds no ratings")
    raise DataFormatError(path, None, f"could not be read as a rating file: {reason}")


# The bytes a valid rating file holds once its separator is a tab (see the module's note).
_RATING_FILE_BYTES = b"0123456789+-.\t\n\r"


def _parse_bulk(raw: bytes, sep: str) -> tuple[_Ratings | None, str]:
    if sep != "\t":
        if b"\t" in raw:
            return None, f"a tab in a file separated by {sep!r}"
        raw = raw.replace(sep.encode(), b"\t")
    stray = raw.translate(None, _RATING_FILE_BYTES)
    if stray:
        return None, f"the character {chr(stray[0])!r}, which no rating field holds"
    if b"\r" in raw and raw.count(b"\r") != raw.count(b"\r\n"):
        return None, "a carriage return inside a line"
    if b"." in raw and _dot_outside_ratings(raw):
        return None, "a '.' in an integer field"
    dtypes = {0: np.int64, 1: np.int64, 2: np.float64, 3: np.int64}
    try:
        frame = pd.read_csv(io.BytesIO(raw), sep="\t", header=None, dtype=dtypes, engine="c",
                            quoting=csv.QUOTE_NONE)
    except (ValueError, TypeError, OverflowError, pd.errors.ParserError) as exc:
        return None, str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if frame.shape[1] != 4:
        return None, f"expected 4 columns, found {frame.shape[1]}"
    columns = [frame[c].to_numpy() for c in range(4)]
    if any(col.dtype.kind not in "iuf" for col in columns):
        return None, "non-numeric values"
    user, item, rating, timestamp = columns
    return _Ratings(user.astype(np.int64), item.astype(np.int64),
                    rating.astype(np.float64), timestamp.astype(np.int64)), ""


def _dot_outside_ratings(raw: bytes) -> bool:
    """Whether a '.' stands in a field other than the rating (the third) of its line, in a
    tab-separated rating file."""
    data = np.frombuffer(raw, dtype=np.uint8)
    dots = np.flatnonzero(data == ord("."))
    tabs = np.flatnonzero(data == ord("\t"))
    line_ends = np.r_[-1, np.flatnonzero(data == ord("\n"))]
    line_starts = line_ends[np.searchsorted(line_ends, dots) - 1] + 1
    field = np.searchsorted(tabs, dots) - np.searchsorted(tabs, line_starts)
    return bool(np.any(field != 2))


def _bulk_problem(r: _Ratings, user_ids: np.ndarray, item_ids: np.ndarray) -> str | None:
    checks: list[tuple[str, Callable[[], bool]]] = [
        ("no ratings", lambda: len(r.user) > 0),
        ("a rating outside 1..5", lambda: bool(np.all((r.rating >= 1) & (r.rating <= 5)))),
        ("a rating by an unknown user", lambda: bool(np.all(np.isin(r.user, user_ids)))),
        ("a rating of an unknown item", lambda: bool(np.all(np.isin(r.item, item_ids)))),
        ("a negative timestamp", lambda: bool(np.all(r.timestamp >= 0))),
    ]
    for problem, ok in checks:
        if not ok():
            return problem
    return None


def _scan_ratings(path: Path, raw: bytes, sep: str, users: set[int], items: set[int]) -> int:
    """Raise DataFormatError at the first bad line of a rating file; if there is none,
    return the number of (non-empty) lines."""
    n_lines = 0
    for line_no, line in _lines_of(raw):
        n_lines += 1
        uid, iid, rating_text, ts = _fields(path, line_no, line, sep, 4)
        user = _int(path, line_no, uid, "user id")
        item = _int(path, line_no, iid, "item id")
        _rating(path, line_no, rating_text)
        if _int(path, line_no, ts, "timestamp") < 0:
            raise DataFormatError(path, line_no, f"timestamp {shown(ts, quote=False)} is negative")
        if user not in users:
            raise DataFormatError(path, line_no, f"unknown user {user} (not in the user file)")
        if item not in items:
            raise DataFormatError(path, line_no, f"unknown item {item} (not in the item file)")
    return n_lines


def _lines_of(raw: bytes) -> Iterator[tuple[int, str]]:
    """(1-based line number, text) of every non-empty line; Latin-1 decodes any byte."""
    for number, line in enumerate(raw.decode("latin-1").split("\n"), start=1):
        line = line.removesuffix("\r")
        if line:
            yield number, line


# --- assembly -----------------------------------------------------------------------------


def _assemble(
    name: str, users: _Users, items: _Items, ratings: _Ratings, n_users: int | None
) -> World:
    """The MovieLens world: its users' gender, age bracket and occupation, its items' genre
    flags, through the assembly every loader shares."""
    side = Side(users.ids, {"gender": users.gender, "age": users.age,
                            "occupation": users.occupation},
                {"gender": GENDERS, "age": AGE_BRACKETS, "occupation": users.occupation_labels})
    return assemble(name, side, Side(items.ids, {}, {}, items.features, items.feature_names),
                    RatingRows(ratings.user, ratings.item, ratings.rating, ratings.timestamp),
                    n_users)
