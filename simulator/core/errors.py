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
