"""The ReplacementPolicy protocol and the helpers every policy shares (capacity checks, state checks)."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any, ClassVar, Protocol, runtime_checkable

from karma_memory.core.errors import ConfigError, MemoryFileError

__all__ = [
    "STATE_VERSION",
    "ReplacementPolicy",
    "check_capacity",
    "check_int",
    "state_header",
    "check_state",
    "state_keys",
]

#: Version of the dict layout written by ``state()``; bumped on incompatible changes.
STATE_VERSION = 1


@runtime_checkable
class ReplacementPolicy(Protocol):
    """Decides which keys (object ids) stay resident in a fixed-capacity short-term memory.

    A policy only tracks keys; the memory units themselves live with the caller. The usual
    call pattern per query is ``if not policy.access(key): policy.insert(key)``.

    Semantics shared by every policy (checked by the contract tests):

    * ``len(policy) <= policy.capacity`` at all times.
    * ``access(key)`` records one use of ``key`` and returns True iff it is resident. It never
      admits or evicts anything.
    * ``insert(key)`` admits a new key or merges a resident one. Merging never evicts and
      keeps exactly one entry per key. Admitting returns the evicted keys; a policy with
      admission control (W-TinyLFU) may reject the newcomer, and then returns ``[key]``:
      the caller must treat the key as not stored.
    * A use is counted once per request: ``insert(key)`` right after ``access(key)`` (the
      miss-then-fill pattern) does not count a second use.
    * ``state()`` is JSON-serialisable when the keys are (str or int), and
      ``type(policy).from_state(policy.state())`` behaves exactly like ``policy``.
    """

    #: Registry name of the policy ("fifo", "lru", "lfu", "wtinylfu").
    name: ClassVar[str]

    @property
    def capacity(self) -> int:
        """Maximum number of resident keys (units)."""
        ...

    def __len__(self) -> int:
        """Number of resident keys."""
        ...

    def __contains__(self, key: object) -> bool:
        """Whether ``key`` is resident; does not count as a use."""
        ...

    def keys(self) -> list[Hashable]:
        """Resident keys, in the policy's eviction order (the next victim first where defined)."""
        ...

    def access(self, key: Hashable) -> bool:
        """Record one use of ``key``; return True if it is resident (a hit)."""
        ...

    def insert(self, key: Hashable) -> list[Hashable]:
        """Admit or merge ``key``; return the evicted keys (``[key]`` if it was rejected)."""
        ...

    def remove(self, key: Hashable) -> bool:
        """Drop ``key`` if resident; return whether it was."""
        ...

    def clear(self) -> None:
        """Forget every key and all usage history (the STM is refreshed at agent start)."""
        ...

    def state(self) -> dict[str, Any]:
        """Return a JSON-serialisable snapshot from which ``from_state`` rebuilds the policy."""
        ...

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> ReplacementPolicy:
        """Rebuild a policy from ``state()`` output."""
        ...


def check_int(value: object, what: str, minimum: int = 0) -> int:
    """Return ``value`` if it is an int >= ``minimum``.

    Args:
        value: The candidate value (bools are rejected: ``True`` is not a size).
        what: Name of the setting, used in the error message.
        minimum: Smallest accepted value.

    Raises:
        ConfigError: naming ``what`` and the bad value.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{what} must be an int, got {value!r}")
    if value < minimum:
        raise ConfigError(f"{what} must be >= {minimum}, got {value!r}")
    return value


def check_capacity(capacity: object) -> int:
    """Return ``capacity`` if it is a positive int, else raise ConfigError naming it.

    >>> check_capacity(10)
    10
    """
    return check_int(capacity, "capacity", 1)


def state_header(name: str, capacity: int) -> dict[str, Any]:
    """Return the fields every policy state starts with, so a loader can dispatch and check."""
    return {"policy": name, "version": STATE_VERSION, "capacity": capacity}


def check_state(state: Mapping[str, Any], name: str) -> int:
    """Check a state's header against policy ``name`` and return its capacity.

    Raises:
        MemoryFileError: if the state is for another policy, another layout version, or has
            no valid capacity.
    """
    if not isinstance(state, Mapping):
        raise MemoryFileError(f"policy state must be a mapping, got {type(state).__name__}")
    if state.get("policy") != name:
        raise MemoryFileError(f"policy state is for {state.get('policy')!r}, not {name!r}")
    if state.get("version") != STATE_VERSION:
        raise MemoryFileError(
            f"policy state version {state.get('version')!r} is not supported (want {STATE_VERSION})"
        )
    try:
        return check_capacity(state.get("capacity"))
    except ConfigError as err:
        raise MemoryFileError(f"policy state has a bad capacity: {err}") from err


def state_keys(state: Mapping[str, Any], field: str) -> list[Hashable]:
    """Return ``state[field]`` as a list of distinct hashable keys.

    Raises:
        MemoryFileError: if the field is missing, not a list, or holds unhashable or repeated keys.
    """
    raw = state.get(field)
    if not isinstance(raw, list):
        raise MemoryFileError(f"policy state field {field!r} must be a list, got {raw!r}")
    seen: set[Hashable] = set()
    for key in raw:
        if not isinstance(key, Hashable):
            raise MemoryFileError(f"policy state field {field!r} holds an unhashable key {key!r}")
        if key in seen:
            raise MemoryFileError(f"policy state field {field!r} repeats key {key!r}")
        seen.add(key)
    return list(raw)
