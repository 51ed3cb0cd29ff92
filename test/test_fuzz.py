"""Fuzzing with hypothesis: message conversions, the memory nodes' observation handlers, and the memory loaders.

The contract everywhere: arbitrary input is either accepted as something valid or rejected with a typed
KarmaMemoryError subclass; nothing else escapes, and a rejected input leaves the memory as it was.
Runs are derandomized so CI is reproducible; raise ``max_examples`` locally to search harder.
"""

from __future__ import annotations

import copy
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import rclpy
from geometry_msgs.msg import Point, PoseStamped, Quaternion, Vector3
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from karma_interfaces.action import ExecuteSkill
from karma_interfaces.msg import AreaScore as AreaScoreMsg
from karma_interfaces.msg import InstanceLabels, MemoryUnit as MemoryUnitMsg, ObjectObservationArray
from karma_interfaces.msg import ObjectObservation as ObsMsg
from karma_interfaces.msg import Relation as RelationMsg
from rclpy.context import Context
from rclpy.parameter import Parameter
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import CameraInfo, Image

from karma_memory.bench.bags import graph_summary
from karma_memory.core import scene_graph as sg
from karma_memory.core.errors import (
    InvalidFrameError,
    InvalidObservationError,
    KarmaMemoryError,
    ConfigError,
    MemoryFileError,
    PlanValidationError,
)
from karma_memory.core.long_term import GRAPH_FILE, KIND as LTM_KIND, LongTermMemory
from karma_memory.core.persistence import read_envelope, write_envelope
from karma_memory.core.short_term import KIND as STM_KIND, SCHEMA_VERSION as STM_SCHEMA, STM_FILE
from karma_memory.core.short_term import MemoryUnit, ShortTermMemory, StmConfig
from karma_memory.core.types import OBJECT_STATES, RELATIONS, ObjectObservation, ObservationKind, Relation
from karma_memory.nodes import conversions as cv
from karma_memory.nodes import memory_conversions as mc

FUZZ = settings(max_examples=50, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                       HealthCheck.data_too_large, HealthCheck.filter_too_much])

f64 = st.floats(allow_nan=True, allow_infinity=True)
f32 = st.floats(width=32, allow_nan=True, allow_infinity=True)
texts = st.one_of(st.sampled_from(["", " ", "map", "Apple", "Apple|1", "Fridge|-02.10|+00.00|+01.07", "x" * 600]),
                  st.text(max_size=20))
states = st.lists(st.one_of(st.sampled_from(OBJECT_STATES), texts), max_size=20)
predicates = st.one_of(st.sampled_from(RELATIONS), texts)


def _build(factory, **fields):
    """A message with the given field values, or a rejected example if rclpy refuses a value (as the wire would)."""
    try:
        return factory(**fields)
    except (AssertionError, ValueError, TypeError, OverflowError):
        assume(False)


@st.composite
def observation_msgs(draw) -> ObsMsg:
    msg = _build(ObsMsg, object_id=draw(texts), object_type=draw(texts), kind=draw(st.integers(0, 255)),
                 position=_build(Point, x=draw(f64), y=draw(f64), z=draw(f64)),
                 size=_build(Vector3, x=draw(f64), y=draw(f64), z=draw(f64)), has_size=draw(st.booleans()),
                 states=draw(states), movable=draw(st.booleans()), source=draw(texts), robot_id=draw(texts),
                 confidence=draw(f32),
                 relations=[_build(RelationMsg, predicate=draw(predicates), target_id=draw(texts))
                            for _ in range(draw(st.integers(0, 3)))])
    msg.header.frame_id = draw(st.sampled_from(["map", "map", "map", "odom", ""]))
    msg.header.stamp.sec = draw(st.integers(-2**31, 2**31 - 1))
    msg.header.stamp.nanosec = draw(st.one_of(st.integers(0, 999_999_999), st.integers(0, 2**32 - 1)))
    return msg


def valid_observations() -> st.SearchStrategy[ObjectObservation]:
    finite = st.floats(-50, 50, allow_nan=False)
    return st.builds(
        ObjectObservation, object_id=st.sampled_from(["Apple|1", "Mug|2", "Fridge|3", "Bread|4|track-5"]),
        object_type=st.sampled_from(["Apple", "Mug", "Fridge", "Bread"]),
        position=st.tuples(finite, finite, finite), kind=st.sampled_from(list(ObservationKind)),
        size=st.one_of(st.none(), st.tuples(*[st.floats(0, 3)] * 3)),
        states=st.lists(st.sampled_from(OBJECT_STATES), max_size=3, unique=True).map(tuple),
        relations=st.lists(st.builds(Relation, st.sampled_from(RELATIONS),
                                     st.sampled_from(["CounterTop|1", "Fridge|3"])), max_size=2).map(tuple),
        movable=st.booleans(), stamp=st.floats(0, 1e6), source=st.sampled_from(["perception", "skill:PutObject"]),
        confidence=st.floats(0, 1))


# ------------------------------------------------------------------------------------------ conversions


@FUZZ
@given(observation_msgs())
def test_observation_from_msg_accepts_valid_or_raises_typed(msg) -> None:
    try:
        obs = cv.observation_from_msg(msg)
    except InvalidObservationError:
        return
    assert obs.object_id == msg.object_id and obs.object_id.strip() and msg.header.frame_id == "map"
    assert all(math.isfinite(v) for v in obs.position) and 0.0 <= obs.confidence <= 1.0
    assert set(obs.states) <= set(OBJECT_STATES) and all(r.predicate in RELATIONS for r in obs.relations)
    again = cv.observation_from_msg(cv.observation_to_msg(obs))  # what is accepted survives a round trip
    assert again.object_id == obs.object_id and again.states == obs.states and again.kind == obs.kind
    assert np.allclose(again.position, obs.position)


@FUZZ
@given(st.lists(observation_msgs(), max_size=4), st.sampled_from(["map", "base_link"]))
def test_observation_arrays_are_all_or_nothing(items, frame) -> None:
    msg = ObjectObservationArray(observations=items)
    msg.header.frame_id = frame
    limits = cv.Limits(max_observations=3)
    try:
        out = cv.observations_from_msg(msg, limits)
    except InvalidObservationError:
        return
    assert len(out) == len(items) <= 3 and frame == "map"


@FUZZ
@given(st.lists(valid_observations(), max_size=5), st.floats(0, 2**31 - 2))
def test_valid_observations_round_trip_through_messages(observations, stamp) -> None:
    back = cv.observations_from_msg(cv.observations_to_msg(observations, stamp))
    assert [(o.object_id, o.kind, o.states, o.relations, o.movable, o.source) for o in back] == \
        [(o.object_id, o.kind, o.states, o.relations, o.movable, o.source) for o in observations]
    for a, b in zip(back, observations):
        assert np.allclose(a.position, b.position, atol=1e-9) and math.isclose(a.stamp, b.stamp, abs_tol=1e-6)


@st.composite
def images(draw) -> Image:
    side = st.one_of(st.integers(0, 12), st.sampled_from([2**31 - 1, 9000]))
    msg = _build(Image, height=draw(side), width=draw(side),
                 encoding=draw(st.one_of(st.sampled_from(["rgb8", "bgr8", "rgba8", "bgra8", "32FC1", "16UC1", "mono16",
                                                          "32SC1", "mono8"]), texts)),
                 is_bigendian=draw(st.integers(0, 1)), step=draw(st.one_of(st.integers(0, 200),
                                                                            st.just(2**32 - 1))))
    msg.data = draw(st.binary(max_size=600))
    return msg


@FUZZ
@given(images())
def test_image_decoders_return_the_declared_shape_or_raise_typed(msg) -> None:
    for decode, channels in ((cv.image_to_rgb, 3), (cv.image_to_depth, None), (cv.image_to_instances, None)):
        try:
            pixels = decode(msg)
        except InvalidFrameError:
            continue
        assert pixels.shape[:2] == (msg.height, msg.width)
        assert (pixels.ndim == 3 and pixels.shape[2] == channels) if channels else pixels.ndim == 2


@FUZZ
@given(st.integers(0, 5), st.data())
def test_instance_labels_parse_or_raise_typed(n, data) -> None:
    def ints(k):
        return data.draw(st.lists(st.integers(-2**31, 2**31 - 1), min_size=k, max_size=k))

    msg = _build(InstanceLabels, instance_ids=ints(n),
                 object_types=data.draw(st.lists(texts, min_size=n, max_size=n + data.draw(st.integers(0, 1)))),
                 object_ids=data.draw(st.lists(texts, min_size=n, max_size=n)),
                 scores=data.draw(st.one_of(st.just([]), st.lists(f32, min_size=n, max_size=n + 1))))
    try:
        labels = cv.labels_from_msg(msg)
    except InvalidFrameError:
        return
    assert len(labels) == n and all(i > 0 for i in labels)
    assert all(0.0 <= label.score <= 1.0 and label.object_type.strip() for label in labels.values())


@FUZZ
@given(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1), st.lists(f64, min_size=9, max_size=9),
       st.lists(f64, max_size=8), st.sampled_from(["plumb_bob", "rational_polynomial", "", "equidistant"]),
       st.booleans())
def test_camera_info_gives_a_pinhole_camera_or_raises_typed(width, height, k, d, model, ignore) -> None:
    msg = _build(CameraInfo, width=width, height=height, k=k, d=d, distortion_model=model)
    try:
        intrinsics = cv.camera_info_to_intrinsics(msg, ignore_distortion=ignore)
    except InvalidFrameError:
        return
    assert intrinsics.fx > 0 and intrinsics.fy > 0 and 0 < intrinsics.width and 0 < intrinsics.height
    assert all(math.isfinite(v) for v in (intrinsics.fx, intrinsics.fy, intrinsics.cx, intrinsics.cy))


@FUZZ
@given(st.tuples(f64, f64, f64), st.tuples(f64, f64, f64, f64), st.sampled_from(["map", "odom", ""]))
def test_camera_pose_is_rigid_or_raises_typed(position, quaternion, frame) -> None:
    x, y, z, w = quaternion
    msg = PoseStamped()
    msg.header.frame_id = frame
    msg.pose.position = _build(Point, x=position[0], y=position[1], z=position[2])
    msg.pose.orientation = _build(Quaternion, x=x, y=y, z=z, w=w)
    try:
        matrix = cv.pose_to_world_from_camera(msg)
    except InvalidFrameError:
        return
    assert matrix.shape == (4, 4) and np.isfinite(matrix).all()
    rotation = matrix[:3, :3]
    assert np.allclose(rotation @ rotation.T, np.eye(3), atol=1e-2)


json_values = st.recursive(st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False)
                           | st.text(max_size=12),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                         max_size=3), max_leaves=8)


@FUZZ
@given(st.one_of(st.sampled_from(["PickupObject", "PutObject", "Explore", "OpenObject", "Fly"]), texts),
       st.one_of(texts, json_values.map(json.dumps),
                 st.dictionaries(st.sampled_from(["object", "receptacle", "areas", "x"]),
                                 st.one_of(texts, st.lists(texts, max_size=3)), max_size=3).map(json.dumps)))
def test_skill_goals_validate_or_raise_typed(skill, args_json) -> None:
    goal = _build(ExecuteSkill.Goal, skill=skill, args_json=args_json)
    try:
        call = cv.skill_goal_to_call(goal)
    except PlanValidationError:
        return
    assert call.skill == skill and isinstance(call.args, dict)


@FUZZ
@given(texts, st.sampled_from(OBJECT_STATES + ("boiled", "")), st.tuples(f64, f64, f64), texts, f64,
       st.integers(0, 2**32 - 1))
def test_memory_messages_convert_or_raise_typed(object_id, state, position, description, score, nanosec) -> None:
    point = _build(Point, x=position[0], y=position[1], z=position[2])
    unit = MemoryUnitMsg(object_id=object_id, object_type="Apple", position=point, states=[state],
                         description=description)
    unit.last_seen.nanosec = nanosec
    area = _build(AreaScoreMsg, area_id=object_id, position=point, score=score, reason=description)
    for convert, msg in ((mc.memory_unit_from_msg, unit), (mc.area_score_from_msg, area)):
        try:
            out = convert(msg)
        except InvalidObservationError:
            continue
        assert all(math.isfinite(v) for v in out.position)


# ------------------------------------------------------------------------------------------ node handlers


@pytest.fixture(scope="module")
def memory_nodes(tmp_path_factory):
    """Both memory nodes in this process (no spinning needed: the handlers are called directly)."""
    from karma_memory.nodes.long_term_memory_node import LongTermMemoryNode
    from karma_memory.nodes.short_term_memory_node import ShortTermMemoryNode

    context = Context()
    rclpy.init(context=context, signal_handler_options=SignalHandlerOptions.NO)
    directory = tmp_path_factory.mktemp("fuzz_nodes")
    common = [Parameter("warm_up", value=False), Parameter("markers.enabled", value=False),
              Parameter("flush_interval_s", value=0.0), Parameter("max_observations", value=8)]
    ltm = LongTermMemoryNode(context=context, parameter_overrides=common + [
        Parameter("memory_dir", value=str(directory / "ltm"))])
    stm = ShortTermMemoryNode(context=context, parameter_overrides=common + [
        Parameter("memory_dir", value=str(directory / "stm")), Parameter("admit_seen", value=True)])
    yield ltm, stm
    for node in (ltm, stm):
        node.destroy_node()
    context.try_shutdown()


def _mixed_arrays() -> st.SearchStrategy[ObjectObservationArray]:
    """Mostly valid observation arrays (so memory changes) with fuzzed elements mixed in."""
    def assemble(parts):
        valid, fuzzed, frame = parts
        msg = cv.observations_to_msg(valid, 5.0)
        msg.observations = list(msg.observations) + fuzzed
        msg.header.frame_id = frame
        return msg

    return st.tuples(st.lists(valid_observations(), max_size=6), st.lists(observation_msgs(), max_size=2),
                     st.sampled_from(["map", "map", "map", "camera"])).map(assemble)


@settings(FUZZ, max_examples=60)
@given(_mixed_arrays())
def test_memory_node_handlers_reject_bad_messages_without_change(memory_nodes, msg) -> None:
    ltm, stm = memory_nodes
    try:
        valid = cv.observations_from_msg(msg, cv.Limits(max_observations=8))
    except InvalidObservationError:
        valid = None
    version = ltm.memory.graph.graph["version"]
    ltm_before = graph_summary(ltm.memory.graph)
    stm_before = [(u.object_id, u.position, u.states, u.relation) for u in stm.memory.units()]
    ltm._on_observations(msg)  # must never raise
    stm._on_observations(msg)
    if valid is None:  # the whole message is rejected: both memories unchanged
        assert ltm.memory.graph.graph["version"] == version and graph_summary(ltm.memory.graph) == ltm_before
        assert [(u.object_id, u.position, u.states, u.relation) for u in stm.memory.units()] == stm_before
    assert not sg.validate_graph(ltm.memory.graph)
    assert len(stm.memory) <= stm.memory.config.capacity


def test_memory_nodes_still_save_and_reload_after_fuzzing(memory_nodes) -> None:
    ltm, stm = memory_nodes
    ltm.memory.observe(ObjectObservation("Apple|fuzz", "Apple", (0.0, 0.9, 0.0)))
    ltm.flush()
    stm.memory.observe(ObjectObservation("Apple|fuzz", "Apple", (0.0, 0.9, 0.0), ObservationKind.MOVED,
                                         source="skill:PutObject"))
    stm.dirty = True
    stm.flush()
    reloaded = LongTermMemory(directory=ltm.directory)
    reloaded.load()
    assert graph_summary(reloaded.graph) == graph_summary(ltm.memory.graph)
    again = ShortTermMemory(stm.memory.config, directory=stm.directory)
    again.load()
    assert {u.object_id for u in again.units()} == {u.object_id for u in stm.memory.units()}


# ------------------------------------------------------------------------------------------- memory files


def _ltm(tmp: Path) -> LongTermMemory:
    memory = LongTermMemory(directory=tmp)
    memory.observe_many([
        ObjectObservation("CounterTop|1", "CounterTop", (0.0, 0.9, 0.0), movable=False, size=(1.0, 0.1, 0.6)),
        ObjectObservation("Apple|1", "Apple", (0.1, 1.0, 0.0), states=("sliced",),
                          relations=(Relation("on", "CounterTop|1"),)),
        ObjectObservation("Mug|1", "Mug", (0.4, 1.0, 0.1), relations=(Relation("near", "Apple|1"),))])
    return memory


def _stm(tmp: Path) -> ShortTermMemory:
    memory = ShortTermMemory(StmConfig(policy="wtinylfu", capacity=4), directory=tmp)
    for i, kind in enumerate(["Apple", "Mug", "Egg", "Bread", "Knife"]):
        memory.put(MemoryUnit(f"{kind}|{i}", kind, (float(i), 0.9, 0.0), ("cleaned",), float(i), "on CounterTop|1"))
    memory.get("Apple|0")
    return memory


def _ltm_state(memory: LongTermMemory) -> tuple:
    return memory.graph.graph["version"], graph_summary(memory.graph)


def _stm_state(memory: ShortTermMemory) -> tuple:
    return tuple((u.object_id, u.position, u.states, u.hits) for u in memory.units()), memory.stats.queries


def _publishable(convert, *args) -> None:
    """Convert loaded memory to the node's state message; the one failure allowed is the known stamp-range bug."""
    try:
        convert(*args)
    except InvalidObservationError as err:  # see test_loaded_out_of_range_stamps_can_be_published (xfail)
        assert "does not fit builtin_interfaces/Time" in str(err), err


def _use_ltm(memory: LongTermMemory) -> None:
    """What the node does with a loaded graph: publish it, rank areas, prompt, update it, save it."""
    _publishable(mc.scene_graph_to_msg, memory.graph, 0.0)
    memory.to_prompt()
    memory.known_types()
    memory.rank_areas("Apple", use_semantic=False)
    memory.observe(ObjectObservation("Bread|9", "Bread", (1.0, 0.9, 1.0), movable=True, stamp=9.0))
    assert not sg.validate_graph(memory.graph)


def _use_stm(memory: ShortTermMemory) -> None:
    _publishable(mc.stm_state_to_msg, memory, 0.0)
    memory.to_prompt()
    memory.find("Apple")
    memory.record_query("Apple|0")
    memory.observe(ObjectObservation("Bread|9", "Bread", (1.0, 0.9, 1.0), ObservationKind.MOVED,
                                     source="skill:PutObject"))
    assert len(memory) <= memory.config.capacity


@FUZZ
@given(st.one_of(st.binary(max_size=3000), json_values.map(lambda v: json.dumps(v).encode()),
                 json_values.map(lambda v: json.dumps({"kind": LTM_KIND, "schema_version": 1, "sha256": "0" * 64,
                                                       "payload": v}).encode())))
def test_loaders_reject_arbitrary_bytes_and_keep_memory(tmp_path_factory, raw) -> None:
    tmp = tmp_path_factory.mktemp("bytes")
    ltm, stm = _ltm(tmp), _stm(tmp)
    before = _ltm_state(ltm), _stm_state(stm)
    for name in (GRAPH_FILE, STM_FILE):
        (tmp / name).write_bytes(raw)
    for memory in (ltm, stm):
        with pytest.raises(KarmaMemoryError) as caught:
            memory.load()
        assert isinstance(caught.value, MemoryFileError)
    assert (_ltm_state(ltm), _stm_state(stm)) == before
    assert (tmp / GRAPH_FILE).read_bytes() == raw  # loading never writes


def _mutate_bytes(raw: bytes, data: st.DataObject) -> bytes:
    op = data.draw(st.sampled_from(["flip", "truncate", "insert", "delete", "swap"]))
    i = data.draw(st.integers(0, len(raw) - 1))
    if op == "flip":
        return raw[:i] + bytes([raw[i] ^ (1 << data.draw(st.integers(0, 7)))]) + raw[i + 1:]
    if op == "truncate":
        return raw[:i]
    if op == "insert":
        return raw[:i] + data.draw(st.binary(min_size=1, max_size=8)) + raw[i:]
    if op == "delete":
        return raw[:i] + raw[i + data.draw(st.integers(1, 16)):]
    j = data.draw(st.integers(0, len(raw) - 1))
    b = bytearray(raw)
    b[i], b[j] = b[j], b[i]
    return bytes(b)


@settings(FUZZ, max_examples=30)
@given(st.data(), st.booleans())
def test_mutated_files_load_as_main_or_prev_never_anything_else(tmp_path_factory, data, keep_prev) -> None:
    tmp = tmp_path_factory.mktemp("mutated")
    ltm, stm = _ltm(tmp), _stm(tmp)
    ltm.save()
    stm.save()  # these become .prev
    good = {"ltm_prev": _ltm_state(ltm), "stm_prev": _stm_state(stm)}
    ltm.observe(ObjectObservation("Egg|2", "Egg", (2.0, 0.9, 0.0)))
    stm.put(MemoryUnit("Egg|7", "Egg", (2.0, 0.9, 0.0)))
    ltm.save()
    stm.save()
    good.update(ltm_main=_ltm_state(ltm), stm_main=_stm_state(stm))

    def fresh_stm(directory: Path) -> ShortTermMemory:
        return ShortTermMemory(stm.config, directory=directory)

    for name, fresh, state in ((GRAPH_FILE, LongTermMemory, _ltm_state), (STM_FILE, fresh_stm, _stm_state)):
        path = tmp / name
        path.write_bytes(_mutate_bytes(path.read_bytes(), data))
        if not keep_prev:
            (tmp / f"{name}.prev").unlink()
        target = fresh(directory=tmp)
        before = state(target)
        try:
            used = target.load()
        except MemoryFileError:
            assert not keep_prev and state(target) == before  # nothing to fall back on: typed error, no change
            continue
        kind = "ltm" if name == GRAPH_FILE else "stm"
        assert state(target) == good[f"{kind}_prev" if used.name.endswith(".prev") else f"{kind}_main"]


def _paths(doc, prefix=()):
    yield prefix
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield from _paths(value, prefix + (key,))
    elif isinstance(doc, list):
        for index, value in enumerate(doc):
            yield from _paths(value, prefix + (index,))


def _mutate_json(doc, data: st.DataObject):
    doc = copy.deepcopy(doc)
    paths = [p for p in _paths(doc) if p]
    path = data.draw(st.sampled_from(paths))
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    op = data.draw(st.sampled_from(["replace", "replace", "delete", "retype"]))
    if op == "delete":
        del parent[path[-1]]
    elif op == "retype":
        value = parent[path[-1]]
        parent[path[-1]] = [value] if not isinstance(value, list) else (value[0] if value else None)
    else:
        parent[path[-1]] = data.draw(json_values)
    return doc


@settings(FUZZ, max_examples=100)
@given(st.data())
def test_well_checksummed_but_malformed_graphs_are_rejected_or_usable(tmp_path_factory, data) -> None:
    """A payload that passes the checksum but is structurally wrong (a bug, a hand edit, a foreign tool)."""
    tmp = tmp_path_factory.mktemp("ltm_payload")
    source = _ltm(tmp)
    payload = _mutate_json(sg.graph_to_data(source.graph), data)
    try:
        write_envelope(tmp / GRAPH_FILE, LTM_KIND, sg.SCHEMA_VERSION, payload)
    except MemoryFileError:
        return  # not serialisable as canonical JSON: can never be on disk
    (tmp / f"{GRAPH_FILE}.prev").unlink(missing_ok=True)
    memory = LongTermMemory()
    before = _ltm_state(memory)
    try:
        memory.load(tmp)
    except MemoryFileError:
        assert _ltm_state(memory) == before
        return
    _use_ltm(memory)


@settings(FUZZ, max_examples=100)
@given(st.data())
def test_well_checksummed_but_malformed_stm_files_are_rejected_or_usable(tmp_path_factory, data) -> None:
    tmp = tmp_path_factory.mktemp("stm_payload")
    source = _stm(tmp)
    source.save()
    envelope = json.loads((tmp / STM_FILE).read_bytes())
    payload = _mutate_json(envelope["payload"], data)
    try:
        write_envelope(tmp / STM_FILE, STM_KIND, STM_SCHEMA, payload)
    except MemoryFileError:
        return
    os.remove(tmp / f"{STM_FILE}.prev")
    memory = ShortTermMemory(source.config)
    before = _stm_state(memory)
    try:
        memory.load(tmp)
    except MemoryFileError:
        assert _stm_state(memory) == before
        return
    _use_stm(memory)


def test_out_of_range_stamps_are_rejected_before_they_reach_memory(tmp_path) -> None:
    """Stamps must fit builtin_interfaces/Time (int32 seconds): rejected on input and in files, never published."""
    with pytest.raises(InvalidObservationError, match="2\\^31"):
        ObjectObservation("Apple|1", "Apple", (0.0, 1.0, 0.0), stamp=3e9)  # a stamp in 2065
    stm = ShortTermMemory(StmConfig(policy="lru"), directory=tmp_path)
    with pytest.raises(ConfigError):
        stm.put(MemoryUnit("Apple|1", "Apple", (0.0, 1.0, 0.0), last_seen=3e9))
    ltm = LongTermMemory(directory=tmp_path)
    ltm.observe(ObjectObservation("Apple|1", "Apple", (0.0, 1.0, 0.0), stamp=1.0))
    path = ltm.save()
    _, payload = read_envelope(path, LTM_KIND, sg.SCHEMA_VERSION)
    next(n for n in payload["nodes"] if n["id"] == "Apple|1")["last_seen"] = 3e9
    write_envelope(path, LTM_KIND, sg.SCHEMA_VERSION, payload)
    with pytest.raises(MemoryFileError):
        LongTermMemory().load(tmp_path)