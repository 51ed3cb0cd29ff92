"""Conversions between the THOR world frame of the core and the ROS REP-103 map frame.

THOR: x right, y up, z forward (left-handed). Map: x forward, y left, z up (right-handed).
map = (thor_z, -thor_x, thor_y).
"""

from __future__ import annotations

import numpy as np

__all__ = ["MAP_FROM_THOR", "THOR_FROM_MAP", "thor_to_map", "map_to_thor", "thor_pose_to_map", "map_pose_to_thor"]

#: 3×3 matrix taking a THOR vector to the map frame (a reflection: det = -1).
MAP_FROM_THOR = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
THOR_FROM_MAP = MAP_FROM_THOR.T


def thor_to_map(p: "np.ndarray | tuple[float, float, float]") -> np.ndarray:
    """A THOR point in the map frame.

    >>> thor_to_map((1.0, 2.0, 3.0)).tolist()
    [3.0, -1.0, 2.0]
    """
    return MAP_FROM_THOR @ np.asarray(p, dtype=float)


def map_to_thor(p: "np.ndarray | tuple[float, float, float]") -> np.ndarray:
    """A map-frame point in the THOR frame (inverse of thor_to_map)."""
    return THOR_FROM_MAP @ np.asarray(p, dtype=float)


def thor_pose_to_map(world_from_camera_thor: np.ndarray) -> np.ndarray:
    """4×4 optical-camera pose in THOR world → 4×4 pose in the map frame (a proper rotation)."""
    out = np.eye(4)
    out[:3, :3] = MAP_FROM_THOR @ world_from_camera_thor[:3, :3]
    out[:3, 3] = MAP_FROM_THOR @ world_from_camera_thor[:3, 3]
    return out


def map_pose_to_thor(map_from_camera: np.ndarray) -> np.ndarray:
    """4×4 optical-camera pose in the map frame → the THOR-world transform perception uses."""
    out = np.eye(4)
    out[:3, :3] = THOR_FROM_MAP @ map_from_camera[:3, :3]
    out[:3, 3] = THOR_FROM_MAP @ map_from_camera[:3, 3]
    return out
