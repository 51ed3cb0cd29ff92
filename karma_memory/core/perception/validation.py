"""Checks that reject a malformed camera frame before it can touch the tracker, and pose helpers."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from karma_memory.core.errors import InvalidFrameError
from karma_memory.core.perception.config import PerceptionConfig
from karma_memory.core.types import CameraFrame, CameraIntrinsics, InstanceLabel

__all__ = ["CheckedFrame", "validate_frame", "check_rigid", "pose_matrix", "instance_ids"]


@dataclass(frozen=True)
class CheckedFrame:
    """What validation learnt about a frame, reused by the pipeline.

    Attributes:
        valid: (H, W) bool, depth finite and within [min_depth, max_depth].
        ids: sorted instance ids (> 0) present in the mask.
    """

    valid: np.ndarray
    ids: np.ndarray


def instance_ids(instances: np.ndarray) -> np.ndarray:
    """Sorted ids > 0 present in an instance mask (bincount when ids are small, else unique)."""
    top = int(instances.max()) if instances.size else 0
    if top <= 0:
        return np.zeros(0, dtype=np.int64)
    if top < (1 << 22):
        counts = np.bincount(instances.ravel())
        ids = np.flatnonzero(counts)
    else:
        ids = np.unique(instances)
    return ids[ids > 0].astype(np.int64)


def check_rigid(transform: object, what: str = "world_from_camera", handedness: str = "any",
                tol: float = 1e-3) -> np.ndarray:
    """Return ``transform`` as a 4×4 float array if it is rigid, else raise InvalidFrameError.

    Rigid: finite, last row (0, 0, 0, 1), rotation part orthonormal with |det| = 1. ``handedness="left"``
    also requires det = -1, the THOR-world-from-optical-frame case (see frames.py): a det +1 pose is
    usually a ROS map-frame pose that was not converted with ``frames.map_pose_to_thor``.

    >>> check_rigid(np.diag([1.0, -1.0, 1.0, 1.0]), handedness="left").shape
    (4, 4)
    """
    try:
        mat = np.asarray(transform, dtype=float)
    except (TypeError, ValueError) as err:
        raise InvalidFrameError(f"{what} is not a numeric matrix: {transform!r}") from err
    if mat.shape != (4, 4):
        raise InvalidFrameError(f"{what} must be 4x4, got shape {mat.shape}")
    if not np.all(np.isfinite(mat)):
        raise InvalidFrameError(f"{what} has non-finite entries: {mat.tolist()}")
    if not np.allclose(mat[3], (0.0, 0.0, 0.0, 1.0), atol=tol):
        raise InvalidFrameError(f"{what} last row must be (0, 0, 0, 1), got {mat[3].tolist()}")
    rot = mat[:3, :3]
    err_orth = float(np.abs(rot @ rot.T - np.eye(3)).max())
    if err_orth > tol:
        raise InvalidFrameError(f"{what} rotation is not orthonormal (max |R R^T - I| = {err_orth:.3g}): "
                                f"{rot.round(4).tolist()}")
    det = float(np.linalg.det(rot))
    if abs(abs(det) - 1.0) > tol:
        raise InvalidFrameError(f"{what} rotation has |det| = {abs(det):.4f}, not 1 (scaled or sheared)")
    if handedness == "left" and det > 0:
        raise InvalidFrameError(
            f"{what} rotation has det = {det:+.3f}; THOR world from the optical frame must have det -1 "
            "(a ROS map-frame pose? convert it with karma_memory.core.frames.map_pose_to_thor)")
    return mat


def pose_matrix(position: Sequence[float], quaternion_xyzw: Sequence[float], tol: float = 1e-3) -> np.ndarray:
    """4×4 rigid transform from a position and a unit quaternion (x, y, z, w), e.g. a ROS Pose.

    The result is a proper rotation (det +1), as in the ROS map frame; compose with
    ``frames.map_pose_to_thor`` to get the THOR-world transform a CameraFrame carries.

    Raises:
        InvalidFrameError: the quaternion is not 4 finite numbers of norm 1 (within ``tol``) or the
            position is not 3 finite numbers. A non-unit quaternion is rejected rather than normalised:
            it usually means a garbled message.

    >>> pose_matrix((1.0, 2.0, 3.0), (0.0, 0.0, 0.0, 1.0))[:3, 3].tolist()
    [1.0, 2.0, 3.0]
    >>> pose_matrix((0, 0, 0), (0.0, 0.0, 0.0, 2.0))
    Traceback (most recent call last):
    ...
    karma_memory.core.errors.InvalidFrameError: quaternion (0.0, 0.0, 0.0, 2.0) has norm 2.000000, not 1
    """
    try:
        p = tuple(float(v) for v in position)
        q = tuple(float(v) for v in quaternion_xyzw)
    except (TypeError, ValueError) as err:
        raise InvalidFrameError(f"pose needs numbers, got position={position!r}, quaternion={quaternion_xyzw!r}") \
            from err
    if len(p) != 3 or not all(math.isfinite(v) for v in p):
        raise InvalidFrameError(f"position must be 3 finite numbers, got {p!r}")
    if len(q) != 4 or not all(math.isfinite(v) for v in q):
        raise InvalidFrameError(f"quaternion must be 4 finite numbers (x, y, z, w), got {q!r}")
    norm = math.sqrt(sum(v * v for v in q))
    if abs(norm - 1.0) > tol:
        raise InvalidFrameError(f"quaternion {q!r} has norm {norm:.6f}, not 1")
    x, y, z, w = (v / norm for v in q)
    out = np.eye(4)
    out[:3, :3] = [
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ]
    out[:3, 3] = p
    return out


def _check_intrinsics(intr: object) -> CameraIntrinsics:
    if not isinstance(intr, CameraIntrinsics):
        raise InvalidFrameError(f"intrinsics must be a CameraIntrinsics, got {type(intr).__name__}")
    if not (isinstance(intr.width, (int, np.integer)) and isinstance(intr.height, (int, np.integer))
            and intr.width > 0 and intr.height > 0):
        raise InvalidFrameError(f"intrinsics size must be positive integers, got {intr.width}x{intr.height}")
    for name in ("fx", "fy", "cx", "cy"):
        value = getattr(intr, name)
        if not isinstance(value, (int, float, np.floating, np.integer)) or not math.isfinite(value):
            raise InvalidFrameError(f"intrinsics.{name} must be finite, got {value!r}")
    if intr.fx <= 0 or intr.fy <= 0:
        raise InvalidFrameError(f"focal lengths must be > 0, got fx={intr.fx}, fy={intr.fy}")
    return intr


def _check_image(arr: object, name: str, ndim: int) -> np.ndarray:
    if not isinstance(arr, np.ndarray):
        raise InvalidFrameError(f"{name} must be a numpy array, got {type(arr).__name__}")
    if arr.ndim != ndim:
        raise InvalidFrameError(f"{name} must have {ndim} dimensions, got shape {arr.shape}")
    return arr


def _check_labels(labels: object, ids: np.ndarray, known: frozenset[str]) -> None:
    if not isinstance(labels, dict):
        raise InvalidFrameError(f"labels must be a dict of instance id -> InstanceLabel, got {type(labels).__name__}")
    for iid in ids.tolist():
        label = labels.get(iid)
        if label is None:
            raise InvalidFrameError(f"instance {iid} in the mask has no label")
        if not isinstance(label, InstanceLabel):
            raise InvalidFrameError(f"label of instance {iid} must be an InstanceLabel, got {label!r}")
        if label.object_type not in known:
            raise InvalidFrameError(f"instance {iid} has unknown label {label.object_type!r} (not a known object "
                                    "type; see PerceptionConfig.known_types)")
        if label.object_id is not None and (not isinstance(label.object_id, str) or not label.object_id.strip()):
            raise InvalidFrameError(f"instance {iid} has an empty or non-string object_id {label.object_id!r}")
        if not (isinstance(label.score, (int, float)) and 0.0 <= label.score <= 1.0):
            raise InvalidFrameError(f"instance {iid} has score {label.score!r} outside [0, 1]")


def validate_frame(frame: CameraFrame, config: PerceptionConfig) -> CheckedFrame:
    """Check every part of ``frame``; raise InvalidFrameError naming the first problem found.

    Invalid depth pixels (0, negative, NaN, inf, out of range) are not an error: they are masked out. A
    frame with no valid depth at all, or with mismatched image sizes, unknown labels, negative instance
    ids, or a pose that is not a rigid transform, is rejected. Nothing here mutates ``frame``.
    """
    if not isinstance(frame, CameraFrame):
        raise InvalidFrameError(f"expected a CameraFrame, got {type(frame).__name__}")
    intr = _check_intrinsics(frame.intrinsics)
    rgb = _check_image(frame.rgb, "rgb", 3)
    depth = _check_image(frame.depth, "depth", 2)
    inst = _check_image(frame.instances, "instances", 2)
    expected = (intr.height, intr.width)
    for name, arr in (("rgb", rgb), ("depth", depth), ("instances", inst)):
        if arr.shape[:2] != expected:
            raise InvalidFrameError(f"{name} is {arr.shape[1]}x{arr.shape[0]} (WxH) but the intrinsics say "
                                    f"{intr.width}x{intr.height}")
    if rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise InvalidFrameError(f"rgb must be (H, W, 3) uint8, got shape {rgb.shape} dtype {rgb.dtype}")
    if not np.issubdtype(depth.dtype, np.floating):
        raise InvalidFrameError(f"depth must be float metres, got dtype {depth.dtype} (convert mm to m first)")
    if not np.issubdtype(inst.dtype, np.integer):
        raise InvalidFrameError(f"instances must be an integer mask, got dtype {inst.dtype}")
    if inst.size and int(inst.min()) < 0:
        raise InvalidFrameError(f"instances has negative id {int(inst.min())}; ids are >= 0 with 0 = background")
    if not (isinstance(frame.stamp, (int, float)) and math.isfinite(frame.stamp)):
        raise InvalidFrameError(f"stamp must be a finite number of seconds, got {frame.stamp!r}")
    check_rigid(frame.world_from_camera, handedness=config.pose_handedness, tol=config.rigid_tolerance)
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(depth) & (depth >= config.min_depth) & (depth <= config.max_depth)
    if not valid.any():
        raise InvalidFrameError(f"no valid depth: every pixel is 0, NaN, inf or outside "
                                f"[{config.min_depth}, {config.max_depth}] m")
    ids = instance_ids(inst)
    _check_labels(frame.labels, ids, config.known_types)
    if frame.metadata_objects is not None and not isinstance(frame.metadata_objects, list):
        raise InvalidFrameError(f"metadata_objects must be a list of dicts or None, got "
                                f"{type(frame.metadata_objects).__name__}")
    return CheckedFrame(valid=valid, ids=ids)
