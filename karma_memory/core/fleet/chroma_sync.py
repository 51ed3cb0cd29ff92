"""The ``chroma`` long-term-memory backend: a robot's scene graph kept in sync with a shared Chroma server.

Each robot keeps its full scene graph in memory (a :class:`LongTermMemory`) and works on it alone;
this backend mirrors it to the server and folds in what other robots wrote:

- **Writes**: every local observation updates the graph at once, then the object's record (its whole
  merged view plus field stamps, :mod:`records`) is appended to the durable :class:`Outbox`. A sync
  thread upserts the outbox to the server in batches (``batch_size`` rows, or whatever is queued after
  ``flush_interval_s``; halved after a timeout), and deletes rows only once acknowledged. A record whose
  document is unchanged since its last upload gets a metadata-only update (re-embedding is the server's
  costly part).
- **Reads**: every ``pull_interval_s`` the thread asks for records with a push sequence number above
  what it has seen from their writer (one ``where`` filter of at most two clauses, see :meth:`_pull`;
  never a full re-read) and hands the validated records to the owner, who merges them on
  :meth:`ChromaBackend.poll` — the graph is only ever touched by the owner's thread. Invalid records
  are logged with the reason and dropped.
- **Offline**: connection errors and timeouts (``connect_timeout_s``, ``request_timeout_s``) mark the
  backend offline; the robot keeps observing and planning on its local graph, the outbox keeps the
  newest state of every changed record on disk, and the thread retries with exponential backoff; on
  reconnect it replays the outbox in order.
- **Crash safety**: the watermarks live in the graph (``graph.graph["fleet"]``) so they are saved
  atomically with it; after a restart from an older snapshot the pull re-reads exactly what the
  snapshot lacks, and queued rows are re-applied locally and re-sent.

Merging is per field, newest observation wins (ties: the lexically greater robot id), as documented
and proven idempotent in :mod:`karma_memory.core.fleet.records`.
"""

from __future__ import annotations

import logging
import math
import queue
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Mapping

from karma_memory.core import scene_graph as sg
from karma_memory.core.embedding import Embedder
from karma_memory.core.errors import ConfigError, KarmaMemoryError
from karma_memory.core.fleet.outbox import Outbox
from karma_memory.core.fleet.records import (
    FIELDS_ATTR, NO_STAMP, AreaRecord, InvalidRecordError, ObjectRecord, Stamp, area_record, dominated, from_wire,
    merge_records, node_record, object_relations, record_id, stamps_to_attr, to_wire,
)
from karma_memory.core.long_term import LongTermMemory
from karma_memory.core.types import RELATIONS, ObjectObservation, ObservationKind, Relation

__all__ = ["ChromaConfig", "ChromaBackend", "FleetStatus", "FLEET_ATTR"]

#: graph attribute holding the fleet state saved with the graph: {"watermarks": {robot: seq},
#: "removed": {object_id: wire metadata of the removal}}
FLEET_ATTR = "fleet"
OUTBOX_FILE = "fleet_outbox.sqlite3"
_COLLECTION = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9._-]{1,510}[a-zA-Z0-9]$")
_LOG = logging.getLogger("karma_memory.fleet")
_CLIENT_LOCK = threading.Lock()


@dataclass(frozen=True)
class ChromaConfig:
    """Settings of the chroma backend (the memory node mirrors them as ``fleet.*`` parameters).

    Attributes:
        robot_id: this robot's id, unique in the fleet (also the tie-breaker of the merge rule).
        host, port: the Chroma server (``chroma run --host 127.0.0.1 --port PORT``).
        collection: the shared collection (3–512 chars of [a-zA-Z0-9._-]).
        outbox: path of the durable outbox; "" = ``<memory directory>/fleet_outbox.sqlite3``.
        batch_size: records per upsert; a full batch is sent at once.
        flush_interval_s: a partial batch is sent when its oldest row is this old, seconds.
        pull_interval_s: how often other robots' changes are fetched, seconds.
        pull_page_size: records per page when catching up on many changes.
        connect_timeout_s, request_timeout_s: HTTP timeouts, seconds; past them the server counts as down.
        retry_backoff_s, max_backoff_s: first and largest wait before reconnecting, seconds (doubles).
        clock_skew_s: bound on the wall-clock difference between robots, seconds (pull safety margin).
        discovery_interval_s: how often pulls also look for robots that are new or were idle, seconds.
        durable: fsync every outbox append (False: survives a process crash but not a power cut).
    """

    robot_id: str
    host: str = "127.0.0.1"
    port: int = 8000
    collection: str = "karma_fleet"
    outbox: str = ""
    batch_size: int = 128
    flush_interval_s: float = 0.1
    pull_interval_s: float = 0.1
    pull_page_size: int = 5000
    connect_timeout_s: float = 1.0
    request_timeout_s: float = 10.0
    retry_backoff_s: float = 0.25
    max_backoff_s: float = 5.0
    clock_skew_s: float = 0.5
    discovery_interval_s: float = 0.5
    durable: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.robot_id, str) or not self.robot_id.strip() or "@" in self.robot_id:
            raise ConfigError(f"ChromaConfig.robot_id must be a non-empty string without '@', got {self.robot_id!r}")
        if not _COLLECTION.match(self.collection):
            raise ConfigError(f"ChromaConfig.collection must be 3-512 chars of [a-zA-Z0-9._-], got {self.collection!r}")
        if not 0 < int(self.port) < 65536:
            raise ConfigError(f"ChromaConfig.port must be in [1, 65535], got {self.port!r}")
        for name in ("batch_size", "pull_page_size"):
            if not 1 <= getattr(self, name) <= 100_000:
                raise ConfigError(f"ChromaConfig.{name} must be in [1, 100000], got {getattr(self, name)!r}")
        for name in ("flush_interval_s", "pull_interval_s", "connect_timeout_s", "request_timeout_s",
                     "retry_backoff_s", "max_backoff_s", "clock_skew_s", "discovery_interval_s"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ConfigError(f"ChromaConfig.{name} must be a positive number of seconds, got {value!r}")
        if self.max_backoff_s < self.retry_backoff_s:
            raise ConfigError("ChromaConfig.max_backoff_s must be >= retry_backoff_s")


@dataclass
class FleetStatus:
    """What the backend did so far (counters since start), whether the server is reachable, and how long
    its requests took lately (ms, over the last 500 pushes / pulls)."""

    backend: str
    robot_id: str = ""
    online: bool = False
    pending: int = 0
    pushed: int = 0
    pulled: int = 0
    merged: int = 0
    rejected: int = 0
    last_error: str = ""
    watermarks: dict[str, int] = field(default_factory=dict)
    push_ms_p50: float = float("nan")
    push_ms_p95: float = float("nan")
    pull_ms_p50: float = float("nan")
    pull_ms_p95: float = float("nan")


class _Pull:
    """One page of pulled records; ``marks`` (writer -> newest seq) only on a pull's last page."""

    __slots__ = ("records", "marks")

    def __init__(self, records: list[ObjectRecord | AreaRecord], marks: dict[str, int] | None) -> None:
        self.records, self.marks = records, marks


class ChromaBackend:
    """LtmBackend over a shared Chroma server (see the module docstring).

    Args:
        memory: this robot's long-term memory (the backend merges into its graph).
        config: server, batching, timeouts.
        embedder: embeds record documents for the server's vector index (default: offline MiniLM).
        logger: where warnings go (a ``logging.Logger`` or an rclpy logger; messages are preformatted).
        start: start the sync thread now (tests may drive a backend without it).
    """

    name = "chroma"

    def __init__(self, memory: LongTermMemory, config: ChromaConfig, embedder: Embedder | None = None,
                 logger: Any = None, start: bool = True) -> None:
        self.memory = memory
        self.config = config
        self.robot_id = config.robot_id
        self._embedder = embedder
        self._log = logger or _LOG
        if config.outbox:
            path = Path(config.outbox)
        elif memory.directory is not None:
            path = memory.directory / OUTBOX_FILE
        else:
            raise ConfigError("the chroma backend needs ChromaConfig.outbox or a memory directory for its outbox")
        self.outbox = Outbox(path, durable=config.durable)
        self._inbox: queue.SimpleQueue[_Pull] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._flush_wanted = threading.Event()
        self._lock = threading.Lock()
        self._pull_done = threading.Condition(self._lock)
        self._pulls_started = 0
        self._pulls_finished = 0
        self._pull_wanted = False
        self._status = FleetStatus(self.name, self.robot_id)
        self._rejected_seen: set[tuple[str, Any]] = set()
        self._push_ms: deque[float] = deque(maxlen=500)  # request durations, for status()
        self._pull_ms: deque[float] = deque(maxlen=500)
        self._marks: dict[str, int] = dict(self._state()["watermarks"])  # writer -> newest seq seen
        self._active: dict[str, float] = {}  # writer -> when its seq last advanced (monotonic s)
        self._floor: int | None = None  # seq every record that lands from now on exceeds (None: pull exactly)
        self._last_discovery = -math.inf
        self._seq = self.outbox.last_seq
        self._pushed_seq = 0
        # own records pushed by this process need not come back — but those a previous run pushed after its
        # last save must: until the first complete pull, this robot's mark is the saved one
        self._own_caught_up = False
        self._tick = self.outbox.last_version  # observation ticks: strictly increasing, also across restarts
        self._collection: Any = None
        self._batch = config.batch_size  # adapted: halved after a timeout, grown back after successes
        self._embedded: dict[str, str] = {}  # record id -> document the server holds an embedding of (sync thread)
        self._replay_outbox_locally()
        self._thread = threading.Thread(target=self._run, name=f"fleet-sync-{self.robot_id}", daemon=True)
        if start:
            import chromadb  # noqa: F401 — slow (seconds) the first time: pay it here, not in the first sync

            self._thread.start()

    # ==== owner side: local graph ==================================================================================
    def _state(self) -> dict[str, Any]:
        state = self.memory.graph.graph.setdefault(FLEET_ATTR, {})
        state.setdefault("watermarks", {})
        state.setdefault("removed", {})
        return state

    def _local(self, object_id: str) -> ObjectRecord | None:
        """The local merged view of an object: the graph node, or the stored removal."""
        record = node_record(self.memory.graph, object_id, self.robot_id)
        if record is not None:
            return record
        removed = self._state()["removed"].get(object_id)
        if removed is None:
            return None
        decoded = from_wire(record_id(object_id, removed["robot_id"]), removed, require_seq=False)
        return replace(decoded, robot_id=self.robot_id, version=0) if isinstance(decoded, ObjectRecord) else None

    def observe(self, observations: Iterable[ObjectObservation]) -> list[sg.GraphChange]:
        """Fold local observations into the graph now and queue them (durably) for the server.

        Observations without a ``robot_id`` are attributed to this robot.
        """
        changes: list[sg.GraphChange] = []
        touched: list[str] = []
        for obs in observations:
            if not obs.robot_id:
                obs = replace(obs, robot_id=self.robot_id)
            change = self._observe_one(obs)
            if change is not None:
                changes.append(change)
                touched.append(obs.object_id)
        self._enqueue(touched)
        return changes

    def _next_tick(self) -> int:
        self._tick = max(self._tick + 1, int(time.time() * 1e6))
        return self._tick

    def _observe_one(self, obs: ObjectObservation) -> sg.GraphChange | None:
        graph = self.memory.graph
        local = self._local(obs.object_id)
        mine: Stamp = (obs.stamp, obs.robot_id, self._next_tick())
        newest = max(local.fields.values(), default=NO_STAMP) if local is not None else NO_STAMP
        removal = obs.kind is ObservationKind.REMOVED
        if mine <= newest or (local is not None and not local.present):
            # older than something the graph holds, or about an object removed here (whose other fields
            # are remembered): merge field by field instead of overwriting
            partial = self._partial(obs, local, mine)
            if dominated(local, partial):
                return None
            return self._apply(merge_records(local, partial))
        before = object_relations(graph, obs.object_id) if local is not None else ()
        if removal:
            if local is None:  # never known here: nothing to remove or to share
                return None
            change = self.memory.observe(obs)
            self._remember_removed(merge_records(local, self._partial(obs, local, mine)))
            return change
        change = self.memory.observe(obs)
        if change.kind == "ignored":
            return None
        self._state()["removed"].pop(obs.object_id, None)
        stamps = dict(local.fields) if local is not None else {}
        carried = ["presence", "type", "position", "movable"]
        if obs.size is not None:
            carried.append("size")
        if obs.states:
            carried.append("states")
        if obs.relations or object_relations(graph, obs.object_id) != before:
            carried.append("relations")
        for name in carried:
            stamps[name] = mine
        graph.nodes[obs.object_id][FIELDS_ATTR] = stamps_to_attr(stamps)
        return change

    def _partial(self, obs: ObjectObservation, local: ObjectRecord | None, mine: Stamp) -> ObjectRecord:
        """An observation as a record carrying only the fields it observed, stamped ``mine``."""
        if obs.kind is ObservationKind.REMOVED:
            base = local or ObjectRecord(obs.object_id, self.robot_id, 0, False, obs.object_type, obs.position)
            return replace(base, present=False, fields={"presence": mine})
        fields = {"presence": mine, "type": mine, "position": mine, "movable": mine}
        if obs.size is not None:
            fields["size"] = mine
        if obs.states:
            fields["states"] = mine
        moved = local is not None and math.dist(local.position, obs.position) > self.memory.config.move_threshold
        if obs.relations or moved:
            fields["relations"] = mine
        return ObjectRecord(obs.object_id, self.robot_id, 0, True, obs.object_type, obs.position, obs.size,
                            tuple(obs.states), tuple(obs.relations), obs.movable, fields)

    def _apply(self, merged: ObjectRecord) -> sg.GraphChange | None:
        """Make the graph hold ``merged`` (through LongTermMemory.observe, so its caches stay right)."""
        graph = self.memory.graph
        object_id = merged.object_id
        removed = self._state()["removed"]
        if not merged.present:
            self._remember_removed(merged)
            if object_id not in graph:
                return None
            return self.memory.observe(ObjectObservation(
                object_id, merged.object_type, merged.position, ObservationKind.REMOVED, stamp=merged.stamp,
                source=f"fleet:{merged.last_robot}", robot_id=merged.last_robot))
        removed.pop(object_id, None)
        stamp = merged.stamp if math.isfinite(merged.stamp) else 0.0
        existing = graph.nodes.get(object_id)
        if existing is not None and existing.get("level") == sg.OBJECT:
            stamp = max(stamp, float(existing["last_seen"]))
        change = self.memory.observe(ObjectObservation(
            object_id, merged.object_type, merged.position, ObservationKind.SEEN, merged.size, merged.states,
            merged.relations, merged.movable, stamp, f"fleet:{merged.last_robot}", merged.last_robot))
        if object_relations(graph, object_id) != tuple(sorted(merged.relations, key=lambda r: (r.predicate,
                                                                                                r.target_id))):
            _set_relations(graph, object_id, merged.relations)
        if merged.states and list(graph.nodes[object_id]["states"]) != list(merged.states):
            graph.nodes[object_id]["states"] = list(merged.states)
        graph.nodes[object_id][FIELDS_ATTR] = stamps_to_attr(merged.fields)
        return change

    def _remember_removed(self, record: ObjectRecord) -> None:
        """Keep a removed object's merged view (a newer sighting elsewhere may bring it back)."""
        stored = replace(record, robot_id=self.robot_id, version=max(1, record.version))
        self._state()["removed"][record.object_id] = to_wire(stored)[1]

    def _enqueue(self, object_ids: Iterable[str]) -> None:
        builders = []
        for object_id in dict.fromkeys(object_ids):
            record = self._local(object_id)
            if record is None:
                continue

            def build(version: int, record: ObjectRecord = record) -> dict[str, Any]:
                rid, meta, doc = to_wire(replace(record, robot_id=self.robot_id, version=version))
                return {"id": rid, "meta": meta, "doc": doc}

            builders.append((record_id(object_id, self.robot_id), build))
        if builders:
            self.outbox.append(builders)
            if len(self.outbox) >= self.config.batch_size:
                self._wake.set()

    def publish_areas(self) -> int:
        """Queue this robot's areas (its map) for the server; returns how many."""
        builders = []
        for area in sg.area_ids(self.memory.graph):
            def build(version: int, area: str = area) -> dict[str, Any]:
                rid, meta, doc = to_wire(area_record(self.memory.graph, area, self.robot_id, version))
                return {"id": rid, "meta": meta, "doc": doc}

            builders.append((record_id(area, self.robot_id), build))
        self.outbox.append(builders)
        self._wake.set()
        return len(builders)

    def _replay_outbox_locally(self) -> None:
        """Rows queued by a previous run (crash, kill -9) may be newer than the saved graph: merge them."""
        for entry in self.outbox.peek(1_000_000):
            try:
                record = from_wire(entry.payload["id"], entry.payload["meta"], require_seq=False)
            except (InvalidRecordError, KeyError, TypeError) as err:
                self._log.warning(f"fleet outbox row {entry.row} is unreadable, skipped: {err}")
                continue
            if isinstance(record, ObjectRecord):
                try:
                    self._merge(record)
                except KarmaMemoryError as err:
                    self._log.warning(f"fleet outbox row {entry.row} not merged: {err}")

    def _merge(self, record: ObjectRecord) -> sg.GraphChange | None:
        local = self._local(record.object_id)
        if dominated(local, record):
            return None
        merged = merge_records(replace(local, robot_id=self.robot_id) if local else None, record)
        return self._apply(merged)

    def poll(self) -> list[sg.GraphChange]:
        """Merge what the sync thread pulled since the last call (no I/O; call from the graph's owner thread)."""
        changes: list[sg.GraphChange] = []
        areas: list[AreaRecord] = []
        merged = rejected = 0
        while True:
            try:
                page = self._inbox.get_nowait()
            except queue.Empty:
                break
            for record in page.records:
                if isinstance(record, AreaRecord):
                    areas.append(record)
                    continue
                try:
                    change = self._merge(record)
                except KarmaMemoryError as err:  # e.g. an object id that names an area node here
                    rejected += 1
                    self._log.warning(f"fleet record {record.record_id!r} not merged: {err}")
                    continue
                if change is not None:
                    merged += 1
                    changes.append(change)
            if page.marks:
                marks = self._state()["watermarks"]
                for robot, version in page.marks.items():
                    marks[robot] = max(int(marks.get(robot, 0)), version)
        if areas:
            self._import_areas(areas)
        with self._lock:
            pushed = self._pushed_seq if self._own_caught_up else 0
            self._status.merged += merged
            self._status.rejected += rejected
        marks = self._state()["watermarks"]
        if pushed > int(marks.get(self.robot_id, 0)):
            marks[self.robot_id] = pushed
        return changes

    def _import_areas(self, records: list[AreaRecord]) -> None:
        """Add areas this graph lacks (a robot that starts without a map takes the fleet's)."""
        graph = self.memory.graph
        added = []
        for record in sorted(records, key=lambda r: (r.area_id, r.robot_id)):
            if record.area_id in graph:
                continue
            if record.floor not in graph:
                graph.add_node(record.floor, level=sg.FLOOR, name=record.floor, version=graph.graph["version"])
            graph.graph["version"] += 1
            graph.add_node(record.area_id, level=sg.AREA, position=record.position, floor=record.floor,
                           cells=record.cells, version=graph.graph["version"],
                           fleet_neighbours=[[a, d] for a, d in record.neighbours])
            graph.add_edge(record.floor, record.area_id, relation=sg.STRUCTURAL)
            added.append(record.area_id)
        if not added:
            return
        for area in sg.area_ids(graph):
            for other, distance in graph.nodes[area].get("fleet_neighbours", ()):
                if other in graph and graph.nodes[other].get("level") == sg.AREA:
                    graph.add_edge(area, other, relation=sg.NAVIGABLE, distance=distance)
                    graph.add_edge(other, area, relation=sg.NAVIGABLE, distance=distance)
        self.memory._rebuild_caches()  # the area index is derived state of the graph
        for obj in sg.object_ids(graph):
            if graph.nodes[obj].get("area") is None:
                area = self.memory._area_of(graph.nodes[obj]["position"])
                graph.add_edge(area, obj, relation=sg.STRUCTURAL)
                graph.nodes[obj]["area"] = area
        self.memory._rebuild_caches()
        self._log.info(f"fleet: imported {len(added)} areas from the server")

    def resync(self) -> None:
        """After the graph was replaced (load, reset): pull again from the graph's own watermarks."""
        with self._lock:
            self._marks = dict(self._state()["watermarks"])
            self._active.clear()
            self._floor = None
            self._own_caught_up = False
        self._wake.set()

    def save(self) -> Path | None:
        """Save the graph (with its fleet watermarks) when the memory has a directory."""
        return self.memory.save() if self.memory.directory is not None else None

    # ==== sync thread ====================================================================================
    def _embed(self, texts: list[str]) -> list[list[float]]:
        if self._embedder is None:
            from karma_memory.core.embedding import default_embedder

            self._embedder = default_embedder()
        return self._embedder.embed(texts).tolist()  # type: ignore[no-any-return]

    def _connect(self) -> None:
        from karma_memory.core.fleet.server import heartbeat

        cfg = self.config
        # the chromadb client's own requests have no timeout: check the server answers first
        wait = cfg.connect_timeout_s + cfg.request_timeout_s
        if not heartbeat(cfg.host, cfg.port, wait):
            raise ConnectionError(f"no chroma server answers on {cfg.host}:{cfg.port} within {wait:g} s")
        import chromadb
        import httpx
        from chromadb.config import Settings

        with _CLIENT_LOCK:  # chromadb shares one client "system" per server in a process, created unsafely
            client = chromadb.HttpClient(host=cfg.host, port=cfg.port, settings=Settings(anonymized_telemetry=False))
        session = getattr(getattr(client, "_server", None), "_session", None)
        if session is not None:  # chromadb creates its httpx session with timeout=None
            session.timeout = httpx.Timeout(cfg.request_timeout_s, connect=cfg.connect_timeout_s)
        self._collection = client.get_or_create_collection(cfg.collection, embedding_function=None,
                                                           metadata={"hnsw:space": "cosine"})
        self._embedded.clear()  # after an outage the server may have lost records: send them whole again

    def _run(self) -> None:
        backoff = self.config.retry_backoff_s
        next_try = next_pull = 0.0
        while True:
            stopping = self._stop.is_set()
            now = time.monotonic()
            try:
                if self._collection is None:
                    if now < next_try and not stopping:
                        self._wait(next_try - now)
                        continue
                    self._connect()
                    self._set_online(True)
                    backoff = self.config.retry_backoff_s
                self._push(force=stopping, until=None if stopping else next_pull)
                if stopping:
                    return
                if self._pull_wanted or now >= next_pull:
                    self._pull()
                    next_pull = time.monotonic() + self.config.pull_interval_s
            except Exception as err:  # noqa: BLE001 — transport errors of any kind mean "server unavailable"
                self._collection = None
                self._set_online(False, f"{type(err).__name__}: {err}")
                if stopping:
                    return
                next_try = time.monotonic() + backoff
                backoff = min(backoff * 2, self.config.max_backoff_s)
                continue
            flush_due = (self.config.flush_interval_s - self.outbox.oldest_age() if len(self.outbox)
                         else self.config.flush_interval_s)
            self._wait(min(flush_due, next_pull - time.monotonic()))

    def _wait(self, seconds: float) -> None:
        self._wake.wait(max(0.001, seconds))
        self._wake.clear()

    def _set_online(self, online: bool, error: str = "") -> None:
        with self._lock:
            was = self._status.online
            self._status.online = online
            if error:
                self._status.last_error = error
        if was and not online:
            self._log.warning(f"fleet: chroma server {self.config.host}:{self.config.port} unavailable "
                              f"({error}); working offline, {len(self.outbox)} writes queued")
        elif online and not was:
            self._log.info(f"fleet: connected to chroma server {self.config.host}:{self.config.port}, "
                           f"{len(self.outbox)} queued writes to replay")

    def _push(self, force: bool = False, until: float | None = None) -> None:
        """Upsert due batches; under a steady write load stop at ``until`` (monotonic) so pulls still run."""
        cfg = self.config
        while True:
            if until is not None and time.monotonic() >= until and not self._flush_wanted.is_set():
                return
            pending = len(self.outbox)
            if not pending:
                self._flush_wanted.clear()
                return
            due = (force or self._flush_wanted.is_set() or pending >= self._batch
                   or self.outbox.oldest_age() >= cfg.flush_interval_s)
            if not due:
                return
            entries = self.outbox.peek(self._batch)
            latest: dict[str, dict[str, Any]] = {}
            for entry in entries:  # rows are in version order: the last row of a record wins
                latest[entry.record_id] = entry.payload
            payloads = list(latest.values())
            # re-embedding is the server's costly part (an HNSW update): when the server already holds this
            # record with an embedding of the same document, only the metadata changes
            fresh = [p for p in payloads if self._embedded.get(p["id"]) != p["doc"]]
            known = [p for p in payloads if self._embedded.get(p["id"]) == p["doc"]]
            # the pull cursor: a sequence number given now, so a writer's records reach the server in seq order
            first = max(self._seq + 1, int(time.time() * 1e6))
            seqs = {p["id"]: first + i for i, p in enumerate(payloads)}
            began = time.perf_counter()
            try:
                if fresh:
                    self._collection.upsert(ids=[p["id"] for p in fresh],
                                            embeddings=self._embed([p["doc"] for p in fresh]),
                                            metadatas=[dict(p["meta"], seq=seqs[p["id"]]) for p in fresh],
                                            documents=[p["doc"] for p in fresh])
                if known:
                    self._collection.update(ids=[p["id"] for p in known],
                                            metadatas=[dict(p["meta"], seq=seqs[p["id"]]) for p in known])
            except Exception as err:
                if "Timeout" in type(err).__name__:  # a slow server: send smaller batches from now on
                    self._batch = max(8, self._batch // 2)
                raise
            self._batch = min(cfg.batch_size, self._batch + max(1, self._batch // 4))
            self._embedded.update((p["id"], p["doc"]) for p in payloads)
            self._push_ms.append((time.perf_counter() - began) * 1e3)
            self._seq = first + len(payloads) - 1
            self.outbox.ack([e.row for e in entries], last_seq=self._seq)
            with self._lock:
                self._status.pushed += len(payloads)
                self._pushed_seq = self._seq
                self._active[self.robot_id] = time.monotonic()

    def _margin_us(self) -> int:
        """How far below a pull's start (writer clocks) a record landing after it can be numbered."""
        cfg = self.config
        return int((cfg.request_timeout_s + 2 * cfg.clock_skew_s + cfg.pull_interval_s) * 1e6)

    def _where(self) -> tuple[dict[str, Any], bool]:
        """The pull filter, and whether it is a discovery pull (see :meth:`_pull`)."""
        now = time.monotonic()
        window = self._margin_us() / 2e6
        with self._lock:
            marks = dict(self._marks)
            if self._own_caught_up:
                marks[self.robot_id] = max(marks.get(self.robot_id, 0), self._pushed_seq)
            active = sorted(r for r, t in self._active.items() if now - t <= window)
            floor = self._floor
        if floor is None:  # first pull (or after a reload): exactly what each known writer has added
            if not marks:
                return {"seq": {"$gt": 0}}, True
            clauses: list[dict[str, Any]] = [{"$and": [{"robot_id": r}, {"seq": {"$gt": int(w)}}]}
                                             for r, w in sorted(marks.items())]
            clauses.append({"$and": [{"robot_id": {"$nin": sorted(marks)}}, {"seq": {"$gt": 0}}]})
            return (clauses[0] if len(clauses) == 1 else {"$or": clauses}), True
        clauses = []
        if active:  # writers seen lately: one clause from the slowest of them
            clauses.append({"seq": {"$gt": int(min(marks[r] for r in active))}})
        discovery = not active or now - self._last_discovery >= self.config.discovery_interval_s
        if discovery:  # every other writer, known or new, above the floor of the last discovery pull
            idle = [marks[r] for r in marks if r not in active]
            low = max(floor, min(idle, default=floor))
            clauses.append({"$and": [{"robot_id": {"$nin": active}}, {"seq": {"$gt": low}}]} if active
                           else {"seq": {"$gt": low}})
        return (clauses[0] if len(clauses) == 1 else {"$or": clauses}), discovery

    def _pull(self) -> None:
        """Fetch records newer than this robot has seen, with one ``where`` filter of at most two clauses.

        A writer's records reach the server in ``seq`` order, so for writers seen lately ("active")
        one clause ``seq > min(their marks)`` is exact; records already seen in the overlap are dropped
        here. Every ``discovery_interval_s`` a second clause covers idle and new writers:
        ``seq > floor``, where the floor is the previous discovery pull's start minus request timeout,
        twice the clock skew and a pull interval — any record landing after that pull was numbered
        above it. The first pull after start asks each known writer exactly, from the saved marks.
        """
        with self._lock:
            self._pull_wanted = False
            self._pulls_started += 1
            generation = self._pulls_started
            seen = dict(self._marks)
            if self._own_caught_up:
                seen[self.robot_id] = max(seen.get(self.robot_id, 0), self._pushed_seq)
        started = time.time()
        began = time.perf_counter()
        where, discovery = self._where()
        offset, size = 0, self.config.pull_page_size
        marks: dict[str, int] = {}
        pulled = 0
        while True:
            result = self._collection.get(where=where, include=["metadatas"], limit=size, offset=offset)
            ids, metas = result["ids"], result["metadatas"] or [None] * len(result["ids"])
            records: list[ObjectRecord | AreaRecord] = []
            for rid, meta in zip(ids, metas):
                robot = meta.get("robot_id") if isinstance(meta, Mapping) else None
                seq = meta.get("seq") if isinstance(meta, Mapping) else None
                if isinstance(robot, str) and isinstance(seq, int) and not isinstance(seq, bool):
                    if seq <= seen.get(robot, 0):
                        continue  # seen already (the overlap of the one-clause filter)
                    marks[robot] = max(marks.get(robot, 0), seq)
                try:
                    records.append(from_wire(rid, meta))
                except InvalidRecordError as err:
                    with self._lock:
                        new = (rid, seq) not in self._rejected_seen
                        self._rejected_seen.add((rid, seq))
                    if new:
                        self._log.warning(f"fleet: rejected a record from the server, not merged: {err}")
            pulled += len(ids)
            last = len(ids) < size
            if records or (last and marks):
                self._inbox.put(_Pull(records, dict(marks) if last else None))
            if last:
                break
            offset += size
        now = time.monotonic()
        self._pull_ms.append((time.perf_counter() - began) * 1e3)
        with self._lock:
            for robot, seq in marks.items():
                self._marks[robot] = max(self._marks.get(robot, 0), seq)
                self._active[robot] = now
            if discovery:
                self._floor = int(started * 1e6) - self._margin_us()
                self._last_discovery = now
            self._own_caught_up = True
            self._status.pulled += pulled
            self._pulls_finished = generation
            self._pull_done.notify_all()

    # ==== control ========================================================================================
    def flush(self, timeout_s: float = 5.0) -> bool:
        """Ask the sync thread to send everything queued now; True when the outbox emptied in time."""
        deadline = time.monotonic() + timeout_s
        self._flush_wanted.set()
        self._wake.set()
        while len(self.outbox) and time.monotonic() < deadline:
            time.sleep(0.005)
            self._wake.set()
        return not len(self.outbox)

    def sync(self, timeout_s: float = 5.0) -> list[sg.GraphChange]:
        """Flush, wait for one complete pull that started after this call, then merge it (for tests, tools).

        Returns the graph changes the merge made; an unreachable server just returns what was pulled.
        """
        deadline = time.monotonic() + timeout_s
        self.flush(timeout_s)
        with self._lock:
            wanted = self._pulls_started + 1  # a pull in progress may predate this call
            self._pull_wanted = True
        self._wake.set()
        with self._pull_done:
            while self._pulls_finished < wanted and time.monotonic() < deadline:
                self._pull_wanted = True
                self._wake.set()
                self._pull_done.wait(0.02)
        return self.poll()

    def status(self) -> FleetStatus:
        """A snapshot of the counters and connection state."""
        with self._lock:
            status = replace(self._status, pending=len(self.outbox), watermarks=dict(self._marks),
                             rejected=self._status.rejected + len(self._rejected_seen),
                             push_ms_p50=_quantile(self._push_ms, 0.5), push_ms_p95=_quantile(self._push_ms, 0.95),
                             pull_ms_p50=_quantile(self._pull_ms, 0.5), pull_ms_p95=_quantile(self._pull_ms, 0.95))
        return status

    def rejected_records(self) -> set[tuple[str, Any]]:
        """(record id, version) of every record rejected since start."""
        with self._lock:
            return set(self._rejected_seen)

    def close(self, flush_timeout_s: float = 2.0) -> None:
        """Try to send what is queued (up to ``flush_timeout_s``), stop the thread, close the outbox."""
        if self._thread.is_alive():
            self.flush(flush_timeout_s)
            self._stop.set()
            self._wake.set()
            self._thread.join(self.config.request_timeout_s + self.config.connect_timeout_s + 1.0)
        self.outbox.close()


def _quantile(values: Iterable[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def _set_relations(graph: Any, object_id: str, relations: Iterable[Relation]) -> None:
    """Replace an object's relation edges (and pending relations) with ``relations``."""
    for target in [t for t, d in graph.adj[object_id].items() if d.get("relation") in RELATIONS]:
        graph.remove_edge(object_id, target)
    pending = graph.graph.setdefault("pending", {})
    for target in [t for t, sources in pending.items() if object_id in sources]:
        del pending[target][object_id]
        if not pending[target]:
            del pending[target]
    for relation in relations:
        if relation.target_id == object_id:
            continue
        if relation.target_id in graph:
            graph.add_edge(object_id, relation.target_id, relation=relation.predicate)
        else:
            pending.setdefault(relation.target_id, {})[object_id] = relation.predicate
