"""Skills (SKILL_SCHEMA) on top of THOR primitive actions: grid navigation, exploration, manipulation recipes."""

from __future__ import annotations

import math
import re
from typing import Any, Callable, Iterable, Mapping, Sequence

import networkx as nx

from karma_memory.core.errors import ConfigError, PlanValidationError
from karma_memory.core.skills import SKILL_SCHEMA, SkillCall, SkillCost, SkillResult, validate_call
from karma_memory.sim.world import capsule_dist2

__all__ = ["ThorSkillExecutorBase", "SimSkillExecutor", "DEFAULT_REACH_M", "parse_object_id_position"]

#: Manipulations need the object this close (THOR metadata ``distance``), metres.
DEFAULT_REACH_M = 1.5
_HORIZONS = (-30.0, 0.0, 30.0, 60.0)
_SCAN_HEADINGS = 4
_GOTO_RETRIES = 5
#: GoToObject's next viewpoint is at least this far from those already tried, metres ...
_VANTAGE_SPACING_M = 0.5
#: ... and within reach of the target plus this slack, metres; after a near one it also tries
#: one about this much farther back along the same bearing, metres.
_VANTAGE_SLACK_M = 0.25
_STEP_BACK_M = 0.75
#: Explore looks from enough places that every reachable cell next to furniture is this close to one.
_VIEW_COVER_M = 0.5
_BASIN_OF = {"Sink": "SinkBasin", "Bathtub": "BathtubBasin"}
#: Containers that hide what is inside while closed (THOR: must be open to put into / take from).
_CONTAINER_TYPES = ("Fridge", "Cabinet", "Drawer", "Microwave", "Safe", "Box", "LaundryHamper", "Kettle")
_ID_COORDS = re.compile(r"^[^|]+\|([+-]?\d+(?:\.\d+)?)\|([+-]?\d+(?:\.\d+)?)\|([+-]?\d+(?:\.\d+)?)")
_DEFAULT_DURATIONS = {"MoveAhead": 0.5, "RotateLeft": 0.5, "RotateRight": 0.5, "LookUp": 0.25, "LookDown": 0.25}


class _SkillFail(Exception):
    """A skill cannot go on: the message is what the planner reads."""


def parse_object_id_position(object_id: str) -> tuple[float, float, float] | None:
    """The position a THOR objectId encodes (where the object started), or None.

    >>> parse_object_id_position("Apple|-00.47|+01.15|+00.48|AppleSliced_0")
    (-0.47, 1.15, 0.48)
    """
    match = _ID_COORDS.match(object_id)
    if not match:
        return None
    return (float(match.group(1)), float(match.group(2)), float(match.group(3)))


class ThorSkillExecutorBase:
    """The SkillExecutor over anything with THOR's ``step()`` and ``last_event``.

    It only uses what a real robot would have: the ids and types in the metadata list (to name
    things), what is ``visible`` now, and positions it has observed (or that an id encodes). A type
    argument resolves to the nearest *visible* instance; an objectId to that object, driven to at
    its last observed position. Costs are counted per primitive action: steps, metres driven over
    the reachable grid, simulated seconds from ``durations``.

    Args:
        controller: ``EmbeddedController`` or ``ai2thor.controller.Controller``.
        area_positions: area id -> (x, z) for Explore.
        durations: seconds per action (moves per grid step, rotations per 90°, looks per 30°).
        reach_m: manipulation reach (metadata ``distance``), metres.
        grid_size: grid step of the reachable positions, metres.
    """

    def __init__(self, controller: Any, area_positions: Mapping[str, tuple[float, float]] | None,
                 durations: Mapping[str, float] | None = None, reach_m: float = DEFAULT_REACH_M,
                 grid_size: float = 0.25) -> None:
        if reach_m <= 0 or not math.isfinite(reach_m):
            raise ConfigError(f"reach_m must be > 0, got {reach_m!r}")
        self.controller = controller
        self.reach_m = float(reach_m)
        self.grid_size = float(grid_size)
        self.durations = dict(_DEFAULT_DURATIONS)
        self.durations.update(durations or {})
        self.area_positions: dict[str, tuple[float, float]] = {}
        for area, xz in (area_positions or {}).items():
            try:
                x, z = (float(v) for v in xz)
            except (TypeError, ValueError) as err:
                raise ConfigError(f"area {area!r}: position must be (x, z), got {xz!r}") from err
            self.area_positions[str(area)] = (x, z)
        self.known: dict[str, tuple[float, float, float]] = {}  # objectId -> last observed centre
        self._steps, self._metres, self._seconds = 0, 0.0, 0.0
        self._graph: nx.Graph | None = None
        self._graph_scene: Any = None
        self._reachable_cache: tuple[Any, list[tuple[float, float]]] | None = None
        self._viewpoint_cache: dict[str, list[tuple[int, int]]] = {}
        self._cells: dict[tuple[int, int], tuple[float, float]] = {}
        self._origin = (0.0, 0.0)
        self._observe()

    # ------------------------------------------------------------------------------ protocol
    def execute(self, call: SkillCall) -> SkillResult:
        """Run one skill; a failure comes back as ``success=False`` with a message, never an exception."""
        start = (self._steps, self._metres, self._seconds)
        try:
            call = validate_call(call)
        except PlanValidationError as err:
            return SkillResult(False, str(err))
        handler: Callable[[Mapping[str, Any]], tuple[str, str | None, int]] = getattr(self, f"_skill_{call.skill}")
        object_id: str | None = None
        try:
            message, object_id, areas = handler(call.args)
            success = True
        except _SkillFail as failure:
            message, success, areas = str(failure), False, getattr(failure, "areas", 0)
            object_id = getattr(failure, "object_id", None)
        cost = SkillCost(self._steps - start[0], self._metres - start[1], self._seconds - start[2])
        return SkillResult(success, message, cost, object_id, areas)

    def visible_objects(self) -> list[dict]:
        """Metadata of the objects visible now."""
        return [dict(o) for o in self._metadata()["objects"] if o.get("visible")]

    def remember(self, object_id: str, position: Sequence[float]) -> None:
        """Tell the executor where an object is believed to be (e.g. from long-term memory)."""
        x, y, z = (float(v) for v in position)
        self.known[object_id] = (x, y, z)

    @property
    def held_object_id(self) -> str | None:
        inventory = self._metadata().get("inventoryObjects") or []
        return inventory[0]["objectId"] if inventory else None

    # ------------------------------------------------------------------------------ plumbing
    def _metadata(self) -> Mapping[str, Any]:
        return self.controller.last_event.metadata

    def _objects(self) -> dict[str, Mapping[str, Any]]:
        return {o["objectId"]: o for o in self._metadata()["objects"]}

    def _reachable_xz(self) -> list[tuple[float, float]]:
        """Reachable (x, z) of the current scene (asked once per scene; a query, not a cost)."""
        scene = self._metadata().get("sceneName")
        if self._reachable_cache is None or self._reachable_cache[0] != scene:
            self._reachable_cache = (scene, self._query_reachable())
        return self._reachable_cache[1]

    def _query_reachable(self) -> list[tuple[float, float]]:
        """THOR's GetReachablePositions."""
        event = self.controller.step(action="GetReachablePositions")
        if not event.metadata.get("lastActionSuccess", True):
            raise _SkillFail(f"GetReachablePositions failed: {event.metadata.get('errorMessage')}")
        return [(float(p["x"]), float(p["z"])) for p in (event.metadata.get("actionReturn") or [])]

    def _duration(self, action: str, kwargs: Mapping[str, Any]) -> float:
        base = float(self.durations.get(action, 1.0))
        if action.startswith("Move"):
            return base * float(kwargs.get("moveMagnitude", self.grid_size)) / self.grid_size
        if action.startswith("Rotate"):
            return base * float(kwargs.get("degrees", 90.0)) / 90.0
        if action.startswith("Look"):
            return base * float(kwargs.get("degrees", 30.0)) / 30.0
        return base

    def _step(self, action: str, **kwargs: Any) -> Mapping[str, Any]:
        """One primitive action, accounted; returns the new metadata (and records what is seen)."""
        before = self._metadata()["agent"]["position"]
        event = self.controller.step(action=action, **kwargs)
        md = event.metadata
        after = md["agent"]["position"]
        self._steps += 1
        self._seconds += self._duration(action, kwargs)
        self._metres += math.hypot(after["x"] - before["x"], after["z"] - before["z"])
        self._observe()
        return md

    def _do(self, action: str, **kwargs: Any) -> Mapping[str, Any]:
        """A primitive action that must succeed, else the skill fails with THOR's error message."""
        md = self._step(action, **kwargs)
        if not md["lastActionSuccess"]:
            raise _SkillFail(f"{action} failed: {md['errorMessage']}")
        return md

    def _observe(self) -> None:
        for obj in self._metadata()["objects"]:
            if obj.get("visible"):
                c = obj["axisAlignedBoundingBox"]["center"]
                self.known[obj["objectId"]] = (c["x"], c["y"], c["z"])

    # ------------------------------------------------------------------------------ resolution
    def _scene_types(self) -> dict[str, str]:
        """lower-case type -> THOR spelling, for the types present in the scene."""
        return {o["objectType"].lower(): o["objectType"] for o in self._metadata()["objects"]}

    def _type_of(self, arg: str) -> str:
        name = self._scene_types().get(arg.strip().lower())
        if name is None:
            raise _SkillFail(f"no {arg} in this scene")
        return name

    def _visible_of_type(self, types: Iterable[str]) -> list[Mapping[str, Any]]:
        wanted = set(types)
        found = [o for o in self._metadata()["objects"] if o.get("visible") and o["objectType"] in wanted]
        return sorted(found, key=lambda o: (o["distance"], o["objectId"]))

    def _resolve(self, arg: str) -> str:
        """objectId as given, or the nearest visible instance of a type."""
        if "|" in arg:
            if arg not in self._objects():
                raise _SkillFail(f"unknown objectId {arg!r}")
            return arg
        kind = self._type_of(arg)
        visible = self._visible_of_type([kind])
        if not visible:
            raise _SkillFail(f"no visible {kind}; Explore first")
        return str(visible[0]["objectId"])

    def _ready(self, oid: str) -> Mapping[str, Any]:
        """The object's metadata, checked visible and within reach (or held)."""
        obj = self._objects().get(oid)
        if obj is None:
            raise _SkillFail(f"{oid} is no longer in the scene")
        if obj.get("isPickedUp"):
            return obj
        if not obj.get("visible"):
            raise _SkillFail(f"{oid} is not visible; GoToObject or Explore first")
        distance = self._surface_distance(obj)
        if distance > self.reach_m:
            raise _SkillFail(f"{oid} is {distance:.2f} m away (reach {self.reach_m:.2f} m); GoToObject first")
        return obj

    def _surface_distance(self, obj: Mapping[str, Any]) -> float:
        """How far the object is for interacting, measured as THOR does: from the agent to the nearest
        point of the object's box, horizontally (a bed is in reach from its side, a drawer near the
        floor from where the robot stands); height counts only beyond the agent's visibility capsule."""
        box = obj.get("axisAlignedBoundingBox") or {}
        agent = self._metadata().get("agent", {}).get("position")
        if not box.get("center") or not box.get("size") or not agent:
            return float(obj["distance"])
        lo = [box["center"][k] - abs(box["size"][k]) / 2.0 for k in "xyz"]
        hi = [box["center"][k] + abs(box["size"][k]) / 2.0 for k in "xyz"]
        pos = (agent["x"], agent["y"], agent["z"])
        return math.sqrt(float(capsule_dist2(pos, lo, hi, self.reach_m)[0]))

    def _known_of_type(self, types: Iterable[str]) -> list[str]:
        """Ids of the given types seen so far, nearest first."""
        wanted = set(types)
        objs = self._objects()
        agent = self._metadata()["agent"]["position"]
        ids = [oid for oid in self.known if oid in objs and objs[oid]["objectType"] in wanted]
        return sorted(ids, key=lambda oid: (math.hypot(self.known[oid][0] - agent["x"],
                                                       self.known[oid][2] - agent["z"]), oid))

    def _available(self, types: Sequence[str], purpose: str) -> None:
        """Fail early (before picking anything up) when no instance of ``types`` is visible or known."""
        if not self._visible_of_type(types) and not self._known_of_type(types):
            raise _SkillFail(f"no known {' or '.join(types)} to {purpose}; Explore first")

    def _find(self, types: Sequence[str], purpose: str) -> str:
        """A usable instance of one of ``types``: visible ones first, else one seen before (driven to)."""
        visible = self._visible_of_type(types)
        in_reach = [o for o in visible if self._surface_distance(o) <= self.reach_m]
        if in_reach:
            return str(in_reach[0]["objectId"])
        candidates = [str(o["objectId"]) for o in visible] + [
            oid for oid in self._known_of_type(types) if oid not in {o["objectId"] for o in visible}]
        if not candidates:
            raise _SkillFail(f"no known {' or '.join(types)} to {purpose}; Explore first")
        self._goto(candidates[0])
        return candidates[0]

    # ------------------------------------------------------------------------------ navigation
    def _build_graph(self) -> None:
        cells = self._reachable_xz()
        if not cells:
            raise _SkillFail("the controller reports no reachable positions")
        g = self.grid_size
        self._origin = cells[0]
        self._cells = {self._key(x, z): (x, z) for x, z in cells}
        graph = nx.Graph()
        graph.add_nodes_from(self._cells)
        for (i, j) in self._cells:
            for di, dj in ((1, 0), (0, 1)):
                if (i + di, j + dj) in self._cells:
                    graph.add_edge((i, j), (i + di, j + dj), weight=g)
            for di, dj in ((1, 1), (1, -1)):
                if all(c in self._cells for c in ((i + di, j + dj), (i + di, j), (i, j + dj))):
                    graph.add_edge((i, j), (i + di, j + dj), weight=g * math.sqrt(2.0))
        self._graph = graph

    def _key(self, x: float, z: float) -> tuple[int, int]:
        return (int(round((x - self._origin[0]) / self.grid_size)), int(round((z - self._origin[1]) / self.grid_size)))

    def _nav(self) -> nx.Graph:
        scene = self._metadata().get("sceneName")
        if self._graph is None or self._graph_scene != scene:  # the controller was reset to another scene
            if self._graph is not None:
                self.known.clear()
            self._viewpoint_cache = {}
            self._build_graph()
            self._graph_scene = scene
        assert self._graph is not None
        return self._graph

    def _here(self) -> tuple[int, int]:
        graph = self._nav()
        p = self._metadata()["agent"]["position"]
        key = self._key(p["x"], p["z"])
        if key in graph:
            return key
        return min(self._cells, key=lambda k: (math.hypot(self._cells[k][0] - p["x"], self._cells[k][1] - p["z"]), k))

    def _cells_near(self, x: float, z: float) -> list[tuple[int, int]]:
        """Reachable cells sorted by horizontal distance to (x, z)."""
        self._nav()
        return sorted(self._cells, key=lambda k: (math.hypot(self._cells[k][0] - x, self._cells[k][1] - z), k))

    def _drive(self, target: tuple[int, int]) -> None:
        """Follow the shortest grid path: rotate towards each next cell, then MoveAhead one edge."""
        graph = self._nav()
        here = self._here()
        try:
            path = nx.shortest_path(graph, here, target, weight="weight")
        except nx.NetworkXNoPath:
            x, z = self._cells[target]
            raise _SkillFail(f"no path to ({x:.2f}, {z:.2f}) over the reachable grid") from None
        for a, b in zip(path, path[1:]):
            (ax, az), (bx, bz) = self._cells[a], self._cells[b]
            self._turn_to(math.degrees(math.atan2(bx - ax, bz - az)))
            self._do("MoveAhead", moveMagnitude=round(math.hypot(bx - ax, bz - az), 6))

    def _turn_to(self, yaw: float) -> None:
        current = self._metadata()["agent"]["rotation"]["y"]
        delta = (yaw - current + 180.0) % 360.0 - 180.0
        if abs(delta) < 0.5:
            return
        self._do("RotateRight" if delta > 0 else "RotateLeft", degrees=round(abs(delta), 4))

    def _set_horizon(self, horizon: float) -> None:
        current = self._metadata()["agent"]["cameraHorizon"]
        delta = horizon - current
        if abs(delta) < 0.5:
            return
        self._do("LookDown" if delta > 0 else "LookUp", degrees=round(abs(delta), 4))

    def _is_visible(self, oid: str) -> bool:
        obj = self._objects().get(oid)
        return bool(obj and obj.get("visible"))

    def _believed(self, oid: str) -> tuple[float, float, float]:
        position = self.known.get(oid) or parse_object_id_position(oid)
        if position is None:
            raise _SkillFail(f"location of {oid} unknown; Explore first")
        return position

    def _goto(self, oid: str) -> str:
        """Drive next to where ``oid`` is believed to be and face it; check it is really there.

        Viewpoints come from :meth:`_viewpoints_for` (near cells, each followed by a step back); at
        each the robot faces the point and looks at the pitch that centres it, then at THOR's other
        horizons (:meth:`_look_around`). An object believed to be where a closed container now stands
        counts as found inside it (the caller opens it); furniture never is.
        """
        target = self._believed(oid)
        tried: list[tuple[float, float]] = []
        for cell in self._viewpoints_for(target):
            self._drive(cell)
            tried.append(self._cells[cell])
            movable = bool(self._objects().get(oid, {}).get("pickupable"))
            for _ in self._look_around(target):
                if self._is_visible(oid):
                    return f"at {oid}"
                holder = self._closed_holder(target) if movable else None  # furniture is never put away
                if holder is not None:
                    return f"at {oid}, which is inside closed {holder}"
        self.known.pop(oid, None)
        raise _SkillFail(f"{oid} is not visible near its last known position "
                         f"({target[0]:.2f}, {target[2]:.2f}) after {len(tried)} tries; Explore first")

    def _viewpoints_for(self, target: tuple[float, float, float]) -> list[tuple[int, int]]:
        """Up to ``_GOTO_RETRIES`` reachable cells to look at ``target`` from, alternating a near cell
        and a cell farther back along the same bearing (a counter's overhang or a shelf above hides
        what is under it from close by, not from a step back), each near cell at least
        ``_VANTAGE_SPACING_M`` from those already chosen; all within reach (+ ``_VANTAGE_SLACK_M``)."""
        ranked = self._cells_near(target[0], target[2])
        limit = self.reach_m + _VANTAGE_SLACK_M

        def dist(cell: tuple[int, int]) -> float:
            x, z = self._cells[cell]
            return math.hypot(x - target[0], z - target[2])

        def bearing(cell: tuple[int, int]) -> float:
            x, z = self._cells[cell]
            return math.atan2(x - target[0], z - target[2])

        chosen: list[tuple[int, int]] = []
        for near in ranked:
            if len(chosen) >= _GOTO_RETRIES:
                break
            if chosen and dist(near) > limit:
                break
            if any(math.hypot(self._cells[near][0] - self._cells[c][0], self._cells[near][1] - self._cells[c][1])
                   < _VANTAGE_SPACING_M - 1e-6 for c in chosen):
                continue
            chosen.append(near)
            d0, b0 = dist(near), bearing(near)
            back = [c for c in ranked if c not in chosen and d0 + _STEP_BACK_M - 0.15 <= dist(c) <= limit
                    and abs((bearing(c) - b0 + math.pi) % (2 * math.pi) - math.pi) <= math.radians(30.0)]
            if back and len(chosen) < _GOTO_RETRIES:
                chosen.append(min(back, key=lambda c: (abs(dist(c) - d0 - _STEP_BACK_M), c)))
        for cell in ranked:  # cramped: top up with the nearest cells not chosen yet
            if len(chosen) >= min(_GOTO_RETRIES, 3):
                break
            if cell not in chosen:
                chosen.append(cell)
        return chosen

    def _look_around(self, target: tuple[float, float, float]) -> Iterable[float]:
        """Face ``target`` and yield after each horizon tried: the pitch that centres it, then THOR's
        standard horizons nearest that pitch first (each view is checked by the caller)."""
        md = self._metadata()
        p = md["agent"]["position"]
        cam_y = md.get("cameraPosition", {}).get("y", p["y"] + 0.675)
        dx, dz = target[0] - p["x"], target[2] - p["z"]
        if math.hypot(dx, dz) > 1e-3:
            self._turn_to(math.degrees(math.atan2(dx, dz)))
        down = math.degrees(math.atan2(cam_y - target[1], max(math.hypot(dx, dz), 1e-3)))
        best = min(max(round(down / 10.0) * 10.0, _HORIZONS[0]), _HORIZONS[-1])
        order = [best] + sorted((h for h in _HORIZONS if abs(h - best) > 5.0), key=lambda h: (abs(h - down), h))
        for horizon in order:
            self._set_horizon(horizon)
            yield horizon

    def _closed_holder(self, point: tuple[float, float, float]) -> str | None:
        """A visible closed container around where the object is believed to be (what a robot sees:
        a closed fridge where it left the apple); the smallest such container."""
        best: tuple[float, str] | None = None
        open_spots = []  # visible receptacles one can see into: a point in one of them is not hidden
        for obj in self._metadata()["objects"]:
            if not obj.get("visible") or not obj.get("receptacle"):
                continue
            box = obj.get("axisAlignedBoundingBox") or {}
            c, size = box.get("center"), box.get("size")
            if not c or not size or not all(abs(point[i] - c[k]) <= abs(size[k]) / 2.0 + 0.02
                                            for i, k in enumerate("xyz")):
                continue
            volume = abs(size["x"] * size["y"] * size["z"])
            if obj["objectType"] in _CONTAINER_TYPES and obj.get("openable") and not obj.get("isOpen"):
                if best is None or (volume, obj["objectId"]) < best:
                    best = (volume, str(obj["objectId"]))
            else:
                open_spots.append(volume)
        if best is None or any(v < best[0] for v in open_spots):  # e.g. in the basin above the cabinet
            return None
        return best[1]

    # ------------------------------------------------------------------------------ skills
    def _skill_GoToObject(self, args: Mapping[str, Any]) -> tuple[str, str | None, int]:
        arg = str(args["object"])
        oid = self._resolve_for_goto(arg)
        if self._objects()[oid].get("isSliced"):  # the whole is gone; only its pieces can be seen
            failure = _SkillFail(f"{oid} has been sliced; go to one of its pieces ({oid}|...) instead")
            failure.object_id = oid  # type: ignore[attr-defined]
            raise failure
        try:
            message = self._goto(oid)
        except _SkillFail as failure:
            failure.object_id = oid  # type: ignore[attr-defined]
            raise
        return message, oid, 0

    def _resolve_for_goto(self, arg: str) -> str:
        if "|" in arg:
            if arg not in self._objects():
                raise _SkillFail(f"unknown objectId {arg!r}")
            return arg
        return self._resolve(arg)

    def _matches(self, obj: Mapping[str, Any], arg: str) -> bool:
        if "|" in arg:
            return bool(obj["objectId"] == arg)
        return bool(obj["objectType"].lower() == arg.lower())

    def _found(self, arg: str) -> str | None:
        hits = [o for o in self._metadata()["objects"] if o.get("visible") and self._matches(o, arg)]
        if not hits:
            return None
        return str(min(hits, key=lambda o: (o["distance"], o["objectId"]))["objectId"])

    def _skill_Explore(self, args: Mapping[str, Any]) -> tuple[str, str | None, int]:
        arg = str(args["object"])
        if "|" in arg:
            if arg not in self._objects():
                raise _SkillFail(f"unknown objectId {arg!r}")
        else:
            arg = self._type_of(arg)
        found = self._found(arg)
        if found:
            return f"{found} is already visible", found, 0
        if "areas" in args:
            areas = list(args["areas"])
            unknown = [a for a in areas if a not in self.area_positions]
            if unknown:
                raise _SkillFail(f"unknown area(s) {unknown}; known: {sorted(self.area_positions)}")
        else:
            areas = self._sweep_order()
        if not areas:
            raise _SkillFail("no areas to explore")
        visited = 0
        for area in areas:
            reached = False
            for cell in self._viewpoints(area):
                try:
                    self._drive(cell)
                except _SkillFail:
                    continue  # an unreachable viewpoint is skipped, not fatal
                if not reached:
                    visited, reached = visited + 1, True
                found = self._scan(arg)
                if found:
                    return f"found {found} in {area} after {visited} area(s)", found, visited
        failure = _SkillFail(f"{arg} not found after exploring {visited} area(s)")
        failure.areas = visited  # type: ignore[attr-defined]
        raise failure

    def _viewpoints(self, area: str) -> list[tuple[int, int]]:
        """Where to look from in an area: its centre, then cells next to furniture or walls (where
        objects are) until every such cell of the area is within ``_VIEW_COVER_M`` of a viewpoint.

        An area owns the reachable cells nearer its centre than any other area's (Voronoi). Cached
        per scene; uses only the reachable grid, not object knowledge.
        """
        cache = self._viewpoint_cache
        if area in cache:
            return cache[area]
        self._nav()
        centres = {a: self._cells_near(*xz)[0] for a, xz in self.area_positions.items()}
        owner: dict[tuple[int, int], str] = {}
        for key, (x, z) in self._cells.items():
            owner[key] = min(self.area_positions, key=lambda a: (math.hypot(self.area_positions[a][0] - x,
                                                                           self.area_positions[a][1] - z), a))
        for a, centre in centres.items():
            mine = [k for k, o in owner.items() if o == a]
            edge = [k for k in mine if any((k[0] + di, k[1] + dj) not in self._cells
                                           for di, dj in ((1, 0), (-1, 0), (0, 1), (0, -1)))]
            chosen = [centre]
            radius = _VIEW_COVER_M / self.grid_size

            def uncovered() -> list[tuple[int, int]]:
                return [k for k in edge if min(math.hypot(k[0] - c[0], k[1] - c[1]) for c in chosen) > radius]

            left = uncovered()
            while left:
                # the edge cell covering most uncovered edge cells (ties: nearest the centre, then key)
                best = max(left, key=lambda k: (sum(math.hypot(k[0] - o[0], k[1] - o[1]) <= radius for o in left),
                                                -math.hypot(k[0] - centre[0], k[1] - centre[1]), k))
                chosen.append(best)
                left = uncovered()
            cache[a] = chosen
        return cache.get(area, [])

    def _scan(self, arg: str) -> str | None:
        """Look around on the spot: four headings, two horizons each."""
        found = self._found(arg)
        for _ in range(_SCAN_HEADINGS):
            if found:
                return found
            horizon = self._metadata()["agent"]["cameraHorizon"]
            self._set_horizon(0.0 if abs(horizon - 30.0) < 1.0 else 30.0)
            found = self._found(arg)
            if found:
                return found
            self._do("RotateRight", degrees=90.0)
            found = self._found(arg)
        return found

    def survey(self) -> list[dict]:
        """A mapping run: visit every area's viewpoints and look around as Explore does; return every
        object seen (its latest metadata). What a robot knows after touring the house once: nothing
        inside closed containers, nothing it never had in view."""
        seen: dict[str, dict] = {}
        for area in self._sweep_order():
            for cell in self._viewpoints(area):
                try:
                    self._drive(cell)
                except _SkillFail:
                    continue  # an unreachable viewpoint is skipped
                for _ in range(_SCAN_HEADINGS):
                    for horizon in (0.0, 30.0):
                        self._set_horizon(horizon)
                        seen.update((o["objectId"], dict(o)) for o in self._metadata()["objects"] if o.get("visible"))
                    self._do("RotateRight", degrees=90.0)
        return list(seen.values())

    def _sweep_order(self) -> list[str]:
        """All areas in nearest-neighbour order from the agent (deterministic: ties by id)."""
        p = self._metadata()["agent"]["position"]
        here, left, order = (p["x"], p["z"]), dict(self.area_positions), []
        while left:
            area = min(left, key=lambda a: (math.hypot(left[a][0] - here[0], left[a][1] - here[1]), a))
            order.append(area)
            here = left.pop(area)
        return order

    def _skill_PickupObject(self, args: Mapping[str, Any]) -> tuple[str, str | None, int]:
        oid = self._resolve(str(args["object"]))
        self._acquire(oid)
        return f"holding {oid}", oid, 0

    def _acquire(self, oid: str) -> None:
        held = self.held_object_id
        if held == oid:
            return
        if held is not None:
            raise _SkillFail(f"hands are full (holding {held}); put it down first")
        self._ready(oid)
        self._do("PickupObject", objectId=oid)

    def _holding(self) -> str:
        held = self.held_object_id
        if held is None:
            raise _SkillFail("not holding anything; PickupObject first")
        return held

    def _receptacle(self, arg: str) -> str:
        """Resolve a put target; a Sink/Bathtub means its basin."""
        rid = self._resolve(arg)
        objs = self._objects()
        kind = objs[rid]["objectType"]
        if kind in _BASIN_OF:
            basins = [o for o in objs.values() if o["objectType"] == _BASIN_OF[kind]
                      and (o["objectId"].startswith(rid + "|") or rid in (o.get("parentReceptacles") or ()))]
            visible = [o for o in self._visible_of_type([_BASIN_OF[kind]])]
            pick = basins or visible
            if pick:
                rid = str(pick[0]["objectId"])
        return rid

    def _put(self, held: str, rid: str) -> None:
        rec = self._ready(rid)
        if rec.get("openable") and not rec.get("isOpen") and rec["objectType"] in _CONTAINER_TYPES:
            raise _SkillFail(f"{rid} is closed; OpenObject first")
        self._do("PutObject", objectId=rid)

    def _skill_PutObject(self, args: Mapping[str, Any]) -> tuple[str, str | None, int]:
        held = self._holding()
        rid = self._receptacle(str(args["receptacle"]))
        self._put(held, rid)
        return f"put {held} in/on {rid}", held, 0

    def _skill_DropHandObject(self, args: Mapping[str, Any]) -> tuple[str, str | None, int]:
        held = self._holding()
        self._do("DropHandObject")
        return f"dropped {held}", held, 0

    def _skill_ThrowObject(self, args: Mapping[str, Any]) -> tuple[str, str | None, int]:
        oid = self._resolve_held_or_visible(str(args["object"]))
        self._available(["GarbageCan"], "throw it into")
        self._acquire(oid)
        can = self._find(["GarbageCan"], "throw it into")
        self._put(oid, can)
        return f"threw {oid} into {can}", oid, 0

    def _resolve_held_or_visible(self, arg: str) -> str:
        held = self.held_object_id
        if held is not None:
            obj = self._objects().get(held, {})
            if held == arg or ("|" not in arg and obj.get("objectType", "").lower() == arg.lower()):
                return held
        return self._resolve(arg)

    def _simple(self, action: str, args: Mapping[str, Any], done: str) -> tuple[str, str | None, int]:
        oid = self._resolve_held_or_visible(str(args["object"]))
        self._ready(oid)
        self._do(action, objectId=oid)
        return f"{done} {oid}", oid, 0

    def _skill_OpenObject(self, args: Mapping[str, Any]) -> tuple[str, str | None, int]:
        return self._open_close(args, True)

    def _skill_CloseObject(self, args: Mapping[str, Any]) -> tuple[str, str | None, int]:
        return self._open_close(args, False)

    def _open_close(self, args: Mapping[str, Any], want_open: bool) -> tuple[str, str | None, int]:
        """Open/close an object in reach. THOR fails OpenObject on an open object (and CloseObject on a
        closed one); the robot looks first and reports success without acting, as a person would."""
        oid = self._resolve_held_or_visible(str(args["object"]))
        obj = self._ready(oid)
        if obj.get("openable") and bool(obj.get("isOpen")) == want_open:
            return f"{oid} is already {'open' if want_open else 'closed'}", oid, 0
        self._do("OpenObject" if want_open else "CloseObject", objectId=oid)
        return f"{'opened' if want_open else 'closed'} {oid}", oid, 0

    def _toggle(self, action: str, args: Mapping[str, Any], done: str) -> tuple[str, str | None, int]:
        """Toggle an object; a stove burner is operated through the knob that controls it (as in THOR)."""
        arg = str(args["object"])
        objs = self._objects()
        if "|" not in arg and arg.lower() == "stoveburner":  # the burner with a pot or pan on it, if any
            burners = self._visible_of_type(["StoveBurner"])
            burners.sort(key=lambda o: (not o.get("receptacleObjectIds"), o["distance"]))
            if not burners:
                raise _SkillFail("no visible StoveBurner; Explore first")
            oid = str(burners[0]["objectId"])
        else:
            oid = self._resolve_held_or_visible(arg)
        if not objs[oid].get("toggleable"):
            knob = next((k for k, o in objs.items() if o.get("objectType") == "StoveKnob"
                         and oid in (o.get("controlledObjects") or ())), None)
            if knob is None:
                raise _SkillFail(f"{oid} cannot be switched on or off")
            self._ready(oid)
            self._do(action, objectId=knob)
            return f"{done} {oid} (with {knob})", oid, 0
        self._ready(oid)
        self._do(action, objectId=oid)
        return f"{done} {oid}", oid, 0

    def _skill_ToggleOn(self, args: Mapping[str, Any]) -> tuple[str, str | None, int]:
        return self._toggle("ToggleObjectOn", args, "turned on")

    def _skill_ToggleOff(self, args: Mapping[str, Any]) -> tuple[str, str | None, int]:
        return self._toggle("ToggleObjectOff", args, "turned off")

    def _skill_SwitchOn(self, args: Mapping[str, Any]) -> tuple[str, str | None, int]:
        return self._toggle("ToggleObjectOn", args, "switched on")

    def _skill_SwitchOff(self, args: Mapping[str, Any]) -> tuple[str, str | None, int]:
        return self._toggle("ToggleObjectOff", args, "switched off")

    def _skill_BreakObject(self, args: Mapping[str, Any]) -> tuple[str, str | None, int]:
        return self._simple("BreakObject", args, "broke")

    def _skill_FillObject(self, args: Mapping[str, Any]) -> tuple[str, str | None, int]:
        oid = self._resolve_held_or_visible(str(args["object"]))
        self._ready(oid)
        self._do("FillObjectWithLiquid", objectId=oid, fillLiquid="water")
        return f"filled {oid} with water", oid, 0

    def _skill_EmptyObject(self, args: Mapping[str, Any]) -> tuple[str, str | None, int]:
        return self._simple("EmptyLiquidFromObject", args, "emptied")

    def _skill_SliceObject(self, args: Mapping[str, Any]) -> tuple[str, str | None, int]:
        held = self.held_object_id
        objs = self._objects()
        if held is None or objs.get(held, {}).get("objectType") not in ("Knife", "ButterKnife"):
            raise _SkillFail(f"SliceObject needs a Knife or ButterKnife in hand (holding {held or 'nothing'}); "
                             "PickupObject a knife first")
        oid = self._resolve(str(args["object"]))
        self._ready(oid)
        self._do("SliceObject", objectId=oid)
        return f"sliced {oid}", oid, 0

    def _skill_CleanObject(self, args: Mapping[str, Any]) -> tuple[str, str | None, int]:
        oid = self._resolve_held_or_visible(str(args["object"]))
        if not self._objects()[oid].get("pickupable"):  # furniture (making the bed): cleaned where it stands
            self._ready(oid)
            self._do("CleanObject", objectId=oid)
            return f"cleaned {oid}", oid, 0
        self._available(["SinkBasin", "BathtubBasin"], "wash it in")
        self._acquire(oid)
        basin = self._find(["SinkBasin", "BathtubBasin"], "wash it in")
        self._put(oid, basin)
        faucet = self._faucet_for(basin)
        if self._objects()[faucet].get("isToggled"):
            self._do("ToggleObjectOff", objectId=faucet)
        self._do("ToggleObjectOn", objectId=faucet)
        self._do("ToggleObjectOff", objectId=faucet)
        self._reach_again(oid)
        self._do("PickupObject", objectId=oid)
        dirty = self._objects()[oid].get("isDirty")
        if dirty:
            raise _SkillFail(f"{oid} is still dirty after washing")
        return f"washed {oid} in {basin}", oid, 0

    def _faucet_for(self, basin: str) -> str:
        """The visible faucet nearest the basin (looking around if none is in view), within reach."""
        for horizon in (None, *_HORIZONS):
            if horizon is not None:
                self._set_horizon(horizon)
            faucets = self._visible_of_type(["Faucet", "ShowerHead"])
            if faucets:
                b = self.known.get(basin, (0.0, 0.0, 0.0))
                nearest = min(faucets, key=lambda o: (math.hypot(o["position"]["x"] - b[0], o["position"]["z"] - b[2]),
                                                      o["objectId"]))
                best = str(nearest["objectId"])
                self._reach_again(best)
                return best
        raise _SkillFail(f"no visible Faucet near {basin}")

    def _reach_again(self, oid: str) -> None:
        """Make sure a just-seen object is visible and within reach, driving closer if needed."""
        obj = self._objects().get(oid, {})
        if obj.get("isPickedUp") or (obj.get("visible") and self._surface_distance(obj) <= self.reach_m):
            return
        self._goto(oid)
        self._ready(oid)

    def _skill_CookObject(self, args: Mapping[str, Any]) -> tuple[str, str | None, int]:
        oid = self._resolve_held_or_visible(str(args["object"]))
        kind = self._objects()[oid]["objectType"]
        if not (self._visible_of_type(["Microwave", "Toaster", "Pan", "Pot"])
                or self._known_of_type(["Microwave", "Toaster", "Pan", "Pot"])):
            raise _SkillFail("no known Microwave or pan on a StoveBurner to cook with; Explore first")
        self._acquire(oid)
        if kind == "BreadSliced" and (self._visible_of_type(["Toaster"]) or self._known_of_type(["Toaster"])):
            device = self._find(["Toaster"], "toast it in")
            self._put(oid, device)
            self._do("ToggleObjectOn", objectId=device)
            self._do("ToggleObjectOff", objectId=device)
            self._reach_again(oid)
            self._do("PickupObject", objectId=oid)
        elif self._visible_of_type(["Microwave"]) or self._known_of_type(["Microwave"]):
            device = self._find(["Microwave"], "heat it in")
            if not self._objects()[device].get("isOpen"):
                self._do("OpenObject", objectId=device)
            self._put(oid, device)
            self._do("CloseObject", objectId=device)
            self._do("ToggleObjectOn", objectId=device)
            self._do("ToggleObjectOff", objectId=device)
            self._do("OpenObject", objectId=device)
            self._do("PickupObject", objectId=oid)
            self._do("CloseObject", objectId=device)
        else:
            device = self._stove_pan()
            self._put(oid, device)
            knob = self._knob_for(device)
            self._do("ToggleObjectOn", objectId=knob)
            self._do("ToggleObjectOff", objectId=knob)
            self._reach_again(oid)
            self._do("PickupObject", objectId=oid)
        obj = self._objects()[oid]
        if not (obj.get("isCooked") or obj.get("temperature") == "Hot"):
            raise _SkillFail(f"{oid} did not heat up in {device}")
        state = "cooked" if obj.get("isCooked") else "heated (not cookable)"
        return f"{state} {oid} with {device}", oid, 0

    def _stove_pan(self) -> str:
        """A Pan or Pot standing on a StoveBurner that the robot has seen."""
        objs = self._objects()
        candidates = [str(o["objectId"]) for o in self._visible_of_type(["Pan", "Pot"])]
        for oid in candidates + self._known_of_type(["Pan", "Pot"]):
            parents = objs[oid].get("parentReceptacles") or ()
            if any(objs.get(p, {}).get("objectType") == "StoveBurner" for p in parents):
                if not (self._is_visible(oid) and self._surface_distance(objs[oid]) <= self.reach_m):
                    self._goto(oid)
                return oid
        raise _SkillFail("no known Microwave or pan on a StoveBurner to cook with; Explore first")

    def _knob_for(self, pan: str) -> str:
        objs = self._objects()
        burners = {p for p in objs[pan].get("parentReceptacles") or ()
                   if objs.get(p, {}).get("objectType") == "StoveBurner"}
        for horizon in (None, *_HORIZONS):
            if horizon is not None:
                self._set_horizon(horizon)
            for knob in self._visible_of_type(["StoveKnob"]):
                if burners & set(knob.get("controlledObjects") or ()) and self._surface_distance(knob) <= self.reach_m:
                    return str(knob["objectId"])
        raise _SkillFail(f"no visible StoveKnob for the burner under {pan}")


class SimSkillExecutor(ThorSkillExecutorBase):
    """The SkillExecutor of the embedded simulator.

    Args:
        controller: an :class:`~karma_memory.sim.controller.EmbeddedController`.
        area_positions: area id -> (x, z); None = the long-term memory's default tiling of the scene
            (``scenes.default_area_positions``), so area ids match what the planner sees.
        reach_m: manipulation reach, metres.
    """

    def __init__(self, controller: Any, area_positions: Mapping[str, tuple[float, float]] | None = None,
                 reach_m: float = DEFAULT_REACH_M) -> None:
        if area_positions is None:
            from karma_memory.sim.scenes import default_area_positions

            area_positions = default_area_positions(controller.scene)
        super().__init__(controller, area_positions, durations=controller.action_durations, reach_m=reach_m,
                         grid_size=controller.grid_size)

    def _query_reachable(self) -> list[tuple[float, float]]:
        return [(float(x), float(z)) for x, z in self.controller.reachable_positions()]
