"""Errors that reach the user as one clear line."""

from __future__ import annotations


class PrivsimError(Exception):
    """Base class: an error whose message is meant for the user as it stands."""


class DataFormatError(PrivsimError):
    """A data file is malformed; the message names the file and line."""

    def __init__(self, path: object, line: int | None, problem: str) -> None:
        where = f"{path}:{line}" if line is not None else f"{path}"
        super().__init__(f"{where}: {problem}")
        self.path = path
        self.line = line
        self.problem = problem


class ScenarioError(PrivsimError):
    """A scenario file or override is invalid; the message names the key path."""


MAX_SHOWN = 100  # characters of a value that a message quotes


def shown(value: object, limit: int = MAX_SHOWN, *, quote: bool = True) -> str:
    """A value as a message quotes it: its repr (with quote=False, a string's own text), cut
    to `limit` characters and followed by its length when longer, so that a value of
    100,000 characters reads `'aaaa...' (100,000 characters)`."""
    if isinstance(value, str):
        if len(value) <= limit:
            return repr(value) if quote else value
        head = repr(value[:limit]) if quote else value[:limit]
        cut = f"{head[:-1]}...{head[-1]}" if quote else f"{head}..."
        return f"{cut} ({len(value):,} characters)"
    try:
        text = repr(value)
    except ValueError:  # an integer with more digits than Python prints
        digits = int(value.bit_length() * 0.30103) if isinstance(value, int) else 0
        return f"an integer of about {digits:,} digits"
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"
