"""Perception node: dropped-frame accounting (perception/dropped_frames) and the perception/reset service."""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import Any, Iterator

import numpy as np
import pytest
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image
from std_msgs.msg import UInt32
from std_srvs.srv import Trigger

from karma_memory.nodes import conversions as cv
from karma_memory.nodes.perception_node import TOPICS, FrameDrops, PerceptionNode, StampSync
from karma_memory.nodes.qos import LATCHED, SENSOR_PUBLISH
from ros_fixtures import Probe, ros_session


@pytest.fixture(scope="module")
def ros() -> Iterator[None]:
    yield from ros_session()


@pytest.fixture(scope="module")
def frame() -> Any:
    from karma_memory.sim import EmbeddedController

    return EmbeddedController("FloorPlan1").last_event.camera_frame()


def _messages(frame: Any, stamp: float) -> dict[str, Any]:
    return cv.camera_frame_to_msgs(dataclasses.replace(frame, stamp=stamp))._asdict()


def _info(sequence: int | None, publisher: bytes = b"camera") -> dict[str, Any]:
    return {"publication_sequence_number": sequence, "publisher_gid": {"data": publisher}}


def _feed(node: PerceptionNode, msgs: dict[str, Any], names: Any = TOPICS, sequence: int | None = None) -> None:
    for name in names:
        if name == "rgb":
            node._on_rgb(msgs[name], _info(sequence))
        else:
            node._on_message(name, msgs[name])


# ------------------------------------------------------------------------------------------- pure parts


def test_frame_drops_counts_sequence_gaps_per_publisher() -> None:
    drops = FrameDrops(max_publishers=2)
    assert drops.sequence(b"a", 100) == 0  # a baseline: a late joiner missed nothing it could have had
    assert [drops.sequence(b"a", n) for n in (101, 102, 105)] == [0, 0, 2]
    assert drops.sequence(b"b", 7) == 0 and drops.sequence(b"b", 9) == 1  # each publisher on its own
    assert drops.sequence(b"a", 3) == 0 and drops.sequence(b"a", 4) == 0  # restarted driver: new baseline
    assert drops.sequence(b"a", None) == 0  # middleware without sequence numbers
    assert (drops.queue, drops.sync, drops.total) == (3, 0, 3)
    drops.sequence(b"c", 1)  # a third publisher pushes out the least recent one (b)
    assert drops.sequence(b"b", 50) == 0
    drops.sync += 2
    drops.skipped += 5
    assert drops.total == 5  # skipped frames (max_rate_hz) are not drops


def test_stamp_sync_counts_drops_per_topic_and_clears() -> None:
    sync = StampSync(["rgb", "depth"], queue_size=2)
    sync.add("rgb", 1, "r1")
    sync.add("rgb", 2, "r2")
    sync.add("rgb", 3, "r3")  # overflow: r1 dropped
    assert sync.dropped_by == {"rgb": 1, "depth": 0}
    assert sync.add("depth", 3, "d3") == {"rgb": "r3", "depth": "d3"}  # r2 superseded: dropped
    assert sync.dropped_by == {"rgb": 2, "depth": 0} and sync.dropped == 2
    sync.add("rgb", 4, "r4")
    sync.clear()
    assert all(not q for q in sync.queues.values()) and sync.dropped == 2  # clearing is no drop
    assert sync.add("depth", 4, "d4") is None


# ------------------------------------------------------------------------------------- node in-process


def test_dropped_frames_are_counted_and_published(ros: None, frame: Any) -> None:
    node = PerceptionNode(parameter_overrides=[Parameter("max_rate_hz", value=5.0)])
    published: list[int] = []
    node.drops_pub.publish = lambda msg: published.append(msg.data)  # type: ignore[method-assign]
    node.pub.publish = lambda msg: None  # type: ignore[method-assign]
    try:
        _feed(node, _messages(frame, 10.0), sequence=1)
        assert node.builder.frames_processed == 1 and node.drops.total == 0
        _feed(node, _messages(frame, 10.05), sequence=2)  # 20 Hz > max_rate_hz: skipped, not dropped
        assert node.builder.frames_processed == 1 and node.drops.skipped == 1 and node.drops.total == 0
        _feed(node, _messages(frame, 11.0), sequence=6)  # three rgb images overwritten in the queue
        assert (node.drops.queue, node.drops.total, node.builder.frames_processed) == (3, 3, 2)
        assert published == [3]  # the first change goes out at once, later ones at most once a second
        _feed(node, _messages(frame, 12.0), names=["rgb", "depth"], sequence=7)  # incomplete frame ...
        _feed(node, _messages(frame, 13.0), sequence=8)  # ... discarded when the next one completes
        assert (node.drops.sync, node.drops.total, node.builder.frames_processed) == (1, 4, 3)
        node.drops_state.flush()
        assert published[-1] == 4
    finally:
        node.destroy_node()


def test_reset_forgets_tracks_and_queued_messages(ros: None, frame: Any) -> None:
    node = PerceptionNode(parameter_overrides=[Parameter("max_rate_hz", value=5.0)])
    outputs: list[Any] = []
    node.pub.publish = outputs.append  # type: ignore[method-assign]
    try:
        _feed(node, _messages(frame, 20.0), sequence=1)
        tracks = len(node.builder.tracks)
        assert tracks > 0 and node.builder.frames_processed == 1
        _feed(node, _messages(frame, 20.5), names=["rgb", "depth"], sequence=2)  # half a frame queued
        response = node._on_reset(Trigger.Request(), Trigger.Response())
        assert response.success and f"{tracks} tracks" in response.message
        assert not node.builder.tracks and node.builder.frames_processed == 0
        assert all(not q for q in node.sync.queues.values())
        assert node.drops.total == 0  # what reset discards is not counted as dropped
        _feed(node, _messages(frame, 20.1), sequence=3)  # right after: no rate limit from before the reset
        assert node.builder.frames_processed == 1 and len(node.builder.tracks) == tracks
        first, again = cv.observations_from_msg(outputs[0]), cv.observations_from_msg(outputs[-1])
        assert {o.kind for o in again} == {o.kind for o in first}  # seen afresh: ADDED again, not SEEN
    finally:
        node.destroy_node()


# ----------------------------------------------------------------------------------- over ROS, for real


def test_queue_overwrites_over_dds_and_the_reset_service(ros: None) -> None:
    """After one image, the node is not spun while a camera sends 20 more: DDS keeps the newest 5, the sequence
    gap shows 15 dropped frames on the latched topic; perception/reset answers as a std_srvs/Trigger service."""
    node = PerceptionNode()
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    probe = Probe("perception_drop_probe")
    spin = threading.Event()
    thread = threading.Thread(target=lambda: spinner(), daemon=True)

    def spinner() -> None:
        while not spin.is_set():
            executor.spin_once(timeout_sec=0.05)

    try:
        camera = probe.node.create_publisher(Image, TOPICS["rgb"][1], SENSOR_PUBLISH)
        deadline = time.monotonic() + 10.0
        while camera.get_subscription_count() < 1 or node.count_publishers(TOPICS["rgb"][1]) < 1:
            assert time.monotonic() < deadline, "camera publisher and perception did not match"
            executor.spin_once(timeout_sec=0.05)
        time.sleep(0.3)
        image = cv.rgb_to_image(np.zeros((4, 4, 3), np.uint8), 1.0)
        camera.publish(image)  # the first image of a publisher sets the baseline of its sequence numbers
        deadline = time.monotonic() + 10.0
        while not node.sync.queues["rgb"]:
            assert time.monotonic() < deadline, "the first image did not arrive"
            executor.spin_once(timeout_sec=0.05)
        for k in range(20):  # the node is not spinning: its rgb queue (depth 5) keeps the newest
            image.header.stamp = cv.seconds_to_stamp(2.0 + k)
            camera.publish(image)
        time.sleep(0.5)
        thread.start()
        deadline = time.monotonic() + 10.0
        while node.drops.queue < 15 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert node.drops.queue == 15, f"counted {node.drops.queue}"
        counts = probe.subscribe(UInt32, "perception/dropped_frames", LATCHED)  # a late joiner gets the total
        assert probe.wait_for(lambda: bool(counts) and counts[-1].data >= 15, 10.0), counts
        response = probe.call(Trigger, "perception/reset", Trigger.Request(), timeout=10.0)
        assert response.success and "0 tracks" in response.message
    finally:
        spin.set()
        if thread.is_alive():
            thread.join(5.0)
        probe.close()
        executor.remove_node(node)
        node.destroy_node()
