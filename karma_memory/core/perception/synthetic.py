"""Synthetic RGB-D frames of axis-aligned boxes through a pinhole camera, for tests and examples."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from karma_memory.core.types import CameraFrame, CameraIntrinsics, InstanceLabel

__all__ = ["SyntheticBox", "render_boxes", "synthetic_frame"]


@dataclass(frozen=True)
class SyntheticBox:
    """A box in the THOR world frame; ``instance_id`` 0 renders as background (floor, walls)."""

    lo: tuple[float, float, float]
    hi: tuple[float, float, float]
    instance_id: int
    object_type: str = "Box"
    object_id: str | None = None


def render_boxes(boxes: Sequence[SyntheticBox], intrinsics: CameraIntrinsics,
                 world_from_camera: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ray-cast ``boxes``: (depth in metres along the optical axis, inf where nothing is hit; int32 ids).

    Slab test per box, on the pixels of the box's projected rectangle only (all pixels when the box
    reaches behind the camera); the nearest hit wins.
    """
    h, w = intrinsics.height, intrinsics.width
    v, u = np.mgrid[0:h, 0:w].astype(np.float32)
    rot = np.asarray(world_from_camera[:3, :3], dtype=np.float32)
    origin = np.asarray(world_from_camera[:3, 3], dtype=np.float64)
    xc = (u - intrinsics.cx) / intrinsics.fx
    yc = (v - intrinsics.cy) / intrinsics.fy
    dirs = [rot[a, 0] * xc + rot[a, 1] * yc + rot[a, 2] for a in range(3)]  # world ray per pixel, z_cam = 1
    depth = np.full((h, w), np.inf, dtype=np.float32)
    ids = np.zeros((h, w), dtype=np.int32)
    cam_from_world = np.linalg.inv(world_from_camera)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        inv = [1.0 / d for d in dirs]
        for box in boxes:
            lo, hi = np.asarray(box.lo, float), np.asarray(box.hi, float)
            corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
            cam = corners @ cam_from_world[:3, :3].T + cam_from_world[:3, 3]
            if np.all(cam[:, 2] > 1e-3):
                pu = intrinsics.fx * cam[:, 0] / cam[:, 2] + intrinsics.cx
                pv = intrinsics.fy * cam[:, 1] / cam[:, 2] + intrinsics.cy
                u0, u1 = int(np.clip(np.floor(pu.min()), 0, w)), int(np.clip(np.ceil(pu.max()) + 1, 0, w))
                v0, v1 = int(np.clip(np.floor(pv.min()), 0, h)), int(np.clip(np.ceil(pv.max()) + 1, 0, h))
            elif np.all(cam[:, 2] <= 1e-3):
                continue
            else:
                u0, u1, v0, v1 = 0, w, 0, h
            if u0 >= u1 or v0 >= v1:
                continue
            win = (slice(v0, v1), slice(u0, u1))
            tmin = np.full((v1 - v0, u1 - u0), -np.inf, dtype=np.float32)
            tmax = np.full((v1 - v0, u1 - u0), np.inf, dtype=np.float32)
            for a in range(3):
                t1 = (lo[a] - origin[a]) * inv[a][win]
                t2 = (hi[a] - origin[a]) * inv[a][win]
                tmin = np.fmax(tmin, np.fmin(t1, t2))
                tmax = np.fmin(tmax, np.fmax(t1, t2))
            t = np.where(tmin > 0, tmin, tmax)
            sub = depth[win]
            hit = (tmax >= np.maximum(tmin, 0.0)) & (t > 0) & (t < sub)
            sub[hit] = t[hit]
            ids[win][hit] = box.instance_id
    return depth, ids


def synthetic_frame(boxes: Sequence[SyntheticBox], intrinsics: CameraIntrinsics, world_from_camera: np.ndarray,
                    stamp: float = 0.0, metadata_objects: list[dict] | None = None,
                    with_ids: bool = True) -> CameraFrame:
    """A CameraFrame of ``boxes`` with labels for every visible instance (ids kept if ``with_ids``).

    Pixels that hit nothing get depth 0 (no return), as a real sensor reports.
    """
    depth, ids = render_boxes(boxes, intrinsics, world_from_camera)
    depth[~np.isfinite(depth)] = 0.0
    rng = np.random.default_rng(7)
    palette = rng.integers(0, 255, size=(int(ids.max()) + 1, 3), dtype=np.uint8)
    rgb = palette[ids]
    present = set(np.unique(ids).tolist())
    labels = {b.instance_id: InstanceLabel(b.object_type, b.object_id if with_ids else None)
              for b in boxes if b.instance_id in present and b.instance_id > 0}
    return CameraFrame(rgb=rgb, depth=depth, instances=ids, labels=labels, intrinsics=intrinsics,
                       world_from_camera=np.array(world_from_camera, dtype=float), stamp=stamp,
                       metadata_objects=metadata_objects)
