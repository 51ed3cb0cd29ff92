"""The embedded AI2-THOR-compatible controller: THOR actions, metadata and frames over real iTHOR scenes."""

from __future__ import annotations

import copy
import math
from typing import Any, Callable, Mapping

import numpy as np

from karma_memory.core.errors import ConfigError, SimulatorError
from karma_memory.core.types import CameraFrame, InstanceLabel
from karma_memory.sim.geometry import aabb_dict, aabb_of, world_from_camera
from karma_memory.sim.render import Renderer, RenderOutput, Room
from karma_memory.sim.rules import (
    BASIN_TYPES, ENCLOSING_TYPES, HEATING_TOGGLES, KNIFE_TYPES, LIQUIDS, SLICE_COUNTS, SLICED_COOKABLE, SLICED_TYPE,
    WATER_SOURCES, allowed_in,
)
from karma_memory.sim.scenes import SceneData, load_scene
from karma_memory.sim.world import SLIDING_TYPES, Pose, Snapshot, World, capsule_dist2

__all__ = ["EmbeddedController", "Event", "DEFAULT_ACTION_DURATIONS", "ACTIONS"]

#: Simulated seconds per action. Moves are per ``grid_size`` metres, rotations per 90°, looks per 30°;
#: the controller scales them by the actual magnitude.
DEFAULT_ACTION_DURATIONS: dict[str, float] = {
    "MoveAhead": 0.5, "MoveBack": 0.5, "MoveLeft": 0.5, "MoveRight": 0.5,
    "RotateLeft": 0.5, "RotateRight": 0.5, "LookUp": 0.25, "LookDown": 0.25,
    "PickupObject": 2.0, "PutObject": 2.0, "DropHandObject": 1.0,
    "OpenObject": 1.5, "CloseObject": 1.5, "ToggleObjectOn": 1.0, "ToggleObjectOff": 1.0,
    "SliceObject": 3.0, "CleanObject": 5.0, "DirtyObject": 1.0, "FillObjectWithLiquid": 3.0,
    "EmptyLiquidFromObject": 2.0, "BreakObject": 1.0, "CookObject": 10.0,
    "Teleport": 0.0, "TeleportFull": 0.0, "GetReachablePositions": 0.0, "Pass": 0.0, "Done": 0.0,
}
_MIN_HORIZON, _MAX_HORIZON = -30.0, 60.0
_MOVES = {"MoveAhead": 0.0, "MoveRight": 90.0, "MoveBack": 180.0, "MoveLeft": 270.0}
_THOR_KWARGS = {"gridSize": "grid_size", "visibilityDistance": "visibility_distance", "fieldOfView": "fov",
                "renderImage": "render_images", "rotateStepDegrees": "rotate_step_degrees"}


def _translated(obj: dict, delta: np.ndarray) -> dict:
    """A copy of a metadata dict moved by ``delta`` (position, AABB and OOBB)."""
    dx, dy, dz = (float(v) for v in delta)
    p = obj["position"]
    box = obj["axisAlignedBoundingBox"]
    c = box["center"]
    out = {**obj, "position": {"x": p["x"] + dx, "y": p["y"] + dy, "z": p["z"] + dz},
           "axisAlignedBoundingBox": {**box, "center": {"x": c["x"] + dx, "y": c["y"] + dy, "z": c["z"] + dz},
                                      "cornerPoints": [[q[0] + dx, q[1] + dy, q[2] + dz] for q in box["cornerPoints"]],
                                      "size": dict(box["size"])}}
    oobb = obj.get("objectOrientedBoundingBox")
    if oobb and oobb.get("cornerPoints"):
        out["objectOrientedBoundingBox"] = {**oobb, "cornerPoints": [[q[0] + dx, q[1] + dy, q[2] + dz]
                                                                     for q in oobb["cornerPoints"]]}
    return out


class _Fail(Exception):
    """An action failed: the message becomes ``errorMessage`` and the state is left unchanged."""


def _xyz(d: Mapping[str, float]) -> dict[str, float]:
    return {"x": float(d["x"]), "y": float(d["y"]), "z": float(d["z"])}


class Event:
    """What :meth:`EmbeddedController.step` returns, shaped like ``ai2thor.server.Event``.

    ``metadata`` and the frames are computed on first access from an immutable snapshot of the
    state after the action, so stepping stays cheap when nobody looks.
    """

    def __init__(self, controller: EmbeddedController, snapshot: Snapshot, pose: Pose, action: str, success: bool,
                 error: str, action_return: Any, sim_time: float) -> None:
        self._ctrl_settings = (controller.width, controller.height, controller.fov, controller.visibility_distance,
                               controller.render_images)
        self._renderer = controller._renderer
        self._room = controller._room
        self._scene_name = controller.scene.name
        self._scene_bounds = controller.scene.floor_bounds, controller.scene.floor_y, controller.scene.ceiling_y
        self._snapshot = snapshot
        self.pose = pose
        self.action = action
        self.last_action_success = success
        self.error_message = error
        self.action_return = action_return
        self.sim_time = sim_time
        self._metadata: dict[str, Any] | None = None
        self._render: RenderOutput | None = None
        self._visibility: dict[str, bool] | None = None
        self.screen_width, self.screen_height = controller.width, controller.height
        self._seg_colors = controller._world.seg_colors  # append-only in the world: safe to share

    @property
    def object_id_to_color(self) -> dict[str, tuple[int, int, int]]:
        """objectId -> its colour in ``instance_segmentation_frame`` (THOR's mapping)."""
        return {oid: self._seg_colors[oid] for oid in self._snapshot.index}

    @property
    def color_to_object_id(self) -> dict[tuple[int, int, int], str]:
        """Inverse of :attr:`object_id_to_color`."""
        return {c: oid for oid, c in self.object_id_to_color.items()}

    def __bool__(self) -> bool:
        return self.last_action_success

    def __repr__(self) -> str:
        return (f"<Event {self.action} success={self.last_action_success} error={self.error_message!r} "
                f"scene={self._scene_name}>")

    # ----------------------------------------------------------------------------------- metadata
    def visibility(self) -> dict[str, bool]:
        """objectId -> visible after the action (cached)."""
        if self._visibility is None:
            width, height, fov, vis_dist, _ = self._ctrl_settings
            self._visibility = self._snapshot.visibility(self.pose, vis_dist, fov, width / height)
        return self._visibility

    @property
    def metadata(self) -> dict[str, Any]:
        """THOR metadata: objects, agent, lastAction, lastActionSuccess, errorMessage, actionReturn, ..."""
        if self._metadata is None:
            self._metadata = self._build_metadata()
        return self._metadata

    def _build_metadata(self) -> dict[str, Any]:
        width, height, fov, _, _ = self._ctrl_settings
        vis = self.visibility()
        snap = self._snapshot
        agent = np.array([self.pose.x, self.pose.y, self.pose.z])
        distances = np.linalg.norm(snap.positions() - agent, axis=1).tolist()
        held = snap.held
        frozen = snap.frozen_objects()
        delta = snap.hand_delta(self.pose)
        if delta is not None:  # the held object (and its contents) are in the hand at this pose
            frozen = list(frozen)
            for i in snap.carried():
                frozen[i] = _translated(frozen[i], delta)
                p = frozen[i]["position"]
                distances[i] = float(math.dist(agent, (p["x"], p["y"], p["z"])))
        objects = [{**obj, "visible": vis[oid], "isInteractable": vis[oid], "distance": dist, "isPickedUp": oid == held}
                   for obj, oid, dist in zip(frozen, snap.index, distances)]
        cam = self.pose.camera
        (xmin, xmax, zmin, zmax), floor_y, ceiling_y = self._scene_bounds
        lo, hi = np.array([xmin, floor_y, zmin]), np.array([xmax, ceiling_y, zmax])
        held_obj = snap.objects[snap.index[held]] if held is not None else None
        return {
            "objects": objects,
            "agent": {
                "name": "agent", "position": {"x": self.pose.x, "y": self.pose.y, "z": self.pose.z},
                "rotation": {"x": 0.0, "y": self.pose.yaw, "z": 0.0}, "cameraHorizon": self.pose.horizon,
                "isStanding": True, "inHighFrictionArea": False,
            },
            "cameraPosition": {"x": float(cam[0]), "y": float(cam[1]), "z": float(cam[2])},
            "inventoryObjects": [] if held_obj is None else [{"objectId": held_obj["objectId"],
                                                              "objectType": held_obj["objectType"]}],
            "sceneName": self._scene_name,
            "lastAction": self.action,
            "lastActionSuccess": self.last_action_success,
            "errorMessage": self.error_message,
            "actionReturn": copy.deepcopy(self.action_return),
            "screenWidth": width,
            "screenHeight": height,
            "fov": fov,
            "depthFormat": "Meters",
            "colors": self._colors_list(),
            "sceneBounds": {"center": {k: float(v) for k, v in zip("xyz", (lo + hi) / 2)},
                            "size": {k: float(v) for k, v in zip("xyz", hi - lo)},
                            "cornerPoints": [[float(x), float(y), float(z)] for x in (lo[0], hi[0])
                                             for y in (lo[1], hi[1]) for z in (lo[2], hi[2])]},
            "agentId": 0,
            "isSceneAtRest": True,
            "currentTime": self.sim_time,
            "thirdPartyCameras": [],
        }

    def _colors_list(self) -> list[dict[str, Any]]:
        """THOR's ``metadata['colors']`` (objectId -> segmentation colour), built once per world state."""
        arrays = self._snapshot._arrays
        if "colors_list" not in arrays:
            arrays["colors_list"] = [{"name": oid, "color": list(self._seg_colors[oid])}
                                     for oid in self._snapshot.index]
        return [dict(c) for c in arrays["colors_list"]]

    # ------------------------------------------------------------------------------------- frames
    def _rendered(self) -> RenderOutput | None:
        if not self._ctrl_settings[4]:
            return None
        if self._render is None:
            self._render = self._renderer.render(self.pose.camera, self.pose.yaw, self.pose.horizon,
                                                 self._snapshot.box_set(self.pose), self._room)
        return self._render

    @property
    def frame(self) -> np.ndarray | None:
        """RGB (H, W, 3) uint8, or None when rendering is off."""
        out = self._rendered()
        return None if out is None else out.rgb

    @property
    def depth_frame(self) -> np.ndarray | None:
        """Depth (H, W) float32 in metres along the optical axis, or None when rendering is off."""
        out = self._rendered()
        return None if out is None else out.depth

    @property
    def instance_ids_frame(self) -> np.ndarray | None:
        """Instance ids (H, W) int32 (0 = walls/ceiling), or None when rendering is off."""
        out = self._rendered()
        return None if out is None else out.instances

    @property
    def instance_segmentation_frame(self) -> np.ndarray | None:
        """THOR-style segmentation: (H, W, 3) uint8, one colour per object (see ``color_to_object_id``)."""
        out = self._rendered()
        if out is None:
            return None
        lut = np.zeros((max(self._snapshot.instance_ids.values(), default=0) + 1, 3), dtype=np.uint8)
        for oid, iid in self._snapshot.instance_ids.items():
            lut[iid] = self.object_id_to_color[oid]
        return lut[out.instances]

    @property
    def instance_masks(self) -> dict[str, np.ndarray]:
        """objectId -> boolean mask, for the objects in view."""
        out = self._rendered()
        if out is None:
            return {}
        by_iid = {iid: oid for oid, iid in self._snapshot.instance_ids.items()}
        return {by_iid[i]: out.instances == i for i in np.unique(out.instances) if i in by_iid}

    def camera_frame(self) -> CameraFrame:
        """The view as perception consumes it: RGB-D, instance ids with labels, pose and metadata objects.

        Raises:
            SimulatorError: the controller was created with ``render_images=False``.
        """
        out = self._rendered()
        if out is None:
            raise SimulatorError("camera_frame() needs render_images=True")
        snap = self._snapshot
        by_iid = {iid: oid for oid, iid in snap.instance_ids.items()}
        labels: dict[int, InstanceLabel] = {}
        for iid in np.unique(out.instances):
            oid = by_iid.get(int(iid))
            if oid is not None:
                labels[int(iid)] = InstanceLabel(snap.objects[snap.index[oid]]["objectType"], oid)
        return CameraFrame(
            rgb=out.rgb, depth=out.depth, instances=out.instances, labels=labels,
            intrinsics=self._renderer.intrinsics,
            world_from_camera=world_from_camera(self.pose.camera, self.pose.yaw, self.pose.horizon),
            stamp=self.sim_time, metadata_objects=self.metadata["objects"])


class EmbeddedController:
    """A drop-in for ``ai2thor.controller.Controller`` that runs offline on the 120 real iTHOR scenes.

    Actions follow THOR's names, arguments and failure behaviour: a failed action sets
    ``lastActionSuccess=False`` and an ``errorMessage`` and changes nothing. Movement is restricted
    to the scene's reachable grid. Cost counters (``steps``, ``distance_m``, ``sim_time_s``) add up
    over the controller's life; :meth:`reset` zeroes them.

    Args:
        scene: ``FloorPlan<N>``.
        seed: seeds placement choices (same seed + same actions = same states).
        width, height, fov: camera (``fov`` is vertical, as in THOR).
        visibility_distance: objects farther than this from the agent are not visible/interactable
            (THOR's measure: horizontal distance from the agent to the object's box; see
            :func:`~karma_memory.sim.world.capsule_dist2`).
        grid_size: movement step and reachable-grid spacing, metres.
        render_images: compute frames (lazily, on access); False = ``frame`` is None, like THOR.
        action_durations: overrides of :data:`DEFAULT_ACTION_DURATIONS` (seconds).
        rotate_step_degrees: default RotateLeft/Right step.
    """

    def __init__(self, scene: str = "FloorPlan1", seed: int = 0, width: int = 320, height: int = 240,
                 fov: float = 90.0, visibility_distance: float = 1.5, grid_size: float = 0.25,
                 render_images: bool = True, action_durations: Mapping[str, float] | None = None,
                 rotate_step_degrees: float = 90.0, **thor_kwargs: Any) -> None:
        settings = dict(width=width, height=height, fov=fov, visibility_distance=visibility_distance,
                        grid_size=grid_size, render_images=render_images, rotate_step_degrees=rotate_step_degrees)
        for key, value in thor_kwargs.items():
            if key not in _THOR_KWARGS:
                raise ConfigError(f"unknown controller argument {key!r}; THOR aliases: {sorted(_THOR_KWARGS)}")
            settings[_THOR_KWARGS[key]] = value
        self.width, self.height = int(settings["width"]), int(settings["height"])
        self.fov = float(settings["fov"])
        self.visibility_distance = float(settings["visibility_distance"])
        self.grid_size = float(settings["grid_size"])
        self.render_images = bool(settings["render_images"])
        self.rotate_step_degrees = float(settings["rotate_step_degrees"])
        if self.visibility_distance <= 0 or not math.isfinite(self.visibility_distance):
            raise ConfigError(f"visibility_distance must be > 0, got {visibility_distance!r}")
        if not 10.0 <= self.fov <= 170.0:
            raise ConfigError(f"fov must be within [10, 170] degrees, got {fov!r}")
        self.action_durations = dict(DEFAULT_ACTION_DURATIONS)
        for key, value in (action_durations or {}).items():
            if not isinstance(value, (int, float)) or value < 0 or not math.isfinite(value):
                raise ConfigError(f"action duration of {key!r} must be a number >= 0, got {value!r}")
            self.action_durations[key] = float(value)
        try:
            self._renderer = Renderer(self.width, self.height, self.fov)
        except ValueError as err:
            raise ConfigError(str(err)) from err
        self.seed = int(seed)
        self._handlers: dict[str, Callable[[dict[str, Any]], Any]] = {
            "MoveAhead": self._move, "MoveBack": self._move, "MoveLeft": self._move, "MoveRight": self._move,
            "RotateLeft": self._rotate, "RotateRight": self._rotate, "LookUp": self._look, "LookDown": self._look,
            "Teleport": self._teleport, "TeleportFull": self._teleport,
            "GetReachablePositions": self._reachable_positions, "Pass": self._noop, "Done": self._noop,
            "PickupObject": self._pickup, "PutObject": self._put, "DropHandObject": self._drop,
            "OpenObject": self._open, "CloseObject": self._close,
            "ToggleObjectOn": self._toggle, "ToggleObjectOff": self._toggle,
            "SliceObject": self._slice, "CleanObject": self._clean, "DirtyObject": self._dirty,
            "FillObjectWithLiquid": self._fill, "EmptyLiquidFromObject": self._empty,
            "BreakObject": self._break, "CookObject": self._cook,
        }
        self.last_event: Event
        self.reset(scene)

    # -------------------------------------------------------------------------------------- public
    @property
    def scene(self) -> SceneData:
        return self._scene

    def reset(self, scene: str | None = None, seed: int | None = None) -> Event:
        """Load a scene (default: the current one) in its initial state; counters restart at zero."""
        name = scene if scene is not None else self._scene.name
        self._scene = load_scene(name, self.grid_size)
        if seed is not None:
            self.seed = int(seed)
        self._world = World(self._scene, self.seed)
        fx = self._scene.floor_bounds
        floor = next((oid for oid, o in self._world.objects.items() if o["objectType"] == "Floor"), None)
        self._room = Room(fx[0], fx[1], fx[2], fx[3], self._scene.floor_y, self._scene.ceiling_y,
                          self._world.instance_ids.get(floor, 0) if floor else 0)
        self._cells = {self._key(x, z) for x, z in self._scene.reachable}
        self.steps, self.distance_m, self.sim_time_s = 0, 0.0, 0.0
        self._apply_effects()
        self.last_event = self._event("Initialize", True, "", None)
        return self.last_event

    def step(self, action: str | Mapping[str, Any] | None = None, **kwargs: Any) -> Event:
        """Run one THOR action: ``step("PickupObject", objectId=...)`` or ``step({"action": ..., ...})``.

        Raises:
            SimulatorError: unknown action name (THOR raises ValueError there too).
        """
        if isinstance(action, Mapping):
            kwargs = {**dict(action), **kwargs}
            action = kwargs.pop("action", None)
        elif action is None:
            action = kwargs.pop("action", None)
        if not isinstance(action, str) or action not in self._handlers:
            raise SimulatorError(f"unknown action {action!r}; known: {sorted(self._handlers)}")
        kwargs = dict(kwargs)
        self.steps += 1
        self.sim_time_s += self._duration(action, kwargs)
        try:
            result = self._handlers[action]({"action": action, **kwargs})
            success, error = True, ""
        except _Fail as failure:
            result, success, error = None, False, str(failure)
        self.last_event = self._event(action, success, error, result)
        return self.last_event

    def stop(self) -> None:
        """THOR compatibility: nothing to shut down."""

    def reachable_positions(self) -> np.ndarray:
        """(N, 2) reachable (x, z) of the current scene."""
        return self._scene.reachable

    def disturb(self, object_id: str, new_receptacle_id: str) -> None:
        """Move an object to another receptacle behind the robot's back (a human tidying up).

        No visibility, reach or open/closed checks; costs nothing. The next event shows the change.

        Raises:
            SimulatorError: unknown ids, not pickupable, not a receptacle, or it does not fit.
        """
        w = self._world
        for oid in (object_id, new_receptacle_id):
            if oid not in w.objects or oid in w.hidden:
                raise SimulatorError(f"disturb: object {oid!r} is not in the scene")
        obj, rec = w.objects[object_id], w.objects[new_receptacle_id]
        if not obj.get("pickupable"):
            raise SimulatorError(f"disturb: {object_id!r} is not pickupable")
        if not rec.get("receptacle") or new_receptacle_id == object_id or new_receptacle_id in w.descendants(object_id):
            raise SimulatorError(f"disturb: {new_receptacle_id!r} cannot hold {object_id!r}")
        fitted = w.fit(object_id, new_receptacle_id)
        if fitted is None:
            raise SimulatorError(f"disturb: {object_id!r} does not fit in {new_receptacle_id!r}")
        if w.held == object_id:
            w.materialize_held()
            w.held = None
            w.set(object_id, isPickedUp=False)
        w.reshape(object_id, fitted[1])
        w.move_to(object_id, fitted[0])
        w.set_parent(object_id, new_receptacle_id)
        self._apply_effects()
        self._refresh_last_event()

    def remove(self, object_id: str) -> None:
        """Take an object out of the scene (eaten, thrown away by someone): it vanishes from metadata.

        Raises:
            SimulatorError: unknown id.
        """
        if object_id not in self._world.objects:
            raise SimulatorError(f"remove: object {object_id!r} is not in the scene")
        self._world.remove_object(object_id)
        self._refresh_last_event()

    def _refresh_last_event(self) -> None:
        """After a change behind the robot's back: same last action, current world."""
        e = self.last_event
        self.last_event = self._event(e.action, e.last_action_success, e.error_message, e.action_return)

    # ------------------------------------------------------------------------------------ internals
    def _event(self, action: str, success: bool, error: str, result: Any) -> Event:
        return Event(self, self._world.snapshot(), self._world.pose, action, success, error, result,
                     self.sim_time_s)

    def _key(self, x: float, z: float) -> tuple[int, int]:
        return (int(round(x / self.grid_size)), int(round(z / self.grid_size)))

    def _duration(self, action: str, kwargs: Mapping[str, Any]) -> float:
        base = self.action_durations.get(action, 1.0)
        try:
            if action in _MOVES:
                return base * abs(float(kwargs.get("moveMagnitude", self.grid_size))) / self.grid_size
            if action in ("RotateLeft", "RotateRight"):
                return base * abs(float(kwargs.get("degrees", self.rotate_step_degrees))) / 90.0
            if action in ("LookUp", "LookDown"):
                return base * abs(float(kwargs.get("degrees", 30.0))) / 30.0
        except (TypeError, ValueError):
            return base
        return base

    @staticmethod
    def _number(kwargs: Mapping[str, Any], key: str, default: float) -> float:
        value = kwargs.get(key, default)
        try:
            out = float(value)
        except (TypeError, ValueError):
            raise _Fail(f"{key} must be a number, got {value!r}") from None
        if not math.isfinite(out):
            raise _Fail(f"{key} must be finite, got {value!r}")
        return out

    def _free(self, x: float, z: float) -> bool:
        return self._key(x, z) in self._cells

    # ------------------------------------------------------------------------------- navigation
    def _noop(self, kwargs: dict[str, Any]) -> None:
        return None

    def _move(self, kwargs: dict[str, Any]) -> None:
        magnitude = self._number(kwargs, "moveMagnitude", self.grid_size)
        if magnitude <= 0:
            raise _Fail(f"moveMagnitude must be > 0, got {magnitude}")
        pose = self._world.pose
        heading = math.radians(pose.yaw + _MOVES[kwargs["action"]])
        dx, dz = math.sin(heading) * magnitude, math.cos(heading) * magnitude
        samples = max(1, int(math.ceil(magnitude / (self.grid_size / 2.0))))
        for k in range(1, samples + 1):
            x, z = pose.x + dx * k / samples, pose.z + dz * k / samples
            if not self._free(x, z):
                raise _Fail(f"{kwargs['action']} blocked: ({x:.2f}, {z:.2f}) is not reachable")
        self._world.pose = Pose(pose.x + dx, pose.y, pose.z + dz, pose.yaw, pose.horizon)
        self.distance_m += magnitude

    def _rotate(self, kwargs: dict[str, Any]) -> None:
        degrees = self._number(kwargs, "degrees", self.rotate_step_degrees)
        sign = -1.0 if kwargs["action"] == "RotateLeft" else 1.0
        pose = self._world.pose
        self._world.pose = Pose(pose.x, pose.y, pose.z, (pose.yaw + sign * degrees) % 360.0, pose.horizon)

    def _look(self, kwargs: dict[str, Any]) -> None:
        degrees = self._number(kwargs, "degrees", 30.0)
        sign = -1.0 if kwargs["action"] == "LookUp" else 1.0
        pose = self._world.pose
        horizon = pose.horizon + sign * degrees
        if not _MIN_HORIZON - 1e-6 <= horizon <= _MAX_HORIZON + 1e-6:
            raise _Fail(f"{kwargs['action']}: horizon {horizon:.0f} is outside [{_MIN_HORIZON:.0f}, "
                        f"{_MAX_HORIZON:.0f}] degrees")
        self._world.pose = Pose(pose.x, pose.y, pose.z, pose.yaw, horizon)

    def _teleport(self, kwargs: dict[str, Any]) -> None:
        full = kwargs["action"] == "TeleportFull"
        missing = [k for k in ("position", "rotation", "horizon") if full and k not in kwargs]
        if missing:
            raise _Fail(f"TeleportFull needs {missing}")
        pose = self._world.pose
        position = kwargs.get("position", {"x": pose.x, "y": pose.y, "z": pose.z})
        try:
            x, z = float(position["x"]), float(position["z"])
        except (KeyError, TypeError, ValueError):
            raise _Fail(f"position must be a dict with x and z, got {position!r}") from None
        rotation = kwargs.get("rotation", pose.yaw)
        if isinstance(rotation, Mapping):
            rotation = rotation.get("y", pose.yaw)
        yaw = self._number({"rotation": rotation}, "rotation", pose.yaw) % 360.0
        horizon = self._number(kwargs, "horizon", pose.horizon)
        if not _MIN_HORIZON - 1e-6 <= horizon <= _MAX_HORIZON + 1e-6:
            raise _Fail(f"horizon {horizon} is outside [{_MIN_HORIZON}, {_MAX_HORIZON}]")
        if not self._free(x, z):
            raise _Fail(f"Teleport: ({x:.2f}, {z:.2f}) is not a reachable position")
        self._world.pose = Pose(x, pose.y, z, yaw, horizon)

    def _reachable_positions(self, kwargs: dict[str, Any]) -> list[dict[str, float]]:
        y = self._world.pose.y
        return [{"x": float(x), "y": y, "z": float(z)} for x, z in self._scene.reachable]

    # ----------------------------------------------------------------------------- object checks
    def _target(self, kwargs: Mapping[str, Any]) -> str:
        """The objectId argument, checked: in the scene, and visible (unless forceAction or held)."""
        oid = kwargs.get("objectId")
        w = self._world
        if not isinstance(oid, str) or not oid:
            raise _Fail(f"{kwargs['action']} needs an objectId, got {oid!r}")
        if oid not in w.objects:
            raise _Fail(f"Object ID appears to be invalid: {oid!r} is not in the scene")
        if oid in w.hidden:
            raise _Fail(f"{oid} has been cut into pieces; act on its pieces ({oid}|...)")
        if kwargs.get("forceAction") or oid == w.held:
            return oid
        snap = w.snapshot()
        if oid in snap.enclosed():
            holder = next(a for a in w.ancestors(oid) if w.objects[a]["objectType"] in ENCLOSING_TYPES
                          and not w.objects[a].get("isOpen"))
            raise _Fail(f"{oid} is not visible: it is inside closed {holder}")
        if not snap.visibility(w.pose, self.visibility_distance, self.fov, self.width / self.height,
                               only=[oid]).get(oid):
            lo, hi = aabb_of(w.objects[oid])
            agent = np.array([w.pose.x, w.pose.y, w.pose.z])
            distance = math.sqrt(float(capsule_dist2(agent, lo, hi, self.visibility_distance)[0]))
            if distance > self.visibility_distance:
                raise _Fail(f"{oid} is not visible: {distance:.2f} m away (visibility distance "
                            f"{self.visibility_distance:.2f} m)")
            raise _Fail(f"{oid} is not visible from here (out of view or occluded)")
        return oid

    def _need(self, oid: str, flag: str, what: str) -> dict:
        obj = self._world.objects[oid]
        if not obj.get(flag):
            raise _Fail(f"{oid} is not {what}")
        return obj

    # ---------------------------------------------------------------------------- manipulation
    def _pickup(self, kwargs: dict[str, Any]) -> None:
        w = self._world
        oid = self._target(kwargs)
        self._need(oid, "pickupable", "pickupable")
        if w.held is not None:
            raise _Fail(f"Agent's hand is not empty: already holding {w.held}")
        w.held = oid
        w.set(oid, isPickedUp=True)
        w.set_parent(oid, None)

    def _put(self, kwargs: dict[str, Any]) -> None:
        w = self._world
        if w.held is None:
            raise _Fail("PutObject: the agent is not holding any object")
        rid = self._target(kwargs)
        held = w.held
        rec = self._need(rid, "receptacle", "a receptacle")
        if rid == held or rid in w.descendants(held):
            raise _Fail(f"cannot put {held} into itself")
        if rec["objectType"] in ENCLOSING_TYPES and not rec.get("isOpen"):
            raise _Fail(f"{rid} is closed; open it first")
        htype = w.objects[held]["objectType"]
        if not allowed_in(htype, rec["objectType"]):
            raise _Fail(f"{htype} cannot be placed in/on {rec['objectType']} ({rid})")
        fitted = w.fit(held, rid)
        if fitted is None:
            raise _Fail(f"No valid positions to place {held} in {rid}: it does not fit")
        w.materialize_held()
        w.held = None
        w.set(held, isPickedUp=False)
        w.reshape(held, fitted[1])
        w.move_to(held, fitted[0])
        w.set_parent(held, rid)
        self._apply_effects()

    def _drop(self, kwargs: dict[str, Any]) -> None:
        w = self._world
        if w.held is None:
            raise _Fail("DropHandObject: the agent is not holding any object")
        held = w.held
        w.materialize_held()
        target, surface = w.drop_target()
        lo, _ = w.box(held)
        lo = lo.copy()
        lo[1] = surface
        w.held = None
        w.set(held, isPickedUp=False)
        w.move_to(held, lo)
        w.set_parent(held, target)
        self._apply_effects()

    def _open(self, kwargs: dict[str, Any]) -> None:
        w = self._world
        oid = self._target(kwargs)
        obj = self._need(oid, "openable", "openable")
        openness = self._number(kwargs, "openness", 1.0)
        if not 0.0 < openness <= 1.0:
            raise _Fail(f"openness must be in (0, 1], got {openness}")
        if obj.get("isOpen") and abs(float(obj.get("openness", 1.0)) - openness) < 1e-6:
            raise _Fail(f"{oid} is already open")
        fields: dict[str, Any] = {"isOpen": True, "openness": openness}
        if obj["objectType"] == "Microwave" and obj.get("isToggled"):
            fields["isToggled"] = False  # THOR stops a running microwave when its door opens
        w.set(oid, **fields)
        if obj["objectType"] in SLIDING_TYPES:  # a drawer slides out, bringing what is in it into view
            w.slide_out(oid, openness)
        self._apply_effects()

    def _close(self, kwargs: dict[str, Any]) -> None:
        w = self._world
        oid = self._target(kwargs)
        obj = self._need(oid, "openable", "openable")
        if not obj.get("isOpen"):
            raise _Fail(f"{oid} is already closed")
        if w.held is not None and w.held in w.descendants(oid):
            raise _Fail(f"cannot close {oid} on the held object")
        w.set(oid, isOpen=False, openness=0.0)
        if obj["objectType"] in SLIDING_TYPES:
            w.slide_out(oid, 0.0)
        self._apply_effects()

    def _toggle(self, kwargs: dict[str, Any]) -> None:
        w = self._world
        oid = self._target(kwargs)
        obj = self._need(oid, "toggleable", "toggleable")
        on = kwargs["action"] == "ToggleObjectOn"
        if bool(obj.get("isToggled")) == on:
            raise _Fail(f"{oid} is already {'on' if on else 'off'}")
        if on and obj["objectType"] == "Microwave" and obj.get("isOpen"):
            raise _Fail(f"{oid} must be closed before it can be turned on")
        if obj.get("isBroken"):
            raise _Fail(f"{oid} is broken")
        w.set(oid, isToggled=on)
        self._apply_effects()

    def _slice(self, kwargs: dict[str, Any]) -> None:
        w = self._world
        oid = self._target(kwargs)
        obj = self._need(oid, "sliceable", "sliceable")
        if obj.get("isSliced"):
            raise _Fail(f"{oid} is already sliced")
        if w.held is None or w.objects[w.held]["objectType"] not in KNIFE_TYPES:
            raise _Fail(f"SliceObject needs a Knife or ButterKnife in hand (holding {w.held or 'nothing'})")
        if oid == w.held:
            raise _Fail(f"cannot slice the held object {oid}")
        self._split(oid)

    def _split(self, oid: str) -> None:
        """Replace a sliced/cracked object by its pieces (``<id>|<Type>Sliced_<k>``); it stays, hidden."""
        w = self._world
        obj = w.objects[oid]
        kind = obj["objectType"]
        count = SLICE_COUNTS.get(kind, 2)
        piece_type = SLICED_TYPE.get(kind, f"{kind}Sliced")
        lo, hi = w.box(oid)
        axis = 0 if (hi - lo)[0] >= (hi - lo)[2] else 2
        step = (hi[axis] - lo[axis]) / count
        parent = w.parent.get(oid)
        for k in range(count):
            plo, phi = lo.copy(), hi.copy()
            plo[axis], phi[axis] = lo[axis] + k * step, lo[axis] + (k + 1) * step
            centre = (plo + phi) / 2.0
            piece_id = f"{oid}|{piece_type}_{k}"
            if piece_id in w.objects:
                continue
            piece = {**copy.deepcopy(obj), "objectId": piece_id, "objectType": piece_type,
                     "name": f"{obj.get('name', kind)}_{piece_type}_{k}",
                     "position": {"x": float(centre[0]), "y": float(plo[1]), "z": float(centre[2])},
                     "axisAlignedBoundingBox": aabb_dict(plo, phi), "objectOrientedBoundingBox": None,
                     "sliceable": False, "isSliced": False, "breakable": False,
                     "cookable": piece_type in SLICED_COOKABLE, "isCooked": False,
                     "pickupable": True, "receptacle": False, "receptacleObjectIds": None,
                     "parentReceptacles": None, "isPickedUp": False, "mass": float(obj.get("mass", 0.1)) / count}
            w.add_object(piece, parent)
        w.hidden.add(oid)
        w.set(oid, isSliced=True, pickupable=False)
        w.set_parent(oid, parent)  # refresh containment with the new pieces
        self._apply_effects()

    def _clean(self, kwargs: dict[str, Any]) -> None:
        oid = self._target(kwargs)
        obj = self._need(oid, "dirtyable", "dirtyable")
        if not obj.get("isDirty"):
            raise _Fail(f"{oid} is already clean")
        self._world.set(oid, isDirty=False)

    def _dirty(self, kwargs: dict[str, Any]) -> None:
        oid = self._target(kwargs)
        obj = self._need(oid, "dirtyable", "dirtyable")
        if obj.get("isDirty"):
            raise _Fail(f"{oid} is already dirty")
        self._world.set(oid, isDirty=True)

    def _fill(self, kwargs: dict[str, Any]) -> None:
        oid = self._target(kwargs)
        obj = self._need(oid, "canFillWithLiquid", "fillable")
        liquid = kwargs.get("fillLiquid", "water")
        if liquid not in LIQUIDS:
            raise _Fail(f"fillLiquid must be one of {LIQUIDS}, got {liquid!r}")
        if obj.get("isFilledWithLiquid"):
            raise _Fail(f"{oid} is already filled with {obj.get('fillLiquid')}")
        if obj.get("isBroken"):
            raise _Fail(f"{oid} is broken")
        self._world.set(oid, isFilledWithLiquid=True, fillLiquid=liquid)

    def _empty(self, kwargs: dict[str, Any]) -> None:
        oid = self._target(kwargs)
        obj = self._need(oid, "canFillWithLiquid", "fillable")
        if not obj.get("isFilledWithLiquid"):
            raise _Fail(f"{oid} is already empty")
        self._world.set(oid, isFilledWithLiquid=False, fillLiquid=None)

    def _break(self, kwargs: dict[str, Any]) -> None:
        w = self._world
        oid = self._target(kwargs)
        obj = self._need(oid, "breakable", "breakable")
        if obj.get("isBroken"):
            raise _Fail(f"{oid} is already broken")
        if oid == w.held:
            raise _Fail(f"cannot break the held object {oid}; put it down first")
        w.set(oid, isBroken=True, isFilledWithLiquid=False, fillLiquid=None,
              isToggled=False if obj.get("toggleable") else obj.get("isToggled", False))
        if obj["objectType"] == "Egg":
            self._split(oid)

    def _cook(self, kwargs: dict[str, Any]) -> None:
        oid = self._target(kwargs)
        obj = self._need(oid, "cookable", "cookable")
        if obj.get("isCooked"):
            raise _Fail(f"{oid} is already cooked")
        self._world.set(oid, isCooked=True)

    # --------------------------------------------------------------------------------- effects
    def _apply_effects(self) -> None:
        """State changes caused by running water, heat and cold on what is in/on each source."""
        w = self._world
        objs = w.objects
        on = {oid for oid, o in objs.items() if o.get("isToggled") and oid not in w.hidden}
        basins = [oid for oid, o in objs.items() if o["objectType"] in BASIN_TYPES]
        washed: set[str] = set()
        for src in on:
            types = WATER_SOURCES.get(objs[src]["objectType"])
            if not types:
                continue
            cands = [b for b in basins if objs[b]["objectType"] in types]
            if not cands:
                continue
            sp = objs[src]["position"]
            dists = {b: math.dist((sp["x"], sp["z"]), (objs[b]["position"]["x"], objs[b]["position"]["z"]))
                     for b in cands}
            nearest = min(dists.values())
            for basin, d in dists.items():
                if d <= nearest + 0.3:
                    washed.update(w.descendants(basin))
        heated: set[str] = set()
        for src in on:
            kind = objs[src]["objectType"]
            if kind in HEATING_TOGGLES and not (kind == "Microwave" and objs[src].get("isOpen")):
                heated.update(w.descendants(src))
            elif kind == "StoveKnob":
                for burner in objs[src].get("controlledObjects") or ():
                    if burner in objs:
                        heated.update(w.descendants(burner))
        cooled = {d for oid, o in objs.items() if o["objectType"] == "Fridge" for d in w.descendants(oid)}
        coffee = {d for oid in on if objs[oid]["objectType"] == "CoffeeMachine" for d in w.descendants(oid)}
        for oid in washed | heated | cooled:
            obj = objs.get(oid)
            if obj is None or oid in w.hidden:
                continue
            fields: dict[str, Any] = {}
            if oid in washed:
                if obj.get("dirtyable") and obj.get("isDirty"):
                    fields["isDirty"] = False
                if obj.get("canFillWithLiquid") and not obj.get("isFilledWithLiquid") and not obj.get("isBroken"):
                    fields.update(isFilledWithLiquid=True, fillLiquid="water")
            if oid in heated:
                if obj.get("cookable") and not obj.get("isCooked"):
                    fields["isCooked"] = True
                if obj.get("temperature") != "Hot":
                    fields["temperature"] = "Hot"
                if oid in coffee and obj.get("canFillWithLiquid") and not obj.get("isFilledWithLiquid"):
                    fields.update(isFilledWithLiquid=True, fillLiquid="coffee")
            elif oid in cooled and obj.get("temperature") != "Cold":
                fields["temperature"] = "Cold"
            if fields:
                w.set(oid, **fields)

