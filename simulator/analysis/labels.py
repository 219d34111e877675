"""Human names for metric columns, for figure legends and axes."""

from __future__ import annotations

import re

_FIXED = {"mae": "MAE", "rmse": "RMSE", "disclosure_mean": "disclosed share",
          "group_beta_mean": "budget beta", "beta_mean": "budget beta",
          "prediction_shift": "prediction shift"}
_LEAK = re.compile(r"leak_(?P<attribute>[a-z]+)_(?P<measure>auc|bacc|acc)(?P<rest>_.*)?$")
_MEASURES = {"auc": "AUC", "bacc": "balanced accuracy", "acc": "accuracy"}
_RANK = re.compile(r"(?P<prefix>pop_|target_|owned_)?(?P<name>hr|ndcg)_(?P<k>\d+)(?P<rest>_.*)?$")
_PREFIXES = {"pop_": " (popularity)", "target_": " of the attacked items",
             "owned_": " of the owned items"}
_SUFFIXES = {"_clean": " without attack", "_change": " change", "_chance": " chance"}


def metric_label(column: str) -> str:
    """`hr_10` -> "HR@10", `pop_ndcg_10` -> "NDCG@10 (popularity)", `leak_gender_auc` ->
    "gender AUC", `target_hr_10_clean` -> "HR@10 of the attacked items without attack";
    unknown columns come back with underscores as spaces."""
    if column in _FIXED:
        return _FIXED[column]
    leak = _LEAK.match(column)
    if leak:
        return (f"{leak['attribute']} {_MEASURES[leak['measure']]}"
                + _suffix(leak["rest"]))
    rank = _RANK.match(column)
    if rank:
        name = f"{rank['name'].upper()}@{rank['k']}"
        return name + _PREFIXES.get(rank["prefix"] or "", "") + _suffix(rank["rest"])
    return column.replace("_", " ")


def _suffix(rest: str | None) -> str:
    if not rest:
        return ""
    return _SUFFIXES.get(rest, " " + rest.strip("_").replace("_", " "))


def value_label(value: object, limit: int = 32) -> str:
    """A grid value as a short label: `None` -> "none", a mapping -> "key=value, ..." (an
    attacker or other list item -> its `kind`), a list -> its items joined by "+", anything
    else as text; cut to `limit` characters with an ellipsis."""
    text = _value_text(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _value_text(value: object) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "none"
    if isinstance(value, dict):
        if not value:
            return "{}"
        if "kind" in value:
            return str(value["kind"])
        return ", ".join(f"{key}={_value_text(inner)}" for key, inner in value.items())
    if isinstance(value, list | tuple):
        return "+".join(_value_text(item) for item in value) if value else "[]"
    return str(value)

