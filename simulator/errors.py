"""Errors the engine's runner raises (kept apart so the CLI can name them without loading
the engine)."""


class CapacityError(RuntimeError):
    """A run needed more room than the hard limit allows."""


class EngineError(RuntimeError):
    """The engine met a number it cannot carry on with (a non-finite rate, a count beyond
    int64): a bug or a parameter combination validation did not foresee."""
