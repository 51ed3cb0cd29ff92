"""Pure conversions of memory state (scene graph, area ranking, STM units) to and from karma_interfaces messages.

They complement :mod:`karma_memory.nodes.conversions` (observations, camera, skills) with what the
memory nodes publish and serve. Positions go from the THOR world frame of the core to the ``map``
frame of the messages and back, as there.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Mapping, Sequence

import networkx as nx
import numpy as np
from geometry_msgs.msg import Point, Vector3
from karma_interfaces.msg import AreaScore as AreaScoreMsg
from karma_interfaces.msg import MemoryUnit as MemoryUnitMsg
from karma_interfaces.msg import SceneGraph, SceneGraphDelta, SceneGraphEdge, SceneGraphNode, ShortTermMemoryState
from std_msgs.msg import Header

from karma_memory.core import scene_graph as sg
from karma_memory.core.errors import InvalidObservationError
from karma_memory.core.frames import MAP_FROM_THOR
from karma_memory.core.long_term import AreaScore
from karma_memory.core.short_term import MemoryUnit, ShortTermMemory
from karma_memory.core.types import OBJECT_STATES, RELATIONS
from karma_memory.nodes.conversions import (
    MAP_FRAME,
    point_to_thor,
    seconds_to_stamp,
    stamp_to_seconds,
    vector3_to_thor_size,
)

__all__ = [
    "EdgeKey",
    "LEVEL_TO_MSG",
    "LEVEL_FROM_MSG",
    "graph_node_to_msg",
    "scene_graph_from_msg",
    "graph_edges",
    "scene_graph_to_msg",
    "scene_graph_delta_to_msg",
    "area_score_to_msg",
    "area_score_from_msg",
    "memory_unit_to_msg",
    "memory_unit_from_msg",
    "stm_state_to_msg",
    "size_from_msg",
    "SceneGraphMessages",
    "map_point",
    "map_size",
    "UnitMessages",
]

#: (source, target, relation) of a scene-graph edge.
EdgeKey = tuple[str, str, str]

LEVEL_TO_MSG: dict[str, int] = {sg.FLOOR: SceneGraphNode.FLOOR, sg.AREA: SceneGraphNode.AREA,
                                sg.OBJECT: SceneGraphNode.OBJECT}
LEVEL_FROM_MSG: dict[int, str] = {v: k for k, v in LEVEL_TO_MSG.items()}


# The snapshot of a large graph is built often, so positions are permuted directly instead of through a
# numpy product per node: map = (thor_z, -thor_x, thor_y). Checked against frames.py at import.
if not np.array_equal(MAP_FROM_THOR, [[0, 0, 1], [-1, 0, 0], [0, 1, 0]]):
    raise ImportError("karma_memory.core.frames.MAP_FROM_THOR changed; update memory_conversions.map_point")


def map_point(p: Sequence[float]) -> Point:
    """A THOR position as a map-frame Point (fast path of conversions.thor_to_point)."""
    return Point(x=float(p[2]), y=-float(p[0]), z=float(p[1]))


def map_size(s: Sequence[float]) -> Vector3:
    """THOR extents as map-frame extents (fast path of conversions.thor_size_to_vector3)."""
    return Vector3(x=abs(float(s[2])), y=abs(float(s[0])), z=abs(float(s[1])))


def _header(stamp: float) -> Header:
    return Header(stamp=seconds_to_stamp(stamp), frame_id=MAP_FRAME)


def graph_node_to_msg(node_id: str, data: Mapping[str, Any]) -> SceneGraphNode:
    """A SceneGraphNode for one node of the core graph (floors have no position: the origin)."""
    level = data.get("level", sg.OBJECT)
    msg = SceneGraphNode(id=str(node_id), level=LEVEL_TO_MSG[level])
    position = data.get("position")
    if position is not None:
        msg.position = map_point(position)
    size = data.get("size")
    if size is not None:
        msg.size, msg.has_size = map_size(size), True
    if level == sg.OBJECT:
        msg.object_type = str(data.get("object_type", ""))
        msg.states = [str(s) for s in data.get("states", ())]
        msg.parent_id = str(data.get("area") or "")
        msg.movable = bool(data.get("movable", False))
        msg.last_seen = seconds_to_stamp(float(data.get("last_seen", 0.0)))
        msg.robot_id = str(data.get("robot_id", ""))
    elif level == sg.AREA:
        msg.parent_id = str(data.get("floor", ""))
    return msg


def graph_edges(graph: nx.DiGraph) -> set[EdgeKey]:
    """Every edge of the graph as (source, target, relation); navigable edges appear once per direction."""
    return {(str(u), str(v), str(d.get("relation", ""))) for u, v, d in graph.edges(data=True)}


def _edge_msgs(edges: Iterable[EdgeKey]) -> list[SceneGraphEdge]:
    return [SceneGraphEdge(source=u, target=v, relation=r) for u, v, r in sorted(edges)]


def scene_graph_to_msg(graph: nx.DiGraph, stamp: float) -> SceneGraph:
    """A full SceneGraph snapshot (all nodes and edges) at the graph's current version."""
    msg = SceneGraph(header=_header(stamp), version=int(graph.graph.get("version", 0)))
    msg.nodes = [graph_node_to_msg(n, d) for n, d in graph.nodes(data=True)]
    msg.edges = _edge_msgs(graph_edges(graph))
    return msg


def scene_graph_delta_to_msg(graph: nx.DiGraph, from_version: int, previous_edges: set[EdgeKey],
                             stamp: float) -> tuple[SceneGraphDelta, set[EdgeKey]]:
    """The change from ``from_version`` (whose edge set was ``previous_edges``) to the current graph.

    Returns:
        The delta message and the current edge set (the ``previous_edges`` of the next delta).
    """
    changed, removed = sg.changes_since(graph, from_version)
    edges = graph_edges(graph)
    msg = SceneGraphDelta(header=_header(stamp), from_version=int(from_version),
                          to_version=int(graph.graph.get("version", 0)))
    msg.upserted_nodes = [graph_node_to_msg(n, graph.nodes[n]) for n in changed]
    msg.removed_node_ids = [str(o) for o in removed if o not in graph]
    msg.upserted_edges = _edge_msgs(edges - previous_edges)
    msg.removed_edges = _edge_msgs(previous_edges - edges)
    return msg, edges


def area_score_to_msg(score: AreaScore) -> AreaScoreMsg:
    """An AreaScore message (position in map) for a core AreaScore."""
    return AreaScoreMsg(area_id=score.area_id, position=map_point(score.position), score=float(score.score),
                        reason=score.reason)


def area_score_from_msg(msg: AreaScoreMsg) -> AreaScore:
    """A core AreaScore (THOR position) from its message.

    Raises:
        InvalidObservationError: a non-finite position or score.
    """
    if not math.isfinite(msg.score):
        raise InvalidObservationError(f"area {msg.area_id!r} has a non-finite score {msg.score!r}")
    return AreaScore(msg.area_id, point_to_thor(msg.position, f"position of {msg.area_id!r}"), float(msg.score),
                     msg.reason)


def _relation(msg: MemoryUnitMsg) -> str:
    """The unit's relation field, checked: "" or "<predicate> <target id>" with a predicate in RELATIONS."""
    if not msg.relation:
        return ""
    predicate, _, target = msg.relation.partition(" ")
    if predicate not in RELATIONS or not target.strip():
        raise InvalidObservationError(f"memory unit {msg.object_id!r} has a bad relation {msg.relation!r}; "
                                      f"expected '<predicate> <target id>' with a predicate in {RELATIONS}")
    return msg.relation


def memory_unit_to_msg(unit: MemoryUnit) -> MemoryUnitMsg:
    """A MemoryUnit message (map frame) for a core unit; the relation keeps the receptacle's object id."""
    return MemoryUnitMsg(object_id=unit.object_id, object_type=unit.object_type, position=map_point(unit.position),
                         states=list(unit.states), last_seen=seconds_to_stamp(unit.last_seen),
                         image_path=unit.image_path, description=unit.description(), relation=unit.relation,
                         hits=int(unit.hits), robot_id=unit.robot_id)


def memory_unit_from_msg(msg: MemoryUnitMsg) -> MemoryUnit:
    """A core MemoryUnit (THOR frame) from its message (the description is derived, so it is not read).

    Raises:
        InvalidObservationError: empty id, unknown state, a malformed relation, or a non-finite position.
    """
    if not msg.object_id.strip():
        raise InvalidObservationError("memory unit has an empty object_id")
    bad = [s for s in msg.states if s not in OBJECT_STATES]
    if bad:
        raise InvalidObservationError(f"memory unit {msg.object_id!r} has unknown state(s) {bad}")
    return MemoryUnit(object_id=msg.object_id, object_type=msg.object_type,
                      position=point_to_thor(msg.position, f"position of {msg.object_id!r}"),
                      states=tuple(msg.states), last_seen=stamp_to_seconds(msg.last_seen),
                      relation=_relation(msg), image_path=msg.image_path, robot_id=msg.robot_id,
                      hits=int(msg.hits))


def stm_state_to_msg(stm: ShortTermMemory, stamp: float, units: UnitMessages | None = None) -> ShortTermMemoryState:
    """The latched ShortTermMemoryState of a short-term memory (units most recent first)."""
    stats = stm.stats
    convert = units.message if units is not None else memory_unit_to_msg
    return ShortTermMemoryState(header=_header(stamp), policy=stm.config.policy, capacity=int(stm.config.capacity),
                                units=[convert(u) for u in stm.units()], queries=int(stats.queries),
                                hits=int(stats.hits), hit_rate=float(stats.hit_rate))


def size_from_msg(msg: SceneGraphNode) -> tuple[float, float, float] | None:
    """The THOR size of a node message, or None when it has none."""
    return vector3_to_thor_size(msg.size, f"size of {msg.id!r}") if msg.has_size else None


class SceneGraphMessages:
    """Snapshot and delta messages that reuse the message of every node (and edge) that did not change.

    Every change to a node bumps its ``version`` attribute, so (id, version) identifies a node
    message; a snapshot of a large graph then only converts what changed since the last one.

    Deltas are incremental: the edge set of the last delta is kept indexed by node, and a delta whose
    touched nodes account for every version bump since then only looks at the edges of those nodes
    (every edge the core adds or removes is incident to a node it stamps or removes). Anything else
    (bumps nobody told us about) falls back to a full diff, so a delta is always exact. Call
    :meth:`track` when the graph is replaced (start, load, reset), since versions restart there.
    """

    def __init__(self) -> None:
        self._nodes: dict[str, tuple[int, SceneGraphNode]] = {}
        self._edges: dict[EdgeKey, SceneGraphEdge] = {}
        self.version = 0  # the graph version the last delta (or track) brought us to
        self._known: set[EdgeKey] = set()  # the edge set at that version ...
        self._incident: dict[str, set[EdgeKey]] = {}  # ... and the same edges by endpoint
        self.full_deltas = 0  # deltas that needed a full diff (for tests and diagnostics)

    def clear(self) -> None:
        """Forget the cached messages (keeps the delta baseline)."""
        self._nodes.clear()
        self._edges.clear()

    def track(self, graph: nx.DiGraph) -> None:
        """Start over from ``graph`` (it replaced the previous one): empty caches, deltas count from here."""
        self.clear()
        self.version = int(graph.graph.get("version", 0))
        self._known = set()
        self._incident = {}
        self._add_edges(graph_edges(graph))

    def _add_edges(self, edges: Iterable[EdgeKey]) -> None:
        for edge in edges:
            self._known.add(edge)
            self._incident.setdefault(edge[0], set()).add(edge)
            self._incident.setdefault(edge[1], set()).add(edge)

    def _remove_edges(self, edges: Iterable[EdgeKey]) -> None:
        for edge in edges:
            self._known.discard(edge)
            for end in edge[:2]:
                bucket = self._incident.get(end)
                if bucket is not None:
                    bucket.discard(edge)
                    if not bucket:
                        del self._incident[end]

    def node(self, node_id: str, data: Mapping[str, Any]) -> SceneGraphNode:
        version = int(data.get("version", 0))
        hit = self._nodes.get(node_id)
        if hit is not None and hit[0] == version:
            return hit[1]
        msg = graph_node_to_msg(node_id, data)
        self._nodes[node_id] = (version, msg)
        return msg

    def _edge_list(self, edges: Iterable[EdgeKey]) -> list[SceneGraphEdge]:
        out = []
        for key in sorted(edges):
            msg = self._edges.get(key)
            if msg is None:
                msg = self._edges[key] = SceneGraphEdge(source=key[0], target=key[1], relation=key[2])
            out.append(msg)
        return out

    def snapshot(self, graph: nx.DiGraph, stamp: float) -> SceneGraph:
        """Like :func:`scene_graph_to_msg`, converting only changed nodes and edges."""
        version = int(graph.graph.get("version", 0))
        msg = SceneGraph(header=_header(stamp), version=version)
        msg.nodes = [self.node(n, d) for n, d in graph.nodes(data=True)]
        edges = graph_edges(graph)
        msg.edges = self._edge_list(edges)
        for gone in [n for n in self._nodes if n not in graph]:
            del self._nodes[gone]
        for gone in [e for e in self._edges if e not in edges]:
            del self._edges[gone]
        if version == self.version and edges != self._known:  # an edge changed without a version bump:
            self._remove_edges(self._known - edges)           # the snapshot has it; deltas go on from here
            self._add_edges(edges - self._known)
        return msg

    def _touched(self, graph: nx.DiGraph, touched: Iterable[str]) -> tuple[list[str], list[str]] | None:
        """(changed, removed) among ``touched`` when they account for every bump since :attr:`version`."""
        base, tombstones, nodes = self.version, graph.graph.get("tombstones", {}), graph.nodes
        changed: list[str] = []
        removed: list[str] = []
        versions: set[int] = set()
        for node_id in dict.fromkeys(touched):  # once each, in order
            data = nodes.get(node_id)
            if data is not None:
                version = int(data.get("version", 0))
                if version > base:
                    changed.append(node_id)
                    versions.add(version)
            elif node_id in tombstones and int(tombstones[node_id]["version"]) > base:
                removed.append(node_id)
                versions.add(int(tombstones[node_id]["version"]))
        if not versions or len(versions) != int(graph.graph.get("version", 0)) - base:
            return None
        return changed, removed

    def delta(self, graph: nx.DiGraph, stamp: float, touched: Iterable[str] = ()) -> SceneGraphDelta:
        """The change since the last delta (or :meth:`track`), sharing node messages with the snapshots.

        Args:
            touched: ids of the nodes the caller changed (e.g. a batch's object ids): a hint that makes
                the delta cost proportional to them instead of the whole graph; wrong or missing hints
                only cost time.
        """
        found = self._touched(graph, touched)
        if found is None:  # full diff
            self.full_deltas += 1
            changed, removed = sg.changes_since(graph, self.version)
            edges = graph_edges(graph)
            added, gone = edges - self._known, self._known - edges
        else:
            changed, removed = found
            before: set[EdgeKey] = set()
            for node_id in changed + removed:
                before |= self._incident.get(node_id, set())
            after: set[EdgeKey] = set()
            succ, pred = graph.succ, graph.pred
            for node_id in changed:
                name = str(node_id)
                after.update((name, str(v), str(d.get("relation", ""))) for v, d in succ[node_id].items())
                after.update((str(u), name, str(d.get("relation", ""))) for u, d in pred[node_id].items())
            added, gone = after - before, before - after
        msg = SceneGraphDelta(header=_header(stamp), from_version=int(self.version),
                              to_version=int(graph.graph.get("version", 0)))
        msg.upserted_nodes = [self.node(n, graph.nodes[n]) for n in changed]
        msg.removed_node_ids = [str(o) for o in removed if o not in graph]
        msg.upserted_edges = self._edge_list(added)
        msg.removed_edges = _edge_msgs(gone)
        self._remove_edges(gone)
        self._add_edges(added)
        self.version = msg.to_version
        return msg


class UnitMessages:
    """MemoryUnit messages cached per unit value (units are frozen: a changed unit is a new value)."""

    def __init__(self, limit: int = 4096) -> None:
        self._cache: dict[MemoryUnit, MemoryUnitMsg] = {}
        self.limit = limit

    def message(self, unit: MemoryUnit) -> MemoryUnitMsg:
        msg = self._cache.get(unit)
        if msg is None:
            if len(self._cache) >= self.limit:
                self._cache.clear()
            msg = self._cache[unit] = memory_unit_to_msg(unit)
        return msg


def scene_graph_from_msg(msg: SceneGraph) -> nx.DiGraph:
    """A core scene graph (THOR frame) from a SceneGraph snapshot, e.g. to draw or save what a node holds."""
    graph = sg.new_scene_graph(floors=0)
    graph.graph["version"] = int(msg.version)
    for node in msg.nodes:
        level = LEVEL_FROM_MSG.get(int(node.level))
        if level is None:
            raise InvalidObservationError(f"scene graph node {node.id!r} has unknown level {node.level}")
        attrs: dict[str, Any] = {"level": level, "version": int(msg.version)}
        if level != sg.FLOOR:
            attrs["position"] = point_to_thor(node.position, f"position of {node.id!r}")
        if level == sg.AREA:
            attrs["floor"] = node.parent_id
        elif level == sg.OBJECT:
            seen = stamp_to_seconds(node.last_seen)
            attrs.update(object_type=node.object_type, states=list(node.states), movable=bool(node.movable),
                         area=node.parent_id or None, last_seen=seen, first_seen=seen, observations=1, history=[],
                         robot_id=node.robot_id, size=size_from_msg(node))
        graph.add_node(node.id, **attrs)
    for edge in msg.edges:
        if edge.source in graph and edge.target in graph:
            graph.add_edge(edge.source, edge.target, relation=edge.relation)
    return graph
