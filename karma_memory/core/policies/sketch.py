"""TinyLFU frequency sketch: a 4-row count-min sketch of 4-bit counters behind a doorkeeper Bloom filter.

Sizing follows Caffeine/theine: 16 counters per unit of capacity (rounded up to a power of
two) spread over 4 rows, counters saturate at 15, and every ``sample_window`` (W) recorded
uses all counters are halved and the doorkeeper is cleared (the paper's freshness reset).
Hashing uses BLAKE2b of the key, not Python's per-process salted ``hash``, so a saved
sketch still matches its keys after a restart.
"""

from __future__ import annotations

import hashlib
from collections.abc import Hashable, Mapping
from typing import Any

from karma_memory.core.errors import MemoryFileError
from karma_memory.core.policies.base import check_capacity, check_int

__all__ = ["FrequencySketch", "stable_key_hash"]

ROWS = 4
COUNTER_MAX = 15
_MASK64 = (1 << 64) - 1
_MEMO_LIMIT = 1 << 16  # hashed keys remembered; the memo is dropped when it grows past this


def _next_pow2(n: int) -> int:
    return 1 << max(0, n - 1).bit_length()


def _key_bytes(key: Hashable) -> bytes:
    if isinstance(key, str):
        return b"s" + key.encode("utf-8", "surrogatepass")
    if isinstance(key, int):  # bools too: True == 1 must hash alike, as in a dict
        return b"i" + str(int(key)).encode()
    if isinstance(key, bytes):
        return b"b" + key
    return b"r" + repr(key).encode("utf-8", "surrogatepass")


def stable_key_hash(key: Hashable) -> tuple[int, int, int, int]:
    """Four independent 64-bit hashes of ``key``, identical in every process.

    str, int (and bool) and bytes keys hash by value; other keys hash by ``repr``.

    >>> stable_key_hash("Apple|1|2|3") == stable_key_hash("Apple|1|2|3")
    True
    """
    digest = hashlib.blake2b(_key_bytes(key), digest_size=32).digest()
    return (
        int.from_bytes(digest[0:8], "little"),
        int.from_bytes(digest[8:16], "little") | 1,
        int.from_bytes(digest[16:24], "little"),
        int.from_bytes(digest[24:32], "little") | 1,
    )


class FrequencySketch:
    """Approximate, aging use counts for an unbounded key universe in fixed memory.

    ``increment`` first sets the key's two bits in the doorkeeper; only a key already in the
    doorkeeper increments the count-min rows. ``estimate`` = min over the 4 rows + 1 if the
    key is in the doorkeeper. After W increments (every call counts, also those absorbed by
    the doorkeeper) the counters are halved (``c >>= 1``), the doorkeeper is cleared and the
    increment counter restarts at 0.

    >>> s = FrequencySketch(capacity=10, sample_window=100)
    >>> for _ in range(5):
    ...     s.increment("Apple")
    >>> s.estimate("Apple"), s.estimate("Bowl")
    (5, 0)
    """

    def __init__(self, capacity: int, sample_window: int | None = None) -> None:
        """Size the sketch for a cache of ``capacity`` units.

        Args:
            capacity: Units in the cache; sets the row width (4 × next power of two ≥ capacity,
                at least 64) and the doorkeeper size.
            sample_window: W, recorded uses between halvings; default 10 × capacity.
        """
        capacity = check_capacity(capacity)
        self.sample_window = check_int(
            10 * capacity if sample_window is None else sample_window, "sample_window", 1
        )
        self.width = max(64, 4 * _next_pow2(capacity))
        self.door_bits = max(256, _next_pow2(4 * self.sample_window))
        self._table = [0] * (ROWS * self.width)
        self._door = bytearray(self.door_bits >> 3)
        self.additions = 0
        self.resets = 0
        self._memo: dict[Hashable, tuple[int, ...]] = {}

    def _slots(self, key: Hashable) -> tuple[int, ...]:
        """(row0, row1, row2, row3, byte0, mask0, byte1, mask1) for ``key``, memoised."""
        h1, h2, h3, h4 = stable_key_hash(key)
        wmask = self.width - 1
        dmask = self.door_bits - 1
        d0 = h3 & dmask
        d1 = ((h3 >> 32) + h4) & dmask
        slots = tuple(
            row * self.width + (((h1 + row * h2) & _MASK64) >> 7 & wmask) for row in range(ROWS)
        ) + (d0 >> 3, 1 << (d0 & 7), d1 >> 3, 1 << (d1 & 7))
        memo = self._memo
        if len(memo) >= _MEMO_LIMIT:
            memo.clear()
        memo[key] = slots
        return slots

    def increment(self, key: Hashable) -> None:
        """Record one use of ``key``; halve everything when this is the W-th since the last reset."""
        s = self._memo.get(key) or self._slots(key)
        door = self._door
        b0, m0, b1, m1 = s[4], s[5], s[6], s[7]
        if door[b0] & m0 and door[b1] & m1:
            table = self._table
            i = s[0]
            if table[i] < COUNTER_MAX:
                table[i] += 1
            i = s[1]
            if table[i] < COUNTER_MAX:
                table[i] += 1
            i = s[2]
            if table[i] < COUNTER_MAX:
                table[i] += 1
            i = s[3]
            if table[i] < COUNTER_MAX:
                table[i] += 1
        else:
            door[b0] |= m0
            door[b1] |= m1
        self.additions += 1
        if self.additions >= self.sample_window:
            self.reset()

    def estimate(self, key: Hashable) -> int:
        """Estimated recent uses of ``key`` (never below the true count since the last reset, capped)."""
        s = self._memo.get(key) or self._slots(key)
        table = self._table
        count = min(table[s[0]], table[s[1]], table[s[2]], table[s[3]])
        door = self._door
        if door[s[4]] & s[5] and door[s[6]] & s[7]:
            count += 1
        return count

    def reset(self) -> None:
        """Halve every counter, clear the doorkeeper and restart the W count (aging)."""
        self._table = [c >> 1 for c in self._table]
        self._door = bytearray(len(self._door))
        self.additions = 0
        self.resets += 1

    def clear(self) -> None:
        """Zero every counter and the doorkeeper (a fresh sketch of the same size)."""
        self._table = [0] * (ROWS * self.width)
        self._door = bytearray(len(self._door))
        self.additions = 0
        self.resets = 0

    def state(self) -> dict[str, Any]:
        """Snapshot: one hex digit per counter, the doorkeeper bytes as hex, the W count."""
        digits = "0123456789abcdef"
        return {
            "width": self.width,
            "door_bits": self.door_bits,
            "sample_window": self.sample_window,
            "additions": self.additions,
            "resets": self.resets,
            "counters": "".join(digits[c] for c in self._table),
            "doorkeeper": self._door.hex(),
        }

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Restore counters written by ``state()`` into this (identically sized) sketch.

        Raises:
            MemoryFileError: if the sizes differ or the payload is malformed.
        """
        if not isinstance(state, Mapping):
            raise MemoryFileError(f"sketch state must be a mapping, got {state!r}")
        for field, mine in (
            ("width", self.width),
            ("door_bits", self.door_bits),
            ("sample_window", self.sample_window),
        ):
            if state.get(field) != mine:
                raise MemoryFileError(f"sketch state {field}={state.get(field)!r} does not match {mine}")
        counters = state.get("counters")
        door = state.get("doorkeeper")
        additions = state.get("additions")
        resets = state.get("resets", 0)
        if not isinstance(counters, str) or len(counters) != ROWS * self.width:
            raise MemoryFileError(f"sketch counters must be {ROWS * self.width} hex digits")
        if not isinstance(door, str) or len(door) != 2 * len(self._door):
            raise MemoryFileError(f"sketch doorkeeper must be {2 * len(self._door)} hex digits")
        if isinstance(additions, bool) or not isinstance(additions, int) or not 0 <= additions < self.sample_window:
            raise MemoryFileError(f"sketch additions {additions!r} out of range [0, {self.sample_window})")
        if isinstance(resets, bool) or not isinstance(resets, int) or resets < 0:
            raise MemoryFileError(f"sketch resets {resets!r} must be an int >= 0")
        try:
            table = [int(c, 16) for c in counters]
            door_bytes = bytearray.fromhex(door)
        except ValueError as err:
            raise MemoryFileError(f"sketch payload is not hex: {err}") from err
        self._table = table
        self._door = door_bytes
        self.additions = additions
        self.resets = resets
