"""The fleet's live link over ROS: records a robot observes reach the others on one shared topic at once."""

from __future__ import annotations

import json
from typing import Any, Callable, Sequence

from karma_interfaces.msg import FleetRecords
from rclpy.node import Node

from karma_memory.nodes.qos import EVENTS

__all__ = ["RosFleetLink"]


class RosFleetLink:
    """A :class:`~karma_memory.core.fleet.FleetLink` on ``topic`` (absolute, so namespaced robots meet on it).

    Args:
        node: the node that owns the publisher and the subscription.
        topic: the fleet's topic, e.g. ``/fleet/records``.
        receive: called with (sender robot id, [{"id", "meta"}]) for every message of another robot
            (``ChromaBackend.receive``, which validates the records); malformed JSON is logged and dropped.
    """

    def __init__(self, node: Node, topic: str, receive: Callable[[str, Sequence[dict[str, Any]]], Any],
                 callback_group: Any = None) -> None:
        self._node, self._receive = node, receive
        self._publisher = node.create_publisher(FleetRecords, topic, EVENTS)
        node.create_subscription(FleetRecords, topic, self._on_message, EVENTS, callback_group=callback_group)

    def send(self, robot_id: str, payloads: list[dict[str, Any]]) -> None:
        msg = FleetRecords(robot_id=robot_id, record_ids=[p["id"] for p in payloads],
                           records=[json.dumps(p["meta"], separators=(",", ":"), allow_nan=False) for p in payloads])
        msg.header.stamp = self._node.get_clock().now().to_msg()
        msg.header.frame_id = "map"
        self._publisher.publish(msg)

    def subscribers(self) -> int:
        """Subscriptions matched to this robot's publisher (its own included): the fleet members listening."""
        return self._publisher.get_subscription_count()

    def _on_message(self, msg: FleetRecords) -> None:
        if len(msg.record_ids) != len(msg.records):
            self._node.get_logger().error(f"fleet: dropped live records from {msg.robot_id!r}: "
                                          f"{len(msg.record_ids)} ids but {len(msg.records)} records")
            return
        payloads = []
        for rid, text in zip(msg.record_ids, msg.records):
            try:
                payloads.append({"id": rid, "meta": json.loads(text)})
            except json.JSONDecodeError as err:
                self._node.get_logger().error(f"fleet: dropped live record {rid!r} from {msg.robot_id!r}: "
                                              f"not JSON ({err})")
        self._receive(msg.robot_id, payloads)
