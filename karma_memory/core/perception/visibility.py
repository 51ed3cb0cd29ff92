"""Would the camera have seen a track? Projection, range and depth-occlusion test used for removals."""

from __future__ import annotations

import numpy as np

from karma_memory.core.perception.config import PerceptionConfig
from karma_memory.core.types import CameraIntrinsics

__all__ = ["expected_visible", "MAX_PROBE_POINTS"]

#: Points of a track's fused cloud probed per view (evenly strided), enough for a fraction estimate.
MAX_PROBE_POINTS = 64


def expected_visible(points: np.ndarray, camera_from_world: np.ndarray, intrinsics: CameraIntrinsics,
                     depth: np.ndarray, valid: np.ndarray, config: PerceptionConfig) -> bool:
    """Whether an object with fused ``points`` should appear in this view's masks.

    True when at least ``removal_min_visible_fraction`` of its probe points project inside the image,
    within ``removal_max_range``, onto a valid depth reading that is not nearer than the point by more
    than ``occlusion_tolerance`` (nothing in front), and its projection covers ``removal_min_pixels``.
    A point with no depth reading counts against visibility: no evidence is no evidence of absence.
    """
    if len(points) == 0:
        return False
    stride = max(1, len(points) // MAX_PROBE_POINTS)
    probe = points[::stride]
    cam = probe @ camera_from_world[:3, :3].T + camera_from_world[:3, 3]
    z = cam[:, 2]
    in_front = (z > config.min_depth) & (z <= config.removal_max_range)
    if not in_front.any():
        return False
    u = np.full(len(z), -1.0)
    v = np.full(len(z), -1.0)
    u[in_front] = intrinsics.fx * cam[in_front, 0] / z[in_front] + intrinsics.cx
    v[in_front] = intrinsics.fy * cam[in_front, 1] / z[in_front] + intrinsics.cy
    ui, vi = np.round(u).astype(np.int64), np.round(v).astype(np.int64)
    inside = in_front & (ui >= 0) & (ui < intrinsics.width) & (vi >= 0) & (vi < intrinsics.height)
    if inside.sum() < config.removal_min_visible_fraction * len(z):
        return False
    span_u = u[inside].max() - u[inside].min() + 1.0
    span_v = v[inside].max() - v[inside].min() + 1.0
    if span_u * span_v < config.removal_min_pixels:
        return False
    uu, vv = ui[inside], vi[inside]
    measured = depth[vv, uu]
    clear = valid[vv, uu] & (measured >= z[inside] - config.occlusion_tolerance)
    return bool(clear.sum() >= config.removal_min_visible_fraction * len(z))
