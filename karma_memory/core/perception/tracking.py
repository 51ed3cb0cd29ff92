"""Per-frame detections, persistent tracks with fused point clouds, and detection-to-track association."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from karma_memory.core.perception.config import PerceptionConfig
from karma_memory.core.perception.geometry import Box, dilated_keys, merge_voxelized, oriented_box, voxel_keys
from karma_memory.core.perception.sizes import fits_size_prior

__all__ = [
    "Detection", "Track", "associate", "coarse_overlap", "distance_gate", "overlap_cell", "pair_overlap", "HAVE_SCIPY",
]

try:  # optional: optimal assignment
    from scipy.optimize import linear_sum_assignment as _lsa

    HAVE_SCIPY = True
except ImportError:  # pragma: no cover - scipy ships with open3d's dependencies here
    _lsa = None
    HAVE_SCIPY = False

_NO_MATCH = 1e6


def _cached_cells(cache: dict[tuple[float, bool], np.ndarray], points: np.ndarray, cell: float,
                  dilate: bool) -> np.ndarray:
    """Sorted keys of the grid cells (side ``cell``) ``points`` occupy, optionally dilated by one cell."""
    key = (cell, dilate)
    if key not in cache:
        own = cache.get((cell, False))
        if own is None:
            own = cache[(cell, False)] = np.unique(voxel_keys(points, cell))
        if dilate:
            cache[key] = dilated_keys(own)
    return cache[key]


@dataclass
class Detection:
    """One object segmented in one frame, as cleaned world points.

    Attributes:
        instance_ids: mask ids merged into this detection (several when they share one object_id).
        object_type: THOR type of the label.
        object_id: THOR objectId when the label carries one.
        points: cleaned N×3 world points.
        box: their axis-aligned box.
        pixels: mask pixels with valid depth.
        score: label confidence.
        spacing: voxel side the points were downsampled with (coarser for big surfaces).
        obb: open3d (PCA) OrientedBoundingBox of the points when ``fit_oriented_boxes`` is on, else None.
    """

    instance_ids: tuple[int, ...]
    object_type: str
    object_id: str | None
    points: np.ndarray
    box: Box
    pixels: int
    score: float = 1.0
    spacing: float = 0.0
    obb: object = field(default=None, repr=False)
    _cells: dict[tuple[float, bool], np.ndarray] = field(default_factory=dict, repr=False)

    def cells(self, cell: float, dilate: bool = False) -> np.ndarray:
        """Sorted keys of the grid cells (side ``cell``) the points occupy, optionally with their neighbours."""
        return _cached_cells(self._cells, self.points, cell, dilate)


@dataclass
class Track:
    """A persistent object: the union of its observed points on a voxel grid, plus bookkeeping.

    The box is the extent of every point ever observed (since the last move), so a second partial view
    grows it instead of averaging two partial boxes.

    Attributes:
        track_id: the THOR objectId when the source labels one, else ``"<Type>|track-<n>"``.
        object_type: THOR type.
        labelled: whether ``track_id`` is the source's own id (then association is by id).
        points: fused N×3 world points, one per voxel.
        keys: their sorted voxel keys.
        voxel: current fusion voxel side (grows when the cloud is coarsened).
        movable: pickupable type.
        states: last known states (empty: unknown).
        first_stamp, last_stamp: first and last time detected.
        views: frames that detected it since it was created or last moved.
        misses: consecutive views that should have seen it but did not.
        spacing: coarsest point spacing among the detections fused (overlap tests use cells this big).
        trim: share of points ignored at each end of every axis when boxing (robust extent).
        min_hits: once the track has more views than this, only voxels seen in at least this many views
            make its box (noise scatters into voxels seen once; real surfaces are seen again).
        hits: per fused point, the number of views whose points fell in its voxel.
        merged_into: set when this track was found to duplicate another and folded into it.
    """

    track_id: str
    object_type: str
    labelled: bool
    points: np.ndarray
    keys: np.ndarray
    voxel: float
    movable: bool
    states: tuple[str, ...] = ()
    first_stamp: float = 0.0
    last_stamp: float = 0.0
    views: int = 1
    misses: int = 0
    spacing: float = 0.0
    trim: float = 0.0
    min_hits: int = 1
    hits: np.ndarray | None = None
    merged_into: str | None = None
    _box: Box | None = field(default=None, repr=False)
    _cells: dict[tuple[float, bool], np.ndarray] = field(default_factory=dict, repr=False)
    _obb: object = field(default=None, repr=False)

    @classmethod
    def start(cls, track_id: str, det: Detection, config: PerceptionConfig, stamp: float) -> Track:
        """A new track seeded from one detection."""
        keys = voxel_keys(det.points, config.fusion_voxel_size)
        keys, first = np.unique(keys, return_index=True)
        return cls(track_id=track_id, object_type=det.object_type, labelled=det.object_id is not None,
                   points=det.points[first], keys=keys, voxel=config.fusion_voxel_size,
                   movable=det.object_type in config.movable_types, first_stamp=stamp, last_stamp=stamp,
                   spacing=det.spacing, trim=config.box_trim, min_hits=config.box_min_hits,
                   hits=np.ones(len(keys), dtype=np.int64))

    @property
    def box(self) -> Box:
        """Axis-aligned box of the fused points (their ``trim`` and 1 - ``trim`` quantiles per axis), from
        the voxels seen at least ``min_hits`` times once the track has more views than that."""
        if self._box is None:
            pts = self.points
            if self.min_hits > 1 and self.views > self.min_hits and self.hits is not None:
                solid = pts[self.hits >= self.min_hits]
                if len(solid) >= max(10, len(pts) // 4):
                    pts = solid
            self._box = Box.of_points(pts, self.trim)
        return self._box

    @property
    def obb(self) -> object:
        """open3d's minimal OrientedBoundingBox of the fused points (None when degenerate), on demand."""
        if self._obb is None:
            self._obb = oriented_box(self.points, minimal=True)
        return self._obb

    def position(self, mode: str = "box_center") -> np.ndarray:
        """Fused centre: of the box (default) or the mean of the fused points."""
        return self.box.center if mode == "box_center" else self.points.mean(axis=0)

    def cells(self, cell: float, dilate: bool = False) -> np.ndarray:
        """Sorted keys of the grid cells (side ``cell``) the fused cloud occupies, optionally dilated by one."""
        return _cached_cells(self._cells, self.points, cell, dilate)

    @property
    def diagonal(self) -> float:
        """Length of the fused box's diagonal (the object's scale)."""
        return float(np.linalg.norm(self.box.size))

    def fuse(self, det: Detection, config: PerceptionConfig, stamp: float) -> None:
        """Add a detection's points to the union (coarsening the grid when over ``max_track_points``)."""
        old_box = self._box
        self.points, self.keys, self.hits = merge_voxelized(self.points, self.keys, det.points, self.voxel,
                                                            self.hits)
        self.spacing = max(self.spacing, det.spacing)
        while len(self.points) > config.max_track_points:
            self.voxel *= 2.0
            keys, first, inverse = np.unique(voxel_keys(self.points, self.voxel), return_index=True,
                                             return_inverse=True)
            hits = np.bincount(inverse.ravel(), weights=self._hits(), minlength=len(keys)).astype(np.int64)
            self.points, self.keys, self.hits = self.points[first], keys, hits
        self._touch(stamp)
        if old_box is not None and self.trim <= 0.0 and self.min_hits <= 1:  # exact extents: the union box
            self._box = Box(np.minimum(old_box.lo, det.box.lo), np.maximum(old_box.hi, det.box.hi))

    def _hits(self) -> np.ndarray:
        return self.hits if self.hits is not None else np.ones(len(self.points), dtype=np.int64)

    def restart(self, det: Detection, config: PerceptionConfig, stamp: float) -> None:
        """Forget the old cloud (the object moved) and start again from ``det``."""
        fresh = Track.start(self.track_id, det, config, stamp)
        self.points, self.keys, self.voxel, self.spacing = fresh.points, fresh.keys, fresh.voxel, fresh.spacing
        self.hits = fresh.hits
        self.views = 0  # a new life: _touch counts this view
        self._touch(stamp)

    def absorb(self, other: Track) -> None:
        """Merge a duplicate track's cloud into this one."""
        self.points, self.keys, self.hits = merge_voxelized(self.points, self.keys, other.points, self.voxel,
                                                            self._hits(), other._hits())
        self.spacing = max(self.spacing, other.spacing)
        self.views += other.views
        self.first_stamp = min(self.first_stamp, other.first_stamp)
        self._box, self._obb, self._cells = None, None, {}

    def _touch(self, stamp: float) -> None:
        self.views += 1
        self.misses = 0
        self.last_stamp = stamp
        self._box, self._obb, self._cells = None, None, {}


def overlap_cell(det: Detection, track: Track, config: PerceptionConfig) -> float:
    """Grid side for overlap tests of a pair: no finer than either cloud's point spacing, so the sparse
    samples of a big surface still fall into neighbouring cells."""
    return max(config.association_cell, det.spacing, track.spacing)


def pair_overlap(det: Detection, track: Track, config: PerceptionConfig) -> float:
    """How much a detection and a track cover each other: the larger of the share of the detection's cells
    near the track (a partial view of a known object) and the share of the track's cells near the detection
    (a wide view of an object known only from a fragment)."""
    cell = overlap_cell(det, track, config)
    own = coarse_overlap(det.cells(cell), track.cells(cell, dilate=True))
    if own >= 0.999:
        return own
    return max(own, coarse_overlap(track.cells(cell), det.cells(cell, dilate=True)))


def coarse_overlap(det_keys: np.ndarray, track_keys: np.ndarray) -> float:
    """Share of ``det_keys`` found in the sorted ``track_keys`` (0..1)."""
    if len(det_keys) == 0 or len(track_keys) == 0:
        return 0.0
    pos = np.searchsorted(track_keys, det_keys)
    pos = np.minimum(pos, len(track_keys) - 1)
    return float(np.mean(track_keys[pos] == det_keys))


def distance_gate(track: Track, config: PerceptionConfig) -> float:
    """Centre distance a detection of ``track`` may show: partial views shift the centre with object size."""
    return max(config.association_distance, config.association_distance_ratio * track.diagonal)


def _pair_cost(det: Detection, track: Track, config: PerceptionConfig) -> float:
    """Association cost of a same-type pair, or _NO_MATCH when the gates reject it."""
    box = track.box
    gap = det.box.gap(box)
    if gap <= config.association_gap:
        dist = float(np.linalg.norm(det.box.center - box.center))
        gate = distance_gate(track, config)
        overlap = pair_overlap(det, track, config)
        if overlap >= config.min_overlap or dist <= gate:
            return (1.0 - overlap) + dist / gate
    if config.size_prior_slack > 0 and gap <= config.size_prior_gap:
        # faces of one box seen from different sides (or parts split by an occluder) share no surface
        union = np.maximum(det.box.hi, box.hi) - np.minimum(det.box.lo, box.lo)
        if fits_size_prior(union, det.object_type, config.size_prior_slack):
            return 2.0 + gap / max(config.size_prior_gap, 1e-6)
    return _NO_MATCH


def associate(detections: Sequence[Detection], tracks: Sequence[Track], config: PerceptionConfig) -> list[int | None]:
    """Match unlabelled detections to tracks of the same type; returns a track index (or None) per detection.

    Gates: the two boxes are at most ``association_gap`` apart, and either the clouds overlap (a
    ``min_overlap`` share of the detection's grid cells lies within one cell of the track's cloud, or of
    the track's cells within one cell of the detection's: see pair_overlap) or the centres are within
    the distance gate (``association_distance``, or ``association_distance_ratio`` times the track's box
    diagonal if larger); cost = (1 - overlap) + distance / gate. Failing that, a pair at most
    ``size_prior_gap`` apart whose union box still fits the type's size prior (sizes.py; two faces of
    one table seen from opposite sides) is a weaker candidate, cost 2 + gap / size_prior_gap. The pairs
    are assigned one-to-one by the Hungarian method (scipy) or greedily by cost.
    """
    out: list[int | None] = [None] * len(detections)
    if not detections or not tracks:
        return out
    by_type: dict[str, list[int]] = {}
    for j, track in enumerate(tracks):
        by_type.setdefault(track.object_type, []).append(j)
    cost = np.full((len(detections), len(tracks)), _NO_MATCH)
    for i, det in enumerate(detections):
        for j in by_type.get(det.object_type, ()):
            cost[i, j] = _pair_cost(det, tracks[j], config)
    if config.use_hungarian and HAVE_SCIPY:
        rows, cols = _lsa(cost)
        pairs = [(int(r), int(c)) for r, c in zip(rows, cols) if cost[r, c] < _NO_MATCH]
    else:
        order = np.argsort(cost, axis=None)
        used_r: set[int] = set()
        used_c: set[int] = set()
        pairs = []
        for flat in order.tolist():
            r, c = divmod(flat, len(tracks))
            if cost[r, c] >= _NO_MATCH:
                break
            if r in used_r or c in used_c:
                continue
            used_r.add(r)
            used_c.add(c)
            pairs.append((r, c))
    for r, c in pairs:
        out[r] = c
    return out
