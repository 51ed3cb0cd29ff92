"""Spatial relations (on / inside / near) of a movable object, inferred from fused axis-aligned boxes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from karma_memory.core.perception.config import PerceptionConfig
from karma_memory.core.perception.geometry import Box
from karma_memory.core.types import Relation

__all__ = ["BoxedObject", "RelationIndex", "support_of", "infer_relations"]


@dataclass(frozen=True)
class BoxedObject:
    """The little relation inference needs to know about an object: id, type and box."""

    object_id: str
    object_type: str
    box: Box


class RelationIndex:
    """Boxes of every object in the scene stacked into arrays, so each subject's relations are vectorised.

    Support (one ``on``/``inside`` relation) — candidates are receptacle types other than the subject:

    - ``on``: the subject's bottom lies within [-on_max_penetration, +on_max_gap] of the receptacle's top
      and their x-z footprints overlap by at least ``on_min_footprint_overlap`` of the smaller one (a
      burner mostly hidden under a pot still counts). Of several, the one with the highest top wins (a
      plate on a counter beats the counter, the counter beats the cabinet under it); among tops within
      5 mm of the highest, the one sharing the most footprint (a pot over two burners).
    - ``inside``: a container type (fridge, cabinet, bowl, ...) whose box (grown by ``inside_margin``)
      holds the subject's centroid, or holds the subject's bottom with the centroid's footprint inside it
      (an apple poking out of a bowl).
    - ``on`` (resting within): a non-container receptacle larger than the subject whose box holds its
      centroid, e.g. a pillow on a sofa whose box includes the backrest.
    - ``on`` (hanging): a hanger type (towel holder) whose box touches the subject's.
    - fallback, only when nothing else qualifies: the highest receptacle under the subject's footprint
      at most ``support_search_depth`` below its bottom (the bottom was occluded in every view; objects
      at rest do not float).

    The smallest receptacle (by box volume) among the best ``on`` candidate and all enclosing candidates is
    the support: an apple on a plate in a fridge is on the plate. Resting at the rim of an open-top
    container (bowl, pot, sink) with most of the footprint over it counts as ``inside``.

    ``near``: up to ``max_near`` other objects whose boxes are within ``near_radius`` of the subject's box
    (gap between boxes, so big furniture next to a small object counts), excluding the support.
    """

    def __init__(self, objects: Sequence[BoxedObject], config: PerceptionConfig) -> None:
        self.config = config
        self.objects = list(objects)
        n = len(self.objects)
        self.ids = [o.object_id for o in self.objects]
        self._id_array = np.array(self.ids, dtype=object)
        self.lo = np.array([o.box.lo for o in self.objects], dtype=float).reshape(n, 3)
        self.hi = np.array([o.box.hi for o in self.objects], dtype=float).reshape(n, 3)
        self.volume = np.prod(np.maximum(self.hi - self.lo, 1e-3), axis=1)
        self.receptacle = np.array([o.object_type in config.receptacle_types for o in self.objects], dtype=bool)
        self.container = np.array([o.object_type in config.container_types for o in self.objects], dtype=bool)
        self.hanger = np.array([o.object_type in config.hanger_types for o in self.objects], dtype=bool)

    def support(self, subject: BoxedObject) -> Relation | None:
        """The one receptacle ``subject`` rests on, hangs from or is inside, or None (see the class docstring)."""
        if not self.objects:
            return None
        cfg = self.config
        s = subject.box
        lo, hi = self.lo, self.hi
        cand = self.receptacle & (self._id_array != subject.object_id)
        if not cand.any():
            return None
        centre = s.center
        m = cfg.inside_margin
        gap = s.bottom - hi[:, 1]
        dx = np.minimum(s.hi[0], hi[:, 0]) - np.maximum(s.lo[0], lo[:, 0])
        dz = np.minimum(s.hi[2], hi[:, 2]) - np.maximum(s.lo[2], lo[:, 2])
        area = np.where((dx > 0) & (dz > 0), np.clip(dx, 0, None) * np.clip(dz, 0, None), 0.0)
        own = max(s.size[0], 1e-3) * max(s.size[2], 1e-3)
        theirs = np.maximum(hi[:, 0] - lo[:, 0], 1e-3) * np.maximum(hi[:, 2] - lo[:, 2], 1e-3)
        foot = area / np.minimum(own, theirs)  # a burner hidden under a pot still lies under it
        supported = foot >= cfg.on_min_footprint_overlap
        on = cand & (gap >= -cfg.on_max_penetration) & (gap <= cfg.on_max_gap) & supported
        centre_in = np.all((centre >= lo - m) & (centre <= hi + m), axis=1)
        foot_in = (lo[:, 0] - m <= centre[0]) & (centre[0] <= hi[:, 0] + m) \
            & (lo[:, 2] - m <= centre[2]) & (centre[2] <= hi[:, 2] + m)
        bottom_in = foot_in & (s.bottom >= lo[:, 1] - cfg.on_max_penetration) & (s.bottom < hi[:, 1] - 0.01)
        inside = cand & self.container & (centre_in | bottom_in)
        within = cand & ~self.container & centre_in & (self.volume > s.volume)
        hanging = cand & self.hanger & (self._gaps(s) <= cfg.on_max_gap)
        best: list[tuple[float, str, int]] = []
        if on.any():
            idx = np.flatnonzero(on)
            idx = idx[hi[idx, 1] >= hi[idx, 1].max() - 0.005]  # the highest surface(s); of ties, most shared area
            j = int(idx[np.argmax(area[idx])])
            best.append((float(self.volume[j]), "on", j))
        for j in np.flatnonzero(inside | within | hanging).tolist():
            best.append((float(self.volume[j]), "inside" if inside[j] else "on", j))
        if not best and cfg.support_search_depth > 0:
            # the bottom was never seen (occluded): objects do not float, so take the surface right below
            below = cand & supported & (gap > cfg.on_max_gap) & (gap <= cfg.support_search_depth)
            if below.any():
                idx = np.flatnonzero(below)
                j = int(idx[np.argmax(hi[idx, 1])])
                best.append((float(self.volume[j]), "on", j))
        if not best:
            return None
        _, predicate, j = min(best)
        if self.objects[j].object_type in cfg.open_top_types and foot[j] >= 0.5:
            predicate = "inside"  # at the rim of a bowl: only the top of what is in it shows
        return Relation(predicate, self.ids[j])

    def _gaps(self, box: Box) -> np.ndarray:
        d = np.maximum(0.0, np.maximum(self.lo - box.hi, box.lo - self.hi))
        return np.linalg.norm(d, axis=1)

    def relations(self, subject: BoxedObject) -> tuple[Relation, ...]:
        """Support relation (if any) first, then the ``near`` ones, closest first."""
        cfg = self.config
        out: list[Relation] = []
        support = self.support(subject)
        if support is not None:
            out.append(support)
        if cfg.max_near == 0 or not self.objects:
            return tuple(out)
        gaps = self._gaps(subject.box)
        skip = {subject.object_id} | ({support.target_id} if support else set())
        order = np.argsort(gaps, kind="stable")
        for j in order.tolist():
            if gaps[j] > cfg.near_radius or len(out) - (support is not None) >= cfg.max_near:
                break
            if self.ids[j] not in skip:
                out.append(Relation("near", self.ids[j]))
        return tuple(out)


def support_of(subject: BoxedObject, others: Sequence[BoxedObject], config: PerceptionConfig) -> Relation | None:
    """The one receptacle ``subject`` rests on or is inside (see RelationIndex), or None."""
    return RelationIndex(others, config).support(subject)


def infer_relations(subject: BoxedObject, others: Sequence[BoxedObject],
                    config: PerceptionConfig) -> tuple[Relation, ...]:
    """Support relation then ``near`` relations of ``subject`` among ``others`` (see RelationIndex)."""
    return RelationIndex(others, config).relations(subject)
