"""FIFO with merge (paper §3.6): evict the oldest unit; a re-inserted object id keeps its place."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Mapping
from typing import Any, ClassVar

from karma_memory.core.errors import MemoryFileError
from karma_memory.core.policies.base import check_capacity, check_state, state_header, state_keys

__all__ = ["FIFOPolicy"]


class FIFOPolicy:
    """A queue of object ids; when full, the oldest insertion is evicted.

    The paper's modification ("merge"): if a unit for the same object id is already queued,
    the new unit replaces it in place instead of replacing the oldest one, so a re-inserted
    key neither moves nor evicts anything. Accesses do not change the order.

    >>> p = FIFOPolicy(2)
    >>> p.insert("a"), p.insert("b"), p.insert("a"), p.insert("c")
    ([], [], [], ['a'])
    """

    name: ClassVar[str] = "fifo"

    def __init__(self, capacity: int) -> None:
        """Create an empty queue holding at most ``capacity`` keys (units)."""
        self._capacity = check_capacity(capacity)
        self._queue: OrderedDict[Hashable, None] = OrderedDict()

    @property
    def capacity(self) -> int:
        """Maximum number of resident keys."""
        return self._capacity

    def __len__(self) -> int:
        return len(self._queue)

    def __contains__(self, key: object) -> bool:
        return key in self._queue

    def __repr__(self) -> str:
        return f"FIFOPolicy(capacity={self._capacity}, size={len(self._queue)})"

    def keys(self) -> list[Hashable]:
        """Resident keys, oldest insertion (next victim) first."""
        return list(self._queue)

    def access(self, key: Hashable) -> bool:
        """Return whether ``key`` is resident; FIFO keeps no usage history."""
        return key in self._queue

    def insert(self, key: Hashable) -> list[Hashable]:
        """Append ``key``, evicting the oldest when full; merge a resident key in place."""
        queue = self._queue
        if key in queue:
            return []
        evicted: list[Hashable] = []
        if len(queue) >= self._capacity:
            evicted.append(queue.popitem(last=False)[0])
        queue[key] = None
        return evicted

    def remove(self, key: Hashable) -> bool:
        """Drop ``key`` if resident; return whether it was."""
        return self._queue.pop(key, 0) is None

    def clear(self) -> None:
        """Empty the queue."""
        self._queue.clear()

    def state(self) -> dict[str, Any]:
        """Snapshot: the queue, oldest first."""
        out = state_header(self.name, self._capacity)
        out["queue"] = list(self._queue)
        return out

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> FIFOPolicy:
        """Rebuild from ``state()`` output.

        Raises:
            MemoryFileError: if the state is malformed or holds more keys than its capacity.
        """
        policy = cls(check_state(state, cls.name))
        queue = state_keys(state, "queue")
        if len(queue) > policy._capacity:
            raise MemoryFileError(f"FIFO state holds {len(queue)} keys > capacity {policy._capacity}")
        policy._queue = OrderedDict.fromkeys(queue)
        return policy
