"""Mutable state of one embedded-simulator scene: objects, containment, agent pose, visibility, snapshots."""

from __future__ import annotations

import copy
import hashlib
import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import numpy as np

from karma_memory.sim.geometry import aabb_dict, aabb_of, camera_axes
from karma_memory.sim.render import BoxSet, type_color
from karma_memory.sim.rules import ENCLOSING_TYPES, INSIDE_TYPES
from karma_memory.sim.scenes import AGENT_Y_OFFSET, CAMERA_Y_OFFSET, WALL_MOUNTED_TYPES, SceneData

try:
    import orjson as _orjson
except ImportError:  # pragma: no cover
    _orjson = None

__all__ = ["World", "Snapshot", "Pose"]


def _deep_copy_one(obj: dict) -> dict:
    if _orjson is not None:
        return _orjson.loads(_orjson.dumps(obj))
    return copy.deepcopy(obj)

# Visibility sampling: corners are pulled this far towards the box centre before testing them.
_SAMPLE_SHRINK = 0.8
_SEGMENT_EPS = 0.02
_SIGNS = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], dtype=float)
_AHEAD = np.array([0.5, 1.0, 1.5])
# Basins set into a counter (the counter slab gets a hole) or inside a frame object (Sink, Bathtub).
_INSET_TYPES = frozenset({"SinkBasin", "BathtubBasin"})
_SLAB_HEIGHT = 0.15
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


def _open_shell(lo: np.ndarray, hi: np.ndarray, with_top: bool) -> list[tuple[np.ndarray, np.ndarray]]:
    """An open container as thin bottom (and top) plates, so what is inside can be seen and reached."""
    t = min(0.03, (hi[1] - lo[1]) / 4.0)
    parts = [(lo.copy(), np.array([hi[0], lo[1] + t, hi[2]]))]
    if with_top:
        parts.append((np.array([lo[0], hi[1] - t, lo[2]]), hi.copy()))
    return parts


def _set_into(blo: np.ndarray, bhi: np.ndarray, slo: np.ndarray, shi: np.ndarray) -> np.ndarray:
    """For each slab (rows of slo, shi): is the basin box (blo, bhi) set into it — footprint inside,
    top just below or level with the slab?"""
    tol = 0.06
    return ((slo[:, 0] - tol <= blo[0]) & (bhi[0] <= shi[:, 0] + tol) & (slo[:, 2] - tol <= blo[2])
            & (bhi[2] <= shi[:, 2] + tol) & (slo[:, 1] - tol <= bhi[1]) & (bhi[1] <= shi[:, 1] + tol))


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


# The held object floats this far ahead of and below the camera.
_HAND_AHEAD, _HAND_BELOW = 0.45, 0.35


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
        return camera_axes(self.yaw, self.horizon)


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
        around a basin (a Sink's box would hide its SinkBasin); and thin slabs (counters) a basin is
        set into, which are cut into strips around the basin's hole so it can be seen from above.
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
            for j in np.flatnonzero(keep & static["enclosing"]):
                if self.objects[j].get("isOpen"):
                    special[int(j)] = _open_shell(lo[j], hi[j], with_top=self.objects[j]["objectType"]
                                                  not in _OPEN_TOP_TYPES)
            slabs = np.flatnonzero(keep & (size[:, 1] < _SLAB_HEIGHT))
            for i in basins:
                for j in slabs[_set_into(lo[i], hi[i], lo[slabs], hi[slabs]) & (slabs != i)]:
                    parts = special.get(int(j), [(lo[j].copy(), hi[j].copy())])
                    special[int(j)] = [q for part in parts for q in _cut_hole(part, lo[i], hi[i])]
            normal = keep.copy()
            normal[list(special)] = False
            idx = np.flatnonzero(normal)
            extra = [(j, plo, phi) for j, parts in special.items() for plo, phi in parts]
            owner = np.concatenate([idx, np.array([e[0] for e in extra], dtype=int)]).astype(int)
            piece_lo = np.vstack([lo[idx], np.array([e[1] for e in extra]).reshape(-1, 3)])
            piece_hi = np.vstack([hi[idx], np.array([e[2] for e in extra]).reshape(-1, 3)])
            self._arrays.update(lo=lo, hi=hi, present=~gone, piece_lo=piece_lo, piece_hi=piece_hi,
                                piece_owner=owner, piece_occludes=~static["wall"][owner])
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
            "wall": np.array([t in WALL_MOUNTED_TYPES for t in types], dtype=bool),
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
        """objectId -> visible, THOR-style: in the view frustum, within ``max_distance`` of the camera
        (nearest point of the box), not inside a closed receptacle and not occluded by other boxes.

        Args:
            only: restrict the test to these ids (the others are reported False).
        """
        arrays = self._boxes()
        lo, hi = arrays["lo"], arrays["hi"]
        cam = pose.camera
        axes = pose.axes()
        out = dict.fromkeys(self.index, False)
        carried = self.carried()
        for i in carried:  # the held object, and what is on/in it, are in front of the camera
            out[self.objects[i]["objectId"]] = True
        limit2 = max_distance * max_distance
        cand = arrays["present"] & (_box_dist2(cam, lo, hi) <= limit2)
        if only is not None:
            mask = np.zeros(len(self.objects), dtype=bool)
            mask[[self.index[oid] for oid in only if oid in self.index]] = True
            cand &= mask
        cand[carried] = False
        idx = np.flatnonzero(cand)
        if len(idx) == 0:
            return out

        ahead = cam + axes[:, 2][None, :] * _AHEAD[:, None]  # (3, 3): the part of a big box straight ahead
        pts = np.concatenate([self.samples()[idx],
                              np.minimum(np.maximum(ahead[None, :, :], lo[idx, None, :]), hi[idx, None, :])],
                             axis=1)  # (K, S, 3)
        rel = pts - cam
        cx, cy, cz = rel @ axes[:, 0], rel @ axes[:, 1], rel @ axes[:, 2]  # optical frame
        tan_v = math.tan(math.radians(vertical_fov) / 2.0)
        in_view = ((cz > 0.01) & (np.abs(cx) <= tan_v * aspect * cz) & (np.abs(cy) <= tan_v * cz)
                   & (rel[..., 0] ** 2 + rel[..., 1] ** 2 + rel[..., 2] ** 2 <= limit2 + 1e-9))
        k_idx, s_idx = np.nonzero(in_view)
        if len(k_idx) == 0:
            return out
        # occluders: pieces that can cut a segment shorter than max_distance, not containing the camera
        plo, phi = arrays["piece_lo"], arrays["piece_hi"]
        pd2 = _box_dist2(cam, plo, phi)
        occludes = arrays["piece_occludes"] & (pd2 <= limit2) & (pd2 > 0.0)
        if carried:
            occludes &= ~np.isin(arrays["piece_owner"], carried)
        occ = np.flatnonzero(occludes)
        seen = np.zeros(len(idx), dtype=bool)
        if len(occ) == 0:
            seen[k_idx] = True
        else:
            seg = rel[k_idx, s_idx]  # (R, 3)
            seg[seg == 0.0] = 1e-12
            inv = 1.0 / seg
            olo, ohi = plo[occ] - cam, phi[occ] - cam
            tnear = tfar = None
            for a in range(3):  # slab test per axis on (R, M) planes
                t1 = inv[:, a, None] * olo[None, :, a]
                t2 = inv[:, a, None] * ohi[None, :, a]
                near, far = np.minimum(t1, t2), np.maximum(t1, t2)
                tnear = near if tnear is None else np.maximum(tnear, near)
                tfar = far if tfar is None else np.minimum(tfar, far)
            blocks = (tnear <= tfar) & (tfar > _SEGMENT_EPS) & (tnear < 1.0 - _SEGMENT_EPS)
            # an object never occludes itself, what holds it, or what it holds
            blocks &= ~self.related()[idx[k_idx]][:, arrays["piece_owner"][occ]]
            seen[k_idx[~blocks.any(axis=1)]] = True
        for i in idx[seen]:
            out[self.objects[i]["objectId"]] = True
        return out

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
        """The immediate receptacle: of THOR's listed parents, the smallest box (a plate beats the counter)."""
        parents = [p for p in (obj.get("parentReceptacles") or ()) if p in self.objects]
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
                containment_version=self.containment_version, cache=self.cache)
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
        """Min corner for ``oid`` resting on/in ``receptacle``; None when it does not fit.

        The spot is the free-most of a 5×5 grid over the receptacle's footprint (farthest from what is
        already there, ties broken by the seeded generator), so placement is deterministic per seed.
        """
        olo, ohi = self.box(oid)
        size = ohi - olo
        rlo, rhi = self.box(receptacle)
        rsize = rhi - rlo
        rtype = self.objects[receptacle]["objectType"]
        tol = 0.05
        inside = rtype in INSIDE_TYPES
        if inside:  # containers: it must fit in the footprint (either way round), and in height if closable
            flat_o, flat_r = sorted(size[[0, 2]]), sorted(rsize[[0, 2]])
            if flat_o[0] > flat_r[0] + tol or flat_o[1] > flat_r[1] + tol:
                return None
            if rtype in ENCLOSING_TYPES and size[1] > rsize[1] + tol:
                return None
        y = rlo[1] + min(0.02, rsize[1] / 4.0) if inside else rhi[1]
        xs = self._spots(rlo[0], rhi[0], size[0])
        zs = self._spots(rlo[2], rhi[2], size[2])
        others = [self.box(c) for c in self.children(receptacle) if c != oid]
        centres = np.array([(lo + hi)[[0, 2]] / 2.0 for lo, hi in others]).reshape(-1, 2)
        rcentre = (rlo + rhi)[[0, 2]] / 2.0
        best, best_score = None, -math.inf
        jitter = self.rng.random(len(xs) * len(zs)) * 1e-3
        k = 0
        for x in xs:
            for z in zs:
                p = np.array([x, z])
                clearance = np.min(np.linalg.norm(centres - p, axis=1)) if len(centres) else 10.0
                score = min(clearance, 10.0) - 0.05 * np.linalg.norm(p - rcentre) + jitter[k]
                k += 1
                if score > best_score:
                    best, best_score = p, score
        assert best is not None
        return np.array([best[0] - size[0] / 2.0, y, best[1] - size[2] / 2.0])

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
            rlo, rhi = self.box(oid)
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
