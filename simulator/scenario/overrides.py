"""`--set key.path=value` overrides of a scenario's raw mapping, with `+=` appending to a
list, and refusals that say which key or index was wrong."""

from __future__ import annotations

import re
from typing import Any

import yaml

from simulator.foundations.errors import ScenarioError, shown
from simulator.foundations.yaml_files import check_size, first_line, load_yaml_text


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split `a.b.c=value` into its key path and a YAML-typed value."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ScenarioError(f"--set {shown(text)}: expected key.path=value")
    try:
        value = load_yaml_text(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        problem = first_line(getattr(exc, "problem", None) or str(exc))
        raise ScenarioError(f"--set {shown(text)}: value is not valid YAML"
                            + (f" ({shown(problem, 300, quote=False)})" if problem else "")
                            ) from exc
    except RecursionError as exc:
        raise ScenarioError(f"--set {shown(text)}: nested too deeply") from exc
    check_size(value, f"--set {shown(text)}")
    return key.strip().split("."), value


APPEND = "+"  # `attackers+={...}` adds an item to a list


def apply_override(data: dict[str, Any], path: list[str], value: Any) -> None:
    """Set a nested key in the raw scenario mapping; list items are addressed by index. A
    last key ending in `+` (`attackers+={...}`) appends the value to that list (each item of
    a list value), and the index one past the end (`attackers.1=...` on a list of one) appends
    it too."""
    node: Any = data
    text = ".".join(path)
    for depth, key in enumerate(path[:-1]):
        where = ".".join(path[: depth + 1])
        if isinstance(node, list):
            node = node[_list_index(node, key, where, text)]
        else:
            if key not in node or node[key] is None:
                node[key] = {}
            node = node[key]
        if not isinstance(node, dict | list):  # also a list item that is a value
            raise ScenarioError(f"--set {shown(text, quote=False)}: "
                                f"{shown(where, quote=False)} is a value, not a section")
    last = path[-1]
    if last.endswith(APPEND) and len(last) > len(APPEND):
        _append(node, last.removesuffix(APPEND), value, text)
    elif isinstance(node, list):
        if re.fullmatch(r"[0-9]{1,9}", last) and int(last) == len(node):
            node.append(value)
        else:
            node[_list_index(node, last, text, text, appendable=True)] = value
    else:
        node[last] = value


def _append(node: Any, key: str, value: Any, text: str) -> None:
    """`key+=value`: add `value` (each item of a list value) to the list at `key`."""
    if isinstance(node, list):
        node = node[_list_index(node, key, text, text)]
        target: Any = node
    else:
        if key not in node or node[key] is None:
            node[key] = []
        target = node[key]
    if not isinstance(target, list):
        raise ScenarioError(f"--set {shown(text, quote=False)}: {shown(key, quote=False)} is "
                            f"not a list; += appends to a list (set it with {key}=...)")
    target.extend(value if isinstance(value, list) else [value])


def _list_index(items: list[Any], key: str, where: str, text: str,
                appendable: bool = False) -> int:
    """The list index `key` names at `where` (part of the override `text`), or a refusal
    that says which indices exist and how to add an item."""
    # ASCII digits only: str.isdigit() also takes '²' and '٣', which int() refuses.
    if not re.fullmatch(r"[0-9]{1,9}", key) or int(key) >= len(items):
        lst = where.rpartition(".")[0] or where
        span = f"0 to {len(items) - 1}" if items else "none: the list is empty"
        add = (f"{len(items)} appends" if appendable else
               f"set {lst}.{len(items)}={{...}} first")
        raise ScenarioError(f"--set {shown(where, quote=False)}: expected an index below "
                            f"{len(items)} (indices {span}; {add}, as does {lst}+=...)")
    return int(key)
