"""The ``chroma`` long-term-memory backend: a robot's scene graph kept in sync with a shared Chroma server.

Each robot keeps its full scene graph in memory (a :class:`LongTermMemory`) and works on it alone;
this backend mirrors it to the server and folds in what other robots wrote:

- **Writes**: every local observation updates the graph at once, then the object's record (its whole
  merged view plus field stamps, :mod:`records`) is appended to the durable :class:`Outbox`. A push
  thread upserts the outbox to the server at once when it has not pushed for ``flush_interval_s``, else
  when that interval is over (rows queued meanwhile go in one batch: one request per interval at most,
  and a frame of observations after a quiet spell waits for nothing), ``batch_size`` rows at most per
  request (halved after a timeout); rows are deleted only once acknowledged.
- **Embeddings**: a record's vector on the server is its object *type*'s (``TypeIndex.describe``, computed
  once per type, ``embedder`` chooses MiniLM or a model-free type hash), and no document text is stored:
  the robots merge metadata only, and an HNSW update is the server's costliest write (~7 ms a record
  here against ~1 ms for a metadata update), so a record is upserted with its vector only when first
  sent (or its type changed) and otherwise gets a metadata-only update. The server's vector index still
  answers "objects of a type like X" queries.
- **Reads**: every ``pull_interval_s`` a pull thread (beside the push thread: neither waits for the
  other's requests) asks for exactly the records each other writer pushed
  since the last pull: every record carries, besides ``seq``, the key ``seq@<writer>``, so the filter
  is one numeric range per writer (``seq@w > what this robot saw from w``) — no string filter, no
  overlap, never its own records, never a full re-read (see :meth:`_pull`). Writers that join are
  found in a small registry collection (``<collection>.writers``, one row per robot, read every
  ``discovery_interval_s``). It hands the validated records to the owner, who merges them on
  :meth:`ChromaBackend.poll` — the graph is only ever touched by the owner's thread. Invalid records
  are logged with the reason and dropped.
- **Live link** (optional): the server's pacing (a push, then the other robots' next pull) costs a few
  hundred ms. With a :class:`FleetLink` (the nodes use a ROS topic shared by the fleet) every record that
  goes into the outbox is also sent to the other robots at once, and a record received from it is
  validated and merged like a pulled one. The link is lossy and never advances a watermark: what it
  misses, the next pull brings, and what it delivers twice the merge ignores (the rule is idempotent).
- **Offline**: connection errors and timeouts (``connect_timeout_s``, ``request_timeout_s``) mark the
  backend offline; the robot keeps observing and planning on its local graph, the outbox keeps the
  newest state of every changed record on disk, and the push thread reconnects with exponential
  backoff; on reconnect it replays the outbox in order.
- **Crash safety**: the watermarks live in the graph (``graph.graph["fleet"]``) so they are saved
  atomically with it; after a restart from an older snapshot the pull re-reads exactly what the
  snapshot lacks, and queued rows are re-applied locally and re-sent.

Merging is per field, newest observation wins (ties: the lexically greater robot id), as documented
and proven idempotent in :mod:`karma_memory.core.fleet.records`.
"""

from __future__ import annotations

import hashlib
import logging
import math
import queue
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Mapping, Protocol, Sequence

import numpy as np

from karma_memory.core import scene_graph as sg
from karma_memory.core.embedding import EMBEDDING_DIM, Embedder
from karma_memory.core.errors import ConfigError, KarmaMemoryError
from karma_memory.core.fleet.outbox import Outbox
from karma_memory.core.fleet.records import (
    FIELDS_ATTR, NO_STAMP, AreaRecord, InvalidRecordError, ObjectRecord, Stamp, area_record, dominated, from_wire,
    merge_records, node_record, object_relations, pack, record_id, seq_key, stamps_to_attr, to_wire, unpack,
)
from karma_memory.core.long_term import LongTermMemory, TypeIndex
from karma_memory.core.types import RELATIONS, ObjectObservation, ObservationKind, Relation

__all__ = ["ChromaConfig", "ChromaBackend", "FleetLink", "FleetStatus", "FLEET_ATTR", "EMBEDDERS",
           "TypeHashEmbedder"]

#: graph attribute holding the fleet state saved with the graph: {"watermarks": {robot: seq},
#: "removed": {object_id: wire metadata of the removal}}
FLEET_ATTR = "fleet"
OUTBOX_FILE = "fleet_outbox.sqlite3"
_COLLECTION = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9._-]{1,502}[a-zA-Z0-9]$")
#: suffix of the writer registry collection (one row per robot that ever pushed to the collection)
WRITERS = ".writers"
_LOG = logging.getLogger("karma_memory.fleet")
_CLIENT_LOCK = threading.Lock()
#: ChromaConfig.embedder values
EMBEDDERS = ("minilm", "type_hash")


class FleetLink(Protocol):
    """A fast, lossy channel to the other robots of the fleet (the nodes' ROS topic; see ``ChromaBackend.link``)."""

    def send(self, robot_id: str, payloads: list[dict[str, Any]]) -> None:
        """Send this robot's changed records (``{"id": record id, "meta": wire metadata}``) to the fleet."""


class TypeHashEmbedder:
    """A model-free embedder for record vectors: one-hot of a stable hash of the text (same on every robot)."""

    dim = EMBEDDING_DIM

    def embed(self, texts: Iterable[str]) -> np.ndarray:
        texts = list(texts)
        out = np.zeros((len(texts), self.dim), np.float32)
        for row, text in enumerate(texts):
            out[row, int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big") % self.dim] = 1.0
        return out


@dataclass(frozen=True)
class ChromaConfig:
    """Settings of the chroma backend (the memory node mirrors them as ``fleet.*`` parameters).

    Attributes:
        robot_id: this robot's id, unique in the fleet (also the tie-breaker of the merge rule).
        host, port: the Chroma server (``chroma run --host 127.0.0.1 --port PORT``).
        collection: the shared collection (3–504 chars of [a-zA-Z0-9._-]; ``<collection>.writers`` is its
            writer registry).
        outbox: path of the durable outbox; "" = ``<memory directory>/fleet_outbox.sqlite3``.
        batch_size: records per upsert; a full batch is sent at once.
        flush_interval_s: least time between two pushes (a full batch goes at once), seconds.
        pull_interval_s: how often other robots' changes are fetched, seconds.
        live_pull_interval_s: the same while a live link is attached: the link brings changes at once, the
            pull only fills what it lost, so it can be rare (which spares the server and the robot).
        pull_page_size: records per page when catching up on many changes.
        connect_timeout_s, request_timeout_s: HTTP timeouts, seconds; past them the server counts as down.
        retry_backoff_s, max_backoff_s: first and largest wait before reconnecting, seconds (doubles).
        discovery_interval_s: how often the pull reads the fleet's writer registry (robots that joined), seconds.
        durable: fsync every outbox append (False: survives a process crash but not a power cut).
        embedder: record vectors on the server: "minilm" (the offline MiniLM, as the LTM's type index) or
            "type_hash" (no model: one-hot of a hash of the type; vector queries then match exact types
            only). Every robot of a fleet must use the same.
    """

    robot_id: str
    host: str = "127.0.0.1"
    port: int = 8000
    collection: str = "karma_fleet"
    outbox: str = ""
    batch_size: int = 128
    flush_interval_s: float = 0.2
    pull_interval_s: float = 0.2
    live_pull_interval_s: float = 1.0
    pull_page_size: int = 5000
    connect_timeout_s: float = 1.0
    request_timeout_s: float = 10.0
    retry_backoff_s: float = 0.25
    max_backoff_s: float = 5.0
    discovery_interval_s: float = 1.0
    durable: bool = True
    embedder: str = "minilm"

    def __post_init__(self) -> None:
        if not isinstance(self.robot_id, str) or not self.robot_id.strip() or "@" in self.robot_id:
            raise ConfigError(f"ChromaConfig.robot_id must be a non-empty string without '@', got {self.robot_id!r}")
        if not _COLLECTION.match(self.collection):
            raise ConfigError(f"ChromaConfig.collection must be 3-504 chars of [a-zA-Z0-9._-], got {self.collection!r}")
        if not 0 < int(self.port) < 65536:
            raise ConfigError(f"ChromaConfig.port must be in [1, 65535], got {self.port!r}")
        for name in ("batch_size", "pull_page_size"):
            if not 1 <= getattr(self, name) <= 100_000:
                raise ConfigError(f"ChromaConfig.{name} must be in [1, 100000], got {getattr(self, name)!r}")
        for name in ("flush_interval_s", "pull_interval_s", "live_pull_interval_s", "connect_timeout_s",
                     "request_timeout_s", "retry_backoff_s", "max_backoff_s", "discovery_interval_s"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ConfigError(f"ChromaConfig.{name} must be a positive number of seconds, got {value!r}")
        if self.max_backoff_s < self.retry_backoff_s:
            raise ConfigError("ChromaConfig.max_backoff_s must be >= retry_backoff_s")
        if self.embedder not in EMBEDDERS:
            raise ConfigError(f"ChromaConfig.embedder must be one of {list(EMBEDDERS)}, got {self.embedder!r}")


@dataclass
class FleetStatus:
    """What the backend did so far (counters since start: records pushed / pulled / merged / rejected, push
    and pull requests made, records sent and received over the live link), whether the server is
    reachable, and how long its requests took lately (ms, over the last 500 pushes / pulls)."""

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
    push_requests: int = 0
    pull_requests: int = 0
    live_sent: int = 0
    live_received: int = 0
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
        embedder: embeds object-type descriptions, the records' vectors (default: per ``config.embedder``).
        logger: where warnings go (a ``logging.Logger`` or an rclpy logger; messages are preformatted).
        start: start the push and pull threads now (tests may drive a backend without them).
        link: the live link to the other robots (None: changes travel through the server only); may
            also be set later, as ``link`` attribute, once the link can call :meth:`receive`.
    """

    name = "chroma"

    def __init__(self, memory: LongTermMemory, config: ChromaConfig, embedder: Embedder | None = None,
                 logger: Any = None, start: bool = True, link: FleetLink | None = None) -> None:
        self.memory = memory
        self.link = link
        self.config = config
        self.robot_id = config.robot_id
        self._embedder = embedder if embedder is not None or config.embedder == "minilm" else TypeHashEmbedder()
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
        self._wake = threading.Event()  # wakes the push thread
        self._pull_wake = threading.Event()  # wakes the pull thread
        self._connected = threading.Event()  # set while the push thread holds a connection
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
        self._exact = False  # the first pull after start / resync was made (later pulls use seq@<writer> keys)
        self._last_discovery = -math.inf  # when the writer registry was last read (monotonic s)
        self._writers: Any = None  # the registry collection
        self._seq = self.outbox.last_seq
        self._pushed_seq = 0
        # own records pushed by this process need not come back — but those a previous run pushed after its
        # last save must: until the first complete pull, this robot's mark is the saved one
        self._own_caught_up = False
        self._tick = self.outbox.last_version  # observation ticks: strictly increasing, also across restarts
        self._collection: Any = None
        self._batch = config.batch_size  # adapted: halved after a timeout, grown back after successes
        self._last_push = -math.inf  # when the last push started (monotonic s): pushes are paced
        self._embedded: dict[str, str] = {}  # record id -> type the server holds the vector of (push thread)
        self._type_vectors: dict[str, list[float]] = {}  # object type -> its record vector (push thread)
        self._replay_outbox_locally()
        self._thread = threading.Thread(target=self._run, name=f"fleet-push-{self.robot_id}", daemon=True)
        self._puller = threading.Thread(target=self._run_pulls, name=f"fleet-pull-{self.robot_id}", daemon=True)
        if start:
            import chromadb  # noqa: F401 — slow (seconds) the first time: pay it here, not in the first sync

            self._thread.start()
            self._puller.start()

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
        built: list[dict[str, Any]] = []  # what the outbox stored, for the live link
        for object_id in dict.fromkeys(object_ids):
            record = self._local(object_id)
            if record is None:
                continue

            def build(version: int, record: ObjectRecord = record) -> dict[str, Any]:
                rid, meta, _ = to_wire(replace(record, robot_id=self.robot_id, version=version))
                built.append({"id": rid, "meta": meta})
                return built[-1]

            builders.append((record_id(object_id, self.robot_id), build))
        if builders:
            self.outbox.append(builders)
            self._wake.set()  # the push thread decides whether a push is due
        if built and self.link is not None:
            try:
                self.link.send(self.robot_id, built)
            except Exception as err:  # noqa: BLE001 — the link is best effort; the outbox has the records
                self._log.warning(f"fleet: live link send failed ({type(err).__name__}: {err}); "
                                  "the server will carry these records")
                return
            with self._lock:
                self._status.live_sent += len(built)

    def receive(self, sender: str, payloads: Sequence[Mapping[str, Any]]) -> int:
        """Take records another robot sent over the live link (any thread); returns how many were accepted.

        They are validated as pulled records are, must be the sender's own, and are merged on the next
        :meth:`poll`. Invalid ones are logged and counted, never merged.
        """
        if sender == self.robot_id:
            return 0
        records: list[ObjectRecord | AreaRecord] = []
        for payload in payloads:
            rid = payload.get("id") if isinstance(payload, Mapping) else None
            try:
                if not isinstance(rid, str):
                    raise InvalidRecordError(f"a live record from {sender!r} has no id: {str(payload)[:80]}")
                record = from_wire(rid, payload.get("meta"), require_seq=False)
                if record.robot_id != sender:
                    raise InvalidRecordError(f"record {rid!r} came from {sender!r}, not from its writer")
            except InvalidRecordError as err:
                self._reject(str(rid), f"live: {err}", err, "the live link")  # each reason logged once
                continue
            records.append(record)
        if records:
            self._inbox.put(_Pull(records, None))
            with self._lock:
                self._status.live_received += len(records)
        return len(records)

    def publish_areas(self) -> int:
        """Queue this robot's areas (its map) for the server; returns how many."""
        builders = []
        for area in sg.area_ids(self.memory.graph):
            def build(version: int, area: str = area) -> dict[str, Any]:
                rid, meta, _ = to_wire(area_record(self.memory.graph, area, self.robot_id, version))
                return {"id": rid, "meta": meta}

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
        """Merge what the pull thread fetched since the last call (no I/O; call from the graph's owner thread)."""
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
            self._exact = False
            self._own_caught_up = False
        self._pull_wake.set()

    def save(self) -> Path | None:
        """Save the graph (with its fleet watermarks) when the memory has a directory."""
        return self.memory.save() if self.memory.directory is not None else None

    # ==== push and pull threads ==========================================================================
    def _vectors(self, types: list[str]) -> list[list[float]]:
        """The record vector of each type (embedded once per type and process)."""
        missing = sorted({t for t in types if t not in self._type_vectors})
        if missing:
            if self._embedder is None:
                from karma_memory.core.embedding import default_embedder

                self._embedder = default_embedder()
            rows = self._embedder.embed([TypeIndex.describe(t) for t in missing])
            self._type_vectors.update(zip(missing, np.asarray(rows, np.float32).tolist()))
        return [self._type_vectors[t] for t in types]

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
        self._writers = client.get_or_create_collection(cfg.collection + WRITERS, embedding_function=None)
        self._writers.upsert(ids=[self.robot_id], embeddings=[[1.0]], metadatas=[{"robot_id": self.robot_id}])
        self._discover()
        self._embedded.clear()  # after an outage the server may have lost records: send them whole again

    def _run(self) -> None:
        """The push thread: (re)connects with backoff and sends the outbox, paced (see the module docstring)."""
        backoff = self.config.retry_backoff_s
        next_try = 0.0
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
                    self._connected.set()
                    backoff = self.config.retry_backoff_s
                self._push(force=stopping)
                if stopping:
                    return
            except Exception as err:  # noqa: BLE001 — transport errors of any kind mean "server unavailable"
                self._offline(err)
                if stopping:
                    return
                next_try = time.monotonic() + backoff
                backoff = min(backoff * 2, self.config.max_backoff_s)
                continue
            flush_due = (self._last_push + self.config.flush_interval_s - time.monotonic() if len(self.outbox)
                         else self.config.flush_interval_s)
            self._wait(flush_due)

    def _run_pulls(self) -> None:
        """The pull thread: every ``pull_interval_s`` (``live_pull_interval_s`` with a live link; from the start of
        the last pull), or at once when asked.

        Pulls run beside pushes (a slow upsert never delays what this robot learns, and the other way round);
        on an error it hands the reconnection to the push thread and waits for it.
        """
        next_pull = 0.0
        while not self._stop.is_set():
            if not self._connected.is_set():  # the push thread (re)connects
                self._connected.wait(0.1)
                continue
            started = time.monotonic()
            if self._pull_wanted or started >= next_pull:
                try:
                    self._pull()
                except Exception as err:  # noqa: BLE001 — as in _run
                    self._offline(err)
                    continue
                next_pull = started + (self.config.pull_interval_s if self.link is None
                                       else self.config.live_pull_interval_s)
            self._pull_wake.wait(max(0.001, next_pull - time.monotonic()))
            self._pull_wake.clear()

    def _offline(self, err: Exception) -> None:
        """A request failed: the server counts as unavailable until the push thread reconnects."""
        self._collection = None
        self._connected.clear()
        self._set_online(False, f"{type(err).__name__}: {err}")
        self._wake.set()

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

    def _push(self, force: bool = False) -> None:
        """Upsert the due batches (see the module docstring)."""
        cfg = self.config
        while True:
            pending = len(self.outbox)
            if not pending:
                self._flush_wanted.clear()
                return
            due = (force or self._flush_wanted.is_set() or pending >= self._batch
                   or time.monotonic() - self._last_push >= cfg.flush_interval_s)
            if not due:
                return
            self._last_push = time.monotonic()
            entries = self.outbox.peek(self._batch)
            latest: dict[str, dict[str, Any]] = {}
            for entry in entries:  # rows are in version order: the last row of a record wins
                latest[entry.record_id] = entry.payload
            payloads = list(latest.values())
            # an HNSW update is the server's costly write: a record whose vector (its type's) the server
            # already holds gets a metadata-only update
            fresh = [p for p in payloads if self._embedded.get(p["id"]) != p["meta"]["type"]]
            known = [p for p in payloads if self._embedded.get(p["id"]) == p["meta"]["type"]]
            # the pull cursor: a sequence number given now, so a writer's records reach the server in seq order
            first = max(self._seq + 1, int(time.time() * 1e6))
            seqs = {p["id"]: first + i for i, p in enumerate(payloads)}
            collection = self._collection
            if collection is None:  # the pull thread lost the server meanwhile
                raise ConnectionError("not connected")
            began = time.perf_counter()
            try:
                if fresh:
                    collection.upsert(ids=[p["id"] for p in fresh],
                                      embeddings=self._vectors([p["meta"]["type"] for p in fresh]),
                                      metadatas=[self._stamped(p["meta"], seqs[p["id"]]) for p in fresh])
                if known:
                    collection.update(ids=[p["id"] for p in known],
                                      metadatas=[self._stamped(p["meta"], seqs[p["id"]]) for p in known])
            except Exception as err:
                if "Timeout" in type(err).__name__:  # a slow server: send smaller batches from now on
                    self._batch = max(8, self._batch // 2)
                raise
            elapsed_ms = (time.perf_counter() - began) * 1e3
            self._batch = min(cfg.batch_size, self._batch + max(1, self._batch // 4))
            self._embedded.update((p["id"], p["meta"]["type"]) for p in payloads)
            self._seq = first + len(payloads) - 1
            self.outbox.ack([e.row for e in entries], last_seq=self._seq)
            with self._lock:
                self._push_ms.append(elapsed_ms)
                self._status.push_requests += 1
                self._status.pushed += len(payloads)
                self._pushed_seq = self._seq

    def _stamped(self, meta: dict[str, Any], seq: int) -> dict[str, Any]:
        """A record's server metadata (:func:`pack`) with its push sequence number, also under the writer's key."""
        return pack(dict(meta, seq=seq, **{seq_key(self.robot_id): seq}))

    def _where(self) -> dict[str, Any] | None:
        """The pull filter (None: no other writer known yet, nothing to ask); see :meth:`_pull`."""
        with self._lock:
            marks = dict(self._marks)
            if self._own_caught_up:
                marks[self.robot_id] = max(marks.get(self.robot_id, 0), self._pushed_seq)
            exact = self._exact
        if not exact:  # first pull (or after a reload): exactly what each known writer has added
            if not marks:
                return {"seq": {"$gt": 0}}
            clauses: list[dict[str, Any]] = [{"$and": [{"robot_id": r}, {"seq": {"$gt": int(w)}}]}
                                             for r, w in sorted(marks.items())]
            clauses.append({"$and": [{"robot_id": {"$nin": sorted(marks)}}, {"seq": {"$gt": 0}}]})
            return {"$or": clauses}
        clauses = [{seq_key(r): {"$gt": int(w)}} for r, w in sorted(marks.items()) if r != self.robot_id]
        if not clauses:
            return None
        return clauses[0] if len(clauses) == 1 else {"$or": clauses}

    def _reject(self, rid: str, seq: Any, err: InvalidRecordError, source: str = "the server") -> None:
        """Log an invalid record once (per id and seq) and count it; it is never merged."""
        with self._lock:
            new = (rid, seq) not in self._rejected_seen
            self._rejected_seen.add((rid, seq))
        if new:
            self._log.warning(f"fleet: rejected a record from {source}, not merged: {err}")

    def _discover(self) -> None:
        """Register this robot in the writer registry (at connect) or read it: new writers start at mark 0."""
        writers = self._writers
        if writers is None:
            raise ConnectionError("not connected")
        ids = writers.get(include=[])["ids"]
        with self._lock:
            for robot in ids:
                self._marks.setdefault(robot, 0)
        self._last_discovery = time.monotonic()

    def _pull(self) -> None:
        """Fetch the records other writers pushed since this robot last saw them.

        A writer's records reach the server in ``seq`` order (it numbers a batch when sending it and
        sends one batch at a time), so ``seq@w > mark(w)`` per known writer ``w`` is exact: one numeric
        range each, OR-ed. The first pull after start (or a reload) asks each writer of the saved marks
        ``robot_id == w and seq > mark(w)``, this robot included (what a previous run pushed after its
        last save), and every other writer from zero; it also finds records written without the
        per-writer key. Writers that join later come from the registry, read every
        ``discovery_interval_s``.
        """
        with self._lock:
            wanted, self._pull_wanted = self._pull_wanted, False
            self._pulls_started += 1
            generation = self._pulls_started
            seen = dict(self._marks)
            if self._own_caught_up:
                seen[self.robot_id] = max(seen.get(self.robot_id, 0), self._pushed_seq)
        began = time.perf_counter()
        if self._exact and (wanted or time.monotonic() - self._last_discovery >= self.config.discovery_interval_s
                            or self._where() is None):
            self._discover()
        where = self._where()
        offset, size = 0, self.config.pull_page_size
        marks: dict[str, int] = {}
        pulled = 0
        collection = self._collection
        if collection is None:
            raise ConnectionError("not connected")
        while where is not None:
            result = collection.get(where=where, include=["metadatas"], limit=size, offset=offset)
            ids, metas = result["ids"], result["metadatas"] or [None] * len(result["ids"])
            records: list[ObjectRecord | AreaRecord] = []
            for rid, stored in zip(ids, metas):
                try:
                    meta = unpack(stored)
                except InvalidRecordError as err:
                    self._reject(rid, stored.get("seq"), InvalidRecordError(f"record {rid!r}: {err}"))
                    continue
                robot = meta.get("robot_id") if isinstance(meta, Mapping) else None
                seq = meta.get("seq") if isinstance(meta, Mapping) else None
                if isinstance(robot, str) and isinstance(seq, int) and not isinstance(seq, bool):
                    if seq <= seen.get(robot, 0):
                        continue  # seen already (own records, or a re-read after a reload)
                    marks[robot] = max(marks.get(robot, 0), seq)
                try:
                    records.append(from_wire(rid, meta))
                except InvalidRecordError as err:
                    self._reject(rid, seq, err)
            pulled += len(ids)
            last = len(ids) < size
            if records or (last and marks):
                self._inbox.put(_Pull(records, dict(marks) if last else None))
            if last:
                break
            offset += size
        with self._lock:
            if where is not None:
                self._pull_ms.append((time.perf_counter() - began) * 1e3)
                self._status.pull_requests += 1
            for robot, seq in marks.items():
                self._marks[robot] = max(self._marks.get(robot, 0), seq)
            self._exact = True
            self._own_caught_up = True
            self._status.pulled += pulled
            self._pulls_finished = generation
            self._pull_done.notify_all()

    # ==== control ========================================================================================
    def flush(self, timeout_s: float = 5.0) -> bool:
        """Ask the push thread to send everything queued now; True when the outbox emptied in time."""
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
        self._pull_wake.set()
        with self._pull_done:
            while self._pulls_finished < wanted and time.monotonic() < deadline:
                self._pull_wanted = True
                self._pull_wake.set()
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

    def reset_timings(self) -> None:
        """Forget the request durations measured so far (a benchmark's warm-up), keeping the counters."""
        with self._lock:
            self._push_ms.clear()
            self._pull_ms.clear()

    def rejected_records(self) -> set[tuple[str, Any]]:
        """(record id, version) of every record rejected since start."""
        with self._lock:
            return set(self._rejected_seen)

    def close(self, flush_timeout_s: float = 2.0) -> None:
        """Try to send what is queued (up to ``flush_timeout_s``), stop the threads, close the outbox."""
        if self._thread.is_alive():
            self.flush(flush_timeout_s)
        self._stop.set()
        self._wake.set()
        self._pull_wake.set()
        for thread in (self._thread, self._puller):
            if thread.is_alive():
                thread.join(self.config.request_timeout_s + self.config.connect_timeout_s + 1.0)
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
