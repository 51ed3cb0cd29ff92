"""The skill executor over a real ``ai2thor.controller.Controller`` (needs a Unity build), and event conversions."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from karma_memory.core.errors import SimulatorError
from karma_memory.core.types import CameraFrame, InstanceLabel
from karma_memory.sim.executor import DEFAULT_REACH_M, ThorSkillExecutorBase
from karma_memory.sim.geometry import intrinsics_from_vertical_fov, world_from_camera

__all__ = ["ThorSkillExecutor", "thor_event_to_camera_frame", "visible_objects", "area_positions_from_reachable"]


def visible_objects(metadata: Mapping[str, Any]) -> list[dict]:
    """The visible objects of one THOR metadata dict (copies)."""
    return [dict(o) for o in metadata.get("objects") or () if o.get("visible")]


def thor_event_to_camera_frame(event: Any, stamp: float | None = None) -> CameraFrame:
    """Convert an ``ai2thor.server.Event`` (or the embedded ``Event``) to a :class:`CameraFrame`.

    Instance ids are 1 + the object's index in ``metadata['objects']``; pixels whose colour is not an
    object of the metadata (walls, ceiling) are 0. The pose comes from ``cameraPosition``, the agent's
    yaw and ``cameraHorizon``; the intrinsics from ``fov`` (vertical, Unity's convention).

    Raises:
        SimulatorError: the event lacks RGB, depth or instance segmentation (start the controller with
            ``renderDepthImage=True, renderInstanceSegmentation=True``).
    """
    md = event.metadata
    rgb, depth, seg = event.frame, event.depth_frame, event.instance_segmentation_frame
    named = (("frame", rgb), ("depth_frame", depth), ("instance_segmentation_frame", seg))
    missing = [n for n, v in named if v is None]
    if missing:
        raise SimulatorError(f"THOR event lacks {missing}; use renderDepthImage=True and "
                             "renderInstanceSegmentation=True")
    rgb = np.ascontiguousarray(rgb[..., :3], dtype=np.uint8)
    depth = np.ascontiguousarray(depth, dtype=np.float32)
    seg = np.asarray(seg)[..., :3].astype(np.uint32)
    h, w = rgb.shape[:2]
    if depth.shape != (h, w) or seg.shape[:2] != (h, w):
        raise SimulatorError(f"THOR frames disagree in size: rgb {rgb.shape}, depth {depth.shape}, seg {seg.shape}")

    objects = list(md.get("objects") or ())
    index = {o["objectId"]: i + 1 for i, o in enumerate(objects)}
    packed = (seg[..., 0] << 16) | (seg[..., 1] << 8) | seg[..., 2]
    colors, inverse = np.unique(packed.reshape(-1), return_inverse=True)
    color_to_id = getattr(event, "color_to_object_id", {}) or {}
    lut = np.zeros(len(colors), dtype=np.int32)
    labels: dict[int, InstanceLabel] = {}
    for k, value in enumerate(colors):
        c = (int(value) >> 16 & 255, int(value) >> 8 & 255, int(value) & 255)
        oid = color_to_id.get(c)
        iid = index.get(oid) if oid is not None else None
        if iid is not None:
            lut[k] = iid
            labels[iid] = InstanceLabel(objects[iid - 1]["objectType"], oid)
    instances = lut[inverse].reshape(h, w)

    agent = md["agent"]
    cam = md.get("cameraPosition") or {"x": agent["position"]["x"], "y": agent["position"]["y"] + 0.675,
                                        "z": agent["position"]["z"]}
    pose = world_from_camera((cam["x"], cam["y"], cam["z"]), float(agent["rotation"]["y"]),
                             float(agent.get("cameraHorizon", 0.0)))
    intrinsics = intrinsics_from_vertical_fov(w, h, float(md.get("fov", 90.0)))
    return CameraFrame(rgb=rgb, depth=depth, instances=instances, labels=labels, intrinsics=intrinsics,
                       world_from_camera=pose, stamp=float(md.get("currentTime", 0.0) if stamp is None else stamp),
                       metadata_objects=[dict(o) for o in objects])


def area_positions_from_reachable(reachable_xz: Sequence[Sequence[float]], spacing: float = 1.5,
                                  cell: float = 0.25) -> dict[str, tuple[float, float]]:
    """Area id -> (x, z), tiled exactly like the long-term memory (``scene_graph.add_areas``)."""
    from karma_memory.core import scene_graph as sg

    graph = sg.new_scene_graph()
    sg.add_areas(graph, np.asarray(reachable_xz, dtype=float).reshape(-1, 2), spacing=spacing, cell=cell)
    return sg.area_positions(graph)


class ThorSkillExecutor(ThorSkillExecutorBase):
    """SKILL_SCHEMA over a real AI2-THOR controller: same skills, same failure messages as the embedded one.

    Args:
        controller: an ``ai2thor.controller.Controller`` (or anything with its ``step``/``last_event``).
        area_positions: area id -> (x, z); None = tiles over THOR's reachable positions, like the LTM.
        durations: seconds per primitive action (defaults: the embedded simulator's table).
        reach_m: manipulation reach, metres.
        grid_size: THOR ``gridSize``; default: the controller's initialization parameter, else 0.25.
    """

    def __init__(self, controller: Any, area_positions: Mapping[str, tuple[float, float]] | None = None,
                 durations: Mapping[str, float] | None = None, reach_m: float = DEFAULT_REACH_M,
                 grid_size: float | None = None) -> None:
        if grid_size is None:
            params = getattr(controller, "initialization_parameters", None) or {}
            grid_size = float(params.get("gridSize", 0.25))
        if durations is None:
            from karma_memory.sim.controller import DEFAULT_ACTION_DURATIONS

            durations = DEFAULT_ACTION_DURATIONS
        super().__init__(controller, {}, durations=durations, reach_m=reach_m, grid_size=grid_size)
        if area_positions is None:
            area_positions = area_positions_from_reachable(self._reachable_xz(), cell=self.grid_size)
        self.area_positions = {str(a): (float(p[0]), float(p[1])) for a, p in area_positions.items()}

    def camera_frame(self) -> CameraFrame:
        """The controller's last view as a CameraFrame."""
        return thor_event_to_camera_frame(self.controller.last_event)
