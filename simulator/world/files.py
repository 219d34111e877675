"""Worlds from a researcher's own files.

- `load_files`: an interactions table (CSV, TSV or Parquet, by its suffix) whose columns are
  named by a column map (user, item, rating, timestamp), with an optional user table (its
  other columns become attributes) and item table (its numeric columns become item
  features);
- `load_recbole`: RecBole's atomic files, `<name>.inter` with optional `<name>.user` and
  `<name>.item` in one folder: tab-separated, with typed headers (`user_id:token
  rating:float`); `token_seq` columns of the item file become multi-hot features.

Everything is checked before a world is built, with one-line errors that name the file, the
line (text files; a row of a Parquet file) and what was expected: a missing file or column,
an empty table, an id left blank, a rating that is not a number in 1..5, a negative or
non-numeric timestamp, a user or item missing from its table, an id given twice in a user
or item table, a repeated (user, item) pair, an attribute with too many values. The world
is then assembled as the MovieLens loaders assemble theirs (`simulator.world.assembly`).

Ids that are all integers keep their order as numbers (a text column of integers written
plainly too); otherwise every id is text and the ids are ordered as text (both tables with
the same vocabulary), and a world's `user_ids` are then the positions in that order. Text
tables are parsed by pandas's C reader, so a column of numbers is read as numbers (`007` is
7); reading ML-1M's first 2,999 users' 487,650 ratings takes about the MovieLens loader's
time (`benchmarks/bench_loading.py`).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from simulator.foundations.errors import DataFormatError, shown
from simulator.world.assembly import RatingRows, Side, assemble, without_duplicates
from simulator.world.base import World

ROLES = ("user", "item", "rating", "timestamp")
DEFAULT_COLUMNS: dict[str, str | None] = {
    "user": "user_id", "item": "item_id", "rating": "rating", "timestamp": "timestamp"}
MAX_CLASSES = 100  # values a user column may take to be an attribute
MAX_TOKENS = 1000  # distinct tokens a token_seq item column may hold to become features
RATING_MIN, RATING_MAX = 1.0, 5.0
TEXT_SUFFIXES = {".csv": ",", ".tsv": "\t", ".txt": "\t"}
PARQUET_SUFFIXES = (".parquet", ".pq")
RECBOLE_TYPES = ("token", "token_seq", "float", "float_seq")


@dataclass(frozen=True)
class Table:
    """A file's columns as read (text, or numbers from Parquet), each column's RecBole type
    where the header gave one, and each row's line in the file (None: a Parquet file)."""

    path: Path
    columns: dict[str, np.ndarray]
    types: dict[str, str]
    lines: np.ndarray | None

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    def fail(self, row: int, problem: str) -> DataFormatError:
        """The error for a problem at `row`: with its line, or its row of a Parquet file."""
        if self.lines is None:
            return DataFormatError(self.path, None, f"row {row + 1}: {problem}")
        return DataFormatError(self.path, int(self.lines[row]), problem)

    def column(self, name: str, key: str) -> np.ndarray:
        """The column `name`, refused with the columns the file has (`key`: the setting
        that named it)."""
        if name not in self.columns:
            raise DataFormatError(
                self.path, None, f"no column {shown(name)} ({key}); the file has "
                f"{', '.join(map(shown, self.columns)) or 'no columns'}")
        return self.columns[name]


def read_table(path: Path, recbole: bool = False) -> Table:
    """A CSV, TSV or Parquet table (by suffix), or a RecBole atomic file (`recbole`)."""
    if not path.is_file():
        raise DataFormatError(path, None, "file not found")
    suffix = path.suffix.lower()
    if suffix in PARQUET_SUFFIXES and not recbole:
        return _read_parquet(path)
    if suffix not in TEXT_SUFFIXES and not recbole:
        raise DataFormatError(path, None, f"unknown table format {shown(suffix or '(none)')}; "
                              "expected .csv, .tsv, .txt (tab-separated), .parquet or .pq")
    sep = "\t" if recbole else TEXT_SUFFIXES[suffix]
    try:
        # pandas's C parser reads number columns as numbers; a column holding any text (an
        # empty cell included: keep_default_na=False) stays text, checked cell by cell.
        frame = pd.read_csv(path, sep=sep, keep_default_na=False, skip_blank_lines=False,
                            engine="c", encoding="utf-8", low_memory=False)
    except pd.errors.EmptyDataError:
        raise DataFormatError(path, None, "the file is empty") from None
    except UnicodeDecodeError as exc:
        raise DataFormatError(path, None, f"not UTF-8 text (byte {exc.start})") from None
    except (pd.errors.ParserError, ValueError) as exc:
        problem = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataFormatError(path, None, f"cannot be read as a table: {problem}") from None
    blank = ((frame.isna() | (frame == "")).all(axis=1).to_numpy() if len(frame.columns)
             else np.zeros(0, bool))
    lines = np.flatnonzero(~blank) + 2  # line 1 is the header
    names, types = [str(c) for c in frame.columns], dict[str, str]()
    if recbole:
        names, types = _typed_header(path, names)
    if len(set(names)) != len(names):
        repeated = next(n for n in names if names.count(n) > 1)
        raise DataFormatError(path, 1, f"column {shown(repeated)} appears twice in the header")
    columns = {name: _kept(frame.iloc[:, i].to_numpy(), blank)
               for i, name in enumerate(names)}
    return Table(path, columns, types, lines)


def _kept(values: np.ndarray, blank: np.ndarray) -> np.ndarray:
    """A column without the rows of blank lines; a number column that held them (NaN
    there) becomes integers again when every value left is one."""
    kept = values[~blank]
    if values.dtype.kind == "f" and blank.any() and np.all(np.isfinite(kept)) and np.all(
            kept == np.round(kept)):
        return kept.astype(np.int64)
    return kept


def _typed_header(path: Path, names: list[str]) -> tuple[list[str], dict[str, str]]:
    """RecBole's `name:type` header fields as names and types."""
    plain, types = [], {}
    for field in names:
        name, sep, kind = field.rpartition(":")
        if not sep or kind not in RECBOLE_TYPES:
            raise DataFormatError(path, 1, f"header field {shown(field)} is not name:type "
                                  f"with a type among {', '.join(RECBOLE_TYPES)}")
        plain.append(name)
        types[name] = kind
    return plain, types


def _read_parquet(path: Path) -> Table:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several kinds for a damaged file
        raise DataFormatError(path, None, f"cannot be read as Parquet: "
                              f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
                              ) from None
    columns = {name: table.column(name).to_numpy(zero_copy_only=False)
               for name in table.column_names}
    return Table(path, columns, {}, None)


# --- values ----------------------------------------------------------------------------


def _texts(table: Table, values: np.ndarray, what: str) -> np.ndarray:
    """The values as text, each one non-empty."""
    texts = np.array(["" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)
                      for v in values], dtype=object)
    empty = np.flatnonzero(texts == "")
    if len(empty):
        raise table.fail(int(empty[0]), f"{what} is empty")
    return texts


def _numbers(table: Table, values: np.ndarray, what: str) -> np.ndarray:
    """The values as finite float64 numbers."""
    try:  # C's float() on each cell; any text that is not a number falls back to a search
        numbers = values.astype(np.float64)
    except (ValueError, TypeError):
        numbers = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(np.float64)
    bad = np.flatnonzero(~np.isfinite(numbers))
    if len(bad):
        raise table.fail(int(bad[0]), f"{what} {shown(_plain(values[bad[0]]))} is not a finite "
                         "number")
    return numbers


def _plain(value: object) -> object:
    """A numpy scalar as the Python value it holds (as messages quote it)."""
    return value.item() if isinstance(value, np.generic) else value


def _ids(columns: list[tuple[Table, np.ndarray, str]]) -> list[np.ndarray]:
    """Id columns of several tables as int64 ids on one vocabulary: the integers themselves
    when every id is an integer written plainly, else the position of each id among the
    sorted text ids."""
    texts = [_id_texts(table, values, what) for table, values, what in columns]
    integers = [_integers(text) for text in texts]
    if all(found is not None for found in integers):
        return [found for found in integers if found is not None]
    texts = [text.astype(str) for text in texts]
    vocabulary = np.unique(np.concatenate(texts))
    return [np.searchsorted(vocabulary, text).astype(np.int64) for text in texts]


def _id_texts(table: Table, values: np.ndarray, what: str) -> np.ndarray:
    """An id column as text (integers as their digits), refusing an empty id."""
    if values.dtype.kind in "iu":
        return values
    if values.dtype.kind == "f":
        bad = np.flatnonzero(~np.isfinite(values) | (values != np.round(values)))
        if len(bad):
            raise table.fail(int(bad[0]), f"{what} {values[bad[0]]:g} is not an integer or "
                             "a text id")
        return values.astype(np.int64)
    missing = np.flatnonzero(pd.isna(values) | (values == ""))
    if len(missing):
        raise table.fail(int(missing[0]), f"{what} is empty")
    return values.astype(str)


def _integers(text: np.ndarray) -> np.ndarray | None:
    """The ids as int64 when each is an integer written plainly (`12`, `-3`; not `012`,
    `+5`, ` 7` or `1.0`, which stay text so that no two ids become one), else None. A
    column the parser read as numbers is integers already."""
    if text.dtype.kind in "iu":
        return text.astype(np.int64)
    try:
        found = text.astype(np.int64)
    except (ValueError, OverflowError):
        return None
    return found if np.array_equal(found.astype(str), text) else None


def _first_unknown(table: Table, ids: np.ndarray, known: np.ndarray, what: str,
                   other: Table) -> None:
    unknown = np.flatnonzero(~np.isin(ids, known))
    if len(unknown):
        raise table.fail(int(unknown[0]), f"{what} {shown(table_value(table, what, unknown[0]))}"
                         f" is not in {other.path.name}")


def table_value(table: Table, column: str, row: int) -> object:
    """Row `row` of `column`, as read (what a message quotes)."""
    return _plain(table.columns[column][row]) if column in table.columns else row


def _first_repeat(table: Table, ids: np.ndarray, what: str) -> None:
    order = np.argsort(ids, kind="stable")
    same = np.flatnonzero(ids[order][1:] == ids[order][:-1])
    if len(same):
        later = order[same + 1]
        row = int(later.min())
        earlier = int(order[same[np.argmin(later)]])
        first = (f"line {table.lines[earlier]}" if table.lines is not None
                 else f"row {earlier + 1}")
        raise table.fail(row, f"{what} {shown(table_value(table, what, row))} appears twice "
                         f"(first on {first})")


# --- sides -----------------------------------------------------------------------------


def _labels(values: np.ndarray) -> tuple[str, ...]:
    """An attribute's labels: numerically ordered when every value is a number."""
    distinct = sorted(set(values.tolist()))
    try:
        return tuple(sorted(distinct, key=float))
    except ValueError:
        return tuple(distinct)


def _binned(table: Table, name: str, edges: list[float]) -> tuple[np.ndarray, tuple[str, ...]]:
    """A number column cut at `edges` (increasing): codes and labels "<a", "a-b", ..., "z+"."""
    numbers = _numbers(table, table.column(name, "world.bins"), name)
    shown_edges = [f"{e:g}" for e in edges]
    labels = (f"<{shown_edges[0]}",
              *(f"{a}-{b}" for a, b in zip(shown_edges, shown_edges[1:], strict=False)),
              f"{shown_edges[-1]}+")
    return np.searchsorted(np.asarray(edges), numbers, side="right").astype(np.int64), labels


def _user_side(table: Table, ids: np.ndarray, id_column: str,
               attributes: list[str] | None, bins: Mapping[str, list[float]]) -> Side:
    names = [n for n in table.columns if n != id_column] if attributes is None else attributes
    codes, labels = {}, {}
    for name in names:
        if name in bins:
            codes[name], labels[name] = _binned(table, name, list(bins[name]))
            continue
        values = _texts(table, table.column(name, "world.attributes"), name)
        found = _labels(values)
        if len(found) > MAX_CLASSES:
            raise DataFormatError(
                table.path, None, f"column {shown(name)} has {len(found):,} distinct values; an "
                f"attribute takes at most {MAX_CLASSES} (cut a number column into classes with "
                "world.bins, or list the attributes to use in world.attributes)")
        index = {label: code for code, label in enumerate(found)}
        codes[name] = np.array([index[v] for v in values], dtype=np.int64)
        labels[name] = found
    return Side(ids, codes, labels)


def _item_side(table: Table, ids: np.ndarray, id_column: str,
               chosen: list[str] | None) -> Side:
    """The item table's features: the `chosen` columns, or by default every number column
    and every token-list column of at most MAX_TOKENS tokens (a title is left out)."""
    parts: list[np.ndarray] = []
    names: list[str] = []
    for name in chosen if chosen is not None else list(table.columns):
        values = table.column(name, "world.item_features")
        kind = table.types.get(name)
        if name == id_column:
            continue
        if kind == "token_seq":
            texts = np.array([str(v) for v in values], dtype=object)
            tokens = sorted({t for text in texts for t in text.split()})
            if len(tokens) > MAX_TOKENS:
                if chosen is None:
                    continue
                raise DataFormatError(table.path, None, f"column {shown(name)} holds "
                                      f"{len(tokens):,} tokens; features take at most "
                                      f"{MAX_TOKENS}")
            index = {token: i for i, token in enumerate(tokens)}
            flags = np.zeros((len(texts), len(tokens)), dtype=np.float32)
            for row, text in enumerate(texts):
                flags[row, [index[t] for t in text.split()]] = 1.0
            parts.append(flags)
            names += [f"{name}={token}" for token in tokens]
        elif kind == "float" or (kind is None and _numeric(values)) or chosen is not None:
            parts.append(_numbers(table, values, name).astype(np.float32)[:, None])
            names.append(name)
    if not parts:
        return Side(ids, {}, {})
    return Side(ids, {}, {}, np.concatenate(parts, axis=1), tuple(names))


def _numeric(values: np.ndarray) -> bool:
    if values.dtype.kind in "iuf":
        return True
    converted = pd.to_numeric(pd.Series(values), errors="coerce")
    return bool(converted.notna().all()) and len(values) > 0


# --- loading ---------------------------------------------------------------------------


def load_files(
    interactions: str | Path,
    users: str | Path | None = None,
    items: str | Path | None = None,
    columns: Mapping[str, str | None] | None = None,
    attributes: list[str] | None = None,
    item_features: list[str] | None = None,
    bins: Mapping[str, list[float]] | None = None,
    n_users: int | None = None,
    duplicates: str = "error",
    name: str | None = None,
    recbole: bool = False,
) -> World:
    """A world from an interactions table and optional user and item tables.

    `columns` maps the roles user, item, rating and timestamp to column names (defaults:
    user_id, item_id, rating, timestamp); a rating of None reads implicit feedback (every
    interaction a liked one, rated 5, and the world marked `implicit`); a timestamp of None
    orders each user's ratings by their rows in the file. `attributes` names the user
    table's columns to use (default: every column but the id); `item_features` the item
    table's columns to use as features (default: its number columns and short token
    lists); `bins` cuts number columns of the
    user table into classes at the given edges; `n_users` keeps the first users by id;
    `duplicates` as in `simulator.world.assembly.without_duplicates`.
    """
    roles = {**DEFAULT_COLUMNS, **(columns or {})}
    where = {role: f"world.columns.{role}" for role in ROLES}
    rated = read_table(Path(interactions), recbole)
    if not len(rated):
        raise DataFormatError(rated.path, None, "the file holds no ratings")
    user_column, item_column = str(roles["user"]), str(roles["item"])
    user_values = rated.column(user_column, where["user"])
    item_values = rated.column(item_column, where["item"])
    implicit = roles["rating"] is None
    if implicit:  # interactions only: each one counts as liked
        rating = np.full(len(rated), RATING_MAX)
    else:
        column = str(roles["rating"])
        if column not in rated.columns and column == DEFAULT_COLUMNS["rating"]:
            raise DataFormatError(
                rated.path, None, f"no column {shown(column)} (world.columns.rating); the file "
                f"has {', '.join(map(shown, rated.columns))}: name the rating column, or set "
                "world.columns.rating: null for implicit feedback (interactions only)")
        rating = _numbers(rated, rated.column(column, where["rating"]), "rating")
    outside = np.flatnonzero((rating < RATING_MIN) | (rating > RATING_MAX))
    if len(outside):
        raise rated.fail(int(outside[0]), f"rating {float(rating[outside[0]]):g} is outside "
                         f"{RATING_MIN:g}..{RATING_MAX:g} (rescale the column to that range)")
    if roles["timestamp"] is None:
        timestamp = np.arange(len(rated), dtype=np.int64)  # the order of the rows
    else:
        seconds = _numbers(rated, rated.column(str(roles["timestamp"]), where["timestamp"]),
                           "timestamp")
        negative = np.flatnonzero(seconds < 0)
        if len(negative):
            raise rated.fail(int(negative[0]), f"timestamp {seconds[negative[0]]:g} is negative")
        timestamp = np.floor(seconds).astype(np.int64)
    user_table = read_table(Path(users), recbole) if users is not None else None
    item_table = read_table(Path(items), recbole) if items is not None else None
    id_columns = [(rated, user_values, user_column)]
    if user_table is not None:
        id_columns.append((user_table, user_table.column(user_column, where["user"]),
                           user_column))
    user_ids = _ids(id_columns)
    id_columns = [(rated, item_values, item_column)]
    if item_table is not None:
        id_columns.append((item_table, item_table.column(item_column, where["item"]),
                           item_column))
    item_ids = _ids(id_columns)
    user_side, item_side = Side(np.unique(user_ids[0]), {}, {}), Side(np.unique(item_ids[0]),
                                                                     {}, {})
    if user_table is not None:
        _first_repeat(user_table, user_ids[1], user_column)
        _first_unknown(rated, user_ids[0], user_ids[1], user_column, user_table)
        user_side = _user_side(user_table, user_ids[1], user_column, attributes, bins or {})
    elif attributes:
        raise DataFormatError(rated.path, None, f"world.attributes names "
                              f"{', '.join(attributes)}, but there is no user table")
    if item_table is not None:
        _first_repeat(item_table, item_ids[1], item_column)
        _first_unknown(rated, item_ids[0], item_ids[1], item_column, item_table)
        item_side = _item_side(item_table, item_ids[1], item_column, item_features)
    rows = RatingRows(user_ids[0], item_ids[0], rating, timestamp)
    rows = without_duplicates(rows, duplicates, rated.path, lambda row: _line(rated, row))
    world = assemble(name or rated.path.stem, user_side, item_side, rows, n_users)
    return dataclasses.replace(world, implicit=True) if implicit else world


def _line(table: Table, row: int) -> int | None:
    return None if table.lines is None else int(table.lines[row])


def id_counts(path: str, recbole: bool, user: str, item: str) -> tuple[int, int, int]:
    """(users, items, ratings) of an interactions table (or a RecBole folder's), read from
    its two id columns alone: what a run-time estimate needs before the world is built. A
    plan estimates many runs of one table: each version of a file is read once."""
    source = Path(path)
    if recbole:
        found = sorted(source.glob("*.inter"))
        if len(found) != 1:
            return 0, 0, 0
        source = found[0]
    stat = source.stat()
    return _id_counts(str(source), recbole, user, item, stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=16)
def _id_counts(path: str, recbole: bool, user: str, item: str, modified_ns: int,
               size: int) -> tuple[int, int, int]:
    table = read_table(Path(path), recbole)
    users, items = table.column(user, "world.columns.user"), table.column(
        item, "world.columns.item")
    return len(set(users.tolist())), len(set(items.tolist())), len(table)


def load_recbole(folder: str | Path, **options: object) -> World:
    """A world from RecBole's atomic files in `folder`: its one `.inter` file, and the
    `.user` and `.item` files of the same name when present."""
    path = Path(folder)
    if not path.is_dir():
        raise DataFormatError(path, None, "RecBole folder not found")
    found = sorted(path.glob("*.inter"))
    if len(found) != 1:
        held = ", ".join(p.name for p in found) or "none"
        raise DataFormatError(path, None, f"expected one .inter file (RecBole atomic files), "
                              f"found {held}")
    inter = found[0]
    users, items = inter.with_suffix(".user"), inter.with_suffix(".item")
    return load_files(inter, users if users.is_file() else None,
                      items if items.is_file() else None, recbole=True,
                      **options)  # type: ignore[arg-type]
