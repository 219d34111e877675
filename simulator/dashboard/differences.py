"""Short words for how resolved scenario configs differ, for legends: a section present in
some configs and absent in others reads "adversarial" / "no adversarial", a changed value
"lr=0.05", and every setting is named by the shortest tail of its dotted key that is unique
among the differing keys ("lambda", "adversarial.lambda" where another lambda differs too).

Hand-written: this is a diff of nested mappings that renders for people, which no config or
diff library does (deepdiff and dictdiffer report full paths and change kinds).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

Path = tuple[str | int, ...]

MAX_LABEL = 40
_ELLIPSIS = "…"


def unflatten(settings: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """Nested mappings from dotted keys whose values are JSON text (`discovery._flatten`)."""
    nested: dict[str, Any] = {}
    for key, text in settings:
        try:
            value = json.loads(text)
        except ValueError:
            value = text
        *parents, leaf = key.split(".")
        node = nested
        for part in parents:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[leaf] = value
    return nested


def describe_differences(configs: Sequence[Mapping[str, Any]]) -> list[str]:
    """For each config, where it differs from the others, in short words ("" where none)."""
    paths = _differing(list(configs), ())
    names = _short_names(paths)
    descriptions = []
    for config in configs:
        parts = []
        for path in paths:
            values = [_at(other, path) for other in configs]
            parts.append(_describe(names[path], _at(config, path), values))
        descriptions.append(", ".join(part for part in parts if part))
    return descriptions


def shorten(text: str, limit: int = MAX_LABEL) -> str:
    """`text` in at most `limit` characters: whole ", "-separated parts while they fit, then
    "+N more"; a single part too long is cut and ends in an ellipsis."""
    if limit < 2:
        raise ValueError(f"limit: expected at least 2 characters, got {limit!r}")
    if len(text) <= limit:
        return text
    parts = text.split(", ")
    for kept in range(len(parts) - 1, 0, -1):
        candidate = ", ".join(parts[:kept]) + f", +{len(parts) - kept} more"
        if len(candidate) <= limit:
            return candidate
    return text[: limit - 1].rstrip(" ,") + _ELLIPSIS


def _differing(values: list[Any], path: Path) -> list[Path]:
    """The deepest paths at which `values` (one per config, None where absent) differ."""
    if len({_canonical(v) for v in values}) <= 1:
        return []
    if all(isinstance(v, dict) for v in values):
        keys: dict[str, None] = {}
        for value in values:
            keys.update(dict.fromkeys(value))
        return [found for key in keys
                for found in _differing([v.get(key) for v in values], (*path, key))]
    if all(isinstance(v, list) for v in values) and len({len(v) for v in values}) == 1:
        return [found for index in range(len(values[0]))
                for found in _differing([v[index] for v in values], (*path, index))]
    return [path]


def _describe(name: str, value: Any, values: list[Any]) -> str:
    present = [v for v in values if v is not None]
    if value is None:
        sections = any(isinstance(v, dict | list) for v in present)
        return f"no {name}" if sections else f"{name}=none"
    if isinstance(value, dict) and len(present) < len(values):
        # A section only some configs have: name it, with how it differs among those.
        inner = describe_differences([v for v in present if isinstance(v, dict)])
        mine = inner[[v for v in present if isinstance(v, dict)].index(value)] if inner else ""
        return f"{name} ({mine})" if mine else name
    return f"{name}={_value_text(value)}"


def _value_text(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        kinds = [str(item.get("kind")) for item in value
                 if isinstance(item, dict) and isinstance(item.get("kind"), str)]
        if value and len(kinds) == len(value):
            return "+".join(kinds)
        if not value:
            return "none"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"), default=str)
    return str(value)


def short_key_names(keys: Sequence[str]) -> dict[str, str]:
    """Each dotted key's shortest tail that no other of `keys` ends with."""
    paths = [tuple(key.split(".")) for key in keys]
    return dict(zip(keys, _short_names(list(paths)).values(), strict=True))


def _short_names(paths: list[Path]) -> dict[Path, str]:
    """Each path's shortest unique tail, never starting at a list index."""
    names = {}
    for path in paths:
        for length in range(1, len(path) + 1):
            tail = path[-length:]
            if isinstance(tail[0], int) and length < len(path):
                continue
            if sum(other[-length:] == tail for other in paths) == 1:
                break
        names[path] = _dotted(tail) if path else "settings"
    return names


def _dotted(parts: Path) -> str:
    """("attackers", 0, "epochs") -> "attackers[0].epochs"."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else f"{'.' if text else ''}{part}"
    return text


def _at(config: Any, path: Path) -> Any:
    node = config
    for part in path:
        if isinstance(part, int):
            node = node[part] if isinstance(node, list) and part < len(node) else None
        else:
            node = node.get(part) if isinstance(node, dict) else None
        if node is None:
            return None
    return node


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)
