"""Camera and box geometry shared by the simulator, its renderer and the AI2-THOR adapter."""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

from karma_memory.core.types import CameraIntrinsics

__all__ = ["aabb_of", "camera_axes", "world_from_camera", "intrinsics_from_vertical_fov", "aabb_dict"]


def aabb_of(obj: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """(min corner, max corner) of a THOR object's ``axisAlignedBoundingBox``."""
    box = obj["axisAlignedBoundingBox"]
    c, s = box["center"], box["size"]
    centre = np.array([c["x"], c["y"], c["z"]], dtype=float)
    half = np.abs(np.array([s["x"], s["y"], s["z"]], dtype=float)) / 2.0
    return centre - half, centre + half


def aabb_dict(lo: np.ndarray, hi: np.ndarray) -> dict[str, Any]:
    """A THOR ``axisAlignedBoundingBox`` dict (center, size, 8 cornerPoints in THOR's order) from two corners.

    >>> aabb_dict(np.zeros(3), np.ones(3))["center"]
    {'x': 0.5, 'y': 0.5, 'z': 0.5}
    """
    lo_f = [float(v) for v in lo]
    hi_f = [float(v) for v in hi]
    corners = [[x, y, z] for x in (hi_f[0], lo_f[0]) for y in (hi_f[1], lo_f[1]) for z in (hi_f[2], lo_f[2])]
    return {
        "center": {k: (a + b) / 2.0 for k, a, b in zip("xyz", lo_f, hi_f)},
        "cornerPoints": corners,
        "size": {k: b - a for k, a, b in zip("xyz", lo_f, hi_f)},
    }


def camera_axes(yaw_deg: float, horizon_deg: float) -> np.ndarray:
    """3×3 matrix whose columns are the camera's right, down and forward axes in the THOR world.

    THOR: yaw 0 looks along +z, yaw 90 along +x; a positive horizon looks down. The columns are the
    OpenCV optical axes (x right, y down, z forward); the determinant is −1 (THOR is left-handed).

    >>> (np.round(camera_axes(90.0, 0.0), 6) + 0.0).tolist()
    [[0.0, 0.0, 1.0], [0.0, -1.0, 0.0], [-1.0, 0.0, 0.0]]
    """
    yaw, pitch = math.radians(yaw_deg), math.radians(horizon_deg)
    flat_forward = np.array([math.sin(yaw), 0.0, math.cos(yaw)])
    right = np.array([math.cos(yaw), 0.0, -math.sin(yaw)])
    up = np.array([0.0, 1.0, 0.0])
    forward = math.cos(pitch) * flat_forward - math.sin(pitch) * up
    down = -(math.cos(pitch) * up + math.sin(pitch) * flat_forward)
    return np.column_stack([right, down, forward])


def world_from_camera(camera_position: Any, yaw_deg: float, horizon_deg: float) -> np.ndarray:
    """4×4 transform from the OpenCV optical frame to the THOR world (what CameraFrame carries)."""
    out = np.eye(4)
    out[:3, :3] = camera_axes(yaw_deg, horizon_deg)
    out[:3, 3] = np.asarray(camera_position, dtype=float).reshape(3)
    return out


def intrinsics_from_vertical_fov(width: int, height: int, fov_deg: float) -> CameraIntrinsics:
    """Intrinsics of a THOR camera: Unity's ``fieldOfView`` is the *vertical* field of view.

    >>> k = intrinsics_from_vertical_fov(320, 240, 90.0); round(k.fx, 6), round(k.fy, 6)
    (120.0, 120.0)
    """
    if width <= 0 or height <= 0 or not 0.0 < fov_deg < 180.0:
        raise ValueError(f"bad camera: {width}x{height}, fov {fov_deg}")
    fy = (height / 2.0) / math.tan(math.radians(fov_deg) / 2.0)
    horizontal = 2.0 * math.degrees(math.atan((width / 2.0) / fy))
    return CameraIntrinsics.from_fov(width, height, horizontal)
