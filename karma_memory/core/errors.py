"""Typed error hierarchy of the core; nodes catch these at the callback boundary."""

from __future__ import annotations

__all__ = [
    "KarmaMemoryError",
    "InvalidObservationError",
    "UnknownObjectError",
    "MemoryFileError",
    "SchemaVersionError",
    "ConfigError",
    "InvalidFrameError",
    "PlanValidationError",
    "GoalConditionError",
    "SimulatorError",
]


class KarmaMemoryError(Exception):
    """Base of every error raised by karma_memory (never shadows the builtin MemoryError)."""


class ConfigError(KarmaMemoryError, ValueError):
    """A configuration value is out of range or of the wrong type."""


class InvalidObservationError(KarmaMemoryError, ValueError):
    """An object observation is malformed (NaN position, empty id, unknown state, ...)."""


class UnknownObjectError(KarmaMemoryError, KeyError):
    """An object id or type is not known to the memory or the scene."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else "unknown object"


class MemoryFileError(KarmaMemoryError):
    """A memory file is missing, truncated, corrupt or fails its checksum."""


class SchemaVersionError(MemoryFileError):
    """A memory file was written by a schema version this code cannot read."""


class InvalidFrameError(KarmaMemoryError, ValueError):
    """A camera frame was rejected by perception (bad sizes, depth, masks or pose)."""


class PlanValidationError(KarmaMemoryError, ValueError):
    """A plan (from an LLM or elsewhere) does not satisfy the skill schema."""


class GoalConditionError(KarmaMemoryError, ValueError):
    """A goal condition is malformed or cannot be evaluated."""


class SimulatorError(KarmaMemoryError):
    """The simulator was asked for something it cannot do (unknown scene, bad action)."""
