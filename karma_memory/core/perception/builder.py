"""SceneGraphBuilder: RGB-D frames with instance masks and a pose in, object observations out."""

from __future__ import annotations

import math
from types import MappingProxyType
from typing import Mapping

import cv2
import numpy as np

from karma_memory.core.errors import UnknownObjectError
from karma_memory.core.perception.config import PerceptionConfig
from karma_memory.core.perception.geometry import (
    Box,
    backproject_pixels,
    clean_points,
    oriented_box,
    transform_points,
)
from karma_memory.core.perception.relations import BoxedObject, RelationIndex
from karma_memory.core.perception.states import MetadataStateEstimator, ObjectInView, StateEstimate, StateEstimator
from karma_memory.core.perception.tracking import Detection, Track, associate, coarse_overlap, overlap_cell
from karma_memory.core.perception.validation import CheckedFrame, validate_frame
from karma_memory.core.perception.visibility import expected_visible
from karma_memory.core.types import CameraFrame, ObjectObservation, ObservationKind, Relation

__all__ = ["SceneGraphBuilder", "extract_detections"]

SOURCE = "perception"


def _edge_mask(instances: np.ndarray, width: int) -> np.ndarray:
    """Pixels within ``width`` of a boundary between two instance ids (mixed depth lives there)."""
    edge = np.zeros(instances.shape, dtype=np.uint8)
    dv = instances[1:, :] != instances[:-1, :]
    dh = instances[:, 1:] != instances[:, :-1]
    edge[1:, :] |= dv
    edge[:-1, :] |= dv
    edge[:, 1:] |= dh
    edge[:, :-1] |= dh
    if width > 1:
        edge = cv2.dilate(edge, np.ones((3, 3), np.uint8), iterations=width - 1)
    return edge.astype(bool)


def extract_detections(frame: CameraFrame, checked: CheckedFrame, config: PerceptionConfig) -> list[Detection]:
    """Back-project every instance mask (vectorised), clean each cloud with open3d and box it (axis-aligned;
    also oriented when ``fit_oriented_boxes``).

    Instances whose labels share an object_id become one detection (a mask split by an occluder).
    Pure: reads the frame, touches no tracker state.
    """
    inst = frame.instances
    use = checked.valid & (inst > 0)
    if config.mask_erosion_px:
        use &= ~_edge_mask(inst, config.mask_erosion_px)
    flat = np.flatnonzero(use)
    if flat.size == 0:
        return []
    width = frame.intrinsics.width
    ids = inst.ravel()[flat]
    order = np.argsort(ids)
    flat, ids = flat[order], ids[order]
    z = frame.depth.ravel()[flat].astype(np.float64)
    u = (flat % width).astype(np.float64)
    v = (flat // width).astype(np.float64)
    world = transform_points(frame.world_from_camera, backproject_pixels(u, v, z, frame.intrinsics))
    footprint = 1.0 / (frame.intrinsics.fx * frame.intrinsics.fy)  # m² per pixel per m² of depth
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    ends = np.r_[starts[1:], len(ids)]
    groups: dict[object, list[tuple[int, int, int]]] = {}
    for s, e in zip(starts.tolist(), ends.tolist()):
        iid = int(ids[s])
        label = frame.labels[iid]
        key = label.object_id if label.object_id is not None else ("instance", iid)
        groups.setdefault(key, []).append((iid, s, e))
    out = []
    for parts in groups.values():
        pixels = sum(e - s for _, s, e in parts)
        if pixels < config.min_instance_pixels:
            continue
        pts = world[parts[0][1]:parts[0][2]] if len(parts) == 1 else \
            np.concatenate([world[s:e] for _, s, e in parts])
        # surface area seen ~ pixels x pixel footprint: pick a voxel that lands near max_instance_points
        zs = z[parts[0][1]:parts[0][2]] if len(parts) == 1 else np.concatenate([z[s:e] for _, s, e in parts])
        area = float(np.dot(zs, zs)) * footprint
        voxel = max(config.voxel_size, math.sqrt(area / config.max_instance_points))
        pts, spacing = clean_points(pts, voxel, config.outlier_neighbors, config.outlier_std_ratio,
                                    config.max_instance_points)
        if len(pts) < config.min_points:
            continue
        label = frame.labels[parts[0][0]]
        out.append(Detection(instance_ids=tuple(p[0] for p in parts), object_type=label.object_type,
                             object_id=label.object_id, points=pts, box=Box.of_points(pts), pixels=pixels,
                             score=min(frame.labels[p[0]].score for p in parts), spacing=spacing,
                             obb=oriented_box(pts) if config.fit_oriented_boxes else None))
    return out


class SceneGraphBuilder:
    """Turns a stream of RGB-D frames into object observations for the memories.

    Per frame: validate (a bad frame raises InvalidFrameError and leaves every track untouched),
    back-project and clean each instance, associate detections with persistent tracks (by THOR objectId
    when labelled, else by type and geometry), fuse their points, estimate states, infer relations, and
    count missed sightings of tracks that should have been visible (REMOVED after ``removal_misses``).

    Args:
        config: settings (defaults suit AI2-THOR frames).
        state_estimator: where states come from; default: THOR metadata in the frame, when present.

    >>> SceneGraphBuilder().tracks
    mappingproxy({})
    """

    def __init__(self, config: PerceptionConfig | None = None,
                 state_estimator: StateEstimator | None = None) -> None:
        self.config = config if config is not None else PerceptionConfig()
        self.state_estimator: StateEstimator | None = (
            state_estimator if state_estimator is not None else MetadataStateEstimator())
        self._tracks: dict[str, Track] = {}
        self._next_number = 1
        self.last_assignment: dict[int, str] = {}
        self.last_state_estimate: StateEstimate | None = None
        self.frames_processed = 0

    @property
    def tracks(self) -> Mapping[str, Track]:
        """Current tracks by id (a read-only view; treat the tracks as read-only too)."""
        return MappingProxyType(self._tracks)

    def reset(self) -> None:
        """Forget every track (new scene or episode)."""
        self._tracks.clear()
        self._next_number = 1
        self.last_assignment = {}
        self.last_state_estimate = None
        self.frames_processed = 0

    # ----------------------------------------------------------------------------------------------- main
    def process(self, frame: CameraFrame, *, estimate_states: bool = True) -> list[ObjectObservation]:
        """Observations from one frame: ADDED/MOVED/STATE_CHANGED/SEEN per detected object, then REMOVED.

        Raises:
            InvalidFrameError: the frame is malformed (raised before any track changes).
        """
        cfg = self.config
        checked = validate_frame(frame, cfg)
        detections = extract_detections(frame, checked, cfg)
        matches = self._match(detections)
        objects = [ObjectInView(tid, d.object_type, d.object_id, tuple(d.box.center.tolist()))
                   for d, tid in zip(detections, matches)]
        estimate = StateEstimate()
        if estimate_states and self.state_estimator is not None and objects:
            estimate = self.state_estimator.estimate(frame, objects)
        # ---- commit: nothing below raises on valid input
        self.last_state_estimate = estimate
        self.frames_processed += 1
        stamp = float(frame.stamp)
        kinds: dict[str, ObservationKind] = {}
        scores: dict[str, float] = {}
        assignment: dict[int, str] = {}
        for det, tid in zip(detections, matches):
            kind = self._apply(det, tid, stamp)
            if kinds.get(tid, ObservationKind.SEEN) == ObservationKind.SEEN:  # two fragments of one singleton
                kinds[tid] = kind
            scores[tid] = det.score
            track = self._tracks[tid]
            new_states = estimate.states.get(tid)
            if new_states is not None and tuple(new_states) != track.states:
                if track.states and kinds[tid] == ObservationKind.SEEN:
                    kinds[tid] = ObservationKind.STATE_CHANGED
                track.states = tuple(new_states)
            for iid in det.instance_ids:
                assignment[iid] = tid
        merged = self._merge_duplicates(detections, matches)
        survivor = {tid: t.merged_into or tid for tid, t in merged.items()}
        for _ in range(len(survivor)):  # chains a -> b -> c
            survivor = {a: survivor.get(b, b) for a, b in survivor.items()}
        for drop_id, keep_id in survivor.items():
            if drop_id in kinds and keep_id not in kinds:
                kinds[keep_id], scores[keep_id] = ObservationKind.SEEN, scores[drop_id]
        removed = [self._observation(t, ObservationKind.REMOVED, stamp, 1.0, None)
                   for t in merged.values() if kinds.get(t.track_id) != ObservationKind.ADDED]
        removed += self._removals(frame, checked, set(kinds), stamp)
        index = RelationIndex([BoxedObject(t.track_id, t.object_type, t.box) for t in self._tracks.values()], cfg)
        out = [self._observation(self._tracks[tid], kind, stamp, scores[tid], index)
               for tid, kind in kinds.items() if tid in self._tracks]
        self.last_assignment = {iid: survivor.get(tid, tid) for iid, tid in assignment.items()}
        return out + removed

    # ------------------------------------------------------------------------------------------ helpers
    def _match(self, detections: list[Detection]) -> list[str]:
        """Track id per detection: existing ids where matched, fresh ids otherwise (nothing is mutated).

        Fresh ids are numbered from ``_next_number`` in detection order; ``_apply`` consumes them in the
        same order.
        """
        out: list[str | None] = [det.object_id for det in detections]
        singles = self.config.singleton_types
        for i, det in enumerate(detections):
            if det.object_id is None and det.object_type in singles:
                out[i] = next((t.track_id for t in self._tracks.values() if t.object_type == det.object_type), None)
        free = [i for i, det in enumerate(detections) if out[i] is None and det.object_type not in singles]
        if free:
            taken = {tid for tid in out if tid is not None}
            candidates = [t for t in self._tracks.values() if t.track_id not in taken]
            picks = associate([detections[i] for i in free], candidates, self.config)
            for i, pick in zip(free, picks):
                if pick is not None:
                    out[i] = candidates[pick].track_id
        number = self._next_number
        result = []
        fresh_single: dict[str, str] = {}
        for det, tid in zip(detections, out):
            if tid is None:
                if det.object_type in fresh_single:
                    tid = fresh_single[det.object_type]
                else:
                    tid = f"{det.object_type}|track-{number}"
                    number += 1
                    if det.object_type in singles:
                        fresh_single[det.object_type] = tid
            result.append(tid)
        return result

    def _apply(self, det: Detection, tid: str, stamp: float) -> ObservationKind:
        """Create or update the track of one detection; returns ADDED, MOVED or SEEN."""
        cfg = self.config
        track = self._tracks.get(tid)
        if track is None:
            if det.object_id is None:
                self._next_number += 1
            self._tracks[tid] = Track.start(tid, det, cfg, stamp)
            return ObservationKind.ADDED
        track.object_type = det.object_type
        if track.labelled and track.movable and self._moved(det, track):
            track.restart(det, cfg, stamp)
            return ObservationKind.MOVED
        track.fuse(det, cfg, stamp)
        return ObservationKind.SEEN

    def _moved(self, det: Detection, track: Track) -> bool:
        """A labelled movable object is somewhere else: far from its box and not overlapping its cloud."""
        cfg = self.config
        if float(np.linalg.norm(det.box.center - track.box.center)) <= cfg.move_threshold:
            return False
        cell = overlap_cell(det, track, cfg)
        return coarse_overlap(det.cells(cell), track.cells(cell, dilate=True)) < cfg.min_overlap

    def _merge_duplicates(self, detections: list[Detection], matches: list[str]) -> dict[str, Track]:
        """Fold unlabelled tracks that a detection shows to be part of another track's object.

        A duplicate arises when two partial views of one object did not overlap enough to associate. When
        a later detection, assigned to track T, re-observes at least ``merge_overlap`` of the cells of
        another unlabelled track O of the same type that no detection claimed this frame, O is T's object:
        the older of the two survives with the union of both clouds. Adjacent same-type objects (cabinet
        doors) share only a border strip, far below that share.

        Returns:
            {absorbed id: the absorbed track} (its ``merged_into`` names the survivor).
        """
        cfg = self.config
        claimed = set(matches)
        merged: dict[str, Track] = {}
        for det, tid in zip(detections, matches):
            if det.object_id is not None:
                continue
            while tid in merged:
                tid = merged[tid].merged_into or tid
            track = self._tracks.get(tid)
            if track is None:
                continue
            for other in [t for t in self._tracks.values() if t.object_type == det.object_type]:
                if other is track or other.labelled or other.track_id in claimed:
                    continue
                if det.box.gap(other.box) > cfg.association_gap:
                    continue
                cell = overlap_cell(det, other, cfg)
                if coarse_overlap(other.cells(cell), det.cells(cell, dilate=True)) < cfg.merge_overlap:
                    continue
                keep, drop = (track, other) if track.first_stamp <= other.first_stamp else (other, track)
                keep.absorb(drop)
                del self._tracks[drop.track_id]
                drop.merged_into = keep.track_id
                merged[drop.track_id] = drop
                track = keep
        return merged

    def _removals(self, frame: CameraFrame, checked: CheckedFrame, seen: set[str],
                  stamp: float) -> list[ObjectObservation]:
        """Count a miss for every unseen track the view should have shown; REMOVED at ``removal_misses``."""
        cfg = self.config
        camera_from_world = np.linalg.inv(frame.world_from_camera)
        unseen = [t for tid, t in self._tracks.items() if tid not in seen]
        if not unseen:
            return []
        # cheap prefilter on box centres: in front of the camera and within range (with the box radius)
        centres = np.array([t.box.center for t in unseen])
        radii = np.array([t.diagonal / 2.0 for t in unseen])
        z = transform_points(camera_from_world, centres)[:, 2]
        near = (z + radii > cfg.min_depth) & (z - radii <= cfg.removal_max_range)
        out = []
        for track in (t for t, ok in zip(unseen, near.tolist()) if ok):
            if not expected_visible(track.points, camera_from_world, frame.intrinsics, frame.depth,
                                    checked.valid, cfg):
                continue
            track.misses += 1
            if track.misses >= cfg.removal_misses:
                out.append(self._observation(track, ObservationKind.REMOVED, stamp, 1.0, None))
                del self._tracks[track.track_id]
        return out

    def _observation(self, track: Track, kind: ObservationKind, stamp: float, confidence: float,
                     index: RelationIndex | None) -> ObjectObservation:
        """The record memory gets for a track; movable objects carry relations when ``index`` is given."""
        cfg = self.config
        relations: tuple[Relation, ...] = ()
        if track.movable and index is not None:
            relations = index.relations(BoxedObject(track.track_id, track.object_type, track.box))
        return ObjectObservation(
            object_id=track.track_id, object_type=track.object_type,
            position=tuple(track.position(cfg.position_mode).tolist()), kind=kind,
            size=tuple(track.box.size.tolist()), states=track.states, relations=relations,
            movable=track.movable, stamp=stamp, source=SOURCE, confidence=confidence)

    def relations_of(self, track_id: str) -> tuple[Relation, ...]:
        """Current relations of a track from the fused boxes of all tracks (any type, movable or not).

        Raises:
            UnknownObjectError: no track has this id.
        """
        track = self._tracks.get(track_id)
        if track is None:
            raise UnknownObjectError(f"no perception track {track_id!r}")
        index = RelationIndex([BoxedObject(t.track_id, t.object_type, t.box) for t in self._tracks.values()],
                              self.config)
        return index.relations(BoxedObject(track.track_id, track.object_type, track.box))

