"""Shared QoS profiles: latched state, reliable event streams, and sensor data (REP-2003)."""

from __future__ import annotations

from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)

__all__ = ["LATCHED", "EVENTS", "SENSOR_PUBLISH", "SENSOR_SUBSCRIBE"]

#: State topics (scene_graph, short_term_memory/state, markers): the last message reaches late joiners.
#: A transient-local publisher also matches volatile subscribers such as rviz's default MarkerArray display.
LATCHED = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)

#: Event streams that must not be dropped (observations, scene-graph deltas, acknowledgements).
EVENTS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100, reliability=ReliabilityPolicy.RELIABLE,
                    durability=DurabilityPolicy.VOLATILE)

#: Sensor drivers publish reliable (system default, REP-2003) so that every kind of subscriber matches.
SENSOR_PUBLISH = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5, reliability=ReliabilityPolicy.RELIABLE,
                            durability=DurabilityPolicy.VOLATILE)

#: Sensor consumers subscribe best-effort (REP-2003): matches reliable and best-effort camera drivers alike.
SENSOR_SUBSCRIBE = qos_profile_sensor_data
