"""Worlds from a researcher's own files: RecBole atomic files and CSV, TSV or Parquet tables
with a column map give the same world and the same run, and every malformed input is refused
in one line naming the file, the line and what was expected."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from simulator.foundations.errors import DataFormatError, ScenarioError
from simulator.world import World, generate_synthetic
from simulator.world.example_shop import TIERS, shop_tables, write_recbole
from simulator.world.files import load_files, load_recbole


@pytest.fixture(scope="module")
def source() -> World:
    """The truth the files are written from: a small synthetic world."""
    return generate_synthetic(n_users=120, n_items=80, mean_ratings_per_user=20,
                              min_ratings_per_user=5, seed=4)


def _frames(world: World) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The shop's interactions and users, and items with long titles instead of genres, as
    plain tables whose columns need a column map."""
    tables = shop_tables(world)
    items = pd.DataFrame({"item_id": np.arange(world.n_items) + 7,
                          "title": [" ".join(f"w{i}x{j}" for j in range(13))
                                    for i in range(world.n_items)]})  # 1,040 tokens
    return tables["inter"], tables["user"], items


def write_tables(world: World, folder: Path, kind: str = "csv") -> dict[str, Path]:
    """`world` as plain tables whose columns need a column map."""
    ratings, users, items = _frames(world)
    rename = {"user_id": "customer", "item_id": "product", "rating": "stars",
              "timestamp": "when"}
    ratings = ratings.rename(columns=rename)
    users = users.rename(columns={"user_id": "customer"})
    items = items.rename(columns={"item_id": "product"})
    items["price"] = np.linspace(1.0, 9.0, len(items))
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for label, frame in (("ratings", ratings), ("users", users), ("items", items)):
        path = folder / f"{label}.{kind}"
        if kind == "parquet":
            frame.to_parquet(path, index=False)
        else:
            frame.to_csv(path, sep="," if kind == "csv" else "\t", index=False)
        paths[label] = path
    return paths


MAP = {"user": "customer", "item": "product", "rating": "stars", "timestamp": "when"}


def test_recbole_files_give_the_world_they_were_written_from(source, tmp_path) -> None:
    folder = write_recbole(source, tmp_path / "rb")
    items = pd.read_csv(folder / "shop.item", sep="\t", dtype=str)
    items["title:token_seq"] = _frames(source)[2]["title"]
    items.to_csv(folder / "shop.item", sep="\t", index=False)
    world = load_recbole(folder)
    assert world.name == "shop" and (world.n_users, world.n_items) == (120, 80)
    assert np.array_equal(world.ratings.user, source.ratings.user)
    assert np.array_equal(world.ratings.item, source.ratings.item)
    assert np.array_equal(world.ratings.rating, source.ratings.rating)
    assert np.array_equal(world.user_ids, np.arange(120) + 1000)
    assert world.attribute_labels["tier"] == TIERS
    expected_tier = (source.attributes["age"] + source.attributes["gender"]) % 3
    assert np.array_equal(world.attributes["tier"], expected_tier)
    assert np.array_equal(world.attributes["gender"], source.attributes["gender"])
    # Genre tokens are multi-hot features; the titles hold too many tokens to be features.
    assert world.item_features is not None
    assert all(name.startswith("genre=") for name in world.feature_names)


@pytest.mark.parametrize("kind", ["csv", "tsv", "parquet"])
def test_plain_tables_with_a_column_map_give_the_same_world(source, tmp_path, kind) -> None:
    recbole = load_recbole(write_recbole(source, tmp_path / "rb"))
    paths = write_tables(source, tmp_path / kind, kind)
    world = load_files(paths["ratings"], paths["users"], paths["items"], columns=MAP)
    for name in ("user", "item", "rating", "timestamp"):
        assert np.array_equal(getattr(world.ratings, name), getattr(recbole.ratings, name))
    assert world.attribute_labels == recbole.attribute_labels
    assert all(np.array_equal(world.attributes[a], recbole.attributes[a])
               for a in recbole.attributes)
    assert world.feature_names == ("price",)  # the number column; the title is text


def test_a_run_on_recbole_files_matches_the_run_on_the_same_csv(source, tmp_path) -> None:
    from simulator.simulation.model import PrivacyModel

    folder = write_recbole(source, tmp_path / "rb")
    paths = write_tables(source, tmp_path / "csv")
    common = {"simulation": {"steps": 2, "seed": 0, "device": "cpu"},
              "platform": {"model": "mf", "first_epochs": 2, "epochs": 1, "factors": 8},
              "population": {"policy": "fixed"},
              "attackers": [{"kind": "inference", "attributes": ["gender"],
                             "classifiers": ["logreg"], "folds": 2}],
              "output": {"plots": False}}
    runs = []
    for world in ({"source": "recbole", "path": str(folder)},
                  {"source": "files", "path": str(paths["ratings"]),
                   "users": str(paths["users"]), "items": str(paths["items"]),
                   "columns": MAP, "item_features": ["price"]}):
        model = PrivacyModel({**common, "world": world})
        model.run()
        runs.append(pd.DataFrame(model.records.metrics).drop(
            columns=[c for c in model.records.metrics[0] if c.startswith("seconds")]))
    pd.testing.assert_frame_equal(runs[0], runs[1])
    assert runs[0]["leak_gender_auc"].notna().all()
    assert runs[0]["leak_gender_auc_chance"].eq(0.5).all()


def test_the_first_users_and_text_ids(tmp_path) -> None:
    path = tmp_path / "r.csv"
    path.write_text("user_id,item_id,rating,timestamp\nb,x,4,1\na,x,5,2\nc,y,3,3\na,y,2,4\n")
    world = load_files(path, n_users=2)
    assert world.n_users == 2 and world.n_items == 2  # users a and b, in text order
    assert world.ratings.user.tolist() == [0, 0, 1]
    ordered = load_files(path, columns={"timestamp": None})
    assert ordered.ratings.timestamp.tolist() == [1, 3, 0, 2]  # the rows' order


BAD = [
    ("user_id,item_id,rating,timestamp\n", "the file holds no ratings"),
    ("user_id,item,rating,timestamp\n1,2,3,4\n",
     "no column 'item_id' (world.columns.item); the file has 'user_id', 'item', 'rating'"),
    ("user_id,item_id,rating,timestamp\n1,2,3,4\n1,3,x,5\n",
     ":3: rating 'x' is not a finite number"),
    ("user_id,item_id,rating,timestamp\n1,2,3,4\n\n1,3,7,5\n", ":4: rating 7 is outside 1..5"),
    ("user_id,item_id,rating,timestamp\n1,2,3,4\n,3,4,5\n", ":3: user_id is empty"),
    ("user_id,item_id,rating,timestamp\n1,2,3,-4\n", ":2: timestamp -4 is negative"),
    ("user_id,item_id,rating,timestamp\n1,2,3,4\n1,2,4,5\n",
     ":3: user 1 rates item 2 again (first on line 2); set world.duplicate_ratings: latest"),
]


@pytest.mark.parametrize(("text", "message"), BAD, ids=range(len(BAD)))
def test_a_malformed_interactions_table_is_refused_in_one_line(tmp_path, text, message) -> None:
    path = tmp_path / "r.csv"
    path.write_text(text)
    with pytest.raises(DataFormatError) as found:
        load_files(path)
    assert message in str(found.value) and "\n" not in str(found.value)
    assert str(found.value).startswith(str(path))


def test_user_and_item_tables_are_checked(tmp_path) -> None:
    ratings = tmp_path / "r.csv"
    ratings.write_text("user_id,item_id,rating,timestamp\n1,2,3,4\n5,2,4,5\n")
    users = tmp_path / "u.csv"
    users.write_text("user_id,tier\n1,a\n")
    with pytest.raises(DataFormatError, match=r"r.csv:3: user_id 5 is not in u.csv"):
        load_files(ratings, users)
    spaced = tmp_path / "spaced.csv"
    spaced.write_text("user id,item_id,rating,timestamp\nann,2,3,4\nbob,2,4,5\n")
    named = tmp_path / "named.csv"
    named.write_text("user id,tier\nann,a\n")
    with pytest.raises(DataFormatError, match=r"spaced.csv:3: user id 'bob' is not in "
                                              r"named.csv"):
        load_files(spaced, named, columns={"user": "user id"})
    users.write_text("user_id,tier\n1,a\n5,b\n1,c\n")
    with pytest.raises(DataFormatError, match=r"u.csv:4: user_id 1 appears twice "
                                              r"\(first on line 2\)"):
        load_files(ratings, users)
    users.write_text("user_id,tier\n1,a\n5,\n")
    with pytest.raises(DataFormatError, match=r"u.csv:3: tier is empty"):
        load_files(ratings, users)
    users.write_text("user_id,tier\n1,a\n5,b\n")
    with pytest.raises(DataFormatError, match=r"no column 'plan' \(world.attributes\)"):
        load_files(ratings, users, attributes=["plan"])
    many = tmp_path / "many.csv"
    many.write_text("user_id,zip\n" + "".join(f"{u},{u}\n" for u in range(200)))
    ratings.write_text("user_id,item_id,rating,timestamp\n1,2,3,4\n")
    with pytest.raises(DataFormatError, match="'zip' has 200 distinct values; an attribute "
                                              "takes at most 100"):
        load_files(ratings, many)


def test_recbole_headers_and_folders_are_checked(tmp_path) -> None:
    folder = tmp_path / "rb"
    folder.mkdir()
    with pytest.raises(DataFormatError, match="expected one .inter file .* found none"):
        load_recbole(folder)
    (folder / "d.inter").write_text("user_id:token\titem_id\trating:float\n1\t2\t3\n")
    with pytest.raises(DataFormatError, match=r"d.inter:1: header field 'item_id' is not "
                                              r"name:type"):
        load_recbole(folder)
    with pytest.raises(DataFormatError, match="file not found"):
        load_files(tmp_path / "missing.csv")
    odd = tmp_path / "r.json"
    odd.write_text("{}")
    with pytest.raises(DataFormatError, match="unknown table format '.json'"):
        load_files(odd)


def test_scenarios_name_their_files_and_refuse_what_does_not_apply(tmp_path) -> None:
    from simulator.scenario.loading import build_scenario

    with pytest.raises(ScenarioError, match="data file not found"):
        build_scenario({"world": {"source": "files", "path": str(tmp_path / "none.csv")}}, "s")
    with pytest.raises(ScenarioError, match="world.path: source recbole needs the folder"):
        build_scenario({"world": {"source": "recbole"}}, "s")
    with pytest.raises(ScenarioError, match=r"data folder not found: .*shop \(give a folder "
                       r"holding NAME.inter.*simulator.world.example_shop FOLDER"):
        build_scenario({"world": {"source": "recbole", "path": str(tmp_path / "shop")}}, "s")
    folder = tmp_path / "rb"
    folder.mkdir()
    with pytest.raises(ScenarioError, match="world.users: only source files reads"):
        build_scenario({"world": {"source": "recbole", "path": str(folder),
                                  "users": str(folder)}}, "s")
    with pytest.raises(ScenarioError, match="world.attributes, world.bins: MovieLens worlds have"):
        build_scenario({"world": {"source": "movielens", "attributes": ["tier"]}}, "s")


def test_text_that_is_not_utf8_and_parquet_rows_are_named(tmp_path) -> None:
    latin = tmp_path / "r.csv"
    latin.write_bytes("user_id,item_id,rating,timestamp\nJos\xe9,1,4,1\n".encode("latin-1"))
    with pytest.raises(DataFormatError, match=r"r.csv: not UTF-8 text \(byte \d+\)"):
        load_files(latin)
    table = tmp_path / "r.parquet"
    pd.DataFrame({"user_id": [1, 2, 3], "item_id": [1, 1, 2], "rating": [4.0, 9.0, 3.0],
                  "timestamp": [1, 2, 3]}).to_parquet(table, index=False)
    with pytest.raises(DataFormatError, match=r"r.parquet: row 2: rating 9 is outside 1..5"):
        load_files(table)


def test_the_run_time_estimate_counts_the_files_ids(source, tmp_path) -> None:
    from simulator.scenario.loading import build_scenario
    from simulator.scenario.run_time import world_size

    folder = write_recbole(source, tmp_path / "rb")
    scenario = build_scenario({"world": {"source": "recbole", "path": str(folder)}}, "s")
    assert world_size(scenario) == (120, 80, len(source.ratings))


def _run(world: dict, **settings: object) -> pd.DataFrame:
    """Two steps of a small MF platform on `world`, with `settings` merged in."""
    from simulator.simulation.model import PrivacyModel

    scenario = {"world": world, "simulation": {"steps": 2, "seed": 0, "device": "cpu"},
                "platform": {"model": "mf", "first_epochs": 3, "epochs": 1, "factors": 8},
                "population": {"policy": "fixed"}, "output": {"plots": False}, **settings}
    model = PrivacyModel(scenario)
    model.run()
    return pd.DataFrame(model.records.metrics)


INFER_TIER = [{"kind": "inference", "attributes": ["tier"], "classifiers": ["logreg"],
               "folds": 2}]


def test_an_attribute_of_the_data_is_inferred_defended_and_unlearned(source, tmp_path) -> None:
    """A three-class attribute named by the data (`tier`): the leakage baseline against its
    chance levels, adversarial training against it, unlearning it alone and jointly with
    gender; the same data as CSV with a column map gives the same metrics."""
    world = {"source": "recbole", "path": str(write_recbole(source, tmp_path / "rb"))}
    baseline = _run(world, attackers=INFER_TIER)
    counts = np.bincount((source.attributes["age"] + source.attributes["gender"]) % 3)
    last = baseline.iloc[-1]
    assert last["leak_tier_auc_chance"] == 0.5
    assert last["leak_tier_bacc_chance"] == pytest.approx(1 / 3)
    # The majority rate among the users the attacker did not know: at least a third.
    assert 1 / 3 <= last["leak_tier_majority"] <= counts.max() / counts.sum() + 0.1
    assert 0.0 <= last["leak_tier_auc"] <= 1.0
    adversarial = _run(world, attackers=INFER_TIER, platform={
        "model": "mf", "first_epochs": 3, "epochs": 1, "factors": 8,
        "defenses": {"adversarial": {"attributes": ["tier"], "weight": 1.0, "head_steps": 2}}})
    assert adversarial["adversary_readout_acc_tier"].notna().all()
    for attribute in ("tier", ["tier", "gender"]):
        edited = _run(world, attackers=INFER_TIER, platform={
            "model": "mf", "first_epochs": 3, "epochs": 1, "factors": 8,
            "defenses": {"unlearning": {"attribute": attribute, "stop": "steps",
                                        "steps": 20}}})
        assert (edited["unlearning_users"] > 0).all()
        assert (edited["unlearning_distance_after"] < edited["unlearning_distance_before"]
                ).all()
    paths = write_tables(source, tmp_path / "csv")
    same = _run({"source": "files", "path": str(paths["ratings"]),
                 "users": str(paths["users"]), "columns": MAP}, attackers=INFER_TIER)
    timing = [c for c in baseline.columns if c.startswith("seconds")]
    pd.testing.assert_frame_equal(baseline.drop(columns=timing), same.drop(columns=timing))


def test_an_attribute_the_world_lacks_is_refused_naming_the_setting(source, tmp_path) -> None:
    from simulator.simulation.model import PrivacyModel

    world = {"source": "recbole", "path": str(write_recbole(source, tmp_path / "rb"))}
    with pytest.raises(ScenarioError, match="platform.defenses.unlearning.attribute: the shop "
                                            "world has no occupation .it has gender, tier"):
        PrivacyModel({"world": world, "attackers": [],
                      "platform": {"defenses": {"unlearning": {"attribute": "occupation"}}}})
    with pytest.raises(ScenarioError, match="attackers.0.attributes: the shop world has no age"):
        PrivacyModel({"world": world})


def test_number_columns_are_cut_into_classes(tmp_path) -> None:
    ratings = tmp_path / "r.csv"
    ratings.write_text("user_id,item_id,rating,timestamp\n" + "".join(
        f"{u},{u % 3},4,{u}\n" for u in range(6)))
    users = tmp_path / "u.csv"
    users.write_text("user_id,years\n" + "".join(f"{u},{a}\n" for u, a in
                                                  enumerate([12, 18, 30, 44, 70, 25])))
    world = load_files(ratings, users, bins={"years": [18, 30, 45]})
    assert world.attribute_labels["years"] == ("<18", "18-30", "30-45", "45+")
    assert world.attributes["years"].tolist() == [0, 1, 2, 2, 3, 1]


def test_implicit_feedback_trains_bpr_and_refuses_rating_models(source, tmp_path) -> None:
    """Interactions without ratings: BPR learns from them (hit rates, no MAE); models that
    learn ratings, and perturbing rating values, are refused naming the missing column."""
    from simulator.scenario.loading import build_scenario
    from simulator.simulation.model import PrivacyModel

    ratings, _, _ = _frames(source)
    path = tmp_path / "plays.csv"
    ratings.drop(columns="rating").to_csv(path, index=False)
    with pytest.raises(DataFormatError, match="no column 'rating' .* set world.columns.rating: "
                                              "null for implicit feedback"):
        load_files(path)
    world = load_files(path, columns={"rating": None})
    assert world.implicit and set(world.ratings.rating.tolist()) == {5.0}
    settings = {"world": {"source": "files", "path": str(path), "columns": {"rating": None}},
                "simulation": {"steps": 2, "seed": 0, "device": "cpu"},
                "platform": {"model": "bpr", "first_epochs": 2, "epochs": 1, "factors": 8},
                "attackers": [], "output": {"plots": False}}
    model = PrivacyModel(settings)
    model.run()
    metrics = pd.DataFrame(model.records.metrics)
    assert metrics["hr_10"].notna().all() and "mae" not in metrics
    with pytest.raises(ScenarioError, match="platform.model: mf learns ratings, but the world "
                                            r"has none \(world.columns.rating: null"):
        build_scenario({**settings, "platform": {"model": "mf"}}, "s")
    with pytest.raises(ScenarioError, match="population.perturbation perturbs rating values"):
        build_scenario({**settings, "population": {"perturbation": {"epsilon": 1.0}}}, "s")
