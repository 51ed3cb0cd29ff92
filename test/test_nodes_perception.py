"""Multi-process: camera frames from the sim bridge → perception node → observations → long-term memory."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
from karma_interfaces.msg import ObjectObservationArray, SceneGraph
from rclpy.qos import ReliabilityPolicy

from karma_memory.nodes.conversions import observations_from_msg
from karma_memory.nodes.perception_node import TOPICS
from karma_memory.nodes.qos import EVENTS, LATCHED
from ros_fixtures import Probe, ros_session, start_stack


@pytest.fixture(scope="module")
def ros() -> Iterator[None]:
    yield from ros_session()


def test_perception_fills_an_empty_long_term_memory(ros: None, tmp_path: Path) -> None:
    params = {"sim_bridge.rate_hz": 2.0, "long_term_memory.scene_objects": False, "long_term_memory.warm_up": False,
              # reliable camera topics (the standard QoS override): a loaded machine must not lose every frame
              **{f"perception.qos_overrides./{topic}.subscription.reliability": "reliable"
                 for _, topic in TOPICS.values()}}
    stack = start_stack(tmp_path, ["sim_bridge", "perception", "long_term_memory"], params,
                        extra=["--observation-source", "perception"])
    probe = Probe("perception_probe")
    try:
        graphs = probe.subscribe(SceneGraph, "scene_graph", LATCHED)
        arrays = probe.subscribe(ObjectObservationArray, "observations", EVENTS)
        assert probe.wait_for(lambda: bool(graphs), 30.0), stack.text()
        # it started from the map only (areas, no objects); the first graph the probe sees may already hold
        # what perception found, so the start is read from the node's log
        assert stack.wait_for_log(r"long-term memory ready: 0 objects", 10.0), stack.text()
        assert probe.wait_for(lambda: any(n.level == n.OBJECT for n in graphs[-1].nodes), 30.0), stack.text()
        assert probe.wait_for(lambda: bool(arrays), 30.0), stack.text()  # discovery is slow on a loaded machine
        readers = probe.node.get_subscriptions_info_by_topic("/camera/rgb/image_raw")
        assert [r.qos_profile.reliability for r in readers if r.node_name == "perception"] == \
            [ReliabilityPolicy.RELIABLE]  # the override took effect
        observed = observations_from_msg(arrays[-1])
        assert observed and {o.source for o in observed} == {"perception"}
        objects = {n.id: n for n in graphs[-1].nodes if n.level == n.OBJECT}
        assert all("|" in i for i in objects)  # THOR ids, from the instance labels
        assert {o.object_id for o in observed if o.kind.value != "removed"} <= set(objects)
    finally:
        probe.close()
        status = stack.stop()
    assert status == 0, stack.text()[-3000:]
