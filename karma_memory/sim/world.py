"""Mutable state of one embedded-simulator scene: objects, containment, agent pose, visibility, snapshots."""

from __future__ import annotations

import copy
import functools
import hashlib
import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import numpy as np

from karma_memory.sim.geometry import aabb_dict, aabb_of, camera_axes
from karma_memory.sim.render import BoxSet, type_color
from karma_memory.sim.rules import ALWAYS_UPRIGHT, ENCLOSING_TYPES, FULLY_INSIDE_TYPES, INSIDE_TYPES
from karma_memory.sim.scenes import AGENT_Y_OFFSET, CAMERA_Y_OFFSET, WALL_MOUNTED_TYPES, SceneData

try:
    import orjson as _orjson
except ImportError:  # pragma: no cover
    _orjson = None

__all__ = ["World", "Snapshot", "Pose", "capsule_dist2", "CAPSULE_BELOW", "CAPSULE_ABOVE", "SLIDING_TYPES",
           "SEE_THROUGH_TYPES"]


def _deep_copy_one(obj: dict) -> dict:
    if _orjson is not None:
        return _orjson.loads(_orjson.dumps(obj))
    return copy.deepcopy(obj)

#: THOR's default agent capsule (1.8 m tall, radius 0.2, centred on the agent's position): its axis
#: (between the end-sphere centres) reaches this far below / above the agent position, metres.
CAPSULE_BELOW = 0.7
CAPSULE_ABOVE = 0.7

# Visibility sampling: corners are pulled this far towards the box centre before testing them.
_SAMPLE_SHRINK = 0.8
# A box within this of lying inside another one counts as part of it (never occluded by it), metres.
_PART_TOL = 0.02
_SEGMENT_EPS = 0.02
_SIGNS = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], dtype=float)
_AHEAD = np.array([0.5, 1.0, 1.5])
# Basins set into a counter (the counter slab gets a hole) or inside a frame object (Sink, Bathtub).
_INSET_TYPES = frozenset({"SinkBasin", "BathtubBasin"})
_SLAB_HEIGHT = 0.15
# A basin whose rim is this far under a counter slab is still set into it (undermount sink), metres.
_BASIN_DROP = 0.15
# Open containers drawn without a lid (contents seen from above).
_OPEN_TOP_TYPES = frozenset({"Drawer", "Box", "LaundryHamper", "Kettle"})


def hand_lo(pose: Pose, size: np.ndarray) -> np.ndarray:
    """AABB min corner of a held object of ``size``: ahead of and below the camera."""
    yaw = math.radians(pose.yaw)
    centre = pose.camera + np.array([math.sin(yaw), 0.0, math.cos(yaw)]) * _HAND_AHEAD
    centre[1] -= _HAND_BELOW
    return centre - np.asarray(size, dtype=float) / 2.0


def _box_dist2(point: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Squared distance from a point to each box (0 inside)."""
    d = np.maximum(lo - point, 0.0) + np.maximum(point - hi, 0.0)
    return d[:, 0] * d[:, 0] + d[:, 1] * d[:, 1] + d[:, 2] * d[:, 2]


def capsule_dist2(agent: np.ndarray, lo: np.ndarray, hi: np.ndarray, reach: float) -> np.ndarray:
    """Squared distance from each box to THOR's visibility capsule axis of an agent at ``agent``.

    THOR (collider visibility scheme) looks for objects whose colliders overlap a capsule of radius
    ``visibilityDistance`` around the agent's own capsule, stretched up by that distance: in effect
    the *horizontal* distance from the agent to the object must be within range (whatever the
    object's height, up to about ``reach`` above the agent's head), not the distance from the camera.
    The axis runs from ``CAPSULE_BELOW`` under the agent's position to ``CAPSULE_ABOVE + reach`` above.
    """
    lo = np.asarray(lo, dtype=float).reshape(-1, 3)
    hi = np.asarray(hi, dtype=float).reshape(-1, 3)
    dx = np.maximum(lo[:, 0] - agent[0], 0.0) + np.maximum(agent[0] - hi[:, 0], 0.0)
    dz = np.maximum(lo[:, 2] - agent[2], 0.0) + np.maximum(agent[2] - hi[:, 2], 0.0)
    bottom, top = agent[1] - CAPSULE_BELOW, agent[1] + CAPSULE_ABOVE + reach
    dy = np.maximum(lo[:, 1] - top, 0.0) + np.maximum(bottom - hi[:, 1], 0.0)
    return dx * dx + dz * dz + dy * dy


def _open_shell(lo: np.ndarray, hi: np.ndarray, with_top: bool) -> list[tuple[np.ndarray, np.ndarray]]:
    """An open container as thin bottom (and top) plates, so what is inside can be seen and reached."""
    t = min(0.03, (hi[1] - lo[1]) / 4.0)
    parts = [(lo.copy(), np.array([hi[0], lo[1] + t, hi[2]]))]
    if with_top:
        parts.append((np.array([lo[0], hi[1] - t, lo[2]]), hi.copy()))
    return parts


def _set_into(blo: np.ndarray, bhi: np.ndarray, slo: np.ndarray, shi: np.ndarray) -> np.ndarray:
    """For each slab (rows of slo, shi): is the basin box (blo, bhi) set into it — footprint inside,
    top below (an undermount basin: up to ``_BASIN_DROP`` under it) or level with the slab?"""
    tol = 0.06
    return ((slo[:, 0] - tol <= blo[0]) & (bhi[0] <= shi[:, 0] + tol) & (slo[:, 2] - tol <= blo[2])
            & (bhi[2] <= shi[:, 2] + tol) & (slo[:, 1] - _BASIN_DROP <= bhi[1]) & (bhi[1] <= shi[:, 1] + tol)
            & (blo[1] < slo[:, 1]))


def _cut_hole(part: tuple[np.ndarray, np.ndarray], hlo: np.ndarray,
              hhi: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Split a slab box into up to four strips around the hole's footprint (x–z)."""
    lo, hi = part
    x0, x1 = max(lo[0], hlo[0]), min(hi[0], hhi[0])
    z0, z1 = max(lo[2], hlo[2]), min(hi[2], hhi[2])
    if x0 >= x1 or z0 >= z1:
        return [part]
    out = []
    for (ax0, ax1, az0, az1) in ((lo[0], x0, lo[2], hi[2]), (x1, hi[0], lo[2], hi[2]),
                                 (x0, x1, lo[2], z0), (x0, x1, z1, hi[2])):
        if ax1 - ax0 > 1e-4 and az1 - az0 > 1e-4:
            out.append((np.array([ax0, lo[1], az0]), np.array([ax1, hi[1], az1])))
    return out


# Containers taller than this have shelves (a fridge): things put in rest near _SHELF_HEIGHT above the floor.
_TALL_CONTAINER = 0.8
_SHELF_HEIGHT = 0.9
# An open drawer (openness 1) sticks out of its furniture by this fraction of its depth.
_DRAWER_TRAVEL = 0.8
#: Glass that THOR's visibility raycast looks through (``SimObjSecondaryProperty.CanSeeThrough``).
SEE_THROUGH_TYPES = frozenset({"ShowerGlass", "ShowerDoor"})
#: Types that slide out when opened (the rest swing a door and stay where they are).
SLIDING_TYPES = frozenset({"Drawer"})
# The held object floats this far ahead of and below the camera.
_HAND_AHEAD, _HAND_BELOW = 0.45, 0.35


@functools.lru_cache(maxsize=4096)
def _axes(yaw: float, horizon: float) -> np.ndarray:
    """camera_axes, cached (an agent looks along few directions); read-only."""
    out = camera_axes(yaw, horizon)
    out.setflags(write=False)
    return out


def chain_of_parents(parent: Mapping[str, str | None], oid: str) -> list[str]:
    """The receptacles holding ``oid``, innermost first (cycle-safe)."""
    out: list[str] = []
    cur = parent.get(oid)
    while cur is not None and cur not in out:
        out.append(cur)
        cur = parent.get(cur)
    return out


@dataclass(frozen=True)
class Pose:
    """Agent pose: position of the agent's base (THOR agent position), yaw and camera horizon (degrees)."""

    x: float
    y: float
    z: float
    yaw: float
    horizon: float

    @property
    def camera(self) -> np.ndarray:
        return np.array([self.x, self.y + CAMERA_Y_OFFSET, self.z])

    def axes(self) -> np.ndarray:
        return _axes(self.yaw, self.horizon)


class ObjectCache:
    """Per-object derived data keyed by the identity of an object dict.

    The world never mutates an object dict in place (it replaces it), so a dict's identity names one
    state of one object: its deep copy and its box are computed once and shared by every snapshot.
    """

    def __init__(self) -> None:
        self._frozen: dict[int, tuple[dict, dict]] = {}
        self._box: dict[int, tuple[dict, tuple[float, ...]]] = {}
        self.related: tuple[int, np.ndarray] | None = None  # (containment version, matrix)
        self.static: tuple[int, dict[str, Any]] | None = None  # (containment version, flags)
        self.enclosed: tuple[tuple[int, frozenset[str]], frozenset[str]] | None = None

    def frozen(self, obj: dict) -> dict:
        entry = self._frozen.get(id(obj))
        if entry is None or entry[0] is not obj:
            entry = (obj, _deep_copy_one(obj))
            self._frozen[id(obj)] = entry
        return entry[1]

    def box(self, obj: dict) -> tuple[float, ...]:
        entry = self._box.get(id(obj))
        if entry is None or entry[0] is not obj:
            box = obj["axisAlignedBoundingBox"]
            c, s = box["center"], box["size"]
            hx, hy, hz = abs(s["x"]) / 2.0, abs(s["y"]) / 2.0, abs(s["z"]) / 2.0
            entry = (obj, (c["x"] - hx, c["y"] - hy, c["z"] - hz, c["x"] + hx, c["y"] + hy, c["z"] + hz))
            self._box[id(obj)] = entry
        return entry[1]

    def prune(self, live: Iterable[dict]) -> None:
        """Forget entries of object states no longer current (bounds memory)."""
        keep = {id(o) for o in live}
        self._frozen = {k: v for k, v in self._frozen.items() if k in keep}
        self._box = {k: v for k, v in self._box.items() if k in keep}


@dataclass
class Snapshot:
    """Object state at one instant: shallow copies of the THOR dicts (nested values are never mutated in place).

    Arrays for rendering and visibility are built on first use and cached.
    """

    version: int
    objects: list[dict]
    index: dict[str, int]
    parent: dict[str, str | None]
    held: str | None
    hidden: frozenset[str]
    instance_ids: dict[str, int]
    colors: dict[str, tuple[int, int, int]]
    containment_version: int = 0
    cache: ObjectCache = field(default_factory=ObjectCache, repr=False)
    parts: Mapping[str, list[tuple[np.ndarray, np.ndarray]]] = field(default_factory=dict, repr=False)
    _arrays: dict[str, Any] = field(default_factory=dict, repr=False)

    # ---------------------------------------------------------------------------------- containment
    def ancestors(self, oid: str) -> list[str]:
        return chain_of_parents(self.parent, oid)

    def enclosed(self) -> frozenset[str]:
        """Ids inside a closed enclosing receptacle (fridge, cabinet, drawer, ...), at any depth."""
        if "enclosed" not in self._arrays:
            closed = frozenset(o["objectId"] for o in self.objects
                               if o["objectType"] in ENCLOSING_TYPES and not o.get("isOpen"))
            key = (self.containment_version, closed)
            cached = self.cache.enclosed
            if cached is None or cached[0] != key:
                out = frozenset(oid for oid in self.index if closed.intersection(self.ancestors(oid)))
                cached = self.cache.enclosed = (key, out)
            self._arrays["enclosed"] = cached[1]
        return self._arrays["enclosed"]

    def carried(self) -> list[int]:
        """Indices of the held object and everything it carries."""
        if "carried" not in self._arrays:
            out: list[int] = []
            if self.held is not None and self.held in self.index:
                ids = {self.held}
                for oid in self.index:
                    if self.held in self.ancestors(oid):
                        ids.add(oid)
                out = sorted(self.index[oid] for oid in ids)
            self._arrays["carried"] = out
        return self._arrays["carried"]

    def hand_delta(self, pose: Pose) -> np.ndarray | None:
        """Translation that puts the held object (stored where it was picked up) in the hand at ``pose``."""
        if self.held is None or self.held not in self.index:
            return None
        i = self.index[self.held]
        arrays = self._boxes()
        return hand_lo(pose, arrays["hi"][i] - arrays["lo"][i]) - arrays["lo"][i]

    def related(self) -> np.ndarray:
        """(N, N) bool: i == j, or one of the two objects holds the other (at any depth)."""
        if "related" not in self._arrays:
            cached = self.cache.related
            if cached is not None and cached[0] == self.containment_version:
                self._arrays["related"] = cached[1]
                return cached[1]
            n = len(self.objects)
            rel = np.eye(n, dtype=bool)
            for i, obj in enumerate(self.objects):
                oid = obj["objectId"]
                for anc in self.ancestors(oid):
                    j = self.index.get(anc)
                    if j is not None:
                        rel[i, j] = rel[j, i] = True
                if oid.count("|") >= 4:  # "Sink|x|y|z|SinkBasin", slices: the id-prefix object is kin
                    j = self.index.get(oid.rsplit("|", 1)[0])
                    if j is not None:
                        rel[i, j] = rel[j, i] = True
            # a box lying within another is part of it or kept in it (shelves and what stands on them
            # inside a shelving unit, a drawer inside a dresser's box): the outer one is not in the way
            arrays = self._boxes()
            lo, hi = arrays["lo"], arrays["hi"]
            inside = np.ones((n, n), dtype=bool)
            for a in range(3):
                inside &= ((lo[:, None, a] >= lo[None, :, a] - _PART_TOL)
                           & (hi[:, None, a] <= hi[None, :, a] + _PART_TOL))
            rel |= inside | inside.T
            self._arrays["related"] = rel
            self.cache.related = (self.containment_version, rel)
        return self._arrays["related"]

    def positions(self) -> np.ndarray:
        """(N, 3) object positions (THOR ``position``, not the box centre)."""
        if "positions" not in self._arrays:
            self._arrays["positions"] = np.array(
                [[o["position"]["x"], o["position"]["y"], o["position"]["z"]] for o in self.objects],
                dtype=float).reshape(-1, 3)
        return self._arrays["positions"]

    def frozen_objects(self) -> list[dict]:
        """One deep copy of the object dicts per snapshot: events share it (shallow-copying each dict),
        so what users do to metadata can never reach the simulator's state."""
        if "frozen" not in self._arrays:
            self._arrays["frozen"] = [self.cache.frozen(o) for o in self.objects]
        return self._arrays["frozen"]

    # ---------------------------------------------------------------------------------------- boxes
    def _boxes(self) -> dict[str, Any]:
        """Per-object boxes and flags, plus the *pieces* drawn and used as occluders.

        Pieces are the object boxes except: the floor; wall-mounted boxes spanning two walls; frames
        around a basin (a Sink's box would hide its SinkBasin); L-shaped counters and desks, replaced
        by their solid parts (``SceneData.surface_parts``); open containers, drawn as thin plates;
        and thin slabs (counters) a basin is set into, which are cut into strips around the basin's
        hole so it can be seen from above.
        """
        if "lo" not in self._arrays:
            n = len(self.objects)
            boxes = np.array([self.cache.box(o) for o in self.objects], dtype=float).reshape(n, 6)
            lo, hi = boxes[:, :3], boxes[:, 3:]
            static = self._static()
            size = hi - lo
            bogus = static["wall"] & (np.minimum(size[:, 0], size[:, 2]) > 0.3)  # windows spanning two walls
            gone = np.zeros(n, dtype=bool)
            for oid in self.enclosed() | self.hidden:
                i = self.index.get(oid)
                if i is not None:
                    gone[i] = True
            basins = [i for i in static["basins"] if not gone[i]]
            frame = np.zeros(n, dtype=bool)
            for i in basins:  # "Sink|..." holds "Sink|...|SinkBasin": the outer box is only a frame
                j = static["prefix_of"].get(i)
                if j is not None:
                    frame[j] = True
            keep = ~(gone | static["floor"] | bogus | frame)
            special: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
            for oid, boxes in self.parts.items():  # L-shaped counters: only their solid parts
                j = self.index.get(oid)
                if j is not None and keep[j]:
                    special[j] = [(plo.copy(), phi.copy()) for plo, phi in boxes]
            for j in np.flatnonzero(keep & static["enclosing"]):
                if self.objects[j].get("isOpen"):
                    special[int(j)] = _open_shell(lo[j], hi[j], with_top=self.objects[j]["objectType"]
                                                  not in _OPEN_TOP_TYPES)
            slabs = np.flatnonzero(keep & (size[:, 1] < _SLAB_HEIGHT))
            for i in basins:
                for j in slabs[_set_into(lo[i], hi[i], lo[slabs], hi[slabs]) & (slabs != i)]:
                    parts = special.get(int(j), [(lo[j].copy(), hi[j].copy())])
                    special[int(j)] = [q for part in parts for q in _cut_hole(part, lo[i], hi[i])]
            for i in basins:  # furniture under a basin (the cabinet under a sink) stops at the basin's floor
                blo, bhi = lo[i], hi[i]
                under = np.flatnonzero(keep & ~static["pickupable"] & (lo[:, 1] < blo[1]) & (hi[:, 1] > blo[1])
                                       & (hi[:, 1] < bhi[1] + _SLAB_HEIGHT)
                                       & (lo[:, 0] < bhi[0]) & (hi[:, 0] > blo[0]) & (lo[:, 2] < bhi[2])
                                       & (hi[:, 2] > blo[2]))
                for j in under:
                    if j == i or j == static["prefix_of"].get(i):
                        continue
                    parts = special.get(int(j), [(lo[j].copy(), hi[j].copy())])
                    special[int(j)] = [(plo, np.array([phi[0], min(phi[1], blo[1]), phi[2]]))
                                       for plo, phi in parts if plo[1] < blo[1]]
            normal = keep.copy()
            normal[list(special)] = False
            idx = np.flatnonzero(normal)
            extra = [(j, plo, phi) for j, parts in special.items() for plo, phi in parts]
            owner = np.concatenate([idx, np.array([e[0] for e in extra], dtype=int)]).astype(int)
            piece_lo = np.vstack([lo[idx], np.array([e[1] for e in extra]).reshape(-1, 3)])
            piece_hi = np.vstack([hi[idx], np.array([e[2] for e in extra]).reshape(-1, 3)])
            self._arrays.update(lo=lo, hi=hi, present=~gone, piece_lo=piece_lo, piece_hi=piece_hi,
                                piece_owner=owner, piece_occludes=~(static["wall"] | static["clear"])[owner],
                                piece_cols=tuple(np.ascontiguousarray(c) for c in (*piece_lo.T, *piece_hi.T)),
                                cols=tuple(np.ascontiguousarray(c) for c in (*lo.T, *hi.T)))
        return self._arrays

    def _static(self) -> dict[str, Any]:
        """Per-object flags that depend only on which objects exist (cached per containment version)."""
        cached = self.cache.static
        if cached is not None and cached[0] == self.containment_version:
            return cached[1]
        types = [o["objectType"] for o in self.objects]
        ids = [o["objectId"] for o in self.objects]
        prefix_of = {}
        for i, oid in enumerate(ids):
            if types[i] in _INSET_TYPES and oid.count("|") >= 4:
                j = self.index.get(oid.rsplit("|", 1)[0])
                if j is not None:
                    prefix_of[i] = j
        static = {
            "pickupable": np.array([bool(o.get("pickupable")) for o in self.objects], dtype=bool),
            "wall": np.array([t in WALL_MOUNTED_TYPES for t in types], dtype=bool),
            "clear": np.array([t in SEE_THROUGH_TYPES for t in types], dtype=bool),
            "floor": np.array([t == "Floor" for t in types], dtype=bool),
            "enclosing": np.array([t in ENCLOSING_TYPES for t in types], dtype=bool),
            "basins": [i for i, t in enumerate(types) if t in _INSET_TYPES],
            "prefix_of": prefix_of,
        }
        self.cache.static = (self.containment_version, static)
        return static

    def box_set(self, pose: Pose | None = None) -> BoxSet:
        """What the renderer draws: the pieces, coloured and labelled by their object; with a pose,
        the held object is drawn in the hand."""
        arrays = self._boxes()
        owner = arrays["piece_owner"]
        colors = np.array([self.colors[self.objects[i]["objectId"]] for i in owner], dtype=np.uint8).reshape(-1, 3)
        ids = np.array([self.instance_ids[self.objects[i]["objectId"]] for i in owner], dtype=np.int32)
        lo, hi = arrays["piece_lo"], arrays["piece_hi"]
        delta = self.hand_delta(pose) if pose is not None else None
        if delta is not None:
            moved = np.isin(owner, self.carried())
            lo, hi = lo.copy(), hi.copy()
            lo[moved] += delta
            hi[moved] += delta
        return BoxSet(lo, hi, colors, ids)

    # ----------------------------------------------------------------------------------- visibility
    def visibility(self, pose: Pose, max_distance: float, vertical_fov: float, aspect: float,
                   only: Iterable[str] | None = None) -> dict[str, bool]:
        """objectId -> visible, THOR-style: within ``max_distance`` of the agent (horizontally, see
        :func:`capsule_dist2`), not inside a closed receptacle, and some sample point of its box is in
        the view frustum with a clear line of sight from the camera.

        Args:
            only: restrict the test to these ids (the others are reported False).
        """
        out = dict.fromkeys(self.index, False)
        for i in self.carried():  # the held object, and what is on/in it, are in front of the camera
            out[self.objects[i]["objectId"]] = True
        idx, k_idx, blocks, _ = self._sight(pose, max_distance, vertical_fov, aspect, only)
        if len(k_idx) == 0:
            return out
        if blocks is None:
            seen_idx = np.unique(idx[k_idx])
        else:
            seen_idx = np.unique(idx[k_idx[~blocks.any(axis=1)]])
        for i in seen_idx:
            out[self.objects[i]["objectId"]] = True
        return out

    def explain(self, pose: Pose, max_distance: float, vertical_fov: float, aspect: float,
                oid: str) -> dict[str, Any]:
        """Why one object is (not) visible from ``pose``: the same test as :meth:`visibility`, itemised.

        Returns:
            ``{"visible": bool, "reason": str, "occluders": [objectId, ...]}`` where reason is
            ``visible``, ``held``, ``missing`` (not in the scene or cut up), ``enclosed`` (inside a
            closed receptacle), ``too_far`` (farther than ``max_distance`` from the agent, see
            :func:`capsule_dist2`), ``out_of_view`` (no sample point in the frustum) or ``occluded``
            (every sample point in view is blocked; ``occluders`` lists what blocks them, most often
            first).
        """
        i = self.index.get(oid)
        if i is None or oid in self.hidden:
            return {"visible": False, "reason": "missing", "occluders": []}
        if i in self.carried():
            return {"visible": True, "reason": "held", "occluders": []}
        if oid in self.enclosed():
            return {"visible": False, "reason": "enclosed", "occluders": []}
        arrays = self._boxes()
        agent = np.array([pose.x, pose.y, pose.z])
        if capsule_dist2(agent, arrays["lo"][i], arrays["hi"][i], max_distance)[0] > max_distance ** 2:
            return {"visible": False, "reason": "too_far", "occluders": []}
        idx, k_idx, blocks, occ = self._sight(pose, max_distance, vertical_fov, aspect, [oid], full=True)
        if len(k_idx) == 0:
            return {"visible": False, "reason": "out_of_view", "occluders": []}
        if blocks is None or not blocks.any(axis=1).all():
            return {"visible": True, "reason": "visible", "occluders": []}
        counts: dict[str, int] = {}
        for row in blocks:
            for j in np.flatnonzero(row):
                owner = self.objects[arrays["piece_owner"][occ[j]]]["objectId"]
                counts[owner] = counts.get(owner, 0) + 1
        order = sorted(counts, key=lambda k: (-counts[k], k))
        return {"visible": False, "reason": "occluded", "occluders": order}

    def _sight(self, pose: Pose, max_distance: float, vertical_fov: float, aspect: float,
               only: Iterable[str] | None, full: bool = False
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]:
        """Sight lines from the camera to the sample points in view of the candidate objects.

        Without ``full``, lines are tested in two rounds (each object's first line, then all other
        lines of the objects still unseen) and ``blocks`` rows of lines never tested are all True
        except one clear line per visible object: enough to tell what is visible, at a fraction of
        the cost.

        Returns:
            ``idx`` (candidate object indices), ``k_idx`` (per sight line: position in ``idx``),
            ``blocks`` ((lines, occluders) bool, None when nothing can occlude) and ``occ`` (piece
            indices of the occluders).
        """
        arrays = self._boxes()
        lo, hi = arrays["lo"], arrays["hi"]
        cam = pose.camera
        axes = pose.axes()
        empty = np.zeros(0, dtype=int)
        carried = self.carried()
        limit2 = max_distance * max_distance
        x0, y0, z0, x1, y1, z1 = arrays["cols"]  # capsule_dist2, on columns (hot path)
        dx = np.maximum(x0 - pose.x, 0.0) + np.maximum(pose.x - x1, 0.0)
        dz = np.maximum(z0 - pose.z, 0.0) + np.maximum(pose.z - z1, 0.0)
        dy = (np.maximum(y0 - (pose.y + CAPSULE_ABOVE + max_distance), 0.0)
              + np.maximum(pose.y - CAPSULE_BELOW - y1, 0.0))
        cand = arrays["present"] & (dx * dx + dz * dz + dy * dy <= limit2)
        if only is not None:
            mask = np.zeros(len(self.objects), dtype=bool)
            mask[[self.index[oid] for oid in only if oid in self.index]] = True
            cand &= mask
        cand[carried] = False
        idx = np.flatnonzero(cand)
        if len(idx) == 0:
            return idx, empty, None, empty

        ahead = cam + axes[:, 2][None, :] * _AHEAD[:, None]  # (3, 3): the part of a big box straight ahead
        pts = np.concatenate([self.samples()[idx],
                              np.minimum(np.maximum(ahead[None, :, :], lo[idx, None, :]), hi[idx, None, :])],
                             axis=1)  # (K, S, 3)
        rel = pts - cam
        cx, cy, cz = rel @ axes[:, 0], rel @ axes[:, 1], rel @ axes[:, 2]  # optical frame
        tan_v = math.tan(math.radians(vertical_fov) / 2.0)
        in_view = (cz > 0.01) & (np.abs(cx) <= tan_v * aspect * cz) & (np.abs(cy) <= tan_v * cz)
        k_idx, s_idx = np.nonzero(in_view)
        if len(k_idx) == 0:
            return idx, k_idx, None, empty
        seg = rel[k_idx, s_idx]  # (R, 3)
        # occluders: pieces overlapping the box around all sight lines, not containing the camera
        span_lo = np.minimum(seg.min(axis=0), 0.0) + cam
        span_hi = np.maximum(seg.max(axis=0), 0.0) + cam
        plo, phi = arrays["piece_lo"], arrays["piece_hi"]
        px0, py0, pz0, px1, py1, pz1 = arrays["piece_cols"]
        occludes = (arrays["piece_occludes"] & (px0 <= span_hi[0]) & (py0 <= span_hi[1]) & (pz0 <= span_hi[2])
                    & (px1 >= span_lo[0]) & (py1 >= span_lo[1]) & (pz1 >= span_lo[2])
                    & ((px0 >= cam[0]) | (px1 <= cam[0]) | (py0 >= cam[1]) | (py1 <= cam[1])
                       | (pz0 >= cam[2]) | (pz1 <= cam[2])))
        if carried:
            occludes &= ~np.isin(arrays["piece_owner"], carried)
        occ = np.flatnonzero(occludes)
        if len(occ) == 0:
            return idx, k_idx, None, occ
        seg[seg == 0.0] = 1e-12
        inv = 1.0 / seg
        olo, ohi = plo[occ] - cam, phi[occ] - cam
        unrelated = ~self.related()[idx][:, arrays["piece_owner"][occ]]  # (K, M)

        def blocked(rows: np.ndarray) -> np.ndarray:
            """(len(rows), M): which occluders cut each of these sight lines (slab test per axis)."""
            tnear = tfar = None
            for a in range(3):
                t1 = inv[rows, a, None] * olo[None, :, a]
                t2 = inv[rows, a, None] * ohi[None, :, a]
                near, far = np.minimum(t1, t2), np.maximum(t1, t2)
                tnear = near if tnear is None else np.maximum(tnear, near)
                tfar = far if tfar is None else np.minimum(tfar, far)
            # an object never occludes itself, what holds it, or what it holds
            return (tnear <= tfar) & (tfar > _SEGMENT_EPS) & (tnear < 1.0 - _SEGMENT_EPS) & unrelated[k_idx[rows]]

        if full:
            return idx, k_idx, blocked(np.arange(len(k_idx))), occ
        blocks = np.ones((len(k_idx), len(occ)), dtype=bool)
        is_first = np.empty(len(k_idx), dtype=bool)  # each object's first line (k_idx is sorted)
        is_first[0] = True
        np.not_equal(k_idx[1:], k_idx[:-1], out=is_first[1:])
        first = np.flatnonzero(is_first)
        blocks[first] = blocked(first)
        seen = np.zeros(len(idx), dtype=bool)
        seen[k_idx[first[~blocks[first].any(axis=1)]]] = True
        rest = np.flatnonzero(~(seen[k_idx] | is_first))
        if len(rest):
            blocks[rest] = blocked(rest)
        return idx, k_idx, blocks, occ

    def samples(self) -> np.ndarray:
        """(N, 9, 3) visibility sample points per box: centre and corners pulled towards it."""
        if "samples" not in self._arrays:
            arrays = self._boxes()
            centre = (arrays["lo"] + arrays["hi"]) / 2.0
            half = (arrays["hi"] - arrays["lo"]) / 2.0 * _SAMPLE_SHRINK
            self._arrays["samples"] = np.concatenate(
                [centre[:, None, :], centre[:, None, :] + _SIGNS[None] * half[:, None, :]], axis=1)
        return self._arrays["samples"]


class World:
    """The live state: THOR object dicts (replaced, never mutated in place, so snapshots stay valid),
    direct-parent containment, hidden ids (sliced originals), the held object and the agent pose."""

    def __init__(self, scene: SceneData, seed: int = 0) -> None:
        self.scene = scene
        self.rng = np.random.default_rng(seed)
        self.objects: dict[str, dict] = {}
        for obj in copy.deepcopy(list(scene.objects)):
            obj.update(visible=False, isInteractable=False, distance=0.0, isPickedUp=False)
            self.objects[obj["objectId"]] = obj
        self.parent: dict[str, str | None] = {oid: self._direct_parent(obj) for oid, obj in self.objects.items()}
        self.hidden: set[str] = set()
        self.held: str | None = None
        self.instance_ids: dict[str, int] = {oid: i + 1 for i, oid in enumerate(self.objects)}
        self.colors: dict[str, tuple[int, int, int]] = {oid: type_color(o["objectType"]) for oid, o in
                                                         self.objects.items()}
        self.seg_colors: dict[str, tuple[int, int, int]] = {}
        for oid in self.objects:
            self._assign_seg_color(oid)
        start = scene.agent_start
        p = start.get("position", {"x": 0.0, "y": scene.floor_y + AGENT_Y_OFFSET, "z": 0.0})
        self.pose = Pose(float(p["x"]), float(p["y"]), float(p["z"]), float(start.get("rotation", 0.0)),
                         float(start.get("horizon", 0.0)))
        #: L-shaped counters/desks: objectId -> solid part boxes (the rest of their AABB is empty)
        self.parts: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {
            oid: [(np.array(lo, dtype=float), np.array(hi, dtype=float)) for lo, hi in boxes]
            for oid, boxes in getattr(scene, "surface_parts", {}).items() if oid in self.objects}
        self.slid: dict[str, np.ndarray] = {}  # drawer id -> how far it is slid out now
        self.slid_dir: dict[str, tuple[int, float]] = {}  # drawer id -> (axis, sign) it slides along
        self.version = 0
        self.containment_version = 0
        self.cache = ObjectCache()
        self._pruned_at = 0
        self._index: dict[str, int] = {}
        self._index_key = -1
        self._parent_view: dict[str, str | None] = {}
        self._snapshot: Snapshot | None = None
        self._refresh_containment()

    # ------------------------------------------------------------------------------------ helpers
    def _direct_parent(self, obj: dict) -> str | None:
        """The immediate receptacle: of THOR's listed parents, the smallest box (a plate beats the counter).

        Listings the geometry contradicts are dropped: the floor has no parent, and only what can be
        picked up is ever inside a closable container (cabinet, drawer, fridge, ...), with its centre
        inside that container's box (the dump puts FloorPlan16's floor in a cabinet, FloorPlan19's
        fridge in a drawer, and the two doors of FloorPlan5's cabinets in each other).
        """
        if obj["objectType"] == "Floor":
            return None
        centre = (lambda lo, hi: (lo + hi) / 2.0)(*aabb_of(obj))

        def plausible(pid: str) -> bool:
            if self.objects[pid]["objectType"] not in ENCLOSING_TYPES:
                return True
            if not obj.get("pickupable"):
                return False
            lo, hi = aabb_of(self.objects[pid])
            return bool(np.all(centre >= lo - 0.05) and np.all(centre <= hi + 0.05))

        parents = [p for p in (obj.get("parentReceptacles") or ()) if p in self.objects and plausible(p)]
        if not parents:
            return None

        def volume(pid: str) -> float:
            s = self.objects[pid]["axisAlignedBoundingBox"]["size"]
            return abs(s["x"] * s["y"] * s["z"])

        return min(parents, key=lambda pid: (volume(pid), pid))

    def _assign_seg_color(self, oid: str) -> None:
        """A unique THOR-style segmentation colour per object id (stable: derived from the id)."""
        used = set(self.seg_colors.values())
        salt = 0
        while True:
            digest = hashlib.sha1(f"{oid}#{salt}".encode()).digest()
            color = (digest[0], digest[1], digest[2])
            if color not in used and color != (0, 0, 0):
                self.seg_colors[oid] = color
                return
            salt += 1

    def touch(self) -> None:
        """Record that object state changed (invalidates the cached snapshot)."""
        self.version += 1
        self._snapshot = None

    def set(self, oid: str, **fields: Any) -> None:
        """Replace fields of one object (copy-on-write: earlier snapshots keep the old dict)."""
        obj = dict(self.objects[oid])
        obj.update(fields)
        self.objects[oid] = obj
        self.touch()

    def children(self, oid: str) -> list[str]:
        return [c for c, p in self.parent.items() if p == oid]

    def descendants(self, oid: str) -> list[str]:
        out, frontier = [], [oid]
        while frontier:
            nxt = [c for f in frontier for c in self.children(f) if c not in out]
            out.extend(nxt)
            frontier = nxt
        return out

    def ancestors(self, oid: str) -> list[str]:
        return chain_of_parents(self.parent, oid)

    def box(self, oid: str) -> tuple[np.ndarray, np.ndarray]:
        return aabb_of(self.objects[oid])

    def snapshot(self) -> Snapshot:
        """The current state as an immutable snapshot (reused until something changes)."""
        if self._snapshot is None:
            objs = list(self.objects.values())  # the dicts themselves: they are replaced, never mutated
            if self.version - self._pruned_at > 512:
                self.cache.prune(objs)
                self._pruned_at = self.version
            if self._index_key != self.containment_version:
                self._index = {o["objectId"]: i for i, o in enumerate(objs)}
                self._index_key = self.containment_version
            self._snapshot = Snapshot(
                version=self.version, objects=objs, index=self._index, parent=self._parent_view,
                held=self.held, hidden=frozenset(self.hidden), instance_ids=self.instance_ids, colors=self.colors,
                containment_version=self.containment_version, cache=self.cache, parts=self.parts)
        return self._snapshot

    # --------------------------------------------------------------------------------- containment
    def _refresh_containment(self) -> None:
        """Rewrite parentReceptacles (immediate receptacle first, then the ones holding it) and
        receptacleObjectIds (everything on/in, at any depth), as THOR lists them."""
        contents: dict[str, list[str]] = {oid: [] for oid, o in self.objects.items() if o.get("receptacle")}
        for oid in self.objects:
            if oid == self.held or oid in self.hidden:
                continue
            for anc in self.ancestors(oid):
                contents.setdefault(anc, []).append(oid)
        for oid, obj in list(self.objects.items()):
            chain = None if oid == self.held else (self._chain(oid) or None)
            if obj.get("parentReceptacles") != chain:
                self.objects[oid] = {**obj, "parentReceptacles": chain}
            if obj.get("receptacle"):
                ids = contents.get(oid, [])
                if obj.get("receptacleObjectIds") != ids:
                    self.objects[oid] = {**self.objects[oid], "receptacleObjectIds": ids}
        self.containment_version += 1
        self._parent_view = dict(self.parent)
        self.touch()

    def _chain(self, oid: str) -> list[str]:
        """parentReceptacles: the immediate receptacle, then those holding it (the floor only if immediate)."""
        chain = self.ancestors(oid)
        return chain[:1] + [p for p in chain[1:] if self.objects.get(p, {}).get("objectType") != "Floor"]

    def set_parent(self, oid: str, parent: str | None) -> None:
        self.parent[oid] = parent
        self._refresh_containment()

    # -------------------------------------------------------------------------------------- motion
    def move_to(self, oid: str, lo: np.ndarray) -> None:
        """Translate an object so its AABB's min corner is ``lo``; what it carries moves with it."""
        old_lo, _ = self.box(oid)
        delta = np.asarray(lo, dtype=float) - old_lo
        for mid in [oid, *self.descendants(oid)]:
            self._translate(mid, delta)
        self.touch()

    def _translate(self, oid: str, delta: np.ndarray) -> None:
        obj = self.objects[oid]
        lo, hi = aabb_of(obj)
        pos = obj["position"]
        fields: dict[str, Any] = {
            "position": {"x": pos["x"] + float(delta[0]), "y": pos["y"] + float(delta[1]),
                         "z": pos["z"] + float(delta[2])},
            "axisAlignedBoundingBox": aabb_dict(lo + delta, hi + delta),
        }
        oobb = obj.get("objectOrientedBoundingBox")
        if oobb and oobb.get("cornerPoints"):
            fields["objectOrientedBoundingBox"] = {
                **oobb, "cornerPoints": [[c[0] + float(delta[0]), c[1] + float(delta[1]), c[2] + float(delta[2])]
                                         for c in oobb["cornerPoints"]]}
        self.objects[oid] = {**obj, **fields}

    def slide_out(self, oid: str, openness: float) -> None:
        """Slide a drawer (and what is in it) out of its furniture as THOR does when it opens:
        ``openness`` × ``_DRAWER_TRAVEL`` of its depth, towards the open floor in front of it.
        ``openness`` 0 slides it fully back in."""
        lo, hi = self.box(oid)
        old = self.slid.get(oid, np.zeros(3))
        if oid not in self.slid_dir:
            self.slid_dir[oid] = self._front(lo - old, hi - old)
        axis, sign = self.slid_dir[oid]
        new = np.zeros(3)
        new[axis] = sign * openness * _DRAWER_TRAVEL * float(hi[axis] - lo[axis])
        if np.allclose(new, old):
            return
        self.move_to(oid, lo - old + new)
        self.slid[oid] = new
        self._refresh_containment()  # boxes changed: what is part of what may too

    def _front(self, lo: np.ndarray, hi: np.ndarray) -> tuple[int, float]:
        """(axis, sign) of the side of a box facing the nearest reachable floor cell."""
        centre = (lo + hi) / 2.0
        cells = np.asarray(self.scene.reachable, dtype=float).reshape(-1, 2)
        if len(cells) == 0:
            return 0, 1.0
        # distance from each cell to the box footprint, then the direction from the box to the nearest cell
        d = np.maximum(np.maximum(lo[[0, 2]] - cells, cells - hi[[0, 2]]), 0.0)
        nearest = cells[int(np.argmin((d * d).sum(axis=1)))]
        delta = nearest - centre[[0, 2]]
        if abs(delta[0]) * (hi[2] - lo[2]) >= abs(delta[1]) * (hi[0] - lo[0]):
            return 0, float(np.sign(delta[0]) or 1.0)
        return 2, float(np.sign(delta[1]) or 1.0)

    def hand_lo(self, oid: str) -> np.ndarray:
        """Where the held object's AABB min corner is: ahead of and below the camera."""
        lo, hi = self.box(oid)
        return hand_lo(self.pose, hi - lo)

    def materialize_held(self) -> None:
        """Write the held object's hand position into its state (before it leaves the hand).

        While held, the stored position is stale on purpose: snapshots and events place the held
        object (and what it carries) in the hand for their own pose, so walking while holding
        something does not change the world state on every step.
        """
        if self.held is not None:
            self.move_to(self.held, self.hand_lo(self.held))

    def placement(self, oid: str, receptacle: str) -> np.ndarray | None:
        """Min corner for ``oid`` resting on/in ``receptacle``; None when it does not fit (see :meth:`fit`)."""
        fitted = self.fit(oid, receptacle)
        return None if fitted is None else fitted[0]

    def orientations(self, oid: str) -> list[np.ndarray]:
        """AABB sizes ``oid`` may take when put somewhere, in THOR's order of trying: as it is, turned
        about the vertical axis, then (unless THOR always places the type upright) laid on its side or
        stood on end, each also turned (``PlaceObject`` rotates about y first, then x, then z)."""
        lo, hi = self.box(oid)
        sx, sy, sz = (float(v) for v in hi - lo)
        out = [(sx, sy, sz), (sz, sy, sx)]
        if self.objects[oid]["objectType"] not in ALWAYS_UPRIGHT:
            out += [(sx, sz, sy), (sy, sz, sx), (sy, sx, sz), (sz, sx, sy)]
        unique: list[np.ndarray] = []
        for size in out:
            if not any(np.allclose(size, u) for u in unique):
                unique.append(np.array(size))
        return unique

    def surfaces(self, receptacle: str) -> list[tuple[np.ndarray, np.ndarray]]:
        """The boxes a receptacle carries things in/on: its AABB, or the solid parts of an L-shaped counter."""
        parts = self.parts.get(receptacle)
        if parts:
            return [(plo.copy(), phi.copy()) for plo, phi in parts]
        return [self.box(receptacle)]

    def fit(self, oid: str, receptacle: str) -> tuple[np.ndarray, np.ndarray] | None:
        """(min corner, AABB size) for ``oid`` resting on/in ``receptacle``; None when it does not fit.

        THOR's rules, on boxes: in a container (``INSIDE_TYPES``) the object's footprint must fit, and
        in one that closes (``FULLY_INSIDE_TYPES``, THOR's all-8-corners receptacles) its height too;
        orientations are tried in THOR's order (:meth:`orientations`), so a pen stands up in a mug and
        a cloth lies flat in a drawer. On a surface only the resting height matters. It rests on the
        bottom of a container, except in a tall one (a fridge), where it goes on the shelf nearest
        ``_SHELF_HEIGHT`` above the floor. The spot is the free-most of a 5×5 grid over each surface
        (farthest from what is already there, ties broken by the seeded generator), so placement is
        deterministic per seed.
        """
        rtype = self.objects[receptacle]["objectType"]
        tol = 0.05
        inside = rtype in INSIDE_TYPES
        surfaces = self.surfaces(receptacle)
        size = None
        for candidate in self.orientations(oid):
            if not inside:
                size = candidate
                break
            for rlo, rhi in surfaces:
                rsize = rhi - rlo
                if candidate[0] > rsize[0] + tol or candidate[2] > rsize[2] + tol:
                    continue
                if rtype in FULLY_INSIDE_TYPES and candidate[1] > rsize[1] + tol:
                    continue
                size = candidate
                break
            if size is not None:
                break
        if size is None:
            return None
        others = [self.box(c) for c in self.children(receptacle) if c != oid]
        centres = np.array([(lo + hi)[[0, 2]] / 2.0 for lo, hi in others]).reshape(-1, 2)
        spots: list[tuple[float, float, float, np.ndarray]] = []  # (x, z, y, surface centre)
        for rlo, rhi in surfaces:
            rsize = rhi - rlo
            if inside and (size[0] > rsize[0] + tol or size[2] > rsize[2] + tol):
                continue
            if inside:
                y = rlo[1] + min(0.02, rsize[1] / 4.0)
                if rsize[1] > _TALL_CONTAINER and rtype in FULLY_INSIDE_TYPES:  # a fridge: a shelf at hand height
                    shelf = self.scene.floor_y + _SHELF_HEIGHT
                    y = float(min(max(y, shelf), rhi[1] - size[1] - 0.02))
            else:
                y = rhi[1]
            centre = (rlo + rhi)[[0, 2]] / 2.0
            for x in self._spots(rlo[0], rhi[0], size[0]):
                for z in self._spots(rlo[2], rhi[2], size[2]):
                    spots.append((float(x), float(z), float(y), centre))
        if not spots:
            return None
        jitter = self.rng.random(len(spots)) * 1e-3
        best, best_score = spots[0], -math.inf
        for k, spot in enumerate(spots):
            p = np.array(spot[:2])
            clearance = np.min(np.linalg.norm(centres - p, axis=1)) if len(centres) else 10.0
            score = min(clearance, 10.0) - 0.05 * np.linalg.norm(p - spot[3]) + jitter[k]
            if score > best_score:
                best, best_score = spot, score
        x, z, y, _ = best
        return np.array([x - size[0] / 2.0, y, z - size[2] / 2.0]), np.asarray(size, dtype=float)

    def reshape(self, oid: str, size: np.ndarray) -> None:
        """Give ``oid`` a new AABB size (it was laid down or stood up), keeping its min corner."""
        lo, hi = self.box(oid)
        size = np.asarray(size, dtype=float)
        if np.allclose(hi - lo, size):
            return
        obj = self.objects[oid]
        centre = lo + size / 2.0
        box = aabb_dict(lo, lo + size)
        fields: dict[str, Any] = {"axisAlignedBoundingBox": box,
                                  "position": {"x": float(centre[0]), "y": float(lo[1]), "z": float(centre[2])}}
        if obj.get("objectOrientedBoundingBox"):
            fields["objectOrientedBoundingBox"] = {**obj["objectOrientedBoundingBox"],
                                                   "cornerPoints": box["cornerPoints"]}
        self.objects[oid] = {**obj, **fields}
        self.touch()

    @staticmethod
    def _spots(lo: float, hi: float, size: float) -> np.ndarray:
        a, b = lo + size / 2.0, hi - size / 2.0
        if a >= b:
            return np.array([(lo + hi) / 2.0])
        return np.linspace(a, b, 5)

    def drop_target(self) -> tuple[str | None, float]:
        """The receptacle under the hand (highest surface below it) and its surface height."""
        assert self.held is not None
        lo, hi = self.box(self.held)
        cx, cz = (lo[0] + hi[0]) / 2.0, (lo[2] + hi[2]) / 2.0
        best, best_y = None, self.scene.floor_y
        carried = set(self.descendants(self.held))
        for oid, obj in self.objects.items():
            if oid == self.held or oid in self.hidden or not obj.get("receptacle") or oid in carried:
                continue
            for rlo, rhi in self.surfaces(oid):
                if rlo[0] <= cx <= rhi[0] and rlo[2] <= cz <= rhi[2] and rhi[1] <= lo[1] + 1e-6 and rhi[1] > best_y:
                    if obj["objectType"] in ENCLOSING_TYPES and not obj.get("isOpen"):
                        continue
                    best, best_y = oid, rhi[1]
        if best is None:
            floors = [oid for oid, o in self.objects.items() if o["objectType"] == "Floor"]
            best = floors[0] if floors else None
        return best, best_y

    # ------------------------------------------------------------------------------------- objects
    def add_object(self, obj: dict, parent: str | None) -> None:
        """Add a new object (a slice) with its parent; it gets the next instance id."""
        oid = obj["objectId"]
        self.objects[oid] = obj
        self.parent[oid] = parent
        self.instance_ids[oid] = max(self.instance_ids.values(), default=0) + 1
        self.colors[oid] = type_color(obj["objectType"])
        self._assign_seg_color(oid)

    def remove_object(self, oid: str) -> None:
        """Take an object (and what it carries) out of the scene entirely."""
        for rid in [oid, *self.descendants(oid)]:
            self.objects.pop(rid, None)
            self.parent.pop(rid, None)
            self.hidden.discard(rid)
            if self.held == rid:
                self.held = None
        for cid, pid in list(self.parent.items()):
            if pid not in self.objects:
                self.parent[cid] = None
        self._refresh_containment()
