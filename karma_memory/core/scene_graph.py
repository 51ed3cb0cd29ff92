"""The long-term memory's 3D scene graph: a networkx DiGraph of floors → areas → objects.

Nodes carry ``level`` ("floor", "area", "object"). Edges carry ``relation``:
``contains`` (floor→area, area→object), ``navigable`` (area↔area, both directions, with
``distance``), and ``on`` / ``inside`` / ``near`` (movable object → receptacle or neighbour).
Positions are AI2-THOR world coordinates (x, y up, z). Every change bumps the graph's
``version`` and stamps the touched node, so deltas can be read with :func:`changes_since`.

Algorithms are module functions taking the graph first (networkx style).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import networkx as nx
import numpy as np

from karma_memory.core.errors import InvalidObservationError, UnknownObjectError
from karma_memory.core.types import MAX_STAMP_S, ObjectObservation, ObservationKind, Relation, Vec3

__all__ = [
    "SCHEMA_VERSION",
    "GraphChange",
    "new_scene_graph",
    "add_areas",
    "area_ids",
    "area_positions",
    "object_ids",
    "get_object",
    "objects_of_type",
    "nearest_area",
    "apply_observation",
    "changes_since",
    "previous_parent",
    "describe_object",
    "to_prompt",
    "validate_graph",
    "graph_to_data",
    "graph_from_data",
]

SCHEMA_VERSION = 1
FLOOR, AREA, OBJECT = "floor", "area", "object"
STRUCTURAL = "contains"
NAVIGABLE = "navigable"
HISTORY_LENGTH = 8  # provenance entries kept per object
OBJECT_KEYS = frozenset({"object_type", "position", "states", "movable", "last_seen", "first_seen", "observations",
                         "history", "version"})


@dataclass(frozen=True)
class GraphChange:
    """What one observation did to the graph: added, moved, state_changed, seen, removed, ignored."""

    kind: str
    object_id: str
    version: int
    area_id: str | None = None


def new_scene_graph(scene: str = "", floors: int = 1) -> nx.DiGraph:
    """An empty scene graph with ``floors`` floor nodes (``floor_0`` …)."""
    graph = nx.DiGraph(schema_version=SCHEMA_VERSION, scene=scene, version=0, tombstones={}, pending={})
    for index in range(floors):
        graph.add_node(f"floor_{index}", level=FLOOR, name=f"floor {index}", version=0)
    return graph


def _bump(graph: nx.DiGraph) -> int:
    graph.graph["version"] += 1
    return int(graph.graph["version"])


def add_areas(graph: nx.DiGraph, reachable_xz: np.ndarray, spacing: float = 1.5, cell: float = 0.25,
              floor: str = "floor_0", height: float = 0.0) -> list[str]:
    """Add area nodes evenly over the reachable positions and navigability edges between them.

    The reachable cells are tiled by squares of side ``spacing``; each non-empty tile becomes an
    area whose centre is the reachable cell nearest the tile's centroid (so areas are reachable).
    Two areas are joined when their tiles touch and a path over reachable cells (4-connected,
    step ``cell``) links their centres within the two tiles.

    Returns:
        The new area ids, ordered row-major (z, then x).
    """
    if floor not in graph or graph.nodes[floor].get("level") != FLOOR:
        raise UnknownObjectError(f"no floor node {floor!r} in the scene graph")
    if spacing <= 0 or cell <= 0:
        raise InvalidObservationError(f"spacing and cell must be > 0, got {spacing}, {cell}")
    cells = np.asarray(reachable_xz, dtype=float).reshape(-1, 2)
    if len(cells) == 0:
        return []
    if not np.isfinite(cells).all():
        raise InvalidObservationError("reachable positions contain NaN or inf")
    origin = cells.min(axis=0)
    tiles = np.floor((cells - origin) / spacing + 1e-9).astype(int)
    grid_keys = np.round((cells - origin) / cell).astype(int)
    key_to_index = {tuple(k): i for i, k in enumerate(grid_keys)}
    members: dict[tuple[int, int], list[int]] = {}
    for index, tile in enumerate(map(tuple, tiles)):
        members.setdefault(tile, []).append(index)

    start = len(area_ids(graph))
    version = _bump(graph)
    tile_area: dict[tuple[int, int], str] = {}
    centre_index: dict[str, int] = {}
    for offset, tile in enumerate(sorted(members, key=lambda t: (t[1], t[0]))):
        idx = np.array(members[tile])
        centroid = cells[idx].mean(axis=0)
        best = idx[np.argmin(((cells[idx] - centroid) ** 2).sum(axis=1))]
        area = f"area_{start + offset}"
        x, z = cells[best]
        graph.add_node(area, level=AREA, position=(round(float(x), 3), float(height), round(float(z), 3)),
                       floor=floor, cells=len(idx), version=version)
        graph.add_edge(floor, area, relation=STRUCTURAL)
        tile_area[tile] = area
        centre_index[area] = int(best)

    for tile, area in tile_area.items():
        for d in ((1, 0), (0, 1), (1, 1), (1, -1)):
            other_tile = (tile[0] + d[0], tile[1] + d[1])
            other = tile_area.get(other_tile)
            if other is None:
                continue
            allowed = set(members[tile]) | set(members[other_tile])
            if _cells_connected(centre_index[area], centre_index[other], allowed, grid_keys, key_to_index):
                a, b = np.array(graph.nodes[area]["position"]), np.array(graph.nodes[other]["position"])
                distance = round(float(np.linalg.norm(a - b)), 3)
                graph.add_edge(area, other, relation=NAVIGABLE, distance=distance)
                graph.add_edge(other, area, relation=NAVIGABLE, distance=distance)
    return list(tile_area.values())


def _cells_connected(src: int, dst: int, allowed: set[int], keys: np.ndarray,
                     key_to_index: Mapping[tuple[int, int], int]) -> bool:
    """Breadth-first search over 4-connected reachable cells restricted to ``allowed``."""
    frontier, seen = [src], {src}
    while frontier:
        nxt = []
        for index in frontier:
            if index == dst:
                return True
            kx, kz = keys[index]
            for dx, dz in ((1, 0), (-1, 0), (0, 1), (0, -1)):
                neighbour = key_to_index.get((int(kx + dx), int(kz + dz)))
                if neighbour is not None and neighbour in allowed and neighbour not in seen:
                    seen.add(neighbour)
                    nxt.append(neighbour)
        frontier = nxt
    return False


def area_ids(graph: nx.DiGraph) -> list[str]:
    """Area node ids in insertion order."""
    return [n for n, d in graph.nodes(data=True) if d.get("level") == AREA]


def area_positions(graph: nx.DiGraph) -> dict[str, tuple[float, float]]:
    """Area id → (x, z) centre: what the skill executor's Explore drives to."""
    return {a: (graph.nodes[a]["position"][0], graph.nodes[a]["position"][2]) for a in area_ids(graph)}


def object_ids(graph: nx.DiGraph) -> list[str]:
    """Object node ids."""
    return [n for n, d in graph.nodes(data=True) if d.get("level") == OBJECT]


def get_object(graph: nx.DiGraph, object_id: str) -> dict[str, Any]:
    """The attribute dict of an object node.

    Raises:
        UnknownObjectError: naming the id.
    """
    data = graph.nodes.get(object_id)
    if data is None or data.get("level") != OBJECT:
        raise UnknownObjectError(f"object {object_id!r} is not in the long-term memory")
    return data


def objects_of_type(graph: nx.DiGraph, object_type: str) -> list[str]:
    """Ids of the objects of one THOR type (case-insensitive)."""
    wanted = object_type.lower()
    return [n for n, d in graph.nodes(data=True)
            if d.get("level") == OBJECT and d["object_type"].lower() == wanted]


def nearest_area(graph: nx.DiGraph, position: Iterable[float]) -> str | None:
    """The area whose centre is nearest in the x–z plane (None if the graph has no areas)."""
    x, _, z = position
    best, best_d = None, math.inf
    for area in area_ids(graph):
        ax, _, az = graph.nodes[area]["position"]
        d = (ax - x) ** 2 + (az - z) ** 2
        if d < best_d:
            best, best_d = area, d
    return best


def _set_parent_area(graph: nx.DiGraph, object_id: str, area: str | None) -> None:
    for parent in [p for p in graph.predecessors(object_id) if graph.nodes[p].get("level") == AREA]:
        if parent != area:
            graph.remove_edge(parent, object_id)
    if area is not None:
        graph.add_edge(area, object_id, relation=STRUCTURAL)
    graph.nodes[object_id]["area"] = area


def _set_relations(graph: nx.DiGraph, object_id: str, relations: Iterable[Relation]) -> None:
    for target in [t for t in graph.successors(object_id)
                   if graph.edges[object_id, t].get("relation") in ("on", "inside", "near")]:
        graph.remove_edge(object_id, target)
    for relation in relations:
        if relation.target_id == object_id:
            continue
        if relation.target_id not in graph:  # receptacle not seen yet: link it when it is
            graph.graph.setdefault("pending", {}).setdefault(relation.target_id, {})[object_id] = relation.predicate
            continue
        graph.add_edge(object_id, relation.target_id, relation=relation.predicate)


def _resolve_pending(graph: nx.DiGraph, new_id: str) -> None:
    """Link relations that named ``new_id`` before it was observed."""
    for source, predicate in graph.graph.get("pending", {}).pop(new_id, {}).items():
        if source in graph:
            graph.add_edge(source, new_id, relation=predicate)


def apply_observation(graph: nx.DiGraph, obs: ObjectObservation, move_threshold: float = 0.05,
                      area_of: Any = None) -> GraphChange:
    """Fold one observation into the graph (add, move, state change, seen, remove) with provenance.

    ``area_of`` optionally maps a position to an area id faster than :func:`nearest_area`.
    An observation older than what the graph holds for that object is ignored (newest wins).
    """
    area_fn = area_of or (lambda p: nearest_area(graph, p))
    existing = graph.nodes.get(obs.object_id)
    if existing is not None and existing.get("level") != OBJECT:
        raise InvalidObservationError(f"{obs.object_id!r} names a {existing.get('level')} node, not an object")
    if obs.kind is ObservationKind.REMOVED:
        if existing is None:
            return GraphChange("ignored", obs.object_id, int(graph.graph["version"]))
        version = _bump(graph)
        graph.remove_node(obs.object_id)
        graph.graph["tombstones"][obs.object_id] = {"version": version, "stamp": obs.stamp, "source": obs.source}
        return GraphChange("removed", obs.object_id, version)

    if existing is not None and obs.stamp < existing["last_seen"]:
        return GraphChange("ignored", obs.object_id, int(graph.graph["version"]))
    area = area_fn(obs.position)
    version = _bump(graph)
    entry = {"stamp": obs.stamp, "kind": obs.kind.value, "source": obs.source, "robot_id": obs.robot_id,
             "parents": [r.target_id for r in obs.relations if r.predicate != "near"]}
    if existing is None:
        graph.graph["tombstones"].pop(obs.object_id, None)
        graph.add_node(obs.object_id, level=OBJECT, object_type=obs.object_type, position=obs.position,
                       size=obs.size, states=list(obs.states), movable=obs.movable, first_seen=obs.stamp,
                       last_seen=obs.stamp, source=obs.source, robot_id=obs.robot_id, observations=1,
                       confidence=obs.confidence, history=[entry], version=version)
        _set_parent_area(graph, obs.object_id, area)
        _set_relations(graph, obs.object_id, obs.relations)
        _resolve_pending(graph, obs.object_id)
        return GraphChange("added", obs.object_id, version, area)

    moved = math.dist(existing["position"], obs.position) > move_threshold
    states_changed = bool(obs.states) and sorted(obs.states) != sorted(existing["states"])
    existing.update(position=obs.position, last_seen=obs.stamp, source=obs.source, robot_id=obs.robot_id,
                    observations=existing["observations"] + 1, confidence=obs.confidence, version=version,
                    object_type=obs.object_type, movable=obs.movable)
    if obs.size is not None:
        existing["size"] = obs.size
    if obs.states:
        existing["states"] = list(obs.states)
    existing["history"] = (existing["history"] + [entry])[-HISTORY_LENGTH:]
    _set_parent_area(graph, obs.object_id, area)
    if obs.relations or moved:
        _set_relations(graph, obs.object_id, obs.relations)
    kind = "moved" if moved else "state_changed" if states_changed else "seen"
    return GraphChange(kind, obs.object_id, version, area)


def previous_parent(graph: nx.DiGraph, object_id: str) -> str | None:
    """The receptacle the object was on/in before its current one ("put it back where it was")."""
    history = get_object(graph, object_id)["history"]
    current = history[-1].get("parents", []) if history else []
    for entry in reversed(history[:-1]):
        parents = [p for p in entry.get("parents", []) if p not in current]
        if parents:
            return parents[0]
    return None


def changes_since(graph: nx.DiGraph, version: int) -> tuple[list[str], list[str]]:
    """(node ids changed after ``version``, object ids removed after ``version``)."""
    changed = [n for n, d in graph.nodes(data=True) if d.get("version", 0) > version]
    removed = [o for o, t in graph.graph["tombstones"].items() if t["version"] > version]
    return changed, removed


def _fmt(position: Vec3 | Iterable[float]) -> str:
    return "(" + ", ".join(f"{v:.2f}" for v in position) + ")"


def to_prompt(graph: nx.DiGraph, areas: Iterable[str] | None = None, include_movable: bool = True,
              max_objects_per_area: int = 40) -> str:
    """Serialise the graph as the paper's topological-graph text (karma_spec.md §1.2/§1.4).

    Each area lists its immovable contents, its navigable neighbours and (optionally) the movable
    objects last seen there with their relations. ``areas`` restricts the output (token budget).
    """
    lines = ["Topological graph:"]
    chosen = list(areas) if areas is not None else area_ids(graph)
    for area in chosen:
        data = graph.nodes[area]
        contents = [graph.nodes[o] for o in graph.successors(area) if graph.nodes[o].get("level") == OBJECT]
        fixed = Counter(d["object_type"] for d in contents if not d["movable"])
        names = [t if n == 1 else f"{t} x{n}" for t, n in sorted(fixed.items())][:max_objects_per_area]
        neighbours = sorted((n for n in graph.successors(area) if graph.edges[area, n].get("relation") == NAVIGABLE),
                            key=lambda a: int(a.rsplit("_", 1)[-1]) if a.rsplit("_", 1)[-1].isdigit() else 0)
        line = (f"{{name: {area}, type: Area, contains: [{', '.join(names)}], "
                f"adjacent nodes: [{', '.join(neighbours)}], position: {_fmt(data['position'])}}}")
        lines.append(line)
        if include_movable:
            for obj_id in sorted(o for o in graph.successors(area)
                                 if graph.nodes[o].get("level") == OBJECT and graph.nodes[o]["movable"]):
                lines.append("    " + describe_object(graph, obj_id))
    return "\n".join(lines)


def describe_object(graph: nx.DiGraph, object_id: str) -> str:
    """One-line text of an object: type, relations, states, position (used in prompts and embeddings)."""
    data = get_object(graph, object_id)
    parts = [data["object_type"]]
    for target in graph.successors(object_id):
        relation = graph.edges[object_id, target].get("relation")
        if relation in ("on", "inside", "near"):
            parts.append(f"{relation} {graph.nodes[target]['object_type']}")
    states = [s for s in data["states"] if s != "none"]
    if states:
        parts.append("is " + ", ".join(states))
    return f"{' '.join(parts)} at {_fmt(data['position'])} [{object_id}]"


def validate_graph(graph: nx.DiGraph) -> list[str]:
    """Invariant check; returns the list of violations (empty when the graph is well formed)."""
    problems = []
    for node, data in graph.nodes(data=True):
        level = data.get("level")
        if level not in (FLOOR, AREA, OBJECT):
            problems.append(f"{node}: unknown level {level!r}")
        elif level == OBJECT:
            missing = OBJECT_KEYS - data.keys()
            if missing:
                problems.append(f"{node}: object node lacks {sorted(missing)}")
                continue
            parents = [p for p in graph.predecessors(node) if graph.nodes[p].get("level") == AREA]
            if len(parents) > 1:
                problems.append(f"{node}: {len(parents)} parent areas")
            if not isinstance(node, str) or not isinstance(data["object_type"], str) or not data["object_type"]:
                problems.append(f"{node!r}: object id and type must be non-empty strings")
            if not _is_vec3(data["position"]) or (data.get("size") is not None and not _is_vec3(data["size"])):
                problems.append(f"{node}: position/size must be three finite numbers")
            if not isinstance(data["states"], list) or not all(isinstance(v, str) for v in data["states"]):
                problems.append(f"{node}: states must be a list of strings")
            if not isinstance(data["movable"], bool) or not _is_stamp(data["last_seen"]) \
                    or not _is_stamp(data["first_seen"]) or not isinstance(data["history"], list):
                problems.append(f"{node}: movable/last_seen/first_seen/history have the wrong type")
            if data.get("area") is not None and not isinstance(data.get("area"), str):
                problems.append(f"{node}: area must be a string")
        elif level == AREA:
            if not isinstance(node, str) or not _is_vec3(data.get("position")):
                problems.append(f"{node!r}: area without a finite 3D position")
            floors = [p for p in graph.predecessors(node) if graph.nodes[p].get("level") == FLOOR]
            if len(floors) != 1:
                problems.append(f"{node}: {len(floors)} parent floors")
    for u, v, d in graph.edges(data=True):
        if d.get("relation") not in (STRUCTURAL, NAVIGABLE, "on", "inside", "near"):
            problems.append(f"edge {u}->{v}: unknown relation {d.get('relation')!r}")
        if d.get("relation") == NAVIGABLE and not graph.has_edge(v, u):
            problems.append(f"navigable edge {u}->{v} has no reverse")
    return problems


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_stamp(value: object) -> bool:
    return _is_number(value) and abs(value) < MAX_STAMP_S  # type: ignore[operator]


def _is_vec3(value: object) -> bool:
    return isinstance(value, (list, tuple)) and len(value) == 3 and all(_is_number(v) for v in value)


def graph_to_data(graph: nx.DiGraph) -> dict[str, Any]:
    """JSON-ready node-link data (tuples become lists)."""
    return nx.node_link_data(graph, edges="edges")


def graph_from_data(data: Mapping[str, Any]) -> nx.DiGraph:
    """Inverse of graph_to_data, restoring tuples and checking invariants.

    Raises:
        InvalidObservationError: when the data is not a well-formed scene graph.
    """
    if not isinstance(data, Mapping):
        raise InvalidObservationError(f"scene graph data must be a mapping, got {type(data).__name__}")
    try:
        graph = nx.node_link_graph(data, directed=True, multigraph=False, edges="edges")
    except (KeyError, TypeError, AttributeError, ValueError, nx.NetworkXError) as err:
        raise InvalidObservationError(f"scene graph data is malformed: {err!r}") from err
    try:
        for _, node in graph.nodes(data=True):
            for key in ("position", "size"):
                if node.get(key) is not None:
                    node[key] = tuple(float(v) for v in node[key])
    except (TypeError, ValueError) as err:
        raise InvalidObservationError(f"scene graph data has a malformed position or size: {err}") from err
    graph.graph.setdefault("tombstones", {})
    graph.graph.setdefault("pending", {})
    graph.graph.setdefault("version", 0)
    if not isinstance(graph.graph.get("tombstones"), dict) or not isinstance(graph.graph.get("pending"), dict) \
            or not isinstance(graph.graph.get("version"), int):
        raise InvalidObservationError("scene graph data has malformed graph attributes (version/tombstones/pending)")
    try:
        problems = validate_graph(graph)
    except (TypeError, KeyError, AttributeError) as err:
        raise InvalidObservationError(f"scene graph data has malformed nodes or edges: {err!r}") from err
    if problems:
        raise InvalidObservationError(f"scene graph data violates invariants: {problems[:5]}")
    return graph
