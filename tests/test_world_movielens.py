"""MovieLens loaders: counts on the real folders, and clear errors on malformed copies."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from simulator.foundations.errors import DataFormatError
from simulator.world import World, load_movielens, load_world
from simulator.world.base import AGE_BRACKETS, GENDERS

# --- the real folders ---------------------------------------------------------------------


def _folder(data_dir: Path, name: str) -> Path:
    path = data_dir / name
    if not path.is_dir():
        pytest.skip(f"{path} not found")
    return path


@pytest.fixture(scope="module")
def ml100k(data_dir: Path) -> World:
    return load_movielens(_folder(data_dir, "ml-100k"))


@pytest.fixture(scope="module")
def ml1m_head(data_dir: Path) -> World:
    return load_movielens(_folder(data_dir, "ml-1m-head"))


def _check_table(w: World) -> None:
    r = w.ratings
    assert r.user.dtype == np.int64 and r.item.dtype == np.int64
    assert r.rating.dtype == np.float32 and r.timestamp.dtype == np.int64
    assert np.all(np.diff(r.user) >= 0)
    same_user = np.diff(r.user) == 0
    assert np.all(np.diff(r.timestamp)[same_user] >= 0)
    assert np.array_equal(np.unique(r.user), np.arange(w.n_users))
    assert np.array_equal(np.unique(r.item), np.arange(w.n_items))
    assert np.all(np.diff(w.user_ids) > 0) and np.all(np.diff(w.item_ids) > 0)
    for name, codes in w.attributes.items():
        assert codes.shape == (w.n_users,) and codes.dtype == np.int64
        assert codes.min() >= 0 and codes.max() < len(w.attribute_labels[name])


def test_ml100k_counts(ml100k: World) -> None:
    w = ml100k
    assert w.name == "ml-100k"
    assert (w.n_users, w.n_items, len(w.ratings)) == (943, 1682, 100_000)
    hist = np.bincount(w.ratings.rating.astype(np.int64), minlength=6)[1:]
    assert hist.tolist() == [6110, 11370, 27145, 34174, 21201]
    assert int(np.sum(w.attributes["gender"] == GENDERS.index("M"))) == 670
    assert np.array_equal(w.user_ids, np.arange(1, 944))
    assert w.ratings.timestamp.min() == 874724710 and w.ratings.timestamp.max() == 893286638
    _check_table(w)


def test_ml100k_attributes_and_genres(ml100k: World) -> None:
    w = ml100k
    ages = np.bincount(w.attributes["age"], minlength=len(AGE_BRACKETS))
    assert ages.sum() == 943 and np.all(ages > 0)
    assert ages.argmax() == AGE_BRACKETS.index("25-34")
    assert len(w.attribute_labels["occupation"]) == 21
    assert "technician" in w.attribute_labels["occupation"]
    first = w.attributes["occupation"][0]  # user 1: 24, M, technician
    assert w.attribute_labels["occupation"][first] == "technician"
    assert w.attributes["age"][0] == AGE_BRACKETS.index("18-24")
    assert w.item_features is not None and w.item_features.shape == (1682, 19)
    assert w.feature_names[0] == "unknown" and w.feature_names[-1] == "Western"
    toy_story = w.item_features[0]  # Animation, Children's, Comedy
    names = {w.feature_names[i] for i in np.flatnonzero(toy_story)}
    assert names == {"Animation", "Children's", "Comedy"}


def test_ml1m_head_counts(ml1m_head: World) -> None:
    w = ml1m_head
    assert w.name == "ml-1m"
    assert (w.n_users, w.n_items, len(w.ratings)) == (2999, 3615, 487_650)
    assert np.array_equal(w.user_ids, np.arange(1, 3000))
    assert set(np.unique(w.ratings.rating).tolist()) == {1.0, 2.0, 3.0, 4.0, 5.0}
    ages = np.bincount(w.attributes["age"], minlength=len(AGE_BRACKETS))
    assert ages.sum() == 2999 and np.all(ages > 0)
    assert ages.argmax() == AGE_BRACKETS.index("25-34")
    assert 0.65 < np.mean(w.attributes["gender"] == GENDERS.index("M")) < 0.78
    assert w.attributes["gender"][0] == GENDERS.index("F")  # user 1: F, under 18, K-12
    assert w.attributes["age"][0] == AGE_BRACKETS.index("<18")
    assert w.attribute_labels["occupation"][w.attributes["occupation"][0]] == "K-12 student"
    assert w.item_features is not None and w.item_features.shape == (3615, 18)
    assert w.item_features.sum(axis=1).min() >= 1
    _check_table(w)


def test_ml1m_head_loads_fast(data_dir: Path) -> None:
    folder = _folder(data_dir, "ml-1m-head")
    start = time.perf_counter()
    load_movielens(folder)
    elapsed = time.perf_counter() - start
    assert elapsed < 10.0, f"ML-1M head took {elapsed:.2f} s"


def test_n_users_keeps_the_first_users(data_dir: Path) -> None:
    w = load_movielens(_folder(data_dir, "ml-100k"), n_users=50)
    assert w.n_users == 50 and np.array_equal(w.user_ids, np.arange(1, 51))
    assert w.n_items == len(np.unique(w.ratings.item))
    assert w.item_features is not None and w.item_features.shape[0] == w.n_items
    via = load_world("movielens", path=_folder(data_dir, "ml-100k"), n_users=50, n_items=None)
    assert np.array_equal(via.ratings.item, w.ratings.item)


# --- small hand-written folders -----------------------------------------------------------

GENRES_100K = "|".join(["0"] * 19)
ML100K_FILES = {
    "u.user": [
        "1|24|M|technician|85711",
        "2|53|F|other|94043",
        "3|17|M|student|32067",
        "4|56|F|writer|T8H1N",
    ],
    "u.occupation": ["other", "student", "technician", "writer"],
    "u.item": [
        f"10|Toy Story (1995)|01-Jan-1995||http://x|{GENRES_100K}",
        "20|GoldenEye (1995)|01-Jan-1995||http://x|0|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0|1|0|0",
        f"30|Four Rooms (1995)|01-Jan-1995||http://x|{GENRES_100K}",
        f"40|Get Shorty (1995)|01-Jan-1995||http://x|{GENRES_100K}",
    ],
    "u.data": [
        "1\t10\t5\t881250949",
        "1\t20\t3\t881250950",
        "3\t10\t4\t881250951",
        "2\t30\t1\t881250952",
        "3\t20\t2\t881250948",
    ],
}
ML1M_FILES = {
    "users.dat": ["1::F::1::10::48067", "2::M::56::16::70072", "3::M::25::15::55117-1234"],
    "movies.dat": [
        "1::Toy Story (1995)::Animation|Children's|Comedy",
        "2::Jumanji (1995)::Adventure|Children's|Fantasy",
        "5::H\u00e9ros (1995)::Drama",
    ],
    "ratings.dat": [
        "1::1::5::978300760",
        "1::5::3::978302109",
        "2::2::4::978301968",
        "2::1::2::978300275",
    ],
}


def _write(folder: Path, files: dict[str, list[str]], change: tuple[str, int, str] | None = None,
           ) -> Path:
    """Write the files (Latin-1, LF), with line `change[1]` of `change[0]` replaced."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, lines in files.items():
        lines = list(lines)
        if change is not None and change[0] == name:
            lines[change[1] - 1] = change[2]
        (folder / name).write_bytes(("\n".join(lines) + "\n").encode("latin-1"))
    return folder


def test_small_ml100k_folder(tmp_path: Path) -> None:
    w = load_movielens(_write(tmp_path, ML100K_FILES))
    assert w.name == "ml-100k"
    assert w.user_ids.tolist() == [1, 2, 3]  # user 4 has no ratings
    assert w.item_ids.tolist() == [10, 20, 30]  # item 40 has no ratings
    assert w.attributes["gender"].tolist() == [1, 0, 1]
    assert w.attributes["age"].tolist() == [1, 5, 0]  # 24 -> 18-24, 53 -> 50-55, 17 -> <18
    assert [w.attribute_labels["occupation"][c] for c in w.attributes["occupation"]] == [
        "technician", "other", "student",
    ]
    r = w.ratings
    assert r.user.tolist() == [0, 0, 1, 2, 2]
    assert r.item.tolist() == [0, 1, 2, 1, 0]  # user 3's ratings ordered by time
    assert r.rating.tolist() == [5.0, 3.0, 1.0, 2.0, 4.0]
    assert w.item_features is not None and w.item_features[1].sum() == 3


def test_ml100k_age_brackets(tmp_path: Path) -> None:
    ages = [7, 17, 18, 24, 25, 34, 35, 44, 45, 49, 50, 55, 56, 73]
    users = [f"{i + 1}|{age}|M|other|00000" for i, age in enumerate(ages)]
    ratings = [f"{i + 1}\t10\t3\t88125{i:04d}" for i in range(len(ages))]
    files = {**ML100K_FILES, "u.user": users, "u.data": ratings}
    w = load_movielens(_write(tmp_path, files))
    assert w.attributes["age"].tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6]


def test_small_ml1m_folder(tmp_path: Path) -> None:
    w = load_movielens(_write(tmp_path, ML1M_FILES), n_users=1)
    assert w.name == "ml-1m"
    assert w.user_ids.tolist() == [1] and w.item_ids.tolist() == [1, 5]
    assert w.attributes["age"].tolist() == [0] and w.attributes["occupation"].tolist() == [10]
    assert w.item_features is not None
    assert w.item_features[1].tolist() == [1.0 if g == "Drama" else 0.0 for g in w.feature_names]
    full = load_movielens(tmp_path)
    assert full.user_ids.tolist() == [1, 2]  # user 3 has no ratings
    assert full.attributes["age"].tolist() == [0, 6]


ML100K_BAD = [
    ("u.data", 2, "1,20,3,881250950", "wrong separator"),
    ("u.data", 3, "3\t10\t4", "expected 4 fields"),
    ("u.data", 3, "3\t10\t4\t881250951\t7", "expected 4 fields"),
    ("u.data", 4, "two\t30\t1\t881250952", "user id 'two' is not an integer"),
    ("u.data", 4, "2\t3x\t1\t881250952", "item id '3x' is not an integer"),
    ("u.data", 5, "3\t20\tgood\t881250948", "rating 'good' is not a number"),
    ("u.data", 5, "3\t20\t2\t2024-01-01", "timestamp '2024-01-01' is not an integer"),
    ("u.data", 2, "1\t20\t6\t881250950", "outside 1..5"),
    ("u.data", 2, "1\t20\t0\t881250950", "outside 1..5"),
    ("u.data", 3, "9\t10\t4\t881250951", "unknown user 9"),
    ("u.data", 3, "3\t99\t4\t881250951", "unknown item 99"),
    ("u.data", 5, "3\t20\t2\t-5", "timestamp -5 is negative"),
    ("u.data", 4, "1\t10\t4\t881250999", "user 1 rates item 10 again (first on line 1)"),
    ("u.user", 2, "2|53|X|other|94043", "unknown gender 'X'"),
    ("u.user", 3, "3|old|M|student|32067", "age 'old' is not an integer"),
    ("u.user", 3, "3\t17\tM\tstudent\t32067", "wrong separator"),
    ("u.user", 1, "1|24|M|technician", "expected 5 fields"),
    ("u.user", 4, "4|56|F|astronaut|T8H1N", "unknown occupation 'astronaut'"),
    ("u.user", 4, "1|56|F|writer|T8H1N", "user id 1 appears twice"),
    ("u.item", 2, "20|GoldenEye (1995)|01-Jan-1995||http://x|0|1", "expected 24 fields"),
    ("u.item", 3, f"30|Four Rooms|01-Jan-1995||http://x|{GENRES_100K[:-1]}2", "not 0 or 1"),
    # what pandas alone would read as an integer or a rating, the line reader refuses
    ("u.data", 4, "1e0\t30\t1\t881250952", "user id '1e0' is not an integer"),
    ("u.data", 5, "3\t20\t2\t1e9", "timestamp '1e9' is not an integer"),
    ("u.data", 3, "3\t10.0\t4\t881250951", "item id '10.0' is not an integer"),
    ("u.data", 3, "3\t10\t4\t881250951.", "timestamp '881250951.' is not an integer"),
    ("u.data", 2, "1\t20\t3\t 881250950", "timestamp ' 881250950' is not an integer"),
    ("u.data", 2, "1\t20\t3e0\t881250950", "rating '3e0' is not a number"),
    ("u.data", 4, " ", "expected 4 fields"),
    ("u.data", 2, "1\t20\t1.5\t881250950\r1\t30\t2\t881250950", "expected 4 fields"),
    ("u.data", 2, "1" * 100_000 + "\t20\t3\t881250950",
     "user id '" + "1" * 100 + "...' (100,000 characters) is out of range"),
    ("u.user", 2, "2|53|" + "F" * 100_000 + "|other|94043", "(100,000 characters) (expected M"),
]


@pytest.mark.parametrize(("name", "line", "text", "problem"), ML100K_BAD,
                         ids=[f"{name}:{line}:{text[:40]!r}" for name, line, text, _ in ML100K_BAD])
def test_ml100k_malformed(tmp_path: Path, name: str, line: int, text: str, problem: str) -> None:
    folder = _write(tmp_path, ML100K_FILES, (name, line, text))
    with pytest.raises(DataFormatError) as caught:
        load_movielens(folder)
    message = str(caught.value)
    assert caught.value.line == line
    assert f"{name}:{line}:" in message
    assert problem in message


def test_a_repeated_rating_can_keep_the_latest(tmp_path: Path) -> None:
    files = {**ML100K_FILES, "u.data": [*ML100K_FILES["u.data"], "", "1\t10\t2\t881250999",
                                        "1\t10\t4\t881250940"]}
    folder = _write(tmp_path, files)
    with pytest.raises(DataFormatError) as caught:
        load_movielens(folder)
    assert caught.value.line == 7 and "first on line 1" in str(caught.value)
    w = load_movielens(folder, duplicates="latest")
    r = w.ratings
    pairs = list(zip(r.user.tolist(), r.item.tolist(), strict=True))
    assert len(pairs) == len(set(pairs)) == 5
    assert r.rating[(r.user == 0) & (r.item == 0)].tolist() == [2.0]  # latest timestamp wins
    from simulator.world import load_world

    merged = load_world("movielens", folder, duplicates="latest")
    assert len(merged.ratings) == 5
    from simulator.world import random_split, temporal_split

    for train, test in (temporal_split(merged.ratings, merged.n_users, 0.4),
                        random_split(merged.ratings, merged.n_users, 0.4, 0)):
        seen = set(zip(train.user.tolist(), train.item.tolist(), strict=True))
        held = set(zip(test.user.tolist(), test.item.tolist(), strict=True))
        assert held and not seen & held  # no pair is both trained on and tested


ML1M_BAD = [
    ("ratings.dat", 2, "1:5:3:978302109", "wrong separator"),
    ("ratings.dat", 3, "2::2::4", "expected 4 fields"),
    ("ratings.dat", 4, "2::one::2::978300275", "item id 'one' is not an integer"),
    ("ratings.dat", 1, "1::1::5.5::978300760", "outside 1..5"),
    ("ratings.dat", 4, "7::1::2::978300275", "unknown user 7"),
    ("users.dat", 2, "2::M::19::16::70072", "unknown age code 19"),
    ("users.dat", 2, "2::m::56::16::70072", "unknown gender 'm'"),
    ("users.dat", 1, "1::F::1::21::48067", "unknown occupation code 21"),
    ("users.dat", 1, "1|F|1|10|48067", "wrong separator"),
    ("movies.dat", 2, "2::Jumanji (1995)::Adventure|Kids", "unknown genre 'Kids'"),
    ("movies.dat", 3, "5::H\u00e9ros (1995)", "expected 3 fields"),
    ("ratings.dat", 2, "1\t5\t3\t978302109", "wrong separator? the line contains '\\t'"),
    ("ratings.dat", 3, "2::2\t4::978301968", "expected 4 fields"),
    ("ratings.dat", 2, "1::5::3::1e9", "timestamp '1e9' is not an integer"),
    ("ratings.dat", 2, "1.0::5::3::978302109", "user id '1.0' is not an integer"),
]


@pytest.mark.parametrize(("name", "line", "text", "problem"), ML1M_BAD,
                         ids=[f"{name}:{line}:{text!r}" for name, line, text, _ in ML1M_BAD])
def test_ml1m_malformed(tmp_path: Path, name: str, line: int, text: str, problem: str) -> None:
    folder = _write(tmp_path, ML1M_FILES, (name, line, text))
    with pytest.raises(DataFormatError) as caught:
        load_movielens(folder)
    message = str(caught.value)
    assert caught.value.line == line
    assert f"{name}:{line}:" in message
    assert problem in message


@pytest.mark.parametrize("bad", ["2::2::4::97830x", "2::2::9::978301968", "3::2::4::978301968"])
def test_bad_line_deep_in_a_large_file(tmp_path: Path, bad: str) -> None:
    """The bulk parser fails; the scan must still name the right line of the file,
    counting blank lines."""
    lines = [f"{1 + i % 2}::{1 if i % 3 else 2}::{1 + i % 5}::{978300000 + i}" for i in range(3000)]
    lines[99] = ""
    lines[2499] = bad
    folder = _write(tmp_path, {**ML1M_FILES, "ratings.dat": lines, "users.dat": [
        "1::F::1::10::48067", "2::M::56::16::70072",
    ]})
    with pytest.raises(DataFormatError, match=r"ratings\.dat:2500:") as caught:
        load_movielens(folder)
    assert caught.value.line == 2500


def test_missing_folder(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(DataFormatError) as caught:
        load_movielens(missing)
    message = str(caught.value)
    assert caught.value.line is None
    assert str(missing) in message
    assert "u.data" in message and "ratings.dat" in message


def test_folder_without_rating_file(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match="no MovieLens rating file") as caught:
        load_movielens(tmp_path)
    assert str(tmp_path) in str(caught.value)


@pytest.mark.parametrize(
    ("files", "missing"),
    [
        ({"u.data": ML100K_FILES["u.data"]}, ("u.user", "u.item")),
        ({k: ML1M_FILES[k] for k in ("ratings.dat", "users.dat")}, ("movies.dat",)),
    ],
)
def test_missing_required_file(tmp_path: Path, files: dict[str, list[str]],
                               missing: tuple[str, ...]) -> None:
    with pytest.raises(DataFormatError) as caught:
        load_movielens(_write(tmp_path, files))
    assert caught.value.line is None
    assert str(tmp_path) in str(caught.value)
    for name in missing:
        assert name in str(caught.value)


def test_bad_n_users(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="n_users"):
        load_movielens(_write(tmp_path, ML1M_FILES), n_users=0)


@pytest.mark.parametrize("content", [[], ["", ""]])
def test_empty_rating_file(tmp_path: Path, content: list[str]) -> None:
    with pytest.raises(DataFormatError, match="no ratings") as caught:
        load_movielens(_write(tmp_path, {**ML1M_FILES, "ratings.dat": content}))
    assert "ratings.dat" in str(caught.value)


def test_stray_quote_is_reported(tmp_path: Path) -> None:
    folder = _write(tmp_path, ML100K_FILES, ("u.data", 2, '1\t"20\t3\t881250950'))
    with pytest.raises(DataFormatError, match=r"u\.data:2: item id '\"20' is not an integer"):
        load_movielens(folder)
