"""Perception node: time-synchronised RGB-D, instance masks, camera info and pose in; object observations out."""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from typing import Any, Hashable, Sequence

from geometry_msgs.msg import PoseStamped
from karma_interfaces.msg import InstanceLabels, ObjectObservationArray
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image

from karma_memory.core.errors import ConfigError, KarmaMemoryError
from karma_memory.core.perception import PerceptionConfig, SceneGraphBuilder
from karma_memory.nodes import conversions as cv
from karma_memory.nodes.common import Param, ParameterSet, run_node
from karma_memory.nodes.qos import EVENTS, SENSOR_SUBSCRIBE

__all__ = ["PARAMETERS", "TOPICS", "StampSync", "PerceptionNode", "main"]

#: camera_frame_from_msgs argument -> (message type, relative topic)
TOPICS: dict[str, tuple[type, str]] = {
    "rgb": (Image, "camera/rgb/image_raw"),
    "depth": (Image, "camera/depth/image_raw"),
    "instances": (Image, "camera/instances/image_raw"),
    "labels": (InstanceLabels, "camera/instances/labels"),
    "camera_info": (CameraInfo, "camera/camera_info"),
    "pose": (PoseStamped, "camera/pose"),
}
_SCALAR_FIELDS = [f for f in dataclasses.fields(PerceptionConfig) if isinstance(f.default, (bool, int, float, str))]
PARAMETERS: dict[str, Param] = {
    "queue_size": Param(10, "messages kept per camera topic while waiting for the rest of a frame", read_only=True),
    "sync_slop_s": Param(0.0, "largest stamp difference within one frame, seconds (0 = identical stamps)"),
    "max_rate_hz": Param(5.0, "frames processed per second at most; later frames are skipped (0 = no limit)"),
    "ignore_distortion": Param(False, "accept camera_info with distortion (only for near-pinhole cameras)"),
    "robot_id": Param("", "robot id written into observations (fleets)"),
    **{f"perception.{f.name}": Param(f.default, f"PerceptionConfig.{f.name} (see karma_memory.core.perception)")
       for f in _SCALAR_FIELDS},
}


class StampSync:
    """Groups one message per topic whose stamps agree within ``slop_ns`` (a small message_filters stand-in).

    Each topic keeps its last ``queue_size`` messages. When a message arrives, the newest complete group
    containing it is returned and every message up to it is dropped, so frames come out in stamp order
    and a lost message only costs its own frame.

    >>> sync = StampSync(["a", "b"])
    >>> sync.add("a", 5, "A5") is None, sync.add("b", 5, "B5")
    (True, {'a': 'A5', 'b': 'B5'})
    """

    def __init__(self, names: Sequence[Hashable], queue_size: int = 10, slop_ns: int = 0) -> None:
        if queue_size < 1 or slop_ns < 0:
            raise ConfigError(f"queue_size must be >= 1 and slop >= 0, got {queue_size}, {slop_ns}")
        self.queue_size, self.slop_ns = queue_size, slop_ns
        self.queues: dict[Hashable, OrderedDict[int, Any]] = {n: OrderedDict() for n in names}
        self.dropped = 0

    def add(self, name: Hashable, stamp_ns: int, msg: Any) -> dict[Hashable, Any] | None:
        """Queue ``msg``; return {topic: message} when it completes a frame, else None."""
        queue = self.queues[name]
        queue[stamp_ns] = msg
        while len(queue) > self.queue_size:
            queue.popitem(last=False)
            self.dropped += 1
        chosen: dict[Hashable, int] = {name: stamp_ns}
        for other, q in self.queues.items():
            if other == name:
                continue
            best = min(q, key=lambda t: abs(t - stamp_ns), default=None)
            if best is None or abs(best - stamp_ns) > self.slop_ns:
                return None
            chosen[other] = best
        group = {n: self.queues[n][chosen[n]] for n in self.queues}  # in topic order
        for n, t in chosen.items():
            for old in [s for s in self.queues[n] if s <= t]:
                del self.queues[n][old]
                self.dropped += old != t
        return group


def _build(values: dict[str, Any]) -> tuple[PerceptionConfig, dict[str, Any]]:
    if values["sync_slop_s"] < 0 or values["max_rate_hz"] < 0 or values["queue_size"] < 1:
        raise ConfigError("sync_slop_s and max_rate_hz must be >= 0 and queue_size >= 1")
    config = PerceptionConfig.from_mapping({k.split(".", 1)[1]: v for k, v in values.items()
                                            if k.startswith("perception.")})
    return config, values


def _ns(stamp: Any) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


class PerceptionNode(Node):
    """Runs the SceneGraphBuilder on synchronised camera frames and publishes ObjectObservationArrays."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("perception", **kwargs)
        self.params = ParameterSet(self, PARAMETERS, _build, self._on_params)
        config, values = self.params.config
        self.builder = SceneGraphBuilder(config)
        self.sync = StampSync(list(TOPICS), values["queue_size"], int(values["sync_slop_s"] * 1e9))
        self.last_ns = -1
        self.pub = self.create_publisher(ObjectObservationArray, "observations", EVENTS)
        for name, (kind, topic) in TOPICS.items():
            self.create_subscription(kind, topic, lambda msg, name=name: self._on_message(name, msg), SENSOR_SUBSCRIBE)
        self.get_logger().info("perception ready: waiting for camera frames")

    def _on_params(self, config: tuple[PerceptionConfig, dict[str, Any]], changed: dict[str, Any]) -> None:
        self.builder.config, values = config
        self.sync.slop_ns = int(values["sync_slop_s"] * 1e9)

    def _on_message(self, name: str, msg: Any) -> None:
        group = self.sync.add(name, _ns(msg.header.stamp), msg)
        if group is None:
            return
        stamp_ns = _ns(group["rgb"].header.stamp)
        rate = self.params["max_rate_hz"]
        if rate > 0 and self.last_ns >= 0 and stamp_ns - self.last_ns < 1e9 / rate:
            return
        self.last_ns = stamp_ns
        try:
            frame = cv.camera_frame_from_msgs(**group, ignore_distortion=self.params["ignore_distortion"])
            observations = self.builder.process(frame)
        except KarmaMemoryError as err:
            self.get_logger().error(f"rejected camera frame at {stamp_ns / 1e9:.3f} s: {err}")
            return
        robot = self.params["robot_id"]
        if robot:
            observations = [dataclasses.replace(o, robot_id=robot) for o in observations]
        self.pub.publish(cv.observations_to_msg(observations, frame.stamp))


def main(args: list[str] | None = None) -> int:
    """Console script ``perception``."""
    return run_node(PerceptionNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
