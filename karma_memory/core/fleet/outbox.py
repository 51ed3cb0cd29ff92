"""Durable outbox of writes waiting for the shared store: SQLite in WAL mode, fsync'ed per append.

A robot appends every record it writes here first (one transaction per batch of observations),
and the push thread deletes rows only after the server acknowledged them. So a robot that loses the
server, or is killed (even ``kill -9``) between an observation and its upload, replays the rows on the
next start; the server keys records by id and every row carries its record version, so a replay is an
idempotent upsert — nothing lost, nothing applied twice. A row holds the record's whole merged state, so
a newer row of the same record supersedes older ones still waiting (they are dropped at append, unless
already being sent): during an outage the queue grows with the number of objects seen, not with time.

The outbox also owns the writer's clocks, ``max(last + 1, wall clock in µs)``, persisted so they strictly
increase across restarts: the record version given at append time (in the same transaction as the rows),
and the push sequence number given when a batch is sent (stored with its acknowledgement).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from karma_memory.core.errors import ConfigError, MemoryFileError

__all__ = ["Outbox", "OutboxEntry"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    row INTEGER PRIMARY KEY AUTOINCREMENT,
    record_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    enqueued REAL NOT NULL,
    payload TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_record ON outbox (record_id);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


@dataclass(frozen=True)
class OutboxEntry:
    """One queued write: its row, record id, version, enqueue time (s) and JSON payload."""

    row: int
    record_id: str
    version: int
    enqueued: float
    payload: dict[str, Any]


class Outbox:
    """Append-only queue of record writes on disk (SQLite WAL), safe to share between two threads.

    Args:
        path: the database file (created with its directory).
        durable: fsync every commit (``synchronous=FULL``); False survives a process crash but not a
            power cut (``synchronous=NORMAL``), and is faster.
        clock: wall clock in seconds (injectable for tests).
    """

    def __init__(self, path: Path | str, durable: bool = True, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None, timeout=30.0)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
            self._db.executescript(_SCHEMA)
            row = self._db.execute("SELECT value FROM meta WHERE key = 'last_version'").fetchone()
            seq = self._db.execute("SELECT value FROM meta WHERE key = 'last_seq'").fetchone()
            queued = self._db.execute("SELECT MAX(version), COUNT(*) FROM outbox").fetchone()
        except sqlite3.Error as err:
            raise MemoryFileError(f"cannot open the fleet outbox {self.path}: {err}") from err
        self._lock = threading.Lock()
        self._clock = clock
        self._last = max(int(row[0]) if row else 0, int(queued[0] or 0))
        self._count = int(queued[1])
        self._last_seq = int(seq[0]) if seq else 0
        self._inflight: tuple[int, ...] = ()

    # ---- writer side ------------------------------------------------------------------------------------
    def append(self, make: Sequence[tuple[str, Callable[[int], dict[str, Any]]]]) -> list[int]:
        """Queue records in one durable transaction; returns the versions given to them.

        Args:
            make: (record id, payload builder) pairs; each builder receives its record's version.
        """
        if not make:
            return []
        with self._lock:
            now = self._clock()
            version = max(self._last + 1, int(now * 1e6))
            rows, versions = [], []
            for offset, (rid, build) in enumerate(make):
                v = version + offset
                rows.append((rid, v, now, json.dumps(build(v), separators=(",", ":"), allow_nan=False)))
                versions.append(v)
            keep = ",".join(str(r) for r in self._inflight) or "-1"
            touched = sorted({r[0] for r in rows})
            try:
                self._db.execute("BEGIN IMMEDIATE")
                before = self._db.execute("SELECT COALESCE(MAX(row), 0) FROM outbox").fetchone()[0]
                self._db.executemany("INSERT INTO outbox (record_id, version, enqueued, payload) VALUES (?, ?, ?, ?)",
                                     rows)
                for start in range(0, len(touched), 500):
                    chunk = touched[start:start + 500]
                    marks = ",".join("?" * len(chunk))
                    # the newest row keeps the oldest waiting time (else a record updated at a high rate is
                    # never due), then every other row of the record, unless being sent now, is superseded
                    self._db.execute(
                        f"UPDATE outbox SET enqueued = (SELECT MIN(o.enqueued) FROM outbox o WHERE o.record_id = "
                        f"outbox.record_id AND o.row NOT IN ({keep})) WHERE row > ? AND record_id IN ({marks})",
                        [before, *chunk])
                    self._db.execute(
                        f"DELETE FROM outbox WHERE record_id IN ({marks}) AND row NOT IN ({keep}) AND row < "
                        f"(SELECT MAX(o.row) FROM outbox o WHERE o.record_id = outbox.record_id)", chunk)
                self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('last_version', ?)", (versions[-1],))
                self._db.execute("COMMIT")
            except sqlite3.Error as err:
                self._rollback()
                raise MemoryFileError(f"fleet outbox {self.path}: append failed: {err}") from err
            self._last = versions[-1]
            self._count = int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])
            return versions

    def _rollback(self) -> None:
        try:
            self._db.execute("ROLLBACK")
        except sqlite3.Error:
            pass

    # ---- sync side -----------------------------------------------------------------------------------------
    def peek(self, limit: int) -> list[OutboxEntry]:
        """The oldest ``limit`` queued writes, oldest first."""
        if limit < 1:
            raise ConfigError(f"Outbox.peek limit must be >= 1, got {limit}")
        with self._lock:
            rows = self._db.execute("SELECT row, record_id, version, enqueued, payload FROM outbox ORDER BY row LIMIT ?",
                                    (limit,)).fetchall()
            self._inflight = tuple(r[0] for r in rows)  # being sent: appends must not drop them
        return [OutboxEntry(r, rid, v, t, json.loads(p)) for r, rid, v, t, p in rows]

    def ack(self, rows: Sequence[int], last_seq: int | None = None) -> None:
        """Delete writes the server acknowledged; remember the newest push sequence number used."""
        if not rows:
            return
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany("DELETE FROM outbox WHERE row = ?", [(r,) for r in rows])
                if last_seq is not None:
                    self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('last_seq', ?)", (last_seq,))
                self._db.execute("COMMIT")
            except sqlite3.Error as err:
                self._rollback()
                raise MemoryFileError(f"fleet outbox {self.path}: ack failed: {err}") from err
            self._count = int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])
            self._inflight = ()
            if last_seq is not None:
                self._last_seq = max(self._last_seq, last_seq)

    def oldest_age(self) -> float:
        """Seconds since the oldest queued write was appended (0 when empty)."""
        with self._lock:
            row = self._db.execute("SELECT MIN(enqueued) FROM outbox").fetchone()
        return max(0.0, self._clock() - row[0]) if row and row[0] is not None else 0.0

    @property
    def last_seq(self) -> int:
        """The newest push sequence number acknowledged (see :meth:`ack`)."""
        return self._last_seq

    @property
    def last_version(self) -> int:
        """The newest version handed out."""
        return self._last

    def __len__(self) -> int:
        return self._count

    def close(self) -> None:
        """Close the database (queued rows stay on disk)."""
        with self._lock:
            self._db.close()
