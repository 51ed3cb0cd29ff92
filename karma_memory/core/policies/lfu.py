"""Exact least-frequently-used replacement with LRU tie-break, O(1) per operation."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Mapping
from typing import Any, ClassVar

from karma_memory.core.errors import MemoryFileError
from karma_memory.core.policies.base import check_capacity, check_state, state_header

__all__ = ["LFUPolicy"]

_NO_KEY = object()  # sentinel: no access is pending a merge


class LFUPolicy:
    """Evicts the resident key with the fewest uses; among equals, the least recently used.

    Counts are exact and kept only for resident keys (an evicted key starts again at 1),
    which is the in-cache LFU the paper calls infeasible at scale and approximates with
    W-TinyLFU. Keys are bucketed by count (each bucket an LRU list), and the minimum count
    is tracked, so access, insert and eviction are O(1).

    >>> p = LFUPolicy(2)
    >>> p.insert("a"), p.insert("b"), p.access("a"), p.insert("c")
    ([], [], True, ['b'])
    """

    name: ClassVar[str] = "lfu"

    def __init__(self, capacity: int) -> None:
        """Create an empty LFU table holding at most ``capacity`` keys."""
        self._capacity = check_capacity(capacity)
        self._count: dict[Hashable, int] = {}
        self._buckets: dict[int, OrderedDict[Hashable, None]] = {}
        self._min = 0
        self._pending: object = _NO_KEY

    @property
    def capacity(self) -> int:
        """Maximum number of resident keys."""
        return self._capacity

    def __len__(self) -> int:
        return len(self._count)

    def __contains__(self, key: object) -> bool:
        return key in self._count

    def __repr__(self) -> str:
        return f"LFUPolicy(capacity={self._capacity}, size={len(self._count)})"

    def frequency(self, key: Hashable) -> int:
        """Uses of resident ``key`` since it was admitted (0 if not resident)."""
        return self._count.get(key, 0)

    def keys(self) -> list[Hashable]:
        """Resident keys, fewest uses first, then least recent first (next victim first)."""
        return [key for count in sorted(self._buckets) for key in self._buckets[count]]

    def _bump(self, key: Hashable, count: int) -> None:
        bucket = self._buckets[count]
        del bucket[key]
        if not bucket:
            del self._buckets[count]
            if self._min == count:
                self._min = count + 1
        count += 1
        self._count[key] = count
        nxt = self._buckets.get(count)
        if nxt is None:
            self._buckets[count] = OrderedDict(((key, None),))
        else:
            nxt[key] = None

    def access(self, key: Hashable) -> bool:
        """Count one use of ``key`` if resident; return whether it was."""
        count = self._count.get(key)
        if count is None:
            self._pending = key
            return False
        self._bump(key, count)
        self._pending = key
        return True

    def insert(self, key: Hashable) -> list[Hashable]:
        """Admit ``key`` with one use, evicting the least frequently used key when full.

        Merging a resident key counts a use unless it directly follows ``access(key)``.
        """
        counted = self._pending is not _NO_KEY and self._pending == key
        self._pending = _NO_KEY
        count = self._count.get(key)
        if count is not None:
            if not counted:
                self._bump(key, count)
            return []
        evicted: list[Hashable] = []
        if len(self._count) >= self._capacity:
            bucket = self._buckets[self._min]
            victim = bucket.popitem(last=False)[0]
            if not bucket:
                del self._buckets[self._min]
            del self._count[victim]
            evicted.append(victim)
        self._count[key] = 1
        ones = self._buckets.get(1)
        if ones is None:
            self._buckets[1] = OrderedDict(((key, None),))
        else:
            ones[key] = None
        self._min = 1
        return evicted

    def remove(self, key: Hashable) -> bool:
        """Drop ``key`` if resident; return whether it was."""
        count = self._count.pop(key, None)
        if count is None:
            return False
        bucket = self._buckets[count]
        del bucket[key]
        if not bucket:
            del self._buckets[count]
            if self._min == count:
                self._min = min(self._buckets) if self._buckets else 0
        return True

    def clear(self) -> None:
        """Forget every key and count."""
        self._count.clear()
        self._buckets.clear()
        self._min = 0
        self._pending = _NO_KEY

    def state(self) -> dict[str, Any]:
        """Snapshot: ``[key, count]`` pairs in eviction order, and a pending access if any."""
        out = state_header(self.name, self._capacity)
        out["entries"] = [[key, self._count[key]] for key in self.keys()]
        out["pending"] = [] if self._pending is _NO_KEY else [self._pending]
        return out

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> LFUPolicy:
        """Rebuild from ``state()`` output.

        Raises:
            MemoryFileError: if the state is malformed or holds more keys than its capacity.
        """
        policy = cls(check_state(state, cls.name))
        entries = state.get("entries")
        if not isinstance(entries, list) or len(entries) > policy._capacity:
            raise MemoryFileError(f"LFU state entries must be a list of <= capacity pairs: {entries!r}")
        for entry in entries:
            if not (isinstance(entry, (list, tuple)) and len(entry) == 2):
                raise MemoryFileError(f"LFU state entry must be [key, count], got {entry!r}")
            key, count = entry
            if isinstance(count, bool) or not isinstance(count, int) or count < 1:
                raise MemoryFileError(f"LFU state count for {key!r} must be an int >= 1, got {count!r}")
            if not isinstance(key, Hashable) or key in policy._count:
                raise MemoryFileError(f"LFU state key {key!r} is unhashable or repeated")
            policy._count[key] = count
            policy._buckets.setdefault(count, OrderedDict())[key] = None
        policy._min = min(policy._buckets) if policy._buckets else 0
        pending = state.get("pending", [])
        if not isinstance(pending, list) or len(pending) > 1:
            raise MemoryFileError(f"LFU state pending must be a list of at most one key, got {pending!r}")
        policy._pending = pending[0] if pending else _NO_KEY
        return policy
