"""Node-side pieces without a running stack, and nodes built in-process with their callbacks called directly."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest
from karma_interfaces.msg import ObjectObservationArray
from karma_interfaces.srv import LoadMemory, QueryShortTermMemory, ResetMemory
from rclpy.parameter import Parameter

from helpers import grid, obs
from karma_memory.core import scene_graph as sg
from karma_memory.core.errors import ConfigError, InvalidObservationError
from karma_memory.core.long_term import GRAPH_FILE, AreaScore, LongTermMemory
from karma_memory.core.short_term import STM_FILE, MemoryUnit
from karma_memory.core.types import ObservationKind
from karma_memory.nodes import conversions as cv
from karma_memory.nodes import memory_conversions as mc
from karma_memory.nodes.perception_node import StampSync
from karma_memory.nodes.ros_executor import is_sensor_array, thor_object_from_observation
from karma_memory.nodes.ros_memory import SceneGraphMirror
from ros_fixtures import ros_session


@pytest.fixture(scope="module")
def ros() -> Iterator[None]:
    yield from ros_session()


def small_memory() -> LongTermMemory:
    ltm = LongTermMemory()
    ltm.add_areas(grid(0, 3, 0, 3))
    ltm.observe(obs("Table|1", position=(1.0, 0.4, 1.0), movable=False))
    ltm.observe(obs("Fridge|1", position=(2.5, 0.9, 2.5), movable=False))
    ltm.observe(obs("Apple|1", position=(1.0, 0.9, 1.0), relations=[("on", "Table|1")], stamp=2.0))
    return ltm


# ------------------------------------------------------------------------------------ memory messages


def test_scene_graph_snapshot_message() -> None:
    ltm = small_memory()
    msg = mc.scene_graph_to_msg(ltm.graph, 3.0)
    assert msg.version == ltm.graph.graph["version"] and msg.header.frame_id == "map"
    nodes = {n.id: n for n in msg.nodes}
    assert len(nodes) == ltm.graph.number_of_nodes() and len(msg.edges) == ltm.graph.number_of_edges()
    apple = nodes["Apple|1"]
    assert (apple.level, apple.object_type, apple.movable) == (apple.OBJECT, "Apple", True)
    assert (apple.position.x, apple.position.y, apple.position.z) == pytest.approx((1.0, -1.0, 0.9))
    assert apple.parent_id == ltm.graph.nodes["Apple|1"]["area"] and cv.stamp_to_seconds(apple.last_seen) == 2.0
    area = nodes[sg.area_ids(ltm.graph)[0]]
    assert area.level == area.AREA and area.parent_id == "floor_0"
    assert ("Apple|1", "Table|1", "on") in {(e.source, e.target, e.relation) for e in msg.edges}


def test_delta_brings_a_mirror_to_the_next_snapshot() -> None:
    ltm = small_memory()
    mirror = SceneGraphMirror()
    mirror.apply_snapshot(mc.scene_graph_to_msg(ltm.graph, 0.0))
    base, edges = ltm.graph.graph["version"], mc.graph_edges(ltm.graph)
    ltm.observe(obs("Apple|1", position=(2.5, 0.9, 2.5), kind=ObservationKind.MOVED,
                    relations=[("inside", "Fridge|1")], stamp=3.0))
    ltm.observe(obs("Table|1", kind=ObservationKind.REMOVED, stamp=3.0))
    delta, edges_now = mc.scene_graph_delta_to_msg(ltm.graph, base, edges, 3.0)
    assert delta.from_version == base and delta.to_version == ltm.graph.graph["version"]
    assert {n.id for n in delta.upserted_nodes} == {"Apple|1"} and list(delta.removed_node_ids) == ["Table|1"]
    assert ("Apple|1", "Fridge|1", "inside") in {(e.source, e.target, e.relation) for e in delta.upserted_edges}
    assert ("Apple|1", "Table|1", "on") in {(e.source, e.target, e.relation) for e in delta.removed_edges}
    assert mirror.apply_delta(delta)
    fresh = SceneGraphMirror()
    fresh.apply_snapshot(mc.scene_graph_to_msg(ltm.graph, 3.0))
    assert mirror.nodes == fresh.nodes and mirror.edges == fresh.edges == edges_now
    assert mirror.record("Apple|1")["parent"] == "Fridge|1"
    assert mirror.previous_parent("Apple|1") == "Table|1"  # remembered across the move ("put it back")
    assert not mirror.apply_delta(delta), "a delta from another version must not apply"
    assert mirror.record("Table|1") is None and mirror.record("area_0") is None
    assert [r["id"] for r in mirror.objects_of_type("Apple")] == ["Apple|1"]
    assert "Topological graph:" in sg.to_prompt(mirror.to_networkx())
    assert mirror.area_ids() == sorted(sg.area_ids(ltm.graph), key=lambda a: (len(a), a))
    assert mirror.wait_for_version(mirror.version, 0.01) and not mirror.wait_for_version(mirror.version + 1, 0.01)


def test_memory_unit_round_trip_keeps_the_relation() -> None:
    unit = MemoryUnit("Apple|1", "Apple", (1.0, 2.0, 3.0), ("cleaned",), 5.5, "inside Fridge|+01.2|+00.0|-00.3",
                      robot_id="r1", hits=4)
    msg = mc.memory_unit_to_msg(unit)
    assert msg.relation == "inside Fridge|+01.2|+00.0|-00.3"  # its own field, receptacle id intact
    assert msg.description == unit.description() == "cleaned apple inside fridge"  # plain: nothing appended
    assert mc.memory_unit_from_msg(msg) == unit
    msg.states = ["flying"]
    with pytest.raises(InvalidObservationError, match="flying"):
        mc.memory_unit_from_msg(msg)
    score = AreaScore("area_2", (1.0, 0.0, 2.0), 1.5, "Apple last seen here")
    assert mc.area_score_from_msg(mc.area_score_to_msg(score)) == score


def test_memory_unit_round_trip_with_an_empty_relation() -> None:
    plain = MemoryUnit("Mug|3", "Mug", (0.5, 0.9, -1.0), (), 7.0, image_path="/tmp/mug.png", hits=1)
    msg = mc.memory_unit_to_msg(plain)
    assert msg.relation == "" and msg.description == "mug"
    assert mc.memory_unit_from_msg(msg) == plain


def test_memory_unit_descriptions_with_brackets_survive_unchanged() -> None:
    # a receptacle whose type has brackets: the description keeps them and the relation is not confused
    unit = MemoryUnit("Apple|1", "Apple", (0.0, 1.0, 0.0), ("cleaned",), 1.0, "inside Box [left]|1")
    msg = mc.memory_unit_to_msg(unit)
    assert msg.description == "cleaned apple inside box [left]" and msg.relation == "inside Box [left]|1"
    assert mc.memory_unit_from_msg(msg) == unit
    # a description that looks like the old "[relation]" suffix is only text: the relation comes from its field
    msg = mc.memory_unit_to_msg(dataclasses.replace(unit, relation=""))
    msg.description = "cleaned apple [on Table|1]"
    assert mc.memory_unit_from_msg(msg).relation == ""
    msg.relation = "near Sink|2"
    assert mc.memory_unit_from_msg(msg).relation == "near Sink|2"
    for bad in ("under Table|1", "inside", "inside ", "[inside Fridge|1]"):
        msg.relation = bad
        with pytest.raises(InvalidObservationError, match=re.escape(repr(bad))):
            mc.memory_unit_from_msg(msg)


def test_memory_unit_message_declares_the_relation_field() -> None:
    from karma_interfaces.msg import MemoryUnit as MemoryUnitMsg

    assert MemoryUnitMsg.get_fields_and_field_types()["relation"] == "string"
    assert MemoryUnitMsg().relation == ""


# ---------------------------------------------------------------------------------------- sync, view


def test_stamp_sync_groups_by_stamp_and_drops_stale_messages() -> None:
    sync = StampSync(["rgb", "depth", "pose"], queue_size=3)
    assert sync.add("rgb", 10, "rgb10") is None and sync.add("depth", 20, "depth20") is None
    assert sync.add("pose", 10, "pose10") is None
    assert sync.add("depth", 10, "depth10") == {"rgb": "rgb10", "depth": "depth10", "pose": "pose10"}
    assert sync.queues["depth"] == {20: "depth20"}  # newer messages wait for their frame
    for t in (30, 40, 50, 60):
        sync.add("rgb", t, f"rgb{t}")
    assert list(sync.queues["rgb"]) == [40, 50, 60] and sync.dropped >= 1
    loose = StampSync(["a", "b"], slop_ns=5)
    loose.add("a", 100, "A")
    assert loose.add("b", 106, "B") is None and loose.add("b", 104, "B2") == {"a": "A", "b": "B2"}
    with pytest.raises(ConfigError):
        StampSync(["a"], queue_size=0)


def test_observations_become_thor_like_objects() -> None:
    seen = obs("Fridge|1", position=(1.0, 0.5, 2.0), movable=False, states=["opened", "on"],
               relations=[("near", "Table|1")], source="sim_metadata")
    thor = thor_object_from_observation(dataclasses.replace(seen, size=(0.5, 1.5, 0.5)))
    assert (thor["isOpen"], thor["openable"], thor["isToggled"], thor["pickupable"]) == (True, True, True, False)
    assert thor["parentReceptacles"] == [] and thor["axisAlignedBoundingBox"]["size"]["y"] == 1.5
    assert is_sensor_array([seen]) and is_sensor_array([])
    assert not is_sensor_array([obs("Apple|1", source="skill:PickupObject"), obs("Mug|1", source="agent")])


# ------------------------------------------------------------------------------ nodes built in-process


def _ltm_node(tmp_path: Path, **params: Any) -> Any:
    from karma_memory.nodes.long_term_memory_node import LongTermMemoryNode

    values = {"memory_dir": str(tmp_path), "warm_up": False, "semantic_weight": 0.0, **params}
    return LongTermMemoryNode(parameter_overrides=[Parameter(k, value=v) for k, v in values.items()])


def _array(*observations: Any, frame: str = "map", stamp: float = 10.0) -> ObjectObservationArray:
    msg = cv.observations_to_msg(observations, stamp)
    msg.header.frame_id = frame
    return msg


def test_ltm_node_keeps_a_corrupt_file_aside_and_starts_from_the_scene(ros: None, tmp_path: Path) -> None:
    (tmp_path / GRAPH_FILE).write_bytes(b"{not json")
    node = _ltm_node(tmp_path, scene="FloorPlan1", scene_objects=False)
    try:
        aside = list(tmp_path.glob(f"{GRAPH_FILE}.corrupt-*"))
        assert len(aside) == 1 and aside[0].read_bytes() == b"{not json"
        assert len(node.memory) == 0 and len(sg.area_ids(node.memory.graph)) > 3 and node.autosave
        node._on_observations(_array(obs("Apple|1", position=(-1.0, 0.9, 1.0))))
        node.close()  # shutdown flush
        saved = LongTermMemory(directory=tmp_path)
        saved.load()
        assert saved.objects_of_type("Apple") == ["Apple|1"]
    finally:
        node.destroy_node()


def test_ltm_node_survives_a_checksummed_but_malformed_file(ros: None, tmp_path: Path) -> None:
    from karma_memory.core.long_term import KIND
    from karma_memory.core.persistence import write_envelope

    payload = dict(sg.graph_to_data(small_memory().graph), directed=False)  # valid JSON, wrong structure
    write_envelope(tmp_path / GRAPH_FILE, KIND, sg.SCHEMA_VERSION, payload)
    node = _ltm_node(tmp_path)
    try:
        assert len(node.memory) == 0 and list(tmp_path.glob(f"{GRAPH_FILE}.corrupt-*"))
    finally:
        node.destroy_node()


def test_ltm_node_never_overwrites_a_file_from_a_newer_schema(ros: None, tmp_path: Path) -> None:
    small = small_memory()
    small.save(tmp_path)
    path = tmp_path / GRAPH_FILE
    envelope = json.loads(path.read_text())
    envelope["schema_version"] = 99
    path.write_text(json.dumps(envelope))
    before = path.read_bytes()
    node = _ltm_node(tmp_path)
    try:
        assert not node.autosave and len(node.memory) == 0
        node._on_observations(_array(obs("Mug|1")))
        node.flush()
        node.close()
        assert path.read_bytes() == before
    finally:
        node.destroy_node()


def test_ltm_node_rejects_bad_batches_whole_and_validates_parameters(ros: None, tmp_path: Path) -> None:
    node = _ltm_node(tmp_path, scene="FloorPlan1")
    try:
        version = node.memory.graph.graph["version"]
        area = sg.area_ids(node.memory.graph)[0]
        bad_batches = [
            _array(obs("Apple|9"), dataclasses.replace(obs("Mug|9"), object_id=area, movable=False)),
            _array(obs("Apple|9"), frame="odom"),
        ]
        nan = _array(obs("Apple|9"), obs("Mug|9"))
        nan.observations[1].position.x = float("nan")
        for batch in bad_batches + [nan]:
            node._on_observations(batch)
            assert node.memory.graph.graph["version"] == version and "Apple|9" not in node.memory.graph
        node._on_observations(_array(obs("Ghost|1", kind=ObservationKind.REMOVED), obs("Apple|9", stamp=2e9)))
        assert "Apple|9" in node.memory.graph and "Ghost|1" not in node.memory.graph
        result = node.set_parameters([Parameter("move_threshold", value=-1.0)])[0]
        assert not result.successful and "move_threshold" in result.reason
        assert node.set_parameters([Parameter("move_threshold", value=0.3)])[0].successful
        assert node.memory.config.move_threshold == 0.3
        assert not node.set_parameters([Parameter("markers.text_scale", value=0.0)])[0].successful
        assert not node.set_parameters([Parameter("area_spacing", value=2.0)])[0].successful  # read-only
        assert not node.set_parameters([Parameter("move_threshold", value="far")])[0].successful  # wrong type
    finally:
        node.destroy_node()


def test_ltm_node_resyncs_its_backend_after_every_load_and_reset(ros: None, tmp_path: Path) -> None:
    from karma_memory.nodes.long_term_memory_node import LongTermMemoryNode

    small_memory().save(tmp_path)
    calls: list[bool] = []

    class Spy(LongTermMemoryNode):
        def after_load(self) -> None:
            calls.append(hasattr(self, "backend"))
            super().after_load()  # no backend yet at start-up: must not fail

    values = {"memory_dir": str(tmp_path), "warm_up": False, "semantic_weight": 0.0}
    node = Spy(parameter_overrides=[Parameter(k, value=v) for k, v in values.items()])
    try:
        assert calls == [False] and len(node.memory) == 3  # start-up load, before the backend exists
        resyncs: list[int] = []
        node.backend.resync = lambda: resyncs.append(node.change_token())
        ok = node._on_load(LoadMemory.Request(directory=str(tmp_path)), LoadMemory.Response())
        assert ok.success and calls == [False, True] and len(resyncs) == 1
        bad = node._on_load(LoadMemory.Request(directory=str(tmp_path / "missing")), LoadMemory.Response())
        assert not bad.success and calls == [False, True] and len(resyncs) == 1  # failed load: no hook
        assert node._on_reset(ResetMemory.Request(), ResetMemory.Response()).success
        assert len(resyncs) == 2 and calls == [False, True]  # a reset resyncs, but is not a load
    finally:
        node.destroy_node()
    calls.clear()
    fresh = Spy(parameter_overrides=[Parameter("warm_up", value=False)])  # nothing to load: no hook
    try:
        assert calls == []
    finally:
        fresh.destroy_node()


def test_stm_node_queries_policy_changes_and_persistence(ros: None, tmp_path: Path) -> None:
    from karma_memory.nodes.short_term_memory_node import ShortTermMemoryNode

    node = ShortTermMemoryNode(parameter_overrides=[Parameter("memory_dir", value=str(tmp_path)),
                                                    Parameter("warm_up", value=False)])
    try:
        interactions = [obs(f"{t}|1", source="skill:PickupObject", stamp=float(i)) for i, t in
                        enumerate(["Apple", "Mug", "Egg"])]
        node._on_observations(_array(*interactions))
        node._on_observations(_array(obs("Bread|1", source="sim_metadata")))  # merely seen: not admitted
        request = QueryShortTermMemory.Request
        listed = node._on_query(request(), QueryShortTermMemory.Response())
        assert [u.object_id for u in listed.units] == ["Egg|1", "Mug|1", "Apple|1"] and listed.success
        hit = node._on_query(request(object_type="Mug", needed_object_id="Mug|1"), QueryShortTermMemory.Response())
        miss = node._on_query(request(object_type="Bread", needed_object_id="Bread|1"),
                              QueryShortTermMemory.Response())
        assert hit.hit and not miss.hit and miss.units == []
        assert (node.memory.stats.queries, node.memory.stats.hits) == (2, 1)
        unknown = node._on_query(request(object_id="Nope|1"), QueryShortTermMemory.Response())
        assert not unknown.success and "Nope|1" in unknown.message
        assert node.set_parameters([Parameter("capacity", value=2)])[0].successful
        assert len(node.memory) == 2 and node.memory.config.capacity == 2 and node.memory.stats.queries == 2
        assert not node.set_parameters([Parameter("window", value=-1)])[0].successful
        node._on_observations(_array(dataclasses.replace(interactions[2], kind=ObservationKind.REMOVED, stamp=9.0)))
        assert "Egg|1" not in node.memory
        node.close()
        assert (tmp_path / STM_FILE).is_file()
    finally:
        node.destroy_node()


def test_perception_node_turns_camera_messages_into_observations(ros: None) -> None:
    from karma_memory.nodes.perception_node import TOPICS, PerceptionNode
    from karma_memory.sim import EmbeddedController

    node = PerceptionNode(parameter_overrides=[Parameter("max_rate_hz", value=0.0)])
    published: list[ObjectObservationArray] = []
    node.pub.publish = published.append  # type: ignore[method-assign]
    try:
        frame = EmbeddedController("FloorPlan1").last_event.camera_frame()
        msgs = cv.camera_frame_to_msgs(dataclasses.replace(frame, stamp=5.0))._asdict()
        for name in TOPICS:
            node._on_message(name, msgs[name])
        assert len(published) == 1 and published[0].header.frame_id == "map"
        observed = cv.observations_from_msg(published[0])
        assert observed and all(o.source == "perception" for o in observed)
        assert {o.object_id for o in observed} <= {label.object_id for label in frame.labels.values()}
        processed = node.builder.frames_processed
        bad = cv.camera_frame_to_msgs(dataclasses.replace(frame, stamp=6.0))._asdict()
        bad["depth"] = cv.depth_to_image(np.zeros((10, 10), np.float32), 6.0, frame.frame_id)  # wrong size
        for name in TOPICS:
            node._on_message(name, bad[name])
        assert len(published) == 1 and node.builder.frames_processed == processed
    finally:
        node.destroy_node()


@pytest.mark.parametrize("module", ["karma_memory.nodes.markers", "karma_memory.nodes.perception_node",
                                    "karma_memory.nodes.ros_executor", "karma_memory.launcher"])
def test_doctests(module: str) -> None:
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module))
    assert result.failed == 0 and result.attempted > 0
