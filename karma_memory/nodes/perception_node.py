"""Perception node: time-synchronised RGB-D, instance masks, camera info and pose in; object observations out."""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from typing import Any, Hashable, Mapping, Sequence

from geometry_msgs.msg import PoseStamped
from karma_interfaces.msg import InstanceLabels, ObjectObservationArray
from rclpy.node import Node
from rclpy.qos_overriding_options import QoSOverridingOptions
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import UInt32
from std_srvs.srv import Trigger

from karma_memory.core.errors import ConfigError, KarmaMemoryError
from karma_memory.core.perception import PerceptionConfig, SceneGraphBuilder
from karma_memory.nodes import conversions as cv
from karma_memory.nodes.common import Coalescer, Param, ParameterSet, run_node
from karma_memory.nodes.qos import EVENTS, LATCHED, SENSOR_SUBSCRIBE

__all__ = ["PARAMETERS", "TOPICS", "StampSync", "FrameDrops", "PerceptionNode", "main"]

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
        self.dropped_by: dict[Hashable, int] = dict.fromkeys(names, 0)  # the same, per topic

    def add(self, name: Hashable, stamp_ns: int, msg: Any) -> dict[Hashable, Any] | None:
        """Queue ``msg``; return {topic: message} when it completes a frame, else None."""
        queue = self.queues[name]
        queue[stamp_ns] = msg
        while len(queue) > self.queue_size:
            queue.popitem(last=False)
            self.dropped += 1
            self.dropped_by[name] += 1
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
                self.dropped_by[n] += old != t
        return group

    def clear(self) -> None:
        """Forget every queued message (not counted as dropped)."""
        for queue in self.queues.values():
            queue.clear()


class FrameDrops:
    """Counts camera frames lost because they came faster than the node processed them (one rgb image = a frame).

    Two ways a frame is lost: DDS overwrote it in the subscription's queue while the node was busy (a
    gap in the publisher's sequence numbers of the rgb topic, per publisher), or the synchroniser
    discarded its rgb image before the frame was complete (newer frames completed first, or its queue
    overflowed). Frames skipped on purpose by ``max_rate_hz`` are counted apart (``skipped``) and are
    not drops.

    >>> drops = FrameDrops()
    >>> drops.sequence(b"cam", 7), drops.sequence(b"cam", 8), drops.sequence(b"cam", 12), drops.total
    (0, 0, 3, 3)
    """

    def __init__(self, max_publishers: int = 16) -> None:
        self.queue = 0  # overwritten in the DDS queue
        self.sync = 0   # discarded incomplete by the synchroniser
        self.skipped = 0  # skipped by max_rate_hz (not a drop)
        self._last: OrderedDict[bytes, int] = OrderedDict()
        self._max_publishers = max_publishers

    @property
    def total(self) -> int:
        return self.queue + self.sync

    def sequence(self, publisher: bytes, number: int | None) -> int:
        """Note the publication sequence number of an rgb image; return how many frames it shows were lost.

        The first number of a publisher is only a baseline (a late joiner missed nothing it could get);
        a number that does not advance (a restarted or replaying driver) starts a new baseline.
        """
        if number is None:  # the middleware does not report sequence numbers
            return 0
        last = self._last.pop(publisher, None)
        self._last[publisher] = number
        while len(self._last) > self._max_publishers:
            self._last.popitem(last=False)
        lost = number - last - 1 if last is not None and number > last else 0
        self.queue += lost
        return lost


def _build(values: dict[str, Any]) -> tuple[PerceptionConfig, dict[str, Any]]:
    if values["sync_slop_s"] < 0 or values["max_rate_hz"] < 0 or values["queue_size"] < 1:
        raise ConfigError("sync_slop_s and max_rate_hz must be >= 0 and queue_size >= 1")
    config = PerceptionConfig.from_mapping({k.split(".", 1)[1]: v for k, v in values.items()
                                            if k.startswith("perception.")})
    return config, values


def _ns(stamp: Any) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


class PerceptionNode(Node):
    """Runs the SceneGraphBuilder on synchronised camera frames and publishes ObjectObservationArrays.

    It also publishes ``perception/dropped_frames`` (std_msgs/UInt32, latched, at most 1 Hz: the running
    total of camera frames lost because they came faster than it processed them, see :class:`FrameDrops`)
    and serves ``perception/reset`` (std_srvs/Trigger: forget every track and queued message, e.g. for a
    new episode; the drop count keeps running).
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("perception", **kwargs)
        self.params = ParameterSet(self, PARAMETERS, _build, self._on_params)
        config, values = self.params.config
        self.builder = SceneGraphBuilder(config)
        self.sync = StampSync(list(TOPICS), values["queue_size"], int(values["sync_slop_s"] * 1e9))
        self.last_ns = -1
        self.drops = FrameDrops()
        self.pub = self.create_publisher(ObjectObservationArray, "observations", EVENTS)
        self.drops_pub = self.create_publisher(UInt32, "perception/dropped_frames", LATCHED)
        self.drops_state = Coalescer(self, 1.0, self._publish_drops)  # a running total: at most 1 Hz
        for name, (kind, topic) in TOPICS.items():
            if name == "rgb":  # with the message info: its sequence numbers show frames lost in the queue
                callback = self._on_rgb
            else:
                callback = lambda msg, name=name: self._on_message(name, msg)  # noqa: E731
            # best effort by default (REP-2003); qos_overrides./<topic>.subscription.reliability etc. match a driver
            self.create_subscription(kind, topic, callback, SENSOR_SUBSCRIBE,
                                     qos_overriding_options=QoSOverridingOptions.with_default_policies())
        self.create_service(Trigger, "perception/reset", self._on_reset)
        self._publish_drops()
        self.get_logger().info("perception ready: waiting for camera frames")

    def _on_params(self, config: tuple[PerceptionConfig, dict[str, Any]], changed: dict[str, Any]) -> None:
        self.builder.config, values = config
        self.sync.slop_ns = int(values["sync_slop_s"] * 1e9)

    def _publish_drops(self) -> None:
        self.drops_pub.publish(UInt32(data=min(self.drops.total, 2**32 - 1)))

    def _dropped(self, count: int, why: str) -> None:
        if count <= 0:
            return
        self.drops_state.mark()
        self.get_logger().warning(f"{why}: {count} camera frame(s) dropped; {self.drops.total} so far "
                                  f"({self.drops.queue} overwritten in the queue, {self.drops.sync} incomplete)",
                                  throttle_duration_sec=10.0)

    def _on_rgb(self, msg: Image, info: Mapping[str, Any]) -> None:
        gid = info.get("publisher_gid") or {}
        publisher = bytes(gid.get("data", b"")) if isinstance(gid, Mapping) else b""
        self._dropped(self.drops.sequence(publisher, info.get("publication_sequence_number")),
                      "frames came faster than perception processed them")
        self._on_message("rgb", msg)

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        """Forget every track and queued message: the next frame starts a new episode (ids restart)."""
        tracks = len(self.builder.tracks)
        self.builder.reset()
        self.sync.clear()
        self.last_ns = -1
        response.success, response.message = True, f"perception reset: {tracks} tracks forgotten"
        self.get_logger().info(response.message)
        return response

    def _on_message(self, name: str, msg: Any) -> None:
        rgb_dropped = self.sync.dropped_by["rgb"]
        group = self.sync.add(name, _ns(msg.header.stamp), msg)
        lost = self.sync.dropped_by["rgb"] - rgb_dropped
        self.drops.sync += lost
        self._dropped(lost, "incomplete frames discarded by the synchroniser")
        if group is None:
            return
        stamp_ns = _ns(group["rgb"].header.stamp)
        rate = self.params["max_rate_hz"]
        if rate > 0 and self.last_ns >= 0 and stamp_ns - self.last_ns < 1e9 / rate:
            self.drops.skipped += 1
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
