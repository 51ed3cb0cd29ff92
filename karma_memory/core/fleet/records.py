"""Shared-memory records: the wire format on the Chroma server, their validation, and the merge rule.

Record layout
    The server holds **one record per (object, writing robot)**, id ``"<object_id>@<robot_id>"``. Each
    record is written by exactly one robot, so two robots never race on the same record; every reader
    merges the records of an object itself. A record carries the writer's whole view of the object
    (type, position, size, states, relations, movable, present/removed) and, for every field, the
    *field stamp* ``(observed time, robot id, tick)`` of the observation that set it; ``tick`` is the
    observing robot's own strictly increasing counter, so a stamp names exactly one observation.

Version and sequence
    Two hybrid logical clocks of the writer, in microseconds (``max(previous + 1, wall clock)``,
    persisted in its outbox, so they strictly increase per writer, also across restarts):
    ``version`` is given when the record is queued — the per-record version: an upsert of the same id
    and version carries the same content, so replays are idempotent; ``seq`` is given when the record
    is sent to the server — the incremental pull cursor (:mod:`chroma_sync`): a writer's records
    reach the server in ``seq`` order, so a reader asks for ``seq`` above what it has seen, with a
    ``where`` filter, never re-reading everything. The observation time (``stamp``) is *not* usable as
    a cursor: a robot coming back online replays writes with old stamps, which a time watermark skips.
    The server copy also carries ``seq`` under the writer's own key ``seq@<robot_id>`` (:func:`seq_key`),
    so a reader's filter is one numeric range per writer.

Server layout
    :func:`to_wire` gives a record's metadata as flat JSON scalars (the logical format that
    :func:`from_wire` validates). On the server only what filters use stays flat — ``robot_id``,
    ``type``, ``seq`` and ``seq@<robot_id>`` — and the rest travels as one compact JSON string under
    ``r`` (:func:`pack`, :func:`unpack`): the server's cost of a record grows with its metadata keys
    (one SQLite row each), ~1.7 ms a record with 18 keys against ~0.9 ms with 5 here, and reads halve
    too. :func:`unpack` also accepts a flat record, so both layouts read the same.

Merge rule (newest observation wins, per field)
    For every field independently, the value with the greatest field stamp wins, where stamps compare
    by observed time first and, on a tie, by robot id in lexical order (the greater id wins); two
    observations by one robot with the same time are ordered by its tick (the later one wins). A field
    an observation did not carry (no size, no states) has no stamp and never overrides. Presence is a
    field too: a removal at time t beats a sighting at t' < t, and a later sighting brings the object
    back. The rule is a join on a semilattice — commutative, associative and idempotent — so all
    robots converge to the same graph whatever order records arrive in, and applying a record twice
    changes nothing.

>>> a = ObjectRecord("Apple|1", "r1", 1, True, "Apple", (0.0, 0.9, 0.0), fields={"position": (1.0, "r1", 5)})
>>> b = ObjectRecord("Apple|1", "r2", 1, True, "Apple", (2.0, 0.9, 0.0), fields={"position": (1.0, "r2", 3)})
>>> merge_records(a, b).position  # same time: "r2" > "r1"
(2.0, 0.9, 0.0)
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from typing import Any, Mapping

import networkx as nx

from karma_memory.core import scene_graph as sg
from karma_memory.core.errors import InvalidObservationError
from karma_memory.core.types import OBJECT_STATES, RELATIONS, Relation, Vec3

__all__ = [
    "RECORD_SCHEMA_VERSION",
    "FIELDS",
    "FIELDS_ATTR",
    "Stamp",
    "InvalidRecordError",
    "ObjectRecord",
    "AreaRecord",
    "record_id",
    "seq_key",
    "pack",
    "unpack",
    "merge_records",
    "dominated",
    "stamps_to_attr",
    "to_wire",
    "from_wire",
    "node_record",
    "object_relations",
    "area_record",
]

#: Wire schema of the records written by this code; a record with any other value is rejected.
RECORD_SCHEMA_VERSION = 1
#: The independently merged fields of an object.
FIELDS: tuple[str, ...] = ("presence", "type", "position", "size", "states", "relations", "movable")
#: Graph node attribute holding the field stamps {field: [stamp, robot_id, tick]} of an object.
FIELDS_ATTR = "fleet_fields"
NO_STAMP: tuple[float, str, int] = (-math.inf, "", -1)

Stamp = tuple[float, str, int]


class InvalidRecordError(InvalidObservationError):
    """A record read from the shared store is malformed; it is logged and never merged."""


def record_id(object_id: str, robot_id: str) -> str:
    """Server id of one robot's record of one object (or area)."""
    return f"{object_id}@{robot_id}"


def seq_key(robot_id: str) -> str:
    """Metadata key holding a record's push sequence number under its writer's name (the pull cursor)."""
    return f"seq@{robot_id}"


@dataclass(frozen=True)
class ObjectRecord:
    """One robot's view of one object, with a stamp per field (see the module docstring).

    Attributes:
        object_id: the object's persistent id.
        robot_id: who wrote the record (for a merged view: whose record it started from).
        version: the writer's sequence number at write time (µs hybrid logical clock).
        present: False when the newest presence evidence is a removal.
        object_type, position, size, states, relations, movable: the object's fields (THOR world frame).
        fields: field name -> (observed time, observing robot, its tick) of the value held; absent = never
            observed.
    """

    object_id: str
    robot_id: str
    version: int
    present: bool
    object_type: str
    position: Vec3
    size: Vec3 | None = None
    states: tuple[str, ...] = ()
    relations: tuple[Relation, ...] = ()
    movable: bool = True
    fields: Mapping[str, Stamp] = field(default_factory=dict)

    @property
    def record_id(self) -> str:
        """Server id of this record."""
        return record_id(self.object_id, self.robot_id)

    @property
    def stamp(self) -> float:
        """Newest observed time over the fields (-inf when nothing was observed)."""
        return max((s[0] for s in self.fields.values()), default=-math.inf)

    @property
    def last_robot(self) -> str:
        """The robot behind the newest field stamp."""
        return max(self.fields.values(), default=NO_STAMP)[1]

    def stamp_of(self, name: str) -> Stamp:
        """Field stamp of ``name`` (NO_STAMP when never observed)."""
        value = self.fields.get(name)
        return (float(value[0]), str(value[1]), int(value[2])) if value is not None else NO_STAMP


@dataclass(frozen=True)
class AreaRecord:
    """One area of a robot's map: position, cell count and navigable neighbours (area id, metres)."""

    area_id: str
    robot_id: str
    version: int
    position: Vec3
    floor: str = "floor_0"
    cells: int = 0
    neighbours: tuple[tuple[str, float], ...] = ()

    @property
    def record_id(self) -> str:
        """Server id of this record."""
        return record_id(self.area_id, self.robot_id)


_VALUE_OF = {"presence": "present", "type": "object_type", "position": "position", "size": "size",
             "states": "states", "relations": "relations", "movable": "movable"}


def merge_records(local: ObjectRecord | None, remote: ObjectRecord) -> ObjectRecord:
    """Per-field newest-wins merge of two views of one object (module docstring has the rule).

    The result keeps ``local``'s robot id and version (it is the local view); with no local view
    the remote record is returned as is.

    Raises:
        InvalidRecordError: when the two records name different objects.
    """
    if local is None:
        return remote
    if local.object_id != remote.object_id:
        raise InvalidRecordError(f"cannot merge records of {local.object_id!r} and {remote.object_id!r}")
    values: dict[str, Any] = {}
    fields: dict[str, Stamp] = {}
    for name in FIELDS:
        mine, theirs = local.stamp_of(name), remote.stamp_of(name)
        winner = remote if theirs > mine else local
        values[_VALUE_OF[name]] = getattr(winner, _VALUE_OF[name])
        if max(mine, theirs) != NO_STAMP:
            fields[name] = max(mine, theirs)
    return replace(local, fields=fields, **values)


def dominated(local: ObjectRecord | None, remote: ObjectRecord) -> bool:
    """True when merging ``remote`` into ``local`` changes nothing (no field of remote is newer)."""
    if local is None:
        return False
    return all(remote.stamp_of(name) <= local.stamp_of(name) for name in FIELDS)


# ---------------------------------------------------------------------------------------- wire format
def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), allow_nan=False)


def to_wire(record: ObjectRecord | AreaRecord) -> tuple[str, dict[str, Any], str]:
    """(id, chroma metadata, document) of a record. Scalars are flat metadata (filterable on the
    server: type, robot_id, version, stamp, x/y/z); lists and stamps are compact JSON strings."""
    if isinstance(record, AreaRecord):
        x, y, z = record.position
        meta: dict[str, Any] = {
            "schema_version": RECORD_SCHEMA_VERSION, "kind": "area", "object_id": record.area_id,
            "robot_id": record.robot_id, "version": int(record.version), "type": "Area", "x": x, "y": y, "z": z,
            "floor": record.floor, "cells": int(record.cells),
            "neighbours": _json([[a, d] for a, d in record.neighbours]),
        }
        return record.record_id, meta, f"area {record.area_id} at ({x:.2f}, {z:.2f})"
    x, y, z = record.position
    meta = {
        "schema_version": RECORD_SCHEMA_VERSION, "kind": "object", "object_id": record.object_id,
        "robot_id": record.robot_id, "version": int(record.version), "stamp": record.stamp
        if math.isfinite(record.stamp) else 0.0, "type": record.object_type, "x": x, "y": y, "z": z,
        "present": bool(record.present), "movable": bool(record.movable),
        "size": _json(list(record.size) if record.size is not None else None),
        "states": _json(list(record.states)),
        "relations": _json([[r.predicate, r.target_id] for r in record.relations]),
        "fields": _json({k: [s[0], s[1], s[2]] for k, s in record.fields.items()}),
    }
    relations = " ".join(f"{r.predicate} {r.target_id.split('|', 1)[0]}" for r in record.relations)
    document = " ".join(p for p in (record.object_type, relations, " ".join(s for s in record.states if s != "none"))
                        if p)
    return record.record_id, meta, document


#: metadata keys kept flat on the server (filters use them); see "Server layout" in the module docstring
FLAT_KEYS = ("robot_id", "type", "seq")
#: the key holding the rest of a record's metadata as JSON on the server
PACKED_KEY = "r"


def pack(meta: Mapping[str, Any]) -> dict[str, Any]:
    """Server layout of a record's metadata: filterable keys flat, the rest as JSON under ``r``.

    >>> pack({"robot_id": "r1", "type": "Mug", "seq": 5, "seq@r1": 5, "x": 1.0})
    {'robot_id': 'r1', 'type': 'Mug', 'seq': 5, 'seq@r1': 5, 'r': '{"x":1.0}'}
    """
    flat = {k: v for k, v in meta.items() if k in FLAT_KEYS or k.startswith("seq@")}
    flat[PACKED_KEY] = _json({k: v for k, v in meta.items() if k not in flat})
    return flat


def unpack(meta: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """The flat metadata of a record as stored on the server (a flat record is returned as is).

    Raises:
        InvalidRecordError: ``r`` is not a JSON object.
    """
    if not isinstance(meta, Mapping) or PACKED_KEY not in meta:
        return meta
    try:
        rest = json.loads(meta[PACKED_KEY]) if isinstance(meta[PACKED_KEY], str) else None
    except json.JSONDecodeError as err:
        raise InvalidRecordError(f"packed metadata is not JSON: {str(meta[PACKED_KEY])[:60]!r}") from err
    if not isinstance(rest, dict):
        raise InvalidRecordError(f"packed metadata must be a JSON object, got {str(meta[PACKED_KEY])[:60]!r}")
    rest.update((k, v) for k, v in meta.items() if k != PACKED_KEY)  # the flat (filtered-on) keys win
    return rest


def _need(meta: Mapping[str, Any], key: str, kinds: type | tuple[type, ...]) -> Any:
    if key not in meta or meta[key] is None:
        raise InvalidRecordError(f"missing field {key!r}")
    value = meta[key]
    allowed = kinds if isinstance(kinds, tuple) else (kinds,)
    if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
        raise InvalidRecordError(f"field {key!r} has type {type(value).__name__}: {value!r}")
    return value


def _finite(meta: Mapping[str, Any], key: str) -> float:
    value = float(_need(meta, key, (int, float)))
    if not math.isfinite(value):
        raise InvalidRecordError(f"field {key!r} is not finite: {value!r}")
    return value


def _parse_json(meta: Mapping[str, Any], key: str) -> Any:
    text = _need(meta, key, str)
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise InvalidRecordError(f"field {key!r} is not JSON: {text[:60]!r}") from err


def _stamps(meta: Mapping[str, Any]) -> dict[str, Stamp]:
    raw = _parse_json(meta, "fields")
    if not isinstance(raw, dict):
        raise InvalidRecordError(f"field 'fields' must be an object, got {raw!r}")
    stamps: dict[str, Stamp] = {}
    for name, value in raw.items():
        if name not in FIELDS:
            raise InvalidRecordError(f"unknown field {name!r} in field stamps")
        if (not isinstance(value, list) or len(value) != 3 or not isinstance(value[0], (int, float))
                or isinstance(value[0], bool) or not isinstance(value[1], str) or not isinstance(value[2], int)
                or isinstance(value[2], bool)):
            raise InvalidRecordError(f"field stamp of {name!r} must be [time, robot_id, tick], got {value!r}")
        if not math.isfinite(value[0]):
            raise InvalidRecordError(f"field stamp of {name!r} is not finite: {value[0]!r}")
        stamps[name] = (float(value[0]), value[1], value[2])
    return stamps


def from_wire(rid: str, meta: Mapping[str, Any] | None, require_seq: bool = True) -> ObjectRecord | AreaRecord:
    """Validate one record read from the server and decode it.

    ``require_seq=False`` reads records that were never sent (the outbox's, a removal kept locally).

    Raises:
        InvalidRecordError: naming the first problem (unknown schema version, NaN position, missing
            field, id that does not match its object and robot, unknown state or relation, ...).
    """
    if not isinstance(meta, Mapping):
        raise InvalidRecordError(f"record {rid!r} has no metadata")
    try:
        version = _need(meta, "schema_version", int)
        if version != RECORD_SCHEMA_VERSION:
            raise InvalidRecordError(f"unknown schema version {version!r} (this code reads {RECORD_SCHEMA_VERSION})")
        kind = _need(meta, "kind", str)
        object_id = _need(meta, "object_id", str)
        robot = _need(meta, "robot_id", str)
        if not object_id.strip() or not robot.strip():
            raise InvalidRecordError("empty object_id or robot_id")
        if rid != record_id(object_id, robot):
            raise InvalidRecordError(f"id does not match object {object_id!r} and robot {robot!r}")
        seq = _need(meta, "version", int)
        if seq <= 0:
            raise InvalidRecordError(f"version must be > 0, got {seq}")
        if require_seq and _need(meta, "seq", int) <= 0:
            raise InvalidRecordError(f"seq must be > 0, got {meta['seq']}")
        position = (_finite(meta, "x"), _finite(meta, "y"), _finite(meta, "z"))
        if kind == "area":
            neighbours = _parse_json(meta, "neighbours")
            if not isinstance(neighbours, list) or not all(
                    isinstance(n, list) and len(n) == 2 and isinstance(n[0], str) and isinstance(n[1], (int, float))
                    and math.isfinite(n[1]) for n in neighbours):
                raise InvalidRecordError(f"neighbours must be [[area_id, distance], ...], got {neighbours!r:.80}")
            return AreaRecord(object_id, robot, seq, position, _need(meta, "floor", str), _need(meta, "cells", int),
                              tuple((str(a), float(d)) for a, d in neighbours))
        if kind != "object":
            raise InvalidRecordError(f"unknown record kind {kind!r}")
        object_type = _need(meta, "type", str)
        if not object_type.strip():
            raise InvalidRecordError("empty object type")
        _finite(meta, "stamp")
        size = _parse_json(meta, "size")
        if size is not None:
            if (not isinstance(size, list) or len(size) != 3
                    or not all(isinstance(v, (int, float)) and math.isfinite(v) and v >= 0 for v in size)):
                raise InvalidRecordError(f"size must be three finite non-negative numbers or null, got {size!r}")
            size = tuple(float(v) for v in size)
        states = _parse_json(meta, "states")
        if not isinstance(states, list) or any(s not in OBJECT_STATES for s in states):
            raise InvalidRecordError(f"states must be a list from OBJECT_STATES, got {states!r}")
        raw_relations = _parse_json(meta, "relations")
        if not isinstance(raw_relations, list) or not all(
                isinstance(r, list) and len(r) == 2 and r[0] in RELATIONS and isinstance(r[1], str) and r[1]
                for r in raw_relations):
            raise InvalidRecordError(f"relations must be [[predicate, target_id], ...], got {raw_relations!r:.80}")
        stamps = _stamps(meta)
        if "position" not in stamps or "presence" not in stamps:
            raise InvalidRecordError("field stamps lack 'position' or 'presence'")
        return ObjectRecord(object_id, robot, seq, _need(meta, "present", bool), object_type, position,
                            size, tuple(states), tuple(Relation(p, t) for p, t in raw_relations),
                            _need(meta, "movable", bool), stamps)
    except InvalidRecordError as err:
        raise InvalidRecordError(f"record {rid!r}: {err}") from None


# ------------------------------------------------------------------------------------ graph <-> records
def object_relations(graph: nx.DiGraph, object_id: str) -> tuple[Relation, ...]:
    """The object's relations in the graph, including those waiting for a receptacle not seen yet."""
    relations = [Relation(d["relation"], t) for t, d in graph.adj[object_id].items()
                 if d.get("relation") in RELATIONS]
    for target, sources in graph.graph.get("pending", {}).items():
        predicate = sources.get(object_id)
        if predicate is not None:
            relations.append(Relation(predicate, target))
    return tuple(sorted(relations, key=lambda r: (r.predicate, r.target_id)))


def node_record(graph: nx.DiGraph, object_id: str, robot_id: str, version: int = 0) -> ObjectRecord | None:
    """The graph's view of an object as a record (None when the graph has no such object node).

    Nodes that never went through the fleet backend (a scene map, a loaded file) get every field
    stamped with their ``last_seen`` and ``robot_id`` attributes.
    """
    data = graph.nodes.get(object_id)
    if data is None or data.get("level") != sg.OBJECT:
        return None
    raw = data.get(FIELDS_ATTR)
    if raw is None:
        default = (float(data.get("last_seen", 0.0)), str(data.get("robot_id") or ""), 0)
        stamps = {name: default for name in FIELDS}
    else:
        stamps = {k: (float(v[0]), str(v[1]), int(v[2])) for k, v in raw.items()}
    size = data.get("size")
    return ObjectRecord(object_id, robot_id, version, True, data["object_type"], tuple(data["position"]),
                        tuple(size) if size is not None else None, tuple(data.get("states") or ()),
                        object_relations(graph, object_id), bool(data.get("movable", True)), stamps)


def area_record(graph: nx.DiGraph, area_id: str, robot_id: str, version: int) -> AreaRecord:
    """An area node of the graph as a record."""
    data = graph.nodes[area_id]
    neighbours = tuple(sorted((t, float(d.get("distance", 0.0))) for t, d in graph.adj[area_id].items()
                              if d.get("relation") == sg.NAVIGABLE))
    return AreaRecord(area_id, robot_id, version, tuple(data["position"]), str(data.get("floor", "floor_0")),
                      int(data.get("cells", 0)), neighbours)


def stamps_to_attr(fields: Mapping[str, Stamp]) -> dict[str, list[Any]]:
    """Field stamps in the JSON-friendly form stored on graph nodes."""
    return {k: [float(s[0]), str(s[1]), int(s[2])] for k, s in fields.items()}
