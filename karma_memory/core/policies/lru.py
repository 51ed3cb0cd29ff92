"""Least-recently-used replacement: every access or merge makes a key the most recent."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Mapping
from typing import Any, ClassVar

from karma_memory.core.errors import MemoryFileError
from karma_memory.core.policies.base import check_capacity, check_state, state_header, state_keys

__all__ = ["LRUPolicy"]


class LRUPolicy:
    """Evicts the key whose last use (access or insert) is oldest; O(1) per operation.

    >>> p = LRUPolicy(2)
    >>> p.insert("a"), p.insert("b"), p.access("a"), p.insert("c")
    ([], [], True, ['b'])
    """

    name: ClassVar[str] = "lru"

    def __init__(self, capacity: int) -> None:
        """Create an empty LRU list holding at most ``capacity`` keys."""
        self._capacity = check_capacity(capacity)
        self._order: OrderedDict[Hashable, None] = OrderedDict()

    @property
    def capacity(self) -> int:
        """Maximum number of resident keys."""
        return self._capacity

    def __len__(self) -> int:
        return len(self._order)

    def __contains__(self, key: object) -> bool:
        return key in self._order

    def __repr__(self) -> str:
        return f"LRUPolicy(capacity={self._capacity}, size={len(self._order)})"

    def keys(self) -> list[Hashable]:
        """Resident keys, least recently used (next victim) first."""
        return list(self._order)

    def access(self, key: Hashable) -> bool:
        """Mark ``key`` most recently used if resident; return whether it was."""
        try:
            self._order.move_to_end(key)
        except KeyError:
            return False
        return True

    def insert(self, key: Hashable) -> list[Hashable]:
        """Make ``key`` the most recent, evicting the least recent key when full."""
        order = self._order
        if key in order:
            order.move_to_end(key)
            return []
        evicted: list[Hashable] = []
        if len(order) >= self._capacity:
            evicted.append(order.popitem(last=False)[0])
        order[key] = None
        return evicted

    def remove(self, key: Hashable) -> bool:
        """Drop ``key`` if resident; return whether it was."""
        return self._order.pop(key, 0) is None

    def clear(self) -> None:
        """Forget every key."""
        self._order.clear()

    def state(self) -> dict[str, Any]:
        """Snapshot: the keys, least recent first."""
        out = state_header(self.name, self._capacity)
        out["order"] = list(self._order)
        return out

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> LRUPolicy:
        """Rebuild from ``state()`` output.

        Raises:
            MemoryFileError: if the state is malformed or holds more keys than its capacity.
        """
        policy = cls(check_state(state, cls.name))
        order = state_keys(state, "order")
        if len(order) > policy._capacity:
            raise MemoryFileError(f"LRU state holds {len(order)} keys > capacity {policy._capacity}")
        policy._order = OrderedDict.fromkeys(order)
        return policy
