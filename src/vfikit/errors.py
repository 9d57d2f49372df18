"""Error types shown to users without a traceback."""

from __future__ import annotations


class VfikitError(ValueError):
    """A user-facing error (bad input, missing file, wrong shape).

    The CLI prints the message and exits with status 2 instead of showing a traceback.
    It subclasses ValueError so library callers can catch it the usual way.
    """


class VfikitTypeError(VfikitError, TypeError):
    """A user-facing error about a wrong type or dtype."""


class MissingDependencyError(VfikitError, ImportError):
    """An optional dependency is needed for the requested feature."""
