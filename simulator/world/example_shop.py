"""The worked example of `docs/data.md`: the built-in synthetic world written as RecBole atomic
files, as a shop whose users have a three-class subscription `tier` besides gender, so that
a study of one's own data can be tried without any file from outside.

    python -m simulator.world.example_shop outputs/data/shop

writes `shop.inter`, `shop.user` and `shop.item` into that folder; the shipped scenario
`own-data-recbole` reads them (from `$PRIVSIM_SHOP`, default `outputs/data/shop`).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from simulator.world.base import World
from simulator.world.synthetic import generate_synthetic

TIERS = ("basic", "plus", "pro")
FIELD_TYPES = {"user_id": "token", "item_id": "token", "rating": "float", "timestamp": "float",
               "gender": "token", "tier": "token", "genre": "token_seq"}


def shop_tier(world: World) -> np.ndarray:
    """Each user's tier code (0 basic, 1 plus, 2 pro): (age class + gender) mod 3, so that it
    is as visible in the ratings as age and gender are."""
    return (world.attributes["age"] + world.attributes["gender"]) % 3


def shop_tables(world: World) -> dict[str, pd.DataFrame]:
    """`world` as the shop's tables by RecBole suffix: `inter` (user, item, rating,
    timestamp), `user` (gender, tier) and, with item features, `item` (genre tokens); user
    ids start at 1000 and item ids at 7, so that no id equals its index."""
    r = world.ratings
    tables = {
        "inter": pd.DataFrame({"user_id": r.user + 1000, "item_id": r.item + 7,
                               "rating": r.rating.astype(float), "timestamp": r.timestamp}),
        "user": pd.DataFrame({"user_id": np.arange(world.n_users) + 1000,
                              "gender": np.array(["F", "M"])[world.attributes["gender"]],
                              "tier": np.array(TIERS)[shop_tier(world)]}),
    }
    if world.item_features is not None:
        genres = [" ".join(world.feature_names[j] for j in np.flatnonzero(row)) or "none"
                  for row in world.item_features]
        tables["item"] = pd.DataFrame({"item_id": np.arange(world.n_items) + 7,
                                       "genre": genres})
    return tables


def write_recbole(world: World, folder: Path, name: str = "shop") -> Path:
    """`world` as RecBole atomic files `name.inter`, `name.user` and `name.item` in `folder`
    (`shop_tables`)."""
    folder.mkdir(parents=True, exist_ok=True)
    for suffix, frame in shop_tables(world).items():
        header = {c: f"{c}:{FIELD_TYPES[c]}" for c in frame.columns}
        frame.rename(columns=header).to_csv(folder / f"{name}.{suffix}", sep="\t", index=False)
    return folder


def write_shop(folder: Path, n_users: int = 1000, n_items: int = 800, seed: int = 0) -> Path:
    """The example shop (a synthetic world of `n_users` and `n_items` whose tastes follow
    gender and age strongly, signal 2) as RecBole files in `folder`."""
    world = generate_synthetic(n_users=n_users, n_items=n_items, signal=2.0,
                               seed=seed)
    return write_recbole(world, Path(folder))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python -m simulator.world.example_shop FOLDER")
    written = write_shop(Path(sys.argv[1]))
    print(f"wrote {', '.join(sorted(p.name for p in written.glob('shop.*')))} in {written}")
