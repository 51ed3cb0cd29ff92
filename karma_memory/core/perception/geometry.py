"""Point-cloud geometry of perception: camera poses, back-projection, open3d cleaning, boxes, voxel keys."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import open3d as o3d

from karma_memory.core.types import CameraIntrinsics

__all__ = [
    "Box",
    "thor_camera_pose",
    "backproject_pixels",
    "transform_points",
    "clean_points",
    "oriented_box",
    "voxel_keys",
    "dilated_keys",
    "merge_voxelized",
]

_KEY_BITS = 21
_KEY_OFFSET = 1 << (_KEY_BITS - 1)
_KEY_MASK = (1 << _KEY_BITS) - 1


@dataclass(frozen=True)
class Box:
    """Axis-aligned box in the THOR world frame (y up), metres: ``lo`` and ``hi`` corners."""

    lo: np.ndarray
    hi: np.ndarray

    @classmethod
    def of_points(cls, points: np.ndarray, trim: float = 0.0) -> Box:
        """The box around ``points`` (N×3, N >= 1): tightest, or between the ``trim`` and 1 - ``trim``
        quantiles of each axis (robust to stray points; skipped below 50 points)."""
        if trim <= 0.0 or len(points) < 50:
            return cls(points.min(axis=0), points.max(axis=0))
        lo, hi = np.quantile(points, [trim, 1.0 - trim], axis=0)
        return cls(lo, hi)

    @property
    def center(self) -> np.ndarray:
        """Centre of the box."""
        return (self.lo + self.hi) / 2.0

    @property
    def size(self) -> np.ndarray:
        """Extent (dx, dy, dz)."""
        return self.hi - self.lo

    @property
    def volume(self) -> float:
        """Volume in m³ (a floor of 1 mm per side, so flat boxes still compare)."""
        return float(np.prod(np.maximum(self.size, 1e-3)))

    @property
    def bottom(self) -> float:
        """Lowest y."""
        return float(self.lo[1])

    @property
    def top(self) -> float:
        """Highest y."""
        return float(self.hi[1])

    def contains(self, point: np.ndarray, margin: float = 0.0) -> bool:
        """Whether ``point`` lies in the box grown by ``margin`` on every side."""
        return bool(np.all(point >= self.lo - margin) and np.all(point <= self.hi + margin))

    def gap(self, other: Box) -> float:
        """Euclidean distance between the two boxes (0 when they touch or overlap).

        >>> Box(np.zeros(3), np.ones(3)).gap(Box(np.array([2.0, 0, 0]), np.array([3.0, 1, 1])))
        1.0
        """
        d = np.maximum(0.0, np.maximum(self.lo - other.hi, other.lo - self.hi))
        return float(np.linalg.norm(d))

    def footprint_overlap(self, other: Box) -> float:
        """Share of this box's x-z footprint that lies over ``other``'s footprint (0..1)."""
        dx = min(self.hi[0], other.hi[0]) - max(self.lo[0], other.lo[0])
        dz = min(self.hi[2], other.hi[2]) - max(self.lo[2], other.lo[2])
        if dx <= 0 or dz <= 0:
            return 0.0
        own = max(self.size[0], 1e-3) * max(self.size[2], 1e-3)
        return float(min(1.0, dx * dz / own))

    def corners(self) -> np.ndarray:
        """The 8 corners (8×3)."""
        idx = np.array([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)])
        both = np.stack([self.lo, self.hi])
        return both[idx, [0, 1, 2]]


def thor_camera_pose(position: Sequence[float], rotation_y_deg: float, horizon_deg: float) -> np.ndarray:
    """World-from-optical-camera transform of an AI2-THOR agent camera.

    THOR's world is left-handed (x right, y up, z forward); the agent yaw ``rotation_y_deg`` turns
    clockwise seen from above (90° faces +x), and a positive ``horizon_deg`` looks down. The optical frame
    is OpenCV's (x right, y down, z forward), so the rotation part has determinant -1.

    >>> T = thor_camera_pose((0.0, 1.5, 0.0), 0.0, 0.0)
    >>> (T[:3, :3].round(6) + 0.0).tolist(), round(float(np.linalg.det(T[:3, :3])), 6)
    ([[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, 1.0]], -1.0)
    """
    yaw, pitch = math.radians(rotation_y_deg), math.radians(horizon_deg)
    forward = np.array([math.sin(yaw) * math.cos(pitch), -math.sin(pitch), math.cos(yaw) * math.cos(pitch)])
    right = np.array([math.cos(yaw), 0.0, -math.sin(yaw)])
    up = np.array([math.sin(yaw) * math.sin(pitch), math.cos(pitch), math.cos(yaw) * math.sin(pitch)])
    out = np.eye(4)
    out[:3, 0], out[:3, 1], out[:3, 2] = right, -up, forward
    out[:3, 3] = np.asarray(position, dtype=float)
    return out


def backproject_pixels(u: np.ndarray, v: np.ndarray, z: np.ndarray, intrinsics: CameraIntrinsics) -> np.ndarray:
    """Optical-frame points (N×3) of pixels (u = column, v = row) with depth ``z`` along the optical axis."""
    x = (u - intrinsics.cx) * (z / intrinsics.fx)
    y = (v - intrinsics.cy) * (z / intrinsics.fy)
    return np.stack([x, y, z], axis=1)


def transform_points(transform: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 4×4 transform to N×3 points."""
    return points @ transform[:3, :3].T + transform[:3, 3]


def clean_points(points: np.ndarray, voxel_size: float, neighbors: int, std_ratio: float,
                 max_points: int | None = None) -> tuple[np.ndarray, float]:
    """Voxel-downsample, then drop statistical outliers (open3d): the kept N×3 points and the voxel used.

    Downsampling comes first because the k-nearest-neighbour search dominates the cost (DESIGN.md §2).
    A cloud still above ``max_points`` (a big surface: counter, floor) is downsampled again on grids
    coarsened by sqrt(N / max_points) until it fits, which keeps its extent within a voxel. The outlier filter is
    skipped when too few points remain to estimate neighbour statistics.
    """
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points))
    cloud = cloud.voxel_down_sample(voxel_size)
    voxel = voxel_size
    for _ in range(8):  # a surface cloud shrinks ~quadratically with the voxel side; converge in a few steps
        n = len(cloud.points)
        if max_points is None or n <= max_points:
            break
        voxel *= max(1.1, math.sqrt(n / max_points))
        cloud = cloud.voxel_down_sample(voxel)
    if neighbors > 0 and len(cloud.points) > 2 * neighbors:
        cloud, _ = cloud.remove_statistical_outlier(nb_neighbors=neighbors, std_ratio=std_ratio)
    return np.asarray(cloud.points), voxel


def oriented_box(points: np.ndarray, minimal: bool = False) -> o3d.geometry.OrientedBoundingBox | None:
    """open3d oriented box of ``points``, or None for degenerate (flat, tiny) clouds.

    ``minimal=False`` is open3d's PCA box (sub-millisecond, may sit diagonally on a box-shaped object);
    ``minimal=True`` searches the hull for the smallest box (tens of milliseconds: for on-demand use).
    """
    if len(points) < 4:
        return None
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points))
    try:
        box = cloud.get_minimal_oriented_bounding_box() if minimal else cloud.get_oriented_bounding_box()
    except RuntimeError:  # qhull fails on coplanar points
        return None
    if minimal:  # open3d's hull search can return a box larger than the axis-aligned one: keep the smaller
        aligned = o3d.geometry.OrientedBoundingBox.create_from_axis_aligned_bounding_box(
            cloud.get_axis_aligned_bounding_box())
        if aligned.volume() < box.volume():
            return aligned
    return box


def voxel_keys(points: np.ndarray, voxel: float) -> np.ndarray:
    """One int64 key per point naming its voxel on a grid of side ``voxel`` (±20 000 voxels per axis)."""
    q = np.floor(points / voxel).astype(np.int64) + _KEY_OFFSET
    q = np.clip(q, 0, _KEY_MASK)
    return (q[:, 0] << (2 * _KEY_BITS)) | (q[:, 1] << _KEY_BITS) | q[:, 2]


def dilated_keys(keys: np.ndarray) -> np.ndarray:
    """Sorted unique keys of ``keys`` and their 26 neighbours (for tolerant overlap tests)."""
    offsets = np.array([(dx << (2 * _KEY_BITS)) + (dy << _KEY_BITS) + dz
                        for dx in (-1, 0, 1) for dy in (-1, 0, 1) for dz in (-1, 0, 1)], dtype=np.int64)
    return np.unique((keys[:, None] + offsets[None, :]).ravel())


def merge_voxelized(old_points: np.ndarray, old_keys: np.ndarray, new_points: np.ndarray, voxel: float,
                    old_hits: np.ndarray | None = None,
                    new_hits: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Union of two voxelized clouds: one point per voxel, the older point kept where both have one.

    ``old_hits``/``new_hits`` count the views that saw each point (default 1 each; a voxel the new cloud
    covers twice counts once); the union sums them per voxel.

    Returns:
        The merged points, their sorted keys and their hit counts.
    """
    new_keys = voxel_keys(new_points, voxel)
    if new_hits is None:  # one view: each voxel counts once however many of its points fell in it
        new_keys, first_new = np.unique(new_keys, return_index=True)
        new_points = new_points[first_new]
        new_hits = np.ones(len(new_keys), dtype=np.int64)
    if old_hits is None:
        old_hits = np.ones(len(old_keys), dtype=np.int64)
    keys = np.concatenate([old_keys, new_keys])
    points = np.concatenate([old_points, new_points])
    keys, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    hits = np.bincount(inverse.ravel(), weights=np.concatenate([old_hits, new_hits]), minlength=len(keys))
    return points[first], keys, hits.astype(np.int64)
