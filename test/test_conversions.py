"""Message <-> core conversions, without a node: round trips, frames, and rejection of bad input."""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Point, PoseStamped, Quaternion, Vector3
from karma_interfaces.action import ExecuteSkill
from karma_interfaces.msg import InstanceLabels, ObjectObservationArray, StepReport
from karma_interfaces.msg import ObjectObservation as ObsMsg
from karma_interfaces.msg import Relation as RelationMsg
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import CameraInfo, Image

from karma_memory.core.errors import InvalidFrameError, InvalidObservationError, PlanValidationError
from karma_memory.core.frames import map_pose_to_thor
from karma_memory.core.skills import SKILL_SCHEMA, SkillCall, SkillCost, SkillResult
from karma_memory.core.types import (
    CameraFrame,
    CameraIntrinsics,
    InstanceLabel,
    ObjectObservation,
    ObservationKind,
    Relation,
)
from karma_memory.nodes import conversions as conv
from karma_memory.nodes.conversions import Limits

APPLE = ObjectObservation(
    object_id="Apple|+01.20|+00.90|-00.30", object_type="Apple", position=(1.2, 0.9, -0.3),
    kind=ObservationKind.MOVED, size=(0.1, 0.12, 0.11), states=("cleaned", "sliced"),
    relations=(Relation("inside", "Fridge|-02.10|+00.00|+01.07"), Relation("near", "Egg|1")),
    movable=True, stamp=12.25, source="perception", robot_id="robot_1", confidence=0.9)


def test_module_doctests() -> None:
    assert doctest.testmod(conv).failed == 0


# ------------------------------------------------------------------------------------------- stamps


@pytest.mark.parametrize("seconds", [0.0, 1.0, 12.345, 1e-9, 0.9999999999, 1_700_000_000.123456, -2.5])
def test_stamp_round_trip(seconds: float) -> None:
    stamp = conv.seconds_to_stamp(seconds)
    assert 0 <= stamp.nanosec < 1_000_000_000
    assert conv.stamp_to_seconds(stamp) == pytest.approx(seconds, abs=1e-6 if seconds > 1e6 else 1e-9)


def test_stamp_carries_rounding_into_seconds() -> None:
    assert conv.seconds_to_stamp(0.9999999999) == Time(sec=1, nanosec=0)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 2.0**40, "soon"])
def test_bad_stamp_rejected(bad: object) -> None:
    with pytest.raises(InvalidObservationError, match="stamp"):
        conv.seconds_to_stamp(bad)  # type: ignore[arg-type]


def test_malformed_time_message_rejected() -> None:
    with pytest.raises(InvalidObservationError, match="nanosec"):
        conv.stamp_to_seconds(Time(sec=1, nanosec=1_000_000_000))


# ------------------------------------------------------------------------------------- observations


def test_observation_round_trip_is_exact() -> None:
    msg = conv.observation_to_msg(APPLE)
    assert conv.observation_from_msg(msg) == APPLE
    wire = deserialize_message(serialize_message(msg), ObsMsg)  # and through CDR (float32 confidence)
    assert conv.observation_from_msg(wire) == APPLE


def test_observation_message_is_in_the_map_frame() -> None:
    msg = conv.observation_to_msg(APPLE)
    assert msg.header.frame_id == "map"
    assert msg.header.stamp == Time(sec=12, nanosec=250_000_000)
    # THOR (x right, y up, z forward) -> map (x forward, y left, z up): z is the THOR height
    assert (msg.position.x, msg.position.y, msg.position.z) == (-0.3, -1.2, 0.9)
    assert msg.has_size and (msg.size.x, msg.size.y, msg.size.z) == (0.11, 0.1, 0.12)
    assert msg.kind == ObsMsg.MOVED
    assert [(r.predicate, r.target_id) for r in msg.relations] == [("inside", "Fridge|-02.10|+00.00|+01.07"),
                                                                  ("near", "Egg|1")]


@pytest.mark.parametrize("kind", list(ObservationKind))
def test_every_kind_round_trips(kind: ObservationKind) -> None:
    obs = ObjectObservation("Mug|1", "Mug", (0.0, 1.0, 2.0), kind=kind, size=None, states=(), movable=False)
    back = conv.observation_from_msg(conv.observation_to_msg(obs))
    assert back == obs and back.size is None and not conv.observation_to_msg(obs).has_size


def test_points_and_sizes() -> None:
    assert conv.point_to_thor(conv.thor_to_point((1.5, -2.0, 0.25))) == (1.5, -2.0, 0.25)
    assert conv.vector3_to_thor_size(conv.thor_size_to_vector3((0.1, 0.2, 0.3))) == (0.1, 0.2, 0.3)
    with pytest.raises(InvalidObservationError, match="must be finite"):
        conv.point_to_thor(Point(x=math.nan))
    with pytest.raises(InvalidObservationError, match="non-negative"):
        conv.vector3_to_thor_size(Vector3(x=-1.0))


def _msg(**changes: object) -> ObsMsg:
    msg = conv.observation_to_msg(APPLE)
    for key, value in changes.items():
        target, _, attr = key.rpartition("__")
        setattr(getattr(msg, target) if target else msg, attr, value)
    return msg


@pytest.mark.parametrize("changes,match", [
    ({"position__x": math.nan}, "position of 'Apple.*must be finite"),
    ({"position__z": math.inf}, "must be finite"),
    ({"size__y": math.nan}, "size of 'Apple.*must be finite"),
    ({"size__x": -0.1}, "non-negative"),
    ({"object_id": ""}, "object_id must be a non-empty"),
    ({"object_id": "   "}, "object_id must be a non-empty"),
    ({"object_id": "x" * 600}, "600 characters"),
    ({"object_type": ""}, "object_type of 'Apple"),
    ({"source": "s" * 513}, "source of observation"),
    ({"header__frame_id": "odom"}, "frame_id 'odom'; expected 'map'"),
    ({"header__frame_id": ""}, "frame_id ''; expected 'map'"),
    ({"kind": 9}, "unknown kind 9"),
    ({"states": ["cleaned", "shiny"]}, "unknown state.*shiny"),
    ({"states": ["on"] * 17}, "17 states; the limit is 16"),
    ({"relations": [RelationMsg(predicate="under", target_id="Table|1")]}, "unknown relation 'under'"),
    ({"relations": [RelationMsg(predicate="on", target_id="")]}, "target_id is empty"),
    ({"relations": [RelationMsg(predicate="on", target_id="T|1")] * 65}, "65 relations; the limit is 64"),
    ({"confidence": 1.5}, "confidence .* must be in \\[0, 1\\]"),
    ({"confidence": math.nan}, "confidence"),
    ({"header__stamp": Time(sec=0, nanosec=2_000_000_000)}, "nanosec"),
])
def test_bad_observation_rejected(changes: dict, match: str) -> None:
    with pytest.raises(InvalidObservationError, match=match):
        conv.observation_from_msg(_msg(**changes))


def test_unknown_size_is_ignored_when_has_size_is_false() -> None:
    msg = _msg(has_size=False, size__x=math.nan)
    assert conv.observation_from_msg(msg).size is None


def test_limits_are_configurable() -> None:
    with pytest.raises(InvalidObservationError, match="limit is 1"):
        conv.observation_from_msg(_msg(), Limits(max_states=1))


def test_observation_array_round_trip_and_errors_name_the_index() -> None:
    others = [ObjectObservation(f"Egg|{i}", "Egg", (i, 0.9, 0.0), stamp=3.0 + i) for i in range(2)]
    array = conv.observations_to_msg([APPLE, *others])
    assert array.header.frame_id == "map" and conv.stamp_to_seconds(array.header.stamp) == 12.25
    assert conv.observations_from_msg(array) == [APPLE, *others]
    assert conv.observations_to_msg([], stamp=5.0).header.stamp == Time(sec=5)
    array.observations[2].position.y = math.nan
    with pytest.raises(InvalidObservationError, match=r"observations\[2\]: position of 'Egg\|1'"):
        conv.observations_from_msg(array)
    with pytest.raises(InvalidObservationError, match="3 elements; the limit is 2"):
        conv.observations_from_msg(array, Limits(max_observations=2))
    with pytest.raises(InvalidObservationError, match="observation array has frame_id 'base_link'"):
        conv.observations_from_msg(ObjectObservationArray(header=array.header.__class__(frame_id="base_link")))


# ------------------------------------------------------------------------------------------- images


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(7)


def test_rgb_round_trip_and_bgr(rng: np.random.Generator) -> None:
    rgb = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    msg = conv.rgb_to_image(rgb, 1.5, "camera_optical_frame")
    assert (msg.encoding, msg.width, msg.height, msg.step) == ("rgb8", 7, 5, 21)
    assert msg.header.frame_id == "camera_optical_frame"
    np.testing.assert_array_equal(conv.image_to_rgb(msg), rgb)
    np.testing.assert_array_equal(conv.image_to_rgb(deserialize_message(serialize_message(msg), Image)), rgb)
    bgr = Image(height=5, width=7, encoding="bgr8", step=21, data=rgb[:, :, ::-1].tobytes())
    np.testing.assert_array_equal(conv.image_to_rgb(bgr), rgb)
    rgba = np.dstack([rgb, np.full((5, 7), 255, np.uint8)])
    np.testing.assert_array_equal(
        conv.image_to_rgb(Image(height=5, width=7, encoding="rgba8", step=28, data=rgba.tobytes())), rgb)


def test_row_padding_is_honoured(rng: np.random.Generator) -> None:
    rgb = rng.integers(0, 256, (3, 4, 3), dtype=np.uint8)
    padded = np.zeros((3, 16), np.uint8)
    padded[:, :12] = rgb.reshape(3, 12)
    msg = Image(height=3, width=4, encoding="rgb8", step=16, data=padded.tobytes())
    np.testing.assert_array_equal(conv.image_to_rgb(msg), rgb)


def test_depth_round_trip_big_endian_and_millimetres(rng: np.random.Generator) -> None:
    depth = rng.uniform(0.2, 5.0, (4, 6)).astype(np.float32)
    depth[0, 0], depth[1, 1] = np.nan, 0.0
    msg = conv.depth_to_image(depth)
    assert msg.encoding == "32FC1" and msg.step == 24
    np.testing.assert_array_equal(conv.image_to_depth(msg), depth)
    big = Image(height=4, width=6, encoding="32FC1", is_bigendian=1, step=24, data=depth.astype(">f4").tobytes())
    np.testing.assert_array_equal(conv.image_to_depth(big), depth)
    mm = Image(height=1, width=3, encoding="16UC1", step=6, data=np.array([0, 1000, 2345], "<u2").tobytes())
    np.testing.assert_allclose(conv.image_to_depth(mm), [[0.0, 1.0, 2.345]], rtol=1e-6)


def test_instances_round_trip() -> None:
    inst = np.array([[0, 1, 1], [2, 2, 70000]], dtype=np.int64)
    msg = conv.instances_to_image(inst)
    assert msg.encoding == "32SC1"
    out = conv.image_to_instances(msg)
    assert out.dtype == np.int32
    np.testing.assert_array_equal(out, inst)


@pytest.mark.parametrize("func,array,match", [
    (conv.rgb_to_image, np.zeros((4, 4), np.uint8), r"\(H, W, 3\) uint8"),
    (conv.rgb_to_image, np.zeros((4, 4, 3), np.float32), r"\(H, W, 3\) uint8"),
    (conv.depth_to_image, np.zeros((4, 4, 1), np.float32), r"\(H, W\) numeric"),
    (conv.instances_to_image, np.zeros((4, 4), np.float32), "integer"),
    (conv.instances_to_image, np.full((2, 2), 2**40), "int32"),
])
def test_bad_arrays_rejected(func, array: np.ndarray, match: str) -> None:
    with pytest.raises(InvalidFrameError, match=match):
        func(array)


@pytest.mark.parametrize("func,msg,match", [
    (conv.image_to_rgb, Image(height=2, width=2, encoding="mono8", step=2, data=bytes(4)), "'mono8' unsupported"),
    (conv.image_to_rgb, Image(height=2, width=2, encoding="rgb8", step=6, data=bytes(11)), "11 bytes"),
    (conv.image_to_rgb, Image(height=2, width=2, encoding="rgb8", step=5, data=bytes(12)), "step 5"),
    (conv.image_to_rgb, Image(height=0, width=2, encoding="rgb8", step=6, data=b""), "2x0"),
    (conv.image_to_depth, Image(height=1, width=1, encoding="rgb8", step=3, data=bytes(3)), "'rgb8' unsupported"),
    (conv.image_to_instances, Image(height=1, width=1, encoding="16UC1", step=2, data=bytes(2)), "expected '32SC1'"),
])
def test_bad_images_rejected(func, msg: Image, match: str) -> None:
    with pytest.raises(InvalidFrameError, match=match):
        func(msg)


def test_image_size_limit() -> None:
    msg = conv.rgb_to_image(np.zeros((2, 20, 3), np.uint8))
    with pytest.raises(InvalidFrameError, match="sides must be in 1..10"):
        conv.image_to_rgb(msg, Limits(max_image_side=10))


def test_labels_round_trip() -> None:
    labels = {3: InstanceLabel("Apple", "Apple|1", 0.75), 1: InstanceLabel("CounterTop")}
    msg = conv.labels_to_msg(labels, 2.0, "camera_optical_frame")
    assert list(msg.instance_ids) == [1, 3] and msg.object_ids == ["", "Apple|1"]
    assert conv.labels_from_msg(msg) == labels
    assert conv.labels_from_msg(deserialize_message(serialize_message(msg), InstanceLabels)) == labels
    no_scores = InstanceLabels(instance_ids=[5], object_types=["Mug"], object_ids=[""])
    assert conv.labels_from_msg(no_scores) == {5: InstanceLabel("Mug", None, 1.0)}


@pytest.mark.parametrize("fields,match", [
    ({"instance_ids": [1, 2], "object_types": ["A"], "object_ids": ["", ""]}, "differ in length"),
    ({"instance_ids": [1], "object_types": ["A"], "object_ids": [""], "scores": [0.5, 0.5]}, "differ in length"),
    ({"instance_ids": [0], "object_types": ["A"], "object_ids": [""]}, "must be positive"),
    ({"instance_ids": [2, 2], "object_types": ["A", "B"], "object_ids": ["", ""]}, "labelled twice"),
    ({"instance_ids": [2], "object_types": [" "], "object_ids": [""]}, "invalid object type"),
    ({"instance_ids": [2], "object_types": ["A"], "object_ids": [""], "scores": [1.5]}, "score 1.5"),
])
def test_bad_labels_rejected(fields: dict, match: str) -> None:
    with pytest.raises(InvalidFrameError, match=match):
        conv.labels_from_msg(InstanceLabels(**fields))


def test_background_cannot_be_labelled() -> None:
    with pytest.raises(InvalidFrameError, match="positive int32"):
        conv.labels_to_msg({0: InstanceLabel("Floor")})


# ------------------------------------------------------------------------------- intrinsics and pose


def test_camera_info_round_trip() -> None:
    k = CameraIntrinsics.from_fov(640, 480, 90.0)
    msg = conv.intrinsics_to_camera_info(k, 3.0, "camera_optical_frame")
    assert msg.distortion_model == "plumb_bob" and list(msg.d) == [0.0] * 5
    assert msg.p[0] == k.fx and msg.p[10] == 1.0
    assert conv.camera_info_to_intrinsics(msg) == k
    assert conv.camera_info_to_intrinsics(deserialize_message(serialize_message(msg), CameraInfo)) == k


def test_bad_camera_info_rejected() -> None:
    good = conv.intrinsics_to_camera_info(CameraIntrinsics.from_fov(64, 48, 90.0))
    distorted = conv.intrinsics_to_camera_info(CameraIntrinsics.from_fov(64, 48, 90.0))
    distorted.d = [0.1, 0.0, 0.0, 0.0, 0.0]
    with pytest.raises(InvalidFrameError, match="distortion"):
        conv.camera_info_to_intrinsics(distorted)
    assert conv.camera_info_to_intrinsics(distorted, ignore_distortion=True).width == 64
    zero_f = conv.intrinsics_to_camera_info(CameraIntrinsics(64, 48, 0.0, 30.0, 32.0, 24.0))
    with pytest.raises(InvalidFrameError, match="positive focal"):
        conv.camera_info_to_intrinsics(zero_f)
    good.width = 0
    with pytest.raises(InvalidFrameError, match="0x48"):
        conv.camera_info_to_intrinsics(good)


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q = rng.normal(size=4)
    x, y, z, w = q / np.linalg.norm(q)
    return conv._quaternion_to_matrix(x, y, z, w)


def _thor_pose(rotation_map: np.ndarray, translation_map: tuple[float, float, float]) -> np.ndarray:
    m = np.eye(4)
    m[:3, :3], m[:3, 3] = rotation_map, translation_map
    return map_pose_to_thor(m)


def test_forward_looking_thor_camera_is_level_in_map() -> None:
    # THOR camera at (1, 1.5, 2) looking along THOR +z: optical x = THOR x, optical y (down) = THOR -y
    world_from_camera = np.eye(4)
    world_from_camera[:3, :3] = np.diag([1.0, -1.0, 1.0])
    world_from_camera[:3, 3] = (1.0, 1.5, 2.0)
    pose = conv.world_from_camera_to_pose(world_from_camera, 4.0)
    assert pose.header.frame_id == "map" and pose.header.stamp == Time(sec=4)
    p, q = pose.pose.position, pose.pose.orientation
    assert (p.x, p.y, p.z) == (2.0, -1.0, 1.5)
    r = conv._quaternion_to_matrix(q.x, q.y, q.z, q.w)
    np.testing.assert_allclose(r[:, 2], [1, 0, 0], atol=1e-12)  # looks along map +x
    np.testing.assert_allclose(r[:, 1], [0, 0, -1], atol=1e-12)  # image down = map down
    np.testing.assert_allclose(conv.pose_to_world_from_camera(pose), world_from_camera, atol=1e-12)


@pytest.mark.parametrize("seed", range(20))
def test_pose_round_trip(seed: int) -> None:
    rng = np.random.default_rng(seed)
    thor = _thor_pose(_random_rotation(rng), tuple(rng.uniform(-5, 5, 3)))
    assert np.linalg.det(thor[:3, :3]) == pytest.approx(-1.0)
    pose = conv.world_from_camera_to_pose(thor)
    q = pose.pose.orientation
    assert math.sqrt(q.x**2 + q.y**2 + q.z**2 + q.w**2) == pytest.approx(1.0) and q.w >= 0
    np.testing.assert_allclose(conv.pose_to_world_from_camera(pose), thor, atol=1e-12)


@pytest.mark.parametrize("rotation", [np.diag([1.0, -1.0, -1.0]), np.diag([-1.0, 1.0, -1.0]),
                                      np.diag([-1.0, -1.0, 1.0]), np.eye(3)])
def test_half_turns_round_trip(rotation: np.ndarray) -> None:  # every branch of the matrix->quaternion code
    thor = _thor_pose(rotation, (0.0, 0.0, 0.0))
    np.testing.assert_allclose(conv.pose_to_world_from_camera(conv.world_from_camera_to_pose(thor)), thor, atol=1e-12)


def test_slightly_off_unit_quaternion_is_normalised() -> None:
    pose = PoseStamped()
    pose.header.frame_id = "map"
    pose.pose.orientation = Quaternion(x=0.0, y=0.0, z=0.0, w=1.0005)
    r = conv.pose_to_world_from_camera(pose)[:3, :3]
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)


@pytest.mark.parametrize("quaternion,match", [
    (Quaternion(x=0.0, y=0.0, z=0.0, w=2.0), "norm 2.000000"),
    (Quaternion(x=0.0, y=0.0, z=0.0, w=0.0), "norm 0.000000"),
    (Quaternion(x=math.nan, y=0.0, z=0.0, w=1.0), "non-finite"),
])
def test_bad_quaternion_rejected(quaternion: Quaternion, match: str) -> None:
    pose = PoseStamped()
    pose.header.frame_id = "map"
    pose.pose.orientation = quaternion
    with pytest.raises(InvalidFrameError, match=match):
        conv.pose_to_world_from_camera(pose)


def test_pose_in_wrong_frame_rejected() -> None:
    pose = PoseStamped()
    pose.header.frame_id = "base_link"
    with pytest.raises(InvalidFrameError, match="frame_id 'base_link'; expected 'map'"):
        conv.pose_to_world_from_camera(pose)


@pytest.mark.parametrize("matrix,match", [
    (np.eye(4), "determinant \\+1"),
    (np.eye(3), "4x4"),
    (np.diag([2.0, -1.0, 1.0, 1.0]), "not a rigid transform"),
    (np.full((4, 4), np.nan), "finite"),
])
def test_bad_world_from_camera_rejected(matrix: np.ndarray, match: str) -> None:
    with pytest.raises(InvalidFrameError, match=match):
        conv.world_from_camera_to_pose(matrix)


# ------------------------------------------------------------------------------------ camera frames


@pytest.fixture
def frame(rng: np.random.Generator) -> CameraFrame:
    h, w = 6, 8
    depth = rng.uniform(0.3, 4.0, (h, w)).astype(np.float32)
    depth[0, :2] = (np.nan, np.inf)
    instances = np.zeros((h, w), np.int32)
    instances[1:3, 2:5], instances[4:, 6:] = 1, 2
    return CameraFrame(
        rgb=rng.integers(0, 256, (h, w, 3), dtype=np.uint8), depth=depth, instances=instances,
        labels={1: InstanceLabel("Apple", "Apple|1"), 2: InstanceLabel("Bowl", None, 0.5)},
        intrinsics=CameraIntrinsics.from_fov(w, h, 90.0),
        world_from_camera=_thor_pose(_random_rotation(rng), (0.5, 1.4, -1.0)),
        stamp=7.5, frame_id="camera_optical_frame", metadata_objects=[{"objectId": "Apple|1"}])


def test_camera_frame_round_trip(frame: CameraFrame) -> None:
    msgs = conv.camera_frame_to_msgs(frame)
    assert {m.header.frame_id for m in (msgs.rgb, msgs.depth, msgs.instances, msgs.labels, msgs.camera_info)} == \
        {"camera_optical_frame"}
    assert msgs.pose.header.frame_id == "map"
    assert {(m.header.stamp.sec, m.header.stamp.nanosec) for m in msgs} == {(7, 500_000_000)}
    wire = conv.CameraMessages(*(deserialize_message(serialize_message(m), type(m)) for m in msgs))
    back = conv.camera_frame_from_msgs(*wire)
    np.testing.assert_array_equal(back.rgb, frame.rgb)
    np.testing.assert_array_equal(back.depth, frame.depth)
    np.testing.assert_array_equal(back.instances, frame.instances)
    assert back.labels == frame.labels and back.intrinsics == frame.intrinsics
    np.testing.assert_allclose(back.world_from_camera, frame.world_from_camera, atol=1e-12)
    assert back.stamp == 7.5 and back.frame_id == "camera_optical_frame"
    assert back.metadata_objects is None  # ground truth is not sensor data


def test_camera_frame_mismatches_rejected(frame: CameraFrame) -> None:
    msgs = conv.camera_frame_to_msgs(frame)
    msgs.depth.header.frame_id = "depth_optical_frame"
    with pytest.raises(InvalidFrameError, match="depth frame_id 'depth_optical_frame' differs"):
        conv.camera_frame_from_msgs(*msgs)
    msgs = conv.camera_frame_to_msgs(frame)
    msgs.labels.header.stamp = Time(sec=99)
    with pytest.raises(InvalidFrameError, match="labels stamp differs"):
        conv.camera_frame_from_msgs(*msgs)
    msgs = conv.camera_frame_to_msgs(frame)
    msgs.camera_info.width = 16
    with pytest.raises(InvalidFrameError, match="camera_info says 16x6"):
        conv.camera_frame_from_msgs(*msgs)
    msgs = conv.camera_frame_to_msgs(frame)
    msgs.rgb.header.frame_id = ""
    with pytest.raises(InvalidFrameError, match="empty frame_id"):
        conv.camera_frame_from_msgs(*msgs)


def test_camera_frame_with_inconsistent_arrays_rejected(frame: CameraFrame) -> None:
    frame.depth = frame.depth[:, :4]
    with pytest.raises(InvalidFrameError, match="depth is"):
        conv.camera_frame_to_msgs(frame)


# ------------------------------------------------------------------------------------------- skills

SAMPLE_ARGS = {"object": "Apple|+01.20|+00.90|-00.30", "receptacle": "Fridge", "areas": ("area_2", "area_5")}


@pytest.mark.parametrize("skill", sorted(SKILL_SCHEMA))
def test_every_skill_round_trips_through_a_goal(skill: str) -> None:
    call = SkillCall(skill, {name: SAMPLE_ARGS[name] for name in SKILL_SCHEMA[skill]})
    goal = conv.skill_call_to_goal(call)
    assert goal.skill == skill
    assert conv.skill_goal_to_call(deserialize_message(serialize_message(goal), ExecuteSkill.Goal)) == call


def test_goal_json_is_an_object_with_lists() -> None:
    goal = conv.skill_call_to_goal(SkillCall("Explore", {"object": "Apple", "areas": ("area_1",)}))
    assert goal.args_json == '{"areas": ["area_1"], "object": "Apple"}'
    assert conv.skill_goal_to_call(ExecuteSkill.Goal(skill="DropHandObject", args_json="")) == \
        SkillCall("DropHandObject", {})


@pytest.mark.parametrize("skill,args_json,match", [
    ("Fly", "{}", "unknown skill 'Fly'"),
    ("PickupObject", "{object: Apple}", "not JSON"),
    ("PickupObject", '["Apple"]', "must be a JSON object, got list"),
    ("PickupObject", "{}", "missing argument 'object'"),
    ("PickupObject", '{"object": "Apple", "speed": 3}', "unexpected argument"),
    ("PickupObject", '{"object": 3}', "non-empty string"),
    ("Explore", '{"object": "Apple", "areas": "area_1"}', "list of area ids"),
    ("PickupObject", '{"object": "' + "x" * 70_000 + '"}', "the limit is 65536"),
])
def test_bad_goals_rejected(skill: str, args_json: str, match: str) -> None:
    with pytest.raises(PlanValidationError, match=match):
        conv.skill_goal_to_call(ExecuteSkill.Goal(skill=skill, args_json=args_json))


def test_known_types_are_checked_both_ways() -> None:
    call = SkillCall("PickupObject", {"object": "Banana"})
    with pytest.raises(PlanValidationError, match="unknown object type 'Banana'"):
        conv.skill_call_to_goal(call, known_types=["Apple"])
    goal = conv.skill_call_to_goal(call)
    with pytest.raises(PlanValidationError, match="unknown object type 'Banana'"):
        conv.skill_goal_to_call(goal, known_types=["Apple"])


def test_skill_result_round_trip() -> None:
    result = SkillResult(True, "found Apple in area_5", SkillCost(42, 6.5, 21.0), "Apple|1", areas_visited=2)
    msg = conv.skill_result_to_msg(result)
    assert conv.skill_result_from_msg(deserialize_message(serialize_message(msg), ExecuteSkill.Result)) == result
    failed = SkillResult(False, "no knife in hand")
    assert conv.skill_result_to_msg(failed).object_id == ""
    assert conv.skill_result_from_msg(conv.skill_result_to_msg(failed)) == failed


@pytest.mark.parametrize("result,match", [
    (SkillResult(True, "", SkillCost(-1)), "steps -1"),
    (SkillResult(True, "", SkillCost(1, math.nan)), "distance_m must be finite"),
    (SkillResult(True, "", SkillCost(1, 0.0, -2.0)), "sim_time_s must be finite and non-negative"),
    (SkillResult(True, "", areas_visited=-1), "areas_visited -1"),
])
def test_bad_skill_results_rejected(result: SkillResult, match: str) -> None:
    with pytest.raises(PlanValidationError, match=match):
        conv.skill_result_to_msg(result)


def test_bad_skill_result_message_rejected() -> None:
    with pytest.raises(PlanValidationError, match="distance_m"):
        conv.skill_result_from_msg(ExecuteSkill.Result(distance_m=-1.0))


def test_step_report_round_trip_keeps_invalid_calls() -> None:
    call = SkillCall("Explore", {"object": "Apple", "areas": ("area_1", "area_3")})
    result = SkillResult(True, "ok", SkillCost(10, 2.5, 5.0))
    msg = conv.step_report_to_msg(4, call, result)
    assert conv.step_report_from_msg(deserialize_message(serialize_message(msg), StepReport)) == (4, call, result)
    bad = SkillCall("Teleport", {"object": "Apple"})  # a report may record an invalid step that failed
    index, back, _ = conv.step_report_from_msg(conv.step_report_to_msg(0, bad, SkillResult(False, "unknown skill")))
    assert back == bad
    with pytest.raises(PlanValidationError, match="step index -1"):
        conv.step_report_to_msg(-1, call, result)
    with pytest.raises(PlanValidationError, match="step 2: args_json is not JSON"):
        conv.step_report_from_msg(StepReport(index=2, skill="Explore", args_json="{"))
