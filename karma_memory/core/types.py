"""Records shared by every part of the core: object observations, states, poses, camera frames.

Coordinates: the core works in the AI2-THOR world frame (metres; x right, y up, z forward;
left-handed, as THOR's metadata). The ROS boundary converts to the REP-103 ``map`` frame
(x forward, y left, z up) with :mod:`karma_memory.core.frames`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum

import numpy as np

from karma_memory.core.errors import InvalidObservationError

__all__ = [
    "OBJECT_STATES",
    "RELATIONS",
    "Vec3",
    "ObservationKind",
    "Relation",
    "ObjectObservation",
    "CameraIntrinsics",
    "CameraFrame",
    "InstanceLabel",
    "check_vec3",
]

#: The state vocabulary of the paper's VLM prompt (karma_spec.md §1.3).
OBJECT_STATES: tuple[str, ...] = (
    "heated", "cooked", "sliced", "cleaned", "dirty", "filled",
    "used up", "off", "on", "opened", "closed", "none",
)

#: Spatial relations between a movable object and a receptacle or neighbour.
RELATIONS: tuple[str, ...] = ("on", "inside", "near")

Vec3 = tuple[float, float, float]

#: stamps are seconds that must fit a ROS builtin_interfaces/Time (int32 seconds)
MAX_STAMP_S = 2.0 ** 31


def check_vec3(value: object, what: str) -> Vec3:
    """Return ``value`` as a finite 3-tuple of floats or raise InvalidObservationError naming ``what``.

    >>> check_vec3([1, 2, 3], "position")
    (1.0, 2.0, 3.0)
    """
    try:
        x, y, z = (float(v) for v in value)  # type: ignore[union-attr]
    except (TypeError, ValueError) as err:
        raise InvalidObservationError(f"{what} must be three numbers, got {value!r}") from err
    if not all(math.isfinite(v) for v in (x, y, z)):
        raise InvalidObservationError(f"{what} must be finite, got {(x, y, z)!r}")
    return (x, y, z)


class ObservationKind(str, Enum):
    """What an observation says happened to the object."""

    SEEN = "seen"  # observed where memory expects it (or first time: treated as ADDED)
    ADDED = "added"
    MOVED = "moved"
    STATE_CHANGED = "state_changed"
    REMOVED = "removed"  # not seen in a view that should have seen it, or consumed


@dataclass(frozen=True)
class Relation:
    """``subject <predicate> target``, e.g. Apple on CounterTop: predicate in RELATIONS."""

    predicate: str
    target_id: str

    def __post_init__(self) -> None:
        if self.predicate not in RELATIONS:
            raise InvalidObservationError(f"unknown relation {self.predicate!r}; expected one of {RELATIONS}")
        if not self.target_id:
            raise InvalidObservationError("relation target_id is empty")


@dataclass(frozen=True)
class ObjectObservation:
    """One object seen (or changed, or missed) by a robot at one time.

    Attributes:
        object_id: persistent id (the THOR objectId when the source has one, else a track id).
        object_type: THOR object type, e.g. ``"Apple"``.
        position: centre in the THOR world frame, metres.
        kind: what happened (see ObservationKind).
        size: axis-aligned extent (dx, dy, dz) in metres, or None when unknown.
        states: states from OBJECT_STATES that hold now (empty = unknown, ("none",) = no state).
        relations: spatial relations to receptacles/neighbours.
        movable: True for pickupable objects (they go to STM and get relations), False for furniture.
        stamp: observation time, seconds (sim or ROS time).
        source: who produced it (``"perception"``, ``"sim_metadata"``, ``"skill:PutObject"``...).
        robot_id: the observing robot, for fleets.
        confidence: 0..1.
    """

    object_id: str
    object_type: str
    position: Vec3
    kind: ObservationKind = ObservationKind.SEEN
    size: Vec3 | None = None
    states: tuple[str, ...] = ()
    relations: tuple[Relation, ...] = ()
    movable: bool = True
    stamp: float = 0.0
    source: str = ""
    robot_id: str = ""
    confidence: float = 1.0

    def __post_init__(self) -> None:
        if not isinstance(self.object_id, str) or not self.object_id.strip():
            raise InvalidObservationError(f"object_id must be a non-empty string, got {self.object_id!r}")
        if not isinstance(self.object_type, str) or not self.object_type.strip():
            raise InvalidObservationError(f"object_type of {self.object_id!r} must be a non-empty string")
        object.__setattr__(self, "position", check_vec3(self.position, f"position of {self.object_id!r}"))
        object.__setattr__(self, "kind", ObservationKind(self.kind))
        if self.size is not None:
            size = check_vec3(self.size, f"size of {self.object_id!r}")
            if min(size) < 0:
                raise InvalidObservationError(f"size of {self.object_id!r} is negative: {size}")
            object.__setattr__(self, "size", size)
        bad = [s for s in self.states if s not in OBJECT_STATES]
        if bad:
            raise InvalidObservationError(f"unknown state(s) {bad} for {self.object_id!r}; expected {OBJECT_STATES}")
        object.__setattr__(self, "states", tuple(self.states))
        object.__setattr__(self, "relations", tuple(self.relations))
        if not math.isfinite(self.stamp) or abs(self.stamp) >= MAX_STAMP_S:
            raise InvalidObservationError(f"stamp of {self.object_id!r} must be finite seconds within ±2^31, "
                                          f"got {self.stamp!r}")
        if not 0.0 <= self.confidence <= 1.0:
            raise InvalidObservationError(f"confidence of {self.object_id!r} must be in [0, 1], got {self.confidence}")


@dataclass(frozen=True)
class CameraIntrinsics:
    """Pinhole intrinsics in pixels (no distortion), as in sensor_msgs/CameraInfo's K."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float

    @classmethod
    def from_fov(cls, width: int, height: int, horizontal_fov_deg: float) -> CameraIntrinsics:
        """Intrinsics of an ideal camera with square pixels and the given horizontal field of view."""
        fx = (width / 2.0) / math.tan(math.radians(horizontal_fov_deg) / 2.0)
        return cls(width, height, fx, fx, (width - 1) / 2.0, (height - 1) / 2.0)

    def matrix(self) -> np.ndarray:
        """The 3×3 K matrix."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])


@dataclass(frozen=True)
class InstanceLabel:
    """Label of one instance in a segmentation mask: type, and the THOR id where the source knows it."""

    object_type: str
    object_id: str | None = None
    score: float = 1.0


@dataclass
class CameraFrame:
    """One RGB-D frame with instance masks, as perception consumes it.

    Attributes:
        rgb: (H, W, 3) uint8.
        depth: (H, W) float32 metres along the optical axis; 0, NaN or inf = no return.
        instances: (H, W) int32 instance ids; 0 = background.
        labels: instance id -> label.
        intrinsics: pinhole model of the camera.
        world_from_camera: 4×4 transform mapping points in the OpenCV optical frame
            (x right, y down, z forward) to the THOR world frame. Its 3×3 part is orthonormal with
            determinant -1 (THOR's world is left-handed); see frames.py.
        stamp: seconds.
        metadata_objects: THOR object metadata for the frame when the source is a simulator
            (used for object states and evaluation), else None.
    """

    rgb: np.ndarray
    depth: np.ndarray
    instances: np.ndarray
    labels: dict[int, InstanceLabel]
    intrinsics: CameraIntrinsics
    world_from_camera: np.ndarray
    stamp: float = 0.0
    frame_id: str = "camera_optical_frame"
    metadata_objects: list[dict] | None = field(default=None, repr=False)
