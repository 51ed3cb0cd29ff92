"""Simulator bridge node: the embedded simulator as a robot (sensors and observations out, ExecuteSkill in)."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from geometry_msgs.msg import Point, Pose, PoseStamped, Quaternion
from karma_interfaces.action import ExecuteSkill
from karma_interfaces.msg import InstanceLabels, ObjectObservationArray
from rclpy.action import ActionServer
from rclpy.event_handler import PublisherEventCallbacks
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from karma_memory.core.errors import ConfigError, KarmaMemoryError
from karma_memory.core.long_term import thor_object_observations
from karma_memory.nodes import conversions as cv
from karma_memory.nodes.common import Param, ParameterSet, run_node
from karma_memory.nodes.qos import EVENTS, SENSOR_PUBLISH

__all__ = ["PARAMETERS", "SimBridgeNode", "main", "base_pose_msg"]

SOURCES = ("metadata", "perception")
PARAMETERS: dict[str, Param] = {
    "scene": Param("FloorPlan1", "iTHOR scene the embedded simulator loads", read_only=True),
    "seed": Param(0, "seed of the simulator's placement choices", read_only=True),
    "width": Param(320, "camera image width, pixels", read_only=True),
    "height": Param(240, "camera image height, pixels", read_only=True),
    "fov": Param(90.0, "vertical field of view, degrees", read_only=True),
    "visibility_distance": Param(1.5, "objects farther than this are not visible or interactable, metres",
                                 read_only=True),
    "area_spacing": Param(1.5, "area tiling for Explore; must equal long_term_memory's area_spacing", read_only=True),
    "rate_hz": Param(1.0, "camera publishing rate while idle, Hz (0 = only after skills)"),
    "observation_source": Param("metadata", "metadata: publish ground-truth observations of visible objects "
                                            "(the paper's perception); perception: leave them to the perception node"),
    "robot_id": Param("", "robot id written into observations (fleets)"),
    "camera_frame_id": Param("camera_optical_frame", "frame_id of the camera images and camera_info"),
}


def _build(values: dict[str, Any]) -> dict[str, Any]:
    if not 0.0 <= values["rate_hz"] <= 30.0:
        raise ConfigError(f"rate_hz must be in [0, 30], got {values['rate_hz']!r}")
    if values["observation_source"] not in SOURCES:
        raise ConfigError(f"observation_source must be one of {SOURCES}, got {values['observation_source']!r}")
    if not values["camera_frame_id"].strip():
        raise ConfigError("camera_frame_id must not be empty")
    return values


def base_pose_msg(agent: dict[str, Any], stamp: float) -> PoseStamped:
    """PoseStamped (map) of the robot base from THOR agent metadata (yaw clockwise about up → map yaw = -yaw)."""
    p = agent["position"]
    half = -math.radians(float(agent["rotation"]["y"])) / 2.0
    ground = cv.thor_to_point((p["x"], 0.0, p["z"]))  # the base frame sits on the floor (z = 0 in map)
    pose = Pose(position=Point(x=ground.x, y=ground.y, z=0.0),
                orientation=Quaternion(z=math.sin(half), w=math.cos(half)))
    return PoseStamped(header=Header(stamp=cv.seconds_to_stamp(stamp), frame_id=cv.MAP_FRAME), pose=pose)


def _digest(objects: list[dict[str, Any]]) -> tuple:
    return tuple(sorted((o["objectId"], tuple(round(o["position"][k], 3) for k in "xyz"),
                         tuple(o.get("parentReceptacles") or ()),
                         tuple(sorted(k for k, v in o.items() if k.startswith("is") and v is True))) for o in objects))


class SimBridgeNode(Node):
    """Runs the embedded simulator and exposes it as a robot: sensors out, ExecuteSkill in."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("sim_bridge", **kwargs)
        self.params = ParameterSet(self, PARAMETERS, _build, self._on_params)
        v = self.params.config
        from karma_memory.sim import EmbeddedController, SimSkillExecutor
        from karma_memory.sim.scenes import default_area_positions

        self.controller = EmbeddedController(v["scene"], seed=v["seed"], width=v["width"], height=v["height"],
                                             fov=v["fov"], visibility_distance=v["visibility_distance"])
        self.skills = SimSkillExecutor(self.controller, default_area_positions(v["scene"], v["area_spacing"]))
        self.pubs = {name: self.create_publisher(kind, topic, SENSOR_PUBLISH) for name, kind, topic in (
            ("rgb", Image, "camera/rgb/image_raw"), ("depth", Image, "camera/depth/image_raw"),
            ("instances", Image, "camera/instances/image_raw"), ("labels", InstanceLabels, "camera/instances/labels"),
            ("camera_info", CameraInfo, "camera/camera_info"), ("pose", PoseStamped, "camera/pose"),
            ("base", PoseStamped, "base/pose"))}
        # observations go out on change only, so a memory node that joins late would wait for the next
        # change: every newly matched subscriber gets the current view at once
        self.obs_pub = self.create_publisher(ObjectObservationArray, "observations", EVENTS,
                                             event_callbacks=PublisherEventCallbacks(matched=self._on_matched))
        self.last_digest: tuple | None = None
        self.timer = None
        self._on_params(v, {})
        ActionServer(self, ExecuteSkill, "execute_skill", self._execute)
        self.publish_state()
        self.get_logger().info(f"simulating {v['scene']} ({len(self.controller.last_event.metadata['objects'])} "
                               f"objects), observations from {v['observation_source']}")

    def _on_params(self, values: dict[str, Any], changed: dict[str, Any]) -> None:
        if self.timer is not None:
            self.destroy_timer(self.timer)
            self.timer = None
        if values["rate_hz"] > 0:
            self.timer = self.create_timer(1.0 / values["rate_hz"], self.publish_state)

    def _on_matched(self, info: Any) -> None:
        if info.current_count_change > 0:
            self.last_digest = None  # the next publish_state sends the view again
            if self.timer is None:
                self.publish_state()

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def publish_state(self, after_skill: bool = False) -> None:
        """Camera frame, poses and, with metadata as the source, observations (after a skill or on change)."""
        stamp, event = self._now(), self.controller.last_event
        try:
            frame = dataclasses.replace(event.camera_frame(), stamp=stamp, frame_id=self.params["camera_frame_id"])
            for name, msg in cv.camera_frame_to_msgs(frame)._asdict().items():
                self.pubs[name].publish(msg)
            self.pubs["base"].publish(base_pose_msg(event.metadata["agent"], stamp))
        except KarmaMemoryError as err:
            self.get_logger().error(f"cannot publish the camera frame: {err}")
        if self.params["observation_source"] != "metadata":
            return
        visible = [o for o in event.metadata["objects"] if o.get("visible")]
        digest = _digest(visible)
        if after_skill or digest != self.last_digest:
            self.last_digest = digest
            observations = thor_object_observations(visible, stamp=stamp, source="sim_metadata",
                                                    robot_id=self.params["robot_id"])
            self.obs_pub.publish(cv.observations_to_msg(observations, stamp))

    def _execute(self, goal_handle: Any) -> ExecuteSkill.Result:
        try:
            call = cv.skill_goal_to_call(goal_handle.request)
        except KarmaMemoryError as err:
            self.get_logger().error(f"rejected skill goal {goal_handle.request.skill!r}: {err}")
            goal_handle.abort()
            return ExecuteSkill.Result(success=False, message=str(err))
        goal_handle.publish_feedback(ExecuteSkill.Feedback(status=f"running {call}"))
        try:
            result = self.skills.execute(call)
            msg = cv.skill_result_to_msg(result)
        except KarmaMemoryError as err:
            self.get_logger().error(f"{call} failed in the simulator: {err}")
            goal_handle.abort()
            return ExecuteSkill.Result(success=False, message=f"simulator error: {err}")
        self.publish_state(after_skill=True)
        goal_handle.publish_feedback(ExecuteSkill.Feedback(status=f"finished {call}: {result.message}"))
        if result.success:
            goal_handle.succeed()
        else:
            goal_handle.abort()
        self.get_logger().info(f"{call}: {'ok' if result.success else 'failed'}: {result.message}")
        return msg


def main(args: list[str] | None = None) -> int:
    """Console script ``sim_bridge``."""
    return run_node(SimBridgeNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
