"""W-TinyLFU (paper §3.6): window LRU + main SLRU, admission by sketched frequency."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Mapping
from typing import Any, ClassVar

from karma_memory.core.errors import ConfigError, MemoryFileError
from karma_memory.core.policies.base import (
    check_capacity,
    check_int,
    check_state,
    state_header,
    state_keys,
)
from karma_memory.core.policies.sketch import FrequencySketch

__all__ = ["WTinyLFUPolicy", "resolve_split", "check_ratio"]

_NO_KEY = object()  # sentinel: no access is pending a merge


def resolve_split(capacity: int, window: int | None, main: int | None) -> tuple[int, int]:
    """Return the [window, main] split of ``capacity``.

    With neither given, the canonical 1 % window (at least one unit) is used; with one given
    the other is the rest; with both given they must add up to ``capacity``.

    >>> resolve_split(10, None, None), resolve_split(10, 9, None), resolve_split(10, None, 8)
    ((1, 9), (9, 1), (2, 8))

    Raises:
        ConfigError: naming the bad value.
    """
    capacity = check_capacity(capacity)
    if window is None and main is None:
        window = max(1, capacity // 100)
    if window is not None:
        window = check_int(window, "window", 0)
        if window > capacity:
            raise ConfigError(f"window {window} exceeds capacity {capacity}")
    if main is not None:
        main = check_int(main, "main", 0)
        if main > capacity:
            raise ConfigError(f"main {main} exceeds capacity {capacity}")
    if window is None:
        assert main is not None
        window = capacity - main
    elif main is None:
        main = capacity - window
    elif window + main != capacity:
        raise ConfigError(f"window {window} + main {main} != capacity {capacity}")
    return window, main


def check_ratio(value: object) -> float:
    """Return ``value`` as a float in [0, 1], else raise ConfigError naming it."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ConfigError(f"protected_ratio must be a number in [0, 1], got {value!r}")
    return float(value)


class WTinyLFUPolicy:
    """Window TinyLFU (Einziger et al.), as the paper's approximation of LFU.

    * New keys enter the **window** (an LRU of ``window`` units).
    * The **main** segment (``main`` units) is an SLRU: keys arrive in **probation**; a hit in
      probation promotes to **protected** (``floor(protected_ratio × main)`` units), whose
      overflow is demoted back to probation's most-recent end.
    * While main has room, window overflow moves to probation. Once full, the window victim
      (the *candidate*) competes with the probation LRU victim (protected LRU if probation is
      empty): the candidate is admitted only if its sketched frequency is strictly higher,
      otherwise the candidate itself is evicted (canonical W-TinyLFU admission, as Caffeine
      and theine). With ``window == 0`` the newcomer is the candidate and may be rejected.
    * Every ``access`` (hit or miss) and every ``insert`` not directly following
      ``access(key)`` records one use in a :class:`FrequencySketch` (4-row count-min sketch,
      doorkeeper Bloom filter, all counters halved every ``sample_window`` uses).

    The paper's ``[a, b]`` notation is ``window=a, main=b`` (e.g. ``[9, 1]`` for capacity 10).

    >>> p = WTinyLFUPolicy(3, window=1, main=2)
    >>> [p.insert(k) for k in "abc"]
    [[], [], []]
    >>> p.access("b"), p.access("b"), p.insert("d")
    (True, True, ['c'])
    """

    name: ClassVar[str] = "wtinylfu"

    def __init__(
        self,
        capacity: int,
        window: int | None = None,
        main: int | None = None,
        protected_ratio: float = 0.8,
        sample_window: int | None = None,
    ) -> None:
        """Create an empty W-TinyLFU policy.

        Args:
            capacity: Total units (window + main).
            window: Units in the window LRU; default 1 % of capacity (at least 1).
            main: Units in the main SLRU; default capacity - window.
            protected_ratio: Share of main reserved for the protected segment, in [0, 1].
            sample_window: W, recorded uses between counter halvings; default 10 × capacity.

        Raises:
            ConfigError: naming any out-of-range value.
        """
        self._capacity = check_capacity(capacity)
        self._window_cap, self._main_cap = resolve_split(self._capacity, window, main)
        self._protected_ratio = check_ratio(protected_ratio)
        self._protected_cap = int(self._protected_ratio * self._main_cap)
        self._sketch = FrequencySketch(self._capacity, sample_window)
        self._window: OrderedDict[Hashable, None] = OrderedDict()
        self._probation: OrderedDict[Hashable, None] = OrderedDict()
        self._protected: OrderedDict[Hashable, None] = OrderedDict()
        self._pending: object = _NO_KEY

    # -- introspection -------------------------------------------------------------------
    @property
    def capacity(self) -> int:
        """Maximum number of resident keys (window + main)."""
        return self._capacity

    @property
    def split(self) -> tuple[int, int]:
        """The [window, main] split in units."""
        return self._window_cap, self._main_cap

    @property
    def protected_capacity(self) -> int:
        """Units of main reserved for the protected segment."""
        return self._protected_cap

    @property
    def sketch(self) -> FrequencySketch:
        """The frequency sketch (read it; mutating it changes admission decisions)."""
        return self._sketch

    def frequency(self, key: Hashable) -> int:
        """Sketched recent uses of ``key`` (resident or not)."""
        return self._sketch.estimate(key)

    def segments(self) -> dict[str, list[Hashable]]:
        """Keys per segment, each least recent first."""
        return {
            "window": list(self._window),
            "probation": list(self._probation),
            "protected": list(self._protected),
        }

    def __len__(self) -> int:
        return len(self._window) + len(self._probation) + len(self._protected)

    def __contains__(self, key: object) -> bool:
        return key in self._window or key in self._probation or key in self._protected

    def __repr__(self) -> str:
        return (
            f"WTinyLFUPolicy(capacity={self._capacity}, window={self._window_cap}, "
            f"main={self._main_cap}, size={len(self)})"
        )

    def keys(self) -> list[Hashable]:
        """Resident keys: window, then probation, then protected, each least recent first."""
        return [*self._window, *self._probation, *self._protected]

    # -- operations ----------------------------------------------------------------------
    def _touch(self, key: Hashable) -> bool:
        """Update recency/segment of a resident key; return False if it is not resident."""
        if key in self._window:
            self._window.move_to_end(key)
            return True
        if key in self._protected:
            self._protected.move_to_end(key)
            return True
        if key in self._probation:
            if self._protected_cap == 0:
                self._probation.move_to_end(key)
                return True
            del self._probation[key]
            protected = self._protected
            protected[key] = None
            if len(protected) > self._protected_cap:
                self._probation[protected.popitem(last=False)[0]] = None
            return True
        return False

    def access(self, key: Hashable) -> bool:
        """Record one use of ``key`` in the sketch; on a hit update its recency/segment."""
        self._sketch.increment(key)
        self._pending = key
        return self._touch(key)

    def insert(self, key: Hashable) -> list[Hashable]:
        """Admit ``key`` through the window, or merge it if resident (see class docstring)."""
        counted = self._pending is not _NO_KEY and self._pending == key
        self._pending = _NO_KEY
        if not counted:
            self._sketch.increment(key)
        if self._touch(key):
            return []
        if self._window_cap:
            window = self._window
            window[key] = None
            if len(window) <= self._window_cap:
                return []
            candidate = window.popitem(last=False)[0]
        else:
            candidate = key
        probation = self._probation
        if len(probation) + len(self._protected) < self._main_cap:
            probation[candidate] = None
            return []
        if not self._main_cap:
            return [candidate]
        if probation:
            victim = next(iter(probation))
            segment = probation
        else:
            victim = next(iter(self._protected))
            segment = self._protected
        if self._sketch.estimate(candidate) > self._sketch.estimate(victim):
            del segment[victim]
            probation[candidate] = None
            return [victim]
        return [candidate]

    def remove(self, key: Hashable) -> bool:
        """Drop ``key`` from whichever segment holds it; return whether it was resident.

        The sketch keeps the key's history (it is frequency of use, not residency).
        """
        for segment in (self._window, self._probation, self._protected):
            if key in segment:
                del segment[key]
                return True
        return False

    def clear(self) -> None:
        """Forget every key and the whole frequency history."""
        self._window.clear()
        self._probation.clear()
        self._protected.clear()
        self._sketch.clear()
        self._pending = _NO_KEY

    # -- persistence ---------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """Snapshot: parameters, the three segments (least recent first) and the sketch."""
        out = state_header(self.name, self._capacity)
        out["params"] = {
            "window": self._window_cap,
            "main": self._main_cap,
            "protected_ratio": self._protected_ratio,
            "sample_window": self._sketch.sample_window,
        }
        out["segments"] = self.segments()
        out["sketch"] = self._sketch.state()
        out["pending"] = [] if self._pending is _NO_KEY else [self._pending]
        return out

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> WTinyLFUPolicy:
        """Rebuild from ``state()`` output.

        Raises:
            MemoryFileError: if the state is malformed or inconsistent with its parameters.
        """
        capacity = check_state(state, cls.name)
        params = state.get("params")
        segments = state.get("segments")
        if not isinstance(params, Mapping) or not isinstance(segments, Mapping):
            raise MemoryFileError("W-TinyLFU state needs 'params' and 'segments' mappings")
        try:
            policy = cls(
                capacity,
                window=params.get("window"),
                main=params.get("main"),
                protected_ratio=params.get("protected_ratio", 0.8),
                sample_window=params.get("sample_window"),
            )
        except ConfigError as err:
            raise MemoryFileError(f"W-TinyLFU state has bad parameters: {err}") from err
        window = state_keys(segments, "window")
        probation = state_keys(segments, "probation")
        protected = state_keys(segments, "protected")
        if len(set(window) | set(probation) | set(protected)) != len(window) + len(probation) + len(protected):
            raise MemoryFileError("W-TinyLFU state lists a key in two segments")
        if (
            len(window) > policy._window_cap
            or len(probation) + len(protected) > policy._main_cap
            or len(protected) > policy._protected_cap
        ):
            raise MemoryFileError(
                f"W-TinyLFU state segments ({len(window)}, {len(probation)}, {len(protected)}) "
                f"overflow split {policy.split} / protected {policy._protected_cap}"
            )
        policy._window = OrderedDict.fromkeys(window)
        policy._probation = OrderedDict.fromkeys(probation)
        policy._protected = OrderedDict.fromkeys(protected)
        sketch = state.get("sketch")
        if not isinstance(sketch, Mapping):
            raise MemoryFileError("W-TinyLFU state needs a 'sketch' mapping")
        policy._sketch.load_state(sketch)
        pending = state.get("pending", [])
        if not isinstance(pending, list) or len(pending) > 1:
            raise MemoryFileError(f"W-TinyLFU state pending must hold at most one key, got {pending!r}")
        policy._pending = pending[0] if pending else _NO_KEY
        return policy
