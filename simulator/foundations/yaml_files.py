"""Hardened YAML reading: scenario, sweep and results files and `--set` values.

A file that is too large, nested too deep, not UTF-8, that gives a key twice or whose aliases
expand past a bound is refused in one line that names the file (and line); `${VAR}` and
`${VAR:-default}` expand in data paths.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from simulator.foundations.errors import ScenarioError, shown

_ENV_PATTERN = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand_env(text: str) -> str:
    """Expand ${VAR} and ${VAR:-default} in a string (used for data paths)."""

    def substitute(match: re.Match[str]) -> str:
        value = os.environ.get(match.group(1))
        if value:
            return value
        if match.group(2) is not None:
            return match.group(2)
        raise ScenarioError(
            f"environment variable {shown(match.group(1), quote=False)} is not set")

    return _ENV_PATTERN.sub(substitute, text)


# Scenario, sweep and results files are small; these bound what a hostile or broken file can
# make the loader (and the override machinery, which copies the data) do.
MAX_YAML_BYTES = 1 << 20
MAX_YAML_NODES = 100_000  # counted with every alias expanded
MAX_YAML_DEPTH = 64


MAX_INT_CHARACTERS = 4_300  # the most digits Python reads as an int
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_CONSTRUCTOR_FAILURES = (ValueError, TypeError, AttributeError, KeyError, IndexError,
                         OverflowError)


# libyaml's parser where PyYAML was built with it (the wheels are): a tenth of the pure-Python
# parser's time, with the same safe constructors.
_SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _StrictLoader(_SafeLoader):  # type: ignore[valid-type,misc]
    """PyYAML's safe loader that refuses a key given twice in one mapping, reads what looks
    like a date (`2001-01-01`) as the text it is, and refuses a value its tag cannot build
    (`!!int "abc"`, `!!timestamp x`, an integer of 100,000 digits) as invalid YAML at its
    line."""

    # No setting is a date: YAML 1.1's implicit dates would only turn `seed: 2001-01-01`
    # into a date (and `2001-13-45` into a crash) where the text gives a clear error.
    yaml_implicit_resolvers = {
        first: [(tag, pattern) for tag, pattern in resolvers if tag != _TIMESTAMP]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except _CONSTRUCTOR_FAILURES as exc:
            tag = str(node.tag).replace("tag:yaml.org,2002:", "!!")
            value = f"{shown(node.value)} " if isinstance(node, yaml.ScalarNode) else ""
            # A ValueError says what is wrong (`month must be in 1..12`); the others only
            # how the constructor tripped.
            reason = f" ({shown(str(exc), quote=False)})" if isinstance(exc, ValueError) else ""
            raise yaml.constructor.ConstructorError(
                None, None, f"{value}cannot be read as {shown(tag, quote=False)}{reason}",
                node.start_mark) from None

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        if len(str(node.value)) > MAX_INT_CHARACTERS:
            raise yaml.constructor.ConstructorError(
                None, None, f"an integer of {len(str(node.value)):,} characters is too long "
                f"(at most {MAX_INT_CHARACTERS:,})", node.start_mark)
        return int(super().construct_yaml_int(node))

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> dict[Any, Any]:
        if not isinstance(node, yaml.MappingNode):  # `!!map x`: the base class says so
            return super().construct_mapping(node, deep=deep)
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, str | int | float | bool):
                continue
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {shown(key)} given twice (first on line {seen[key]})",
                    key_node.start_mark)
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


_StrictLoader.add_constructor("tag:yaml.org,2002:int", _StrictLoader.construct_yaml_int)


_SURROGATE = re.compile("[\ud800-\udfff]")


def load_yaml_text(text: str) -> Any:
    """Parse YAML with the strict loader; whatever fails is a yaml.YAMLError (or, for text
    nested too deeply, a RecursionError)."""
    bad = _SURROGATE.search(text)
    if bad is not None:  # libyaml reads UTF-8 bytes, which a lone surrogate cannot become
        raise yaml.YAMLError(f"unacceptable character #x{ord(bad.group()):04x} at position "
                             f"{bad.start()}: not valid text")
    try:
        return yaml.load(text, Loader=_StrictLoader)  # a SafeLoader: builds plain data only
    except (yaml.YAMLError, RecursionError):
        raise
    except _CONSTRUCTOR_FAILURES as exc:  # anything the constructors above did not place
        raise yaml.YAMLError(shown(f"{type(exc).__name__}: {exc}", quote=False)) from None


def check_size(data: Any, where: str) -> None:
    """Refuse data nested too deep, or too large once its aliases are expanded (sizes are
    memoised per shared object, so a billion-laughs file is measured without expanding)."""
    _expanded_size(data, 1, {}, where)


def _expanded_size(value: Any, depth: int, memo: dict[int, int], where: str) -> int:
    if not isinstance(value, dict | list):
        return 1
    if depth > MAX_YAML_DEPTH:  # also ends a self-referencing alias
        raise ScenarioError(f"{where}: nested deeper than {MAX_YAML_DEPTH} levels")
    if id(value) in memo:
        return memo[id(value)]
    parts = [*value.keys(), *value.values()] if isinstance(value, dict) else value
    total = 1 + sum(_expanded_size(part, depth + 1, memo, where) for part in parts)
    if total > MAX_YAML_NODES:
        raise ScenarioError(
            f"{where}: more than {MAX_YAML_NODES:,} values once its aliases (*) are expanded")
    memo[id(value)] = total
    return total


def read_yaml(path: Path) -> dict[str, Any]:
    """Parse a YAML mapping, naming the file and line on syntax errors; a file that is too
    large, nested too deep, not UTF-8 or that gives a key twice is refused in one line."""
    try:
        size = path.stat().st_size
        raw = b""
        if size <= MAX_YAML_BYTES:
            with path.open("rb") as file:  # a file of /proc may hold more than its size says
                raw = file.read(MAX_YAML_BYTES + 1)
        if size > MAX_YAML_BYTES or len(raw) > MAX_YAML_BYTES:
            amount = f"{size:,}" if size > MAX_YAML_BYTES else f"over {MAX_YAML_BYTES:,}"
            raise ScenarioError(
                f"{path}: {amount} bytes; scenario files are limited to {MAX_YAML_BYTES:,}")
        text = raw.decode("utf-8")
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read scenario file ({exc.strerror})") from exc
    except UnicodeDecodeError as exc:
        raise ScenarioError(f"{path}: not UTF-8 text (byte {exc.start})") from exc
    except ValueError as exc:  # a NUL in the name
        raise ScenarioError(f"{shown(str(path), 300, quote=False)}: cannot read scenario file "
                            f"({exc})") from exc
    try:
        data = load_yaml_text(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = first_line(getattr(exc, "problem", None) or str(exc))
        raise ScenarioError(f"{where}: invalid YAML: {shown(problem, 300, quote=False)}"
                            ) from exc
    except RecursionError as exc:
        raise ScenarioError(f"{path}: nested too deeply to read") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ScenarioError(f"{path}: a scenario must be a YAML mapping of sections")
    check_size(data, str(path))
    return data


ModelT = TypeVar("ModelT", bound=BaseModel)


def load_model_file(model: type[ModelT], path: Path) -> ModelT:
    """Read a YAML file into a pydantic model (sweep and results files), naming the file and
    the first bad key on errors."""
    data = read_yaml(path)
    check_text(data, lambda location: str(path))
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = key_path(first["loc"]) or "(top level)"
        message = first["msg"].removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            message = "unknown key"
        raise ScenarioError(f"{path}: {where}: {shown(message, 300, quote=False)}") from None


def first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text


def key_path(location: tuple[int | str, ...]) -> str:
    """A key path as messages show it (`a.b.0.c`), each part cut to a readable length."""
    return ".".join(shown(str(part), quote=False) for part in location)


def check_text(data: Any, source: Any, at: tuple[int | str, ...] = ()) -> None:
    """Refuse a string (key or value) that is not valid Unicode: a lone surrogate, as an
    argument or file name whose bytes are not UTF-8 arrives in Python. `source(location)`
    says where the value came from."""
    items = (data.items() if isinstance(data, dict) else
             enumerate(data) if isinstance(data, list) else ())
    for key, value in items:
        for text in (key, value):
            if isinstance(text, str) and not _encodable(text):
                location = (*at, key)
                raise ScenarioError(
                    f"{source(location)}: {key_path(location)}: {shown(text)} is not valid "
                    "text (it holds a lone surrogate, as bytes that are not UTF-8 become)")
        check_text(value, source, (*at, key))


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
