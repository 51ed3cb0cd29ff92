"""Real iTHOR scenes offline: procthor's object-metadata dump plus a reachable grid derived from its geometry."""

from __future__ import annotations

import copy
import functools
import importlib.util
import json
import math
import os
import re
import tempfile
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from karma_memory.core.errors import SimulatorError
from karma_memory.sim.geometry import aabb_of, camera_axes

try:  # orjson parses the 43 MB dump in ~0.4 s instead of ~0.9 s; it ships with chromadb
    import orjson as _orjson
except ImportError:  # pragma: no cover - exercised only without chromadb
    _orjson = None

__all__ = [
    "AGENT_Y_OFFSET",
    "CAMERA_Y_OFFSET",
    "AGENT_RADIUS",
    "ROOM_KINDS",
    "WALL_MOUNTED_TYPES",
    "SceneData",
    "list_scenes",
    "load_scene",
    "room_kind_of",
    "scene_source_path",
    "trilaterate_agent",
    "compute_reachable",
    "surface_parts",
    "default_area_positions",
]

#: THOR's default agent: the agent's position is this far above the floor ...
AGENT_Y_OFFSET = 0.9009995
#: ... and its camera this far above the agent's position (camera 1.576 m above the floor).
CAMERA_Y_OFFSET = 0.675
#: Radius of the agent's footprint used to inflate obstacles, metres.
AGENT_RADIUS = 0.2
#: Extra clearance kept from the estimated room boundary (walls are not in the metadata), metres.
WALL_MARGIN = 0.1
#: An elevated surface blocks the floor only this close to what supports or carries it, metres.
SUPPORT_MARGIN = 0.1
#: Objects whose bottom is higher than this above the floor do not block the agent, metres.
OBSTACLE_MAX_BOTTOM = 1.5

#: (procthor dump key, room kind, first FloorPlan number): the dump's lists are in FloorPlan order.
ROOM_KINDS: tuple[tuple[str, str, int], ...] = (
    ("kitchens", "kitchen", 1),
    ("living_rooms", "living_room", 201),
    ("bedrooms", "bedroom", 301),
    ("bathrooms", "bathroom", 401),
)
_SCENES_PER_KIND = 30

#: Types mounted on walls: never floor obstacles; some have bogus AABBs spanning two walls.
WALL_MOUNTED_TYPES = frozenset({
    "Window", "Curtains", "Painting", "Mirror", "LightSwitch", "Blinds", "Poster", "TowelHolder",
    "HandTowelHolder", "ToiletPaperHanger", "ShowerCurtain", "ShowerHead",
})
#: Furniture that is often L-shaped in iTHOR: its AABB is carved to the parts that carry objects.
_CARVED_TYPES = frozenset({"CounterTop", "Desk"})

_CACHE_VERSION = "v1"
_SCENE_NAME = re.compile(r"^FloorPlan(\d+)$")


@dataclass(frozen=True)
class SceneData:
    """One iTHOR scene as the embedded simulator loads it.

    Attributes:
        name: ``"FloorPlan<N>"``.
        room_kind: ``kitchen``, ``living_room``, ``bedroom`` or ``bathroom``.
        objects: THOR ``event.metadata['objects']`` dicts at scene start. Shared by every caller of
            :func:`load_scene`: treat them as read-only and use :meth:`copy_objects` to mutate.
        reachable: (N, 2) float array of reachable agent positions (x, z) on the grid.
        grid_size: grid step, metres.
        floor_bounds: (xmin, xmax, zmin, zmax) of the estimated room rectangle, metres.
        floor_y: height of the floor, metres.
        ceiling_y: height used for the rendered ceiling, metres.
        agent_start: THOR's default start pose recovered from the dump: ``position`` {x,y,z},
            ``rotation`` (yaw, degrees) and ``horizon`` (degrees, positive = down).
        surface_parts: objectId -> boxes ((lo), (hi)) that replace the AABB of an L-shaped counter
            or desk (see :func:`surface_parts`): what is solid, drawn, occludes and carries objects.
    """

    name: str
    room_kind: str
    objects: tuple[dict, ...]
    reachable: np.ndarray
    grid_size: float = 0.25
    floor_bounds: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    floor_y: float = 0.0
    ceiling_y: float = 2.6
    agent_start: Mapping[str, Any] = field(default_factory=dict)
    surface_parts: Mapping[str, tuple[tuple[tuple[float, float, float], tuple[float, float, float]], ...]] = \
        field(default_factory=dict)

    def copy_objects(self) -> list[dict]:
        """A deep copy of the object dicts, safe to mutate."""
        return copy.deepcopy(list(self.objects))

    @property
    def object_types(self) -> list[str]:
        """Sorted distinct object types of the scene."""
        return sorted({o["objectType"] for o in self.objects})


# ------------------------------------------------------------------------------------------ names


def list_scenes() -> list[str]:
    """The 120 iTHOR scene names: FloorPlan1–30, 201–230, 301–330, 401–430.

    >>> scenes = list_scenes(); len(scenes), scenes[0], scenes[-1]
    (120, 'FloorPlan1', 'FloorPlan430')
    """
    return [f"FloorPlan{base + i}" for _, _, base in ROOM_KINDS for i in range(_SCENES_PER_KIND)]


def _locate(name: str) -> tuple[str, str, int]:
    """(dump key, room kind, index in the dump list) of a scene name; SimulatorError if unknown."""
    match = _SCENE_NAME.match(name) if isinstance(name, str) else None
    if match:
        number = int(match.group(1))
        for key, kind, base in ROOM_KINDS:
            if base <= number < base + _SCENES_PER_KIND:
                return key, kind, number - base
    raise SimulatorError(f"unknown scene {name!r}; expected FloorPlan1-30, 201-230, 301-330 or 401-430")


def room_kind_of(name: str) -> str:
    """Room kind of a scene name.

    >>> room_kind_of("FloorPlan305")
    'bedroom'
    """
    return _locate(name)[1]


# ------------------------------------------------------------------------------------ raw objects


def scene_source_path() -> Path:
    """Path of procthor's ``ai2thor-object-metadata.json`` (found without importing procthor).

    Raises:
        SimulatorError: procthor is not installed.
    """
    spec = importlib.util.find_spec("procthor")  # top-level spec: procthor/__init__ is not executed
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        path = Path(location) / "databases" / "ai2thor-object-metadata.json"
        if path.is_file():
            return path
    raise SimulatorError(
        "iTHOR scene data not found: install it with `pip install --no-deps procthor` "
        "(requirements/scene-data.txt); looked for procthor/databases/ai2thor-object-metadata.json"
    )


def _loads(data: bytes) -> Any:
    return _orjson.loads(data) if _orjson is not None else json.loads(data)


def _dumps(value: Any) -> bytes:
    return _orjson.dumps(value) if _orjson is not None else json.dumps(value).encode()


def _cache_dir(source: Path) -> Path:
    """Per-scene cache directory, keyed by the dump's size and mtime so an upgrade invalidates it."""
    stat = source.stat()
    root = os.environ.get("KARMA_MEMORY_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "karma_memory")
    return Path(root) / "scenes" / f"{_CACHE_VERSION}-{stat.st_size}-{stat.st_mtime_ns}"


_RAW: dict[str, bytes] = {}  # scene name -> JSON bytes of its object list, when the disk cache is unusable


def _split_dump(source: Path, cache: Path) -> None:
    """Parse the whole dump once and store each iTHOR scene's object list (disk cache, else memory)."""
    dump = _loads(source.read_bytes())
    blobs: dict[str, bytes] = {}
    for key, _, base in ROOM_KINDS:
        scenes = dump.get(key)
        if not isinstance(scenes, list) or len(scenes) != _SCENES_PER_KIND:
            raise SimulatorError(f"{source}: expected {_SCENES_PER_KIND} scenes under {key!r}")
        for index, objects in enumerate(scenes):
            blobs[f"FloorPlan{base + index}"] = _dumps(objects)
    try:
        cache.mkdir(parents=True, exist_ok=True)
        for name, blob in blobs.items():
            fd, tmp = tempfile.mkstemp(dir=cache, prefix=f".{name}.")
            with os.fdopen(fd, "wb") as handle:
                handle.write(blob)
            os.replace(tmp, cache / f"{name}.json")
    except OSError:  # read-only home: keep the small per-scene blobs in memory instead
        _RAW.update(blobs)


def _raw_objects(name: str) -> list[dict]:
    """The scene's object list exactly as in procthor's dump."""
    if name in _RAW:
        return _loads(_RAW[name])
    source = scene_source_path()
    cache = _cache_dir(source)
    path = cache / f"{name}.json"
    if not path.is_file():
        _split_dump(source, cache)
        if name in _RAW:
            return _loads(_RAW[name])
    return _loads(path.read_bytes())


# ------------------------------------------------------------------------------------------ geometry


def trilaterate_agent(objects: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """The agent position at which the dump was taken, from every object's ``distance``.

    THOR's ``distance`` is |agent position − object position|, so with dozens of objects the linear
    least-squares solution is exact (residual ~1e-6 m on all 120 scenes).

    Raises:
        SimulatorError: fewer than four objects, or no consistent solution.
    """
    pts = np.array([[o["position"]["x"], o["position"]["y"], o["position"]["z"]] for o in objects], dtype=float)
    dist = np.array([o.get("distance", np.nan) for o in objects], dtype=float)
    ok = np.isfinite(dist)
    pts, dist = pts[ok], dist[ok]
    if len(pts) < 4:
        raise SimulatorError(f"cannot locate the agent from {len(pts)} object distances")
    a = 2.0 * (pts[1:] - pts[0])
    b = (pts[1:] ** 2).sum(1) - (pts[0] ** 2).sum() - dist[1:] ** 2 + dist[0] ** 2
    solution = np.linalg.lstsq(a, b, rcond=None)[0]
    residual = np.abs(np.linalg.norm(pts - solution, axis=1) - dist).max()
    if residual > 0.05:
        raise SimulatorError(f"object distances are inconsistent (residual {residual:.3f} m)")
    return solution


def _start_view(objects: Sequence[Mapping[str, Any]], camera: np.ndarray) -> tuple[float, float]:
    """Yaw and horizon (multiples of 90° / 30°) that best explain the dump's ``visible`` flags."""
    centres = np.array([[o["axisAlignedBoundingBox"]["center"][k] for k in "xyz"] for o in objects], dtype=float)
    visible = np.array([bool(o.get("visible")) for o in objects])
    rel = centres - camera
    near = np.linalg.norm(rel, axis=1) < 1.5
    best = (-math.inf, 0.0, 0.0)
    for yaw in (0.0, 90.0, 180.0, 270.0):
        for horizon in (0.0, 30.0):
            rot = camera_axes(yaw, horizon)
            x, y, z = rel @ rot[:, 0], rel @ rot[:, 1], rel @ rot[:, 2]
            inside = (z > 0.05) & (np.abs(x) < 1.05 * z) & (np.abs(y) < 1.05 * z)
            score = (inside & visible).sum() - 0.1 * (inside & ~visible & near).sum()
            if score > best[0]:
                best = (score, yaw, horizon)
    return best[1], best[2]


def _has_floor_parent(obj: Mapping[str, Any]) -> bool:
    return any(p.startswith("Floor|") for p in obj.get("parentReceptacles") or ())


def _room_rect(objects: Sequence[Mapping[str, Any]]) -> tuple[float, float, float, float]:
    """Room rectangle: the Floor object's extent clipped to the extent of everything in the room."""
    boxes = [aabb_of(o) for o in objects if o["objectType"] != "Floor"]
    lo = np.min([b[0] for b in boxes], axis=0)
    hi = np.max([b[1] for b in boxes], axis=0)
    floors = [aabb_of(o) for o in objects if o["objectType"] == "Floor"]
    if floors:
        lo = np.maximum(lo, np.min([f[0] for f in floors], axis=0))
        hi = np.minimum(hi, np.max([f[1] for f in floors], axis=0))
    return float(lo[0]), float(hi[0]), float(lo[2]), float(hi[2])


def compute_reachable(objects: Sequence[Mapping[str, Any]], start_xz: tuple[float, float], floor_y: float,
                      grid_size: float = 0.25, radius: float = AGENT_RADIUS,
                      bounds: tuple[float, float, float, float] | None = None) -> np.ndarray:
    """Reachable agent positions (x, z) on a grid, from object geometry alone.

    The floor is the room rectangle (see :func:`_room_rect`) shrunk by the agent radius and a wall
    margin. Obstacles are objects reaching below ``OBSTACLE_MAX_BOTTOM`` (except wall-mounted ones and
    small objects resting on furniture), inflated by ``radius``. Elevated surfaces and L-prone
    furniture (counters, desks) block only near the cabinets under them and the objects on them,
    since their AABB also covers the empty corner of an L. The component holding the start is kept.

    Returns:
        (N, 2) float array sorted by x then z.
    """
    if grid_size <= 0 or radius < 0:
        raise SimulatorError(f"grid_size must be > 0 and radius >= 0, got {grid_size}, {radius}")
    xmin, xmax, zmin, zmax = bounds or _room_rect(objects)
    g = grid_size
    xs = np.arange(math.floor((xmin - 1.0) / g), math.ceil((xmax + 1.0) / g) + 1) * g
    zs = np.arange(math.floor((zmin - 1.0) / g), math.ceil((zmax + 1.0) / g) + 1) * g
    gx, gz = np.meshgrid(xs, zs, indexing="ij")
    inset = radius + WALL_MARGIN
    free = (gx >= xmin + inset) & (gx <= xmax - inset) & (gz >= zmin + inset) & (gz <= zmax - inset)

    boxes = [(o, *aabb_of(o)) for o in objects if o["objectType"] != "Floor"]
    for obj, lo, hi in boxes:
        if obj["objectType"] in WALL_MOUNTED_TYPES:
            continue
        if lo[1] > floor_y + OBSTACLE_MAX_BOTTOM or hi[1] < floor_y + 0.05:
            continue
        if obj.get("pickupable") and obj.get("parentReceptacles") and not _has_floor_parent(obj):
            continue
        mask = (gx > lo[0] - radius) & (gx < hi[0] + radius) & (gz > lo[2] - radius) & (gz < hi[2] + radius)
        carve = lo[1] > floor_y + 0.3 or (obj["objectType"] in _CARVED_TYPES and obj.get("receptacleObjectIds"))
        if carve:
            support = _support_mask(obj, lo, hi, boxes, gx, gz, radius + SUPPORT_MARGIN)
            if support.any():  # nothing under or on it (a stove top over an oven body): block it all
                mask &= support
        free &= ~mask

    start = (int(round((start_xz[0] - xs[0]) / g)), int(round((start_xz[1] - zs[0]) / g)))
    if not (0 <= start[0] < free.shape[0] and 0 <= start[1] < free.shape[1]):
        raise SimulatorError(f"agent start {start_xz} lies outside the scene grid")
    free[start] = True  # THOR put the agent there, so it is reachable whatever our estimate says
    keep = _component(free, start)
    out = np.column_stack([gx[keep], gz[keep]])
    out = np.round(out / g) * g
    order = np.lexsort((out[:, 1], out[:, 0]))
    return out[order]


def _support_mask(obj: Mapping[str, Any], lo: np.ndarray, hi: np.ndarray, boxes: list, gx: np.ndarray,
                  gz: np.ndarray, margin: float) -> np.ndarray:
    """Cells near the parts of ``obj`` that carry something: cabinets under it, objects on it."""
    oid = obj["objectId"]
    out = np.zeros(gx.shape, dtype=bool)
    for other, lo2, hi2 in boxes:
        if other is obj or lo2[0] >= hi[0] or hi2[0] <= lo[0] or lo2[2] >= hi[2] or hi2[2] <= lo[2]:
            continue
        parents = other.get("parentReceptacles") or ()
        child = oid in parents
        under = hi2[1] <= hi[1] + 0.05 and ((lo2[1] < lo[1] and not parents) or _has_floor_parent(other))
        if not (child or under):
            continue
        cx0, cx1 = max(lo2[0], lo[0]), min(hi2[0], hi[0])
        cz0, cz1 = max(lo2[2], lo[2]), min(hi2[2], hi[2])
        out |= (gx > cx0 - margin) & (gx < cx1 + margin) & (gz > cz0 - margin) & (gz < cz1 + margin)
    return out


def _component(free: np.ndarray, seed: tuple[int, int]) -> np.ndarray:
    """4-connected component of ``free`` containing ``seed`` (breadth-first search)."""
    keep = np.zeros_like(free)
    keep[seed] = True
    queue = deque([seed])
    nx_, nz_ = free.shape
    while queue:
        i, j = queue.popleft()
        for di, dj in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            a, b = i + di, j + dj
            if 0 <= a < nx_ and 0 <= b < nz_ and free[a, b] and not keep[a, b]:
                keep[a, b] = True
                queue.append((a, b))
    return keep


# ------------------------------------------------------------------------------------ L-shaped slabs

#: Raster step used to carve L-shaped counters and desks, metres.
_PART_CELL = 0.05
#: Counters/desks narrower than this in x or z are straight: never carved, metres.
_PART_MIN_SPAN = 1.0
#: A carved slab overhangs what it covers by this much, and fills gaps this wide, metres.
_PART_MARGIN = 0.04
_PART_GAP = 0.15
#: An empty corner is cut away when it spans at least this fraction of both sides of the box ...
_PART_CORNER = 0.35
#: ... and leaves counter at least this deep around it, metres.
_PART_MIN_ARM = 0.4


def _box_filter(mask: np.ndarray, r: int, outside: bool) -> np.ndarray:
    """Count of True cells in the (2r+1)² window around each cell (cells outside count as ``outside``)."""
    padded = np.pad(mask.astype(np.int32), r, constant_values=int(outside))
    c = padded.cumsum(0).cumsum(1)
    c = np.pad(c, ((1, 0), (1, 0)))
    k = 2 * r + 1
    return c[k:, k:] - c[:-k, k:] - c[k:, :-k] + c[:-k, :-k]


def _rectangles(mask: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Cover a boolean raster with rectangles (i0, i1, j0, j1), half-open: runs along j merged across i."""
    out: list[tuple[int, int, int, int]] = []
    open_runs: dict[tuple[int, int], int] = {}
    for i in range(mask.shape[0] + 1):
        runs: set[tuple[int, int]] = set()
        if i < mask.shape[0]:
            row = np.concatenate([[False], mask[i], [False]])
            edges = np.flatnonzero(row[1:] != row[:-1])
            runs = {(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2])}
        for run in list(open_runs):
            if run not in runs:
                out.append((open_runs.pop(run), i, run[0], run[1]))
        for run in runs:
            open_runs.setdefault(run, i)
    return sorted(out)


def _edge_rect(free: np.ndarray) -> tuple[int, int, int]:
    """Largest all-free rectangle touching the raster's j = 0 side: (i0, i1, depth), cells
    [i0, i1) × [0, depth) (largest rectangle under the histogram of free runs from that side)."""
    run = np.argmin(np.concatenate([free, np.zeros((free.shape[0], 1), dtype=bool)], axis=1), axis=1)
    best, area = (0, 0, 0), 0
    stack: list[tuple[int, int]] = []  # (start, height), heights increasing
    for i, h in enumerate([*run.tolist(), 0]):
        start = i
        while stack and stack[-1][1] >= h:
            s0, h0 = stack.pop()
            if h0 * (i - s0) > area:
                best, area = (s0, i, h0), h0 * (i - s0)
            start = s0
        stack.append((start, h))
    return best


def surface_parts(objects: Sequence[Mapping[str, Any]]) -> dict[str, tuple[tuple[tuple[float, float, float],
                                                                                  tuple[float, float, float]], ...]]:
    """The solid parts of L- and U-shaped counters and desks, whose AABB also covers the empty floor
    the L or U wraps around.

    For a counter or desk wider than ``_PART_MIN_SPAN`` both ways, the footprint is rasterised and
    marked where it covers something (cabinets, drawers, a sink or stove set into it: furniture no
    taller than it reaching up to it; ``_PART_MARGIN`` of overhang) or carries something (its
    children), with gaps narrower than ``_PART_GAP`` filled. An empty rectangle reaching in from a
    side of the box, spanning at least ``_PART_CORNER`` of both sides and leaving arms at least
    ``_PART_MIN_ARM`` deep, is the floor an L or U wraps around: it is cut away (up to three times).
    A gap along a whole side is an overhang (stools under an island), not an L. Boxes with no such
    gap (islands, straight counters) stay whole.

    Returns:
        objectId -> boxes ((xmin, ymin, zmin), (xmax, ymax, zmax)), at the slab's full height.
    """
    out: dict[str, tuple[tuple[tuple[float, float, float], tuple[float, float, float]], ...]] = {}
    boxes = [(o, *aabb_of(o)) for o in objects if o["objectType"] != "Floor"]
    for obj, lo, hi in boxes:
        if obj["objectType"] not in _CARVED_TYPES or min(hi[0] - lo[0], hi[2] - lo[2]) <= _PART_MIN_SPAN:
            continue
        oid = obj["objectId"]
        nx_ = max(1, int(math.ceil((hi[0] - lo[0]) / _PART_CELL)))
        nz_ = max(1, int(math.ceil((hi[2] - lo[2]) / _PART_CELL)))
        xs = lo[0] + (np.arange(nx_) + 0.5) * (hi[0] - lo[0]) / nx_
        zs = lo[2] + (np.arange(nz_) + 0.5) * (hi[2] - lo[2]) / nz_
        gx, gz = np.meshgrid(xs, zs, indexing="ij")
        mask = np.zeros(gx.shape, dtype=bool)
        others = [(lo3, hi3) for o3, lo3, hi3 in boxes if o3 is not obj and o3["objectType"] in _CARVED_TYPES]
        for other, lo2, hi2 in boxes:
            if other is obj or other["objectType"] in WALL_MOUNTED_TYPES or other["objectType"] in _CARVED_TYPES:
                continue
            if lo2[0] >= hi[0] or hi2[0] <= lo[0] or lo2[2] >= hi[2] or hi2[2] <= lo[2]:
                continue
            c2 = (lo2 + hi2) / 2.0
            if any(lo3[0] <= c2[0] <= hi3[0] and lo3[2] <= c2[2] <= hi3[2] for lo3, hi3 in others):
                continue  # under or on another counter (an island inside the L's box)
            child = oid in (other.get("parentReceptacles") or ())
            covered = (not other.get("pickupable") and not other.get("moveable")
                       and lo[1] - 0.25 <= hi2[1] <= hi[1] + 0.1 and lo2[1] < hi[1])
            if not (child or covered):
                continue
            m = _PART_MARGIN if covered else 0.0  # a counter overhangs its cabinets a little
            mask |= (gx > lo2[0] - m) & (gx < hi2[0] + m) & (gz > lo2[2] - m) & (gz < hi2[2] + m)
        if not mask.any():
            continue
        r = max(1, int(round(_PART_GAP / _PART_CELL)))
        solid = _box_filter(_box_filter(mask, r, False) > 0, r, True) == (2 * r + 1) ** 2
        keep = np.ones_like(solid)
        for _ in range(3):
            best: tuple[int, np.ndarray] | None = None
            for transpose in (False, True):
                for flip in (False, True):
                    view = ~solid & keep
                    view = view.T if transpose else view
                    view = view[:, ::-1] if flip else view
                    i0, i1, depth = _edge_rect(view)
                    span_i, span_j = (nz_, nx_) if transpose else (nx_, nz_)
                    if (i1 - i0) < _PART_CORNER * span_i or depth < _PART_CORNER * span_j:
                        continue
                    arm = _PART_MIN_ARM / _PART_CELL  # what is left around the cut must be real counter
                    if span_j - depth < arm or 0 < i0 < arm or 0 < span_i - i1 < arm:
                        continue
                    if i0 == 0 and i1 == span_i:  # a strip along a whole side: an overhang (stools), not an L
                        continue
                    cut = np.zeros_like(view)
                    cut[i0:i1, :depth] = True
                    cut = cut[:, ::-1] if flip else cut
                    cut = cut.T if transpose else cut
                    if best is None or (i1 - i0) * depth > best[0]:
                        best = ((i1 - i0) * depth, cut)
            if best is None:
                break
            keep &= ~best[1]
        if keep.all():
            continue
        parts = []
        for i0, i1, j0, j1 in _rectangles(keep):
            x0 = float(lo[0] + i0 * (hi[0] - lo[0]) / nx_)
            x1 = float(lo[0] + i1 * (hi[0] - lo[0]) / nx_)
            z0 = float(lo[2] + j0 * (hi[2] - lo[2]) / nz_)
            z1 = float(lo[2] + j1 * (hi[2] - lo[2]) / nz_)
            parts.append(((x0, float(lo[1]), z0), (x1, float(hi[1]), z1)))
        out[oid] = tuple(parts)
    return out


# -------------------------------------------------------------------------------------------- loading


@functools.lru_cache(maxsize=32)
def _load_cached(name: str, grid_size: float) -> SceneData:
    _, kind, _ = _locate(name)
    objects = _raw_objects(name)
    if not objects:
        raise SimulatorError(f"scene {name!r} has no objects in the dump")
    agent = trilaterate_agent(objects)
    floor_y = float(agent[1] - AGENT_Y_OFFSET)
    camera = agent + np.array([0.0, CAMERA_Y_OFFSET, 0.0])
    yaw, horizon = _start_view(objects, camera)
    bounds = _room_rect(objects)
    reachable = compute_reachable(objects, (float(agent[0]), float(agent[2])), floor_y, grid_size, bounds=bounds)
    tops = [aabb_of(o)[1][1] for o in objects if o["objectType"] not in WALL_MOUNTED_TYPES]
    ceiling = float(min(max(max(tops, default=0.0), floor_y + 2.5), floor_y + 3.5))
    start = {
        "position": {"x": round(float(agent[0]), 4), "y": round(float(agent[1]), 4), "z": round(float(agent[2]), 4)},
        "rotation": yaw,
        "horizon": horizon,
    }
    reachable.setflags(write=False)
    return SceneData(name=name, room_kind=kind, objects=tuple(objects), reachable=reachable, grid_size=grid_size,
                     floor_bounds=bounds, floor_y=floor_y, ceiling_y=ceiling, agent_start=start,
                     surface_parts=surface_parts(objects))


def load_scene(name: str, grid_size: float = 0.25) -> SceneData:
    """Load an iTHOR scene (cached: the first call ever splits procthor's dump into a per-scene cache).

    Args:
        name: ``"FloorPlan<N>"``.
        grid_size: reachable-grid step in metres.

    Raises:
        SimulatorError: unknown scene, or the scene data is not installed.
    """
    if not isinstance(grid_size, (int, float)) or not 0.05 <= grid_size <= 1.0:
        raise SimulatorError(f"grid_size must be within [0.05, 1.0] m, got {grid_size!r}")
    _locate(name)
    return _load_cached(name, float(grid_size))


def default_area_positions(scene: SceneData | str, spacing: float = 1.5) -> dict[str, tuple[float, float]]:
    """Area id → (x, z) centre, tiled exactly as the long-term memory tiles areas (``scene_graph.add_areas``).

    Used by the skill executor when no area map is given, so ``Explore(areas=[...])`` ids agree with
    the ids the memory shows the planner.
    """
    from karma_memory.core import scene_graph as sg

    data = load_scene(scene) if isinstance(scene, str) else scene
    graph = sg.new_scene_graph(data.name)
    sg.add_areas(graph, data.reachable, spacing=spacing, cell=data.grid_size)
    return sg.area_positions(graph)
