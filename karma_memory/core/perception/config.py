"""Typed, validated settings of the perception core (PerceptionConfig) and its THOR type sets."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any, Mapping

from karma_memory.core.errors import ConfigError
from karma_memory.core.lexicon import THOR_OBJECT_TYPES, TYPE_CAPABILITIES

__all__ = [
    "PerceptionConfig",
    "THOR_RECEPTACLE_TYPES",
    "THOR_MOVABLE_TYPES",
    "THOR_CONTAINER_TYPES",
    "THOR_OPEN_TOP_TYPES",
    "THOR_HANGER_TYPES",
]

#: THOR types with the ``receptacle`` flag (things other objects go on or in).
THOR_RECEPTACLE_TYPES: frozenset[str] = frozenset(t for t, c in TYPE_CAPABILITIES.items() if "receptacle" in c)
#: THOR types with the ``pickupable`` flag: they get relations and go to the short-term memory.
THOR_MOVABLE_TYPES: frozenset[str] = frozenset(t for t, c in TYPE_CAPABILITIES.items() if "pickupable" in c)
#: Receptacles that enclose what they hold, so an object in them is ``inside`` rather than ``on``.
THOR_CONTAINER_TYPES: frozenset[str] = frozenset({
    "Bathtub", "BathtubBasin", "Bowl", "Box", "Cabinet", "CoffeeMachine", "Cup", "Drawer", "Dresser", "Fridge",
    "GarbageCan", "LaundryHamper", "Microwave", "Mug", "Pot", "Safe", "Sink", "SinkBasin", "Toaster", "Toilet",
})

#: Containers open at the top: what rests at their rim is in them (an egg in a bowl shows only its top).
THOR_OPEN_TOP_TYPES: frozenset[str] = frozenset({
    "Bathtub", "BathtubBasin", "Bowl", "Cup", "GarbageCan", "LaundryHamper", "Mug", "Pot", "Sink", "SinkBasin",
    "Toilet",
})

#: Receptacles things hang from rather than rest on.
THOR_HANGER_TYPES: frozenset[str] = frozenset({"HandTowelHolder", "TowelHolder", "ToiletPaperHanger"})

_POSITION_MODES = ("box_center", "point_mean")
_HANDEDNESS = ("left", "any")


def _type_set(value: Any, name: str) -> frozenset[str]:
    if isinstance(value, str) or not hasattr(value, "__iter__"):
        raise ConfigError(f"PerceptionConfig.{name} must be a collection of type names, got {value!r}")
    out = frozenset(value)
    bad = [v for v in out if not isinstance(v, str) or not v]
    if bad:
        raise ConfigError(f"PerceptionConfig.{name} holds non-string or empty type names: {bad!r}")
    return out


@dataclass(frozen=True)
class PerceptionConfig:
    """Settings of :class:`~karma_memory.core.perception.SceneGraphBuilder`; every length is in metres.

    Attributes:
        min_depth: depth readings closer than this are ignored (sensor blind zone).
        max_depth: depth readings farther than this are ignored (noise grows with range).
        min_instance_pixels: instances with fewer valid depth pixels are skipped (too small to fit a box).
        min_points: instances with fewer points left after cleaning are skipped.
        voxel_size: per-frame voxel downsampling (open3d), done before outlier removal.
        max_instance_points: a bigger instance cloud is downsampled again on a coarser grid (cost bound).
        outlier_neighbors: neighbours of the statistical outlier filter; 0 disables it.
        outlier_std_ratio: points whose mean neighbour distance exceeds mean + ratio·std are dropped.
        mask_erosion_px: pixels peeled off every mask edge (mixed depth at object borders); 0 disables.
        fusion_voxel_size: grid of the per-track union of points; a partial view grows the box.
        max_track_points: a track's fused cloud is coarsened when it grows past this many points.
        box_trim: share of a track's fused points ignored at each end of every axis when its box is taken
            (0 = exact extent; 0.01 resists stray points a union of views would otherwise keep forever).
        box_min_hits: once a track has more views than this, its box uses only voxels seen in at least
            this many views (1 = every voxel; 2 drops sensor noise that never repeats).
        association_gap: box-to-box gap above which an unlabelled detection cannot join a track.
        association_distance: centre distance always accepted when the clouds do not overlap.
        association_distance_ratio: ... or this times the track's box diagonal, if larger (partial views
            of big objects shift the centre more).
        association_cell: grid on which the overlap of a detection with a track is measured (one-cell
            tolerance), so adjacent same-type objects (cabinet doors, knobs) barely overlap.
        min_overlap: share of a detection's cells near the track that makes the pair a candidate.
        merge_overlap: an unmatched unlabelled track whose cells are this much re-observed by a detection
            assigned to another track of its type is a duplicate of that track and is merged into it.
        size_prior_slack: a detection near a track whose union box fits the type's 95th-percentile THOR
            size times this (plus 3 cm) may join it even without shared surface; 0 disables the prior.
        size_prior_gap: largest box gap over which the size prior may join a detection to a track.
        use_hungarian: optimal assignment with scipy when installed (greedy otherwise).
        move_threshold: a labelled detection whose centre is this far from its track, with boxes apart,
            is a move: the track restarts from the new view and a MOVED observation is emitted.
        position_mode: ``"box_center"`` (centre of the fused box) or ``"point_mean"`` (mean of fused points).
        fit_oriented_boxes: also fit an open3d oriented box per detection every frame (``Detection.obb``);
            tracks compute theirs on demand either way (``Track.obb``).
        receptacle_types: types that can support or contain others.
        container_types: receptacles whose contents are ``inside`` (others hold things ``on`` them).
        open_top_types: containers open at the top: an object resting at their rim is ``inside``.
        hanger_types: receptacles objects hang from (towel holders): touching one is ``on`` it.
        movable_types: pickupable types; only these get relations.
        singleton_types: types with one object per scene (the floor, seen in fragments between furniture):
            unlabelled detections of these always join the existing track.
        known_types: labels outside this set are rejected; default: every AI2-THOR type (lexicon).
        on_max_gap: an object's bottom may float this far above a receptacle's top and still be ``on`` it.
        on_max_penetration: ... or sink this far below it (rims, soft surfaces, partial views).
        on_min_footprint_overlap: share of the smaller x-z footprint (object's or receptacle's) that the
            two footprints must share.
        inside_margin: receptacle boxes are grown by this for the centroid-inside tests (partial views).
        support_search_depth: when no rule finds a support (the object's bottom was never seen), the
            highest receptacle under it at most this far below is taken; 0 disables the fallback.
        near_radius: box-to-box gap under which two objects are ``near``.
        max_near: most ``near`` relations kept per object (the closest).
        removal_misses: consecutive views that should have seen a track but did not, before REMOVED.
        removal_max_range: only views within this distance of the track count as evidence of absence.
        removal_min_visible_fraction: share of the track's points that must project unoccluded into view.
        removal_min_pixels: the track must cover at least this many pixels to be expected in the mask.
        occlusion_tolerance: a depth reading this much nearer than the track means it is hidden.
        pose_handedness: ``"left"`` requires det(R) = -1 (THOR world from the optical frame, see frames.py),
            catching a ROS map-frame pose passed by mistake; ``"any"`` accepts ±1.
        rigid_tolerance: tolerance of the orthonormality and determinant checks of the pose.
    """

    min_depth: float = 0.05
    max_depth: float = 10.0
    min_instance_pixels: int = 12
    min_points: int = 6
    voxel_size: float = 0.02
    max_instance_points: int = 500
    outlier_neighbors: int = 8
    outlier_std_ratio: float = 3.0
    mask_erosion_px: int = 0
    fusion_voxel_size: float = 0.02
    max_track_points: int = 20000
    box_trim: float = 0.0
    box_min_hits: int = 1
    association_gap: float = 0.10
    association_distance: float = 0.05
    association_distance_ratio: float = 0.5
    association_cell: float = 0.025
    min_overlap: float = 0.2
    merge_overlap: float = 0.5
    size_prior_slack: float = 1.1
    size_prior_gap: float = 0.5
    use_hungarian: bool = True
    move_threshold: float = 0.15
    position_mode: str = "box_center"
    fit_oriented_boxes: bool = False
    receptacle_types: frozenset[str] = field(default=THOR_RECEPTACLE_TYPES)
    container_types: frozenset[str] = field(default=THOR_CONTAINER_TYPES)
    open_top_types: frozenset[str] = field(default=THOR_OPEN_TOP_TYPES)
    hanger_types: frozenset[str] = field(default=THOR_HANGER_TYPES)
    movable_types: frozenset[str] = field(default=THOR_MOVABLE_TYPES)
    singleton_types: frozenset[str] = field(default=frozenset({"Floor"}))
    known_types: frozenset[str] = field(default=frozenset(THOR_OBJECT_TYPES))
    on_max_gap: float = 0.06
    on_max_penetration: float = 0.04
    on_min_footprint_overlap: float = 0.3
    inside_margin: float = 0.03
    support_search_depth: float = 0.6
    near_radius: float = 0.5
    max_near: int = 5
    removal_misses: int = 3
    removal_max_range: float = 3.0
    removal_min_visible_fraction: float = 0.6
    removal_min_pixels: int = 100
    occlusion_tolerance: float = 0.05
    pose_handedness: str = "left"
    rigid_tolerance: float = 1e-3

    def __post_init__(self) -> None:
        positive = ("max_depth", "voxel_size", "fusion_voxel_size", "association_cell", "outlier_std_ratio",
                    "removal_max_range", "rigid_tolerance")
        non_negative = ("min_depth", "association_gap", "association_distance", "association_distance_ratio",
                        "size_prior_slack", "size_prior_gap",
                        "move_threshold", "on_max_gap",
                        "on_max_penetration", "near_radius", "occlusion_tolerance", "inside_margin",
                        "support_search_depth")
        for name in positive + non_negative:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ConfigError(f"PerceptionConfig.{name} must be a finite number, got {value!r}")
            if value < 0 or (name in positive and value == 0):
                sign = "> 0" if name in positive else ">= 0"
                raise ConfigError(f"PerceptionConfig.{name} must be {sign}, got {value!r}")
        if self.min_depth >= self.max_depth:
            raise ConfigError(f"PerceptionConfig.min_depth ({self.min_depth}) must be < max_depth ({self.max_depth})")
        if self.voxel_size > 0.5 or self.fusion_voxel_size > 0.5:
            raise ConfigError(f"PerceptionConfig voxel sizes must be <= 0.5 m, got {self.voxel_size}, "
                              f"{self.fusion_voxel_size}")
        if self.rigid_tolerance > 0.1:
            raise ConfigError(f"PerceptionConfig.rigid_tolerance must be <= 0.1, got {self.rigid_tolerance}")
        ints = {"min_instance_pixels": (1, 10**7), "min_points": (1, 10**6), "outlier_neighbors": (0, 200),
                "max_instance_points": (10, 10**7),
                "mask_erosion_px": (0, 10), "max_track_points": (100, 10**7),
                "box_min_hits": (1, 100), "max_near": (0, 100),
                "removal_misses": (1, 1000), "removal_min_pixels": (1, 10**7)}
        for name, (lo, hi) in ints.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                raise ConfigError(f"PerceptionConfig.{name} must be an integer in [{lo}, {hi}], got {value!r}")
        if not (isinstance(self.box_trim, (int, float)) and 0.0 <= self.box_trim < 0.25):
            raise ConfigError(f"PerceptionConfig.box_trim must be in [0, 0.25), got {self.box_trim!r}")
        for name in ("min_overlap", "merge_overlap", "on_min_footprint_overlap", "removal_min_visible_fraction"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise ConfigError(f"PerceptionConfig.{name} must be in [0, 1], got {value!r}")
        for name in ("use_hungarian", "fit_oriented_boxes"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"PerceptionConfig.{name} must be a bool, got {getattr(self, name)!r}")
        if self.position_mode not in _POSITION_MODES:
            raise ConfigError(f"PerceptionConfig.position_mode must be one of {_POSITION_MODES}, "
                              f"got {self.position_mode!r}")
        if self.pose_handedness not in _HANDEDNESS:
            raise ConfigError(f"PerceptionConfig.pose_handedness must be one of {_HANDEDNESS}, "
                              f"got {self.pose_handedness!r}")
        for name in ("receptacle_types", "container_types", "open_top_types", "hanger_types", "movable_types",
                     "singleton_types",
                     "known_types"):
            object.__setattr__(self, name, _type_set(getattr(self, name), name))
        if not self.known_types:
            raise ConfigError("PerceptionConfig.known_types is empty: every label would be rejected")

    @classmethod
    def real_sensor(cls, **overrides: Any) -> PerceptionConfig:
        """Settings for noisy depth (a real RGB-D camera): robust box extents from voxels seen in at least
        two views, trimmed by 1 % per side. The defaults assume exact depth (the simulator).

        >>> PerceptionConfig.real_sensor().box_min_hits
        2
        """
        return cls(**{"box_trim": 0.01, "box_min_hits": 2, **overrides})

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> PerceptionConfig:
        """Build a config from a flat mapping (ROS parameters, YAML); unknown keys are an error.

        >>> PerceptionConfig.from_mapping({"voxel_size": 0.02}).voxel_size
        0.02
        """
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ConfigError(f"unknown PerceptionConfig key(s) {unknown}; expected some of {sorted(names)}")
        return cls(**dict(values))
