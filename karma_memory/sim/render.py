"""Pinhole ray caster over axis-aligned boxes and a room: RGB, depth (metres) and instance ids, in numpy."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from karma_memory.core.types import CameraIntrinsics
from karma_memory.sim.geometry import camera_axes, intrinsics_from_vertical_fov

__all__ = ["Room", "BoxSet", "RenderOutput", "Renderer", "type_color"]

_NEAR = 0.05
# Shade per hit face: x faces, +y (top), -y (bottom), z faces.
_FACE_SHADE = np.array([0.78, 1.0, 0.55, 0.9], dtype=np.float32)
# Room colours per face: wall x, floor (dark squares), ceiling, wall z, floor (light squares).
_ROOM_COLORS = np.array([[200, 196, 186], [150, 120, 90], [235, 235, 235], [185, 182, 172], [175, 145, 115]],
                        dtype=np.float32)
# Corner m of a box takes the max on axis a when bit a of m is set; the 12 edges join corners one bit apart.
_CORNER_BITS = np.array([[(m >> a) & 1 for a in range(3)] for m in range(8)], dtype=bool)
_EDGES = [(m, m | bit) for m in range(8) for bit in (1, 2, 4) if not m & bit]


def type_color(object_type: str) -> tuple[int, int, int]:
    """A stable mid-saturation colour per object type (same type, same colour, in every scene).

    >>> type_color("Apple") == type_color("Apple")
    True
    """
    digest = hashlib.sha1(object_type.encode()).digest()
    return (60 + digest[0] * 170 // 255, 60 + digest[1] * 170 // 255, 60 + digest[2] * 170 // 255)


@dataclass(frozen=True)
class Room:
    """The room as an inverted box: floor, four walls, ceiling (metres, THOR world)."""

    xmin: float
    xmax: float
    zmin: float
    zmax: float
    floor_y: float
    ceiling_y: float
    floor_instance: int = 0  # instance id painted on the floor (the scene's Floor object), 0 = background


@dataclass(frozen=True)
class BoxSet:
    """Boxes to draw: (N, 3) min and max corners, (N, 3) uint8 colours, (N,) int32 instance ids (> 0)."""

    lo: np.ndarray
    hi: np.ndarray
    colors: np.ndarray
    instance_ids: np.ndarray


@dataclass(frozen=True)
class RenderOutput:
    """One rendered view: rgb (H, W, 3) uint8, depth (H, W) float32 z-depth in metres, instances (H, W) int32."""

    rgb: np.ndarray
    depth: np.ndarray
    instances: np.ndarray


class Renderer:
    """Ray caster with one pinhole camera of fixed size (THOR convention: ``fov`` is vertical).

    Each box is slab-tested only on the pixels inside its projected screen rectangle, so the cost
    follows what is on screen rather than pixels × boxes.
    """

    def __init__(self, width: int = 320, height: int = 240, fov: float = 90.0, far: float = 30.0) -> None:
        if not (8 <= int(width) <= 4096 and 8 <= int(height) <= 4096):
            raise ValueError(f"render size must be within 8..4096 px, got {width}x{height}")
        self.width, self.height, self.fov, self.far = int(width), int(height), float(fov), float(far)
        self.intrinsics: CameraIntrinsics = intrinsics_from_vertical_fov(self.width, self.height, self.fov)
        k = self.intrinsics
        u = (np.arange(self.width, dtype=np.float32) - np.float32(k.cx)) / np.float32(k.fx)
        v = (np.arange(self.height, dtype=np.float32) - np.float32(k.cy)) / np.float32(k.fy)
        cam = np.empty((self.height, self.width, 3), dtype=np.float32)
        cam[..., 0] = u[None, :]
        cam[..., 1] = v[:, None]
        cam[..., 2] = 1.0
        self._rays_cam = cam.reshape(-1, 3)  # z component 1: the ray parameter t is the z-depth

    def render(self, camera_position: np.ndarray, yaw_deg: float, horizon_deg: float, boxes: BoxSet,
               room: Room) -> RenderOutput:
        """Render the boxes inside the room seen from a camera pose (THOR yaw/horizon, degrees)."""
        shape = (self.height, self.width)
        rot = camera_axes(yaw_deg, horizon_deg).astype(np.float32)
        origin = np.asarray(camera_position, dtype=np.float32).reshape(3)
        dirs = self._rays_cam @ rot.T  # (H*W, 3) world directions
        with np.errstate(divide="ignore"):
            inv = [(1.0 / dirs[:, a]).reshape(shape) for a in range(3)]
        depth, face = self._room(origin, inv, room)
        index = np.full(shape, -1, dtype=np.int32)
        self._boxes(origin, rot, inv, boxes, depth, face, index)

        # Floor checker (texture for perception): a fifth "face" on the light squares of the floor.
        floor = np.flatnonzero((face == 1) & (index < 0))
        flat_depth = depth.reshape(-1)[floor]
        hx = (origin[0] + dirs[floor, 0] * flat_depth) * 2.0
        hz = (origin[2] + dirs[floor, 2] * flat_depth) * 2.0
        light = (np.floor(hx).astype(np.int32) + np.floor(hz).astype(np.int32)) & 1
        face.reshape(-1)[floor] = 1 + 3 * light.astype(np.int8)

        lut = np.empty((len(boxes.colors) + 1, 5, 3), dtype=np.float32)
        lut[0] = _ROOM_COLORS
        lut[1:, :4] = np.asarray(boxes.colors, dtype=np.float32)[:, None, :] * _FACE_SHADE[None, :, None]
        lut[1:, 4] = lut[1:, 1]
        flat_lut = np.clip(lut, 0, 255).astype(np.uint8).reshape(-1, 3)
        rgb = np.take(flat_lut, ((index + 1) * 5 + face).reshape(-1), axis=0).reshape(shape + (3,))
        ids = np.concatenate([np.zeros(1, np.int32), np.asarray(boxes.instance_ids, dtype=np.int32)])
        instances = ids[index + 1]
        if room.floor_instance:
            instances[(index < 0) & ((face == 1) | (face == 4))] = room.floor_instance
        return RenderOutput(rgb, depth, instances)

    # -------------------------------------------------------------------------------------- internals
    def _room(self, origin: np.ndarray, inv: list[np.ndarray], room: Room) -> tuple[np.ndarray, np.ndarray]:
        """Exit distance of every ray from the room box; face 0 = wall x, 1 = floor, 2 = ceiling, 3 = wall z."""
        ix, iy, iz = inv
        with np.errstate(invalid="ignore"):
            tx = np.where(ix > 0, (room.xmax - origin[0]) * ix, (room.xmin - origin[0]) * ix)
            ty = np.where(iy > 0, (room.ceiling_y - origin[1]) * iy, (room.floor_y - origin[1]) * iy)
            tz = np.where(iz > 0, (room.zmax - origin[2]) * iz, (room.zmin - origin[2]) * iz)
            for t in (tx, ty, tz):  # camera outside the room on that axis (or NaN): ignore that bound
                t[~(t > 0)] = np.inf
        depth = np.minimum(np.minimum(tx, ty), tz)
        face = np.where(ty <= np.minimum(tx, tz), np.where(iy > 0, 2, 1), np.where(tx <= tz, 0, 3)).astype(np.int8)
        np.minimum(depth, self.far, out=depth)
        return depth.astype(np.float32, copy=False), face

    def _clipped_projection(self, cam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixel coordinates of a box's corners clipped to the near plane (box partly behind the camera)."""
        z = cam[:, 2]
        points = [cam[z > _NEAR]]
        for a, b in _EDGES:
            za, zb = z[a], z[b]
            if (za > _NEAR) != (zb > _NEAR):
                t = (_NEAR - za) / (zb - za)
                points.append((cam[a] + t * (cam[b] - cam[a]))[None])
        pts = np.concatenate(points)
        k = self.intrinsics
        zc = np.maximum(pts[:, 2], _NEAR)
        return k.fx * pts[:, 0] / zc + k.cx, k.fy * pts[:, 1] / zc + k.cy

    def _boxes(self, origin: np.ndarray, rot: np.ndarray, inv: list[np.ndarray], boxes: BoxSet,
               depth: np.ndarray, face: np.ndarray, index: np.ndarray) -> None:
        """Z-buffer every box into depth/face/index, testing only pixels inside its screen rectangle."""
        if len(boxes.lo) == 0:
            return
        k = self.intrinsics
        h, w = self.height, self.width
        lo = np.asarray(boxes.lo, dtype=np.float32) - origin
        hi = np.asarray(boxes.hi, dtype=np.float32) - origin
        inside = np.all((lo <= 0) & (hi >= 0), axis=1)  # seen from inside: culled, like backfaces
        corners = np.stack([np.where(_CORNER_BITS[None, :, a], hi[:, None, a], lo[:, None, a]) for a in range(3)],
                           axis=2)
        cam = corners @ rot  # (N, 8, 3) in the optical frame
        z = cam[..., 2]
        front = z > _NEAR
        keep = front.any(axis=1) & ~inside
        behind = ~front.all(axis=1)
        zs = np.where(front, z, np.inf)
        u = k.fx * cam[..., 0] / zs + k.cx
        v = k.fy * cam[..., 1] / zs + k.cy
        big = np.float32(1e9)
        rect = np.stack([np.where(front, u, big).min(1), np.where(front, u, -big).max(1),
                         np.where(front, v, big).min(1), np.where(front, v, -big).max(1)], axis=1)
        for i in np.flatnonzero(behind & keep):
            ui, vi = self._clipped_projection(cam[i])
            rect[i] = (ui.min(), ui.max(), vi.min(), vi.max())
        rect = np.clip(rect, -1e6, 1e6)
        u0s = np.clip(np.floor(rect[:, 0]), 0, w).astype(int)
        u1s = np.clip(np.ceil(rect[:, 1]) + 1, 0, w).astype(int)
        v0s = np.clip(np.floor(rect[:, 2]), 0, h).astype(int)
        v1s = np.clip(np.ceil(rect[:, 3]) + 1, 0, h).astype(int)
        keep &= (u0s < u1s) & (v0s < v1s)
        ix, iy, iz = inv
        nearest = np.where(front, z, np.float32(_NEAR)).min(axis=1)
        order = np.flatnonzero(keep)
        order = order[np.argsort(nearest[order], kind="stable")]  # front to back: occluded boxes get skipped
        with np.errstate(invalid="ignore"):
            for i in order:
                u0, u1, v0, v1 = u0s[i], u1s[i], v0s[i], v1s[i]
                if nearest[i] >= depth[v0:v1, u0:u1].max():
                    continue
                sx, sy, sz = ix[v0:v1, u0:u1], iy[v0:v1, u0:u1], iz[v0:v1, u0:u1]
                ax, bx = lo[i, 0] * sx, hi[i, 0] * sx
                ay, by = lo[i, 1] * sy, hi[i, 1] * sy
                az, bz = lo[i, 2] * sz, hi[i, 2] * sz
                nx, ny, nz = np.minimum(ax, bx), np.minimum(ay, by), np.minimum(az, bz)
                tnear = np.maximum(np.maximum(nx, ny), nz)
                tfar = np.minimum(np.minimum(np.maximum(ax, bx), np.maximum(ay, by)), np.maximum(az, bz))
                sub_depth = depth[v0:v1, u0:u1]
                hit = (tnear <= tfar) & (tnear > _NEAR) & (tnear < sub_depth)
                if not hit.any():
                    continue
                t = tnear[hit]
                f = np.where(ny[hit] == t, np.where(sy[hit] < 0, 1, 2), np.where(nx[hit] == t, 0, 3))
                sub_depth[hit] = t
                face[v0:v1, u0:u1][hit] = f
                index[v0:v1, u0:u1][hit] = i
