"""Perception rejects malformed frames, poses and configs with a reason, and leaves its tracks untouched."""

from __future__ import annotations

import copy
import dataclasses
import math

import numpy as np
import pytest

from karma_memory.core.errors import ConfigError, InvalidFrameError
from karma_memory.core.frames import map_pose_to_thor
from karma_memory.core.perception import PerceptionConfig, SceneGraphBuilder, pose_matrix, thor_camera_pose
from karma_memory.core.perception.synthetic import SyntheticBox, synthetic_frame
from karma_memory.core.perception.validation import check_rigid
from karma_memory.core.types import CameraFrame, CameraIntrinsics, InstanceLabel

INTR = CameraIntrinsics.from_fov(160, 120, 90.0)
BOXES = [
    SyntheticBox((-3, -0.05, -3), (3, 0.0, 6), 0),
    SyntheticBox((-0.6, 0.0, 1.6), (0.6, 0.9, 2.2), 1, "CounterTop", "CounterTop|1"),
    SyntheticBox((-0.1, 0.9, 1.8), (0.0, 1.0, 1.9), 2, "Apple", "Apple|1"),
]
POSE = thor_camera_pose((0.0, 1.5, 0.4), 0.0, 30.0)


def good_frame() -> CameraFrame:
    return synthetic_frame(BOXES, INTR, POSE, stamp=1.0)


def snapshot(builder: SceneGraphBuilder):
    return {tid: (t.points.copy(), t.views, t.misses, t.states) for tid, t in builder.tracks.items()}


@pytest.fixture()
def warm() -> SceneGraphBuilder:
    builder = SceneGraphBuilder()
    builder.process(good_frame())
    return builder


def _mutations():
    def nan_everywhere(f):
        f.depth[:] = np.nan

    def zero_depth(f):
        f.depth[:] = 0.0

    def inf_depth(f):
        f.depth[:] = np.inf

    def depth_too_small(f):
        f.depth = f.depth[:-1]

    def rgb_wrong_size(f):
        f.rgb = np.zeros((INTR.height, INTR.width + 1, 3), np.uint8)

    def rgb_float(f):
        f.rgb = f.rgb.astype(np.float32)

    def depth_mm(f):
        f.depth = (f.depth * 1000).astype(np.uint16)

    def mask_float(f):
        f.instances = f.instances.astype(np.float32)

    def mask_negative(f):
        f.instances[0, 0] = -3

    def mask_wrong_size(f):
        f.instances = f.instances[:, :-2]

    def unlabelled_instance(f):
        f.instances[0, 0] = 42

    def unknown_type(f):
        f.labels[2] = InstanceLabel("Spaceship", "Spaceship|1")

    def label_not_a_label(f):
        f.labels[2] = "Apple"

    def empty_object_id(f):
        f.labels[2] = InstanceLabel("Apple", "  ")

    def bad_score(f):
        f.labels[2] = InstanceLabel("Apple", "Apple|1", score=1.5)

    def scaled_pose(f):
        f.world_from_camera = f.world_from_camera.copy()
        f.world_from_camera[:3, :3] *= 1.1

    def sheared_pose(f):
        f.world_from_camera = f.world_from_camera.copy()
        f.world_from_camera[0, 1] += 0.2

    def nan_pose(f):
        f.world_from_camera = f.world_from_camera.copy()
        f.world_from_camera[0, 3] = np.nan

    def pose_3x3(f):
        f.world_from_camera = np.eye(3)

    def pose_bad_last_row(f):
        f.world_from_camera = f.world_from_camera.copy()
        f.world_from_camera[3, 0] = 1.0

    def right_handed_pose(f):  # a map-frame pose passed without map_pose_to_thor
        f.world_from_camera = pose_matrix((0, 0, 1.5), (0, 0, 0, 1))

    def nan_stamp(f):
        f.stamp = math.nan

    def bad_intrinsics(f):
        f.intrinsics = dataclasses.replace(f.intrinsics, fx=0.0)

    def metadata_not_list(f):
        f.metadata_objects = {"objectId": "Apple|1"}

    return {k: v for k, v in locals().items() if callable(v)}


MUTATIONS = _mutations()
REASONS = {
    "nan_everywhere": "no valid depth", "zero_depth": "no valid depth", "inf_depth": "no valid depth",
    "depth_too_small": "depth is", "rgb_wrong_size": "rgb is", "rgb_float": "uint8", "depth_mm": "float metres",
    "mask_float": "integer mask", "mask_negative": "negative id", "mask_wrong_size": "instances is",
    "unlabelled_instance": "instance 42", "unknown_type": "Spaceship", "label_not_a_label": "InstanceLabel",
    "empty_object_id": "object_id", "bad_score": "score", "scaled_pose": "orthonormal", "sheared_pose": "orthonormal",
    "nan_pose": "non-finite", "pose_3x3": "4x4", "pose_bad_last_row": "last row", "right_handed_pose": r"det = \+1",
    "nan_stamp": "stamp", "bad_intrinsics": "focal", "metadata_not_list": "metadata_objects",
}


@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_bad_frame_is_rejected_with_reason_and_tracks_stay(warm: SceneGraphBuilder, name: str):
    before = snapshot(warm)
    frames_before = warm.frames_processed
    frame = good_frame()
    frame.depth = frame.depth.copy()
    frame.instances = frame.instances.copy()
    frame.labels = dict(frame.labels)
    MUTATIONS[name](frame)
    with pytest.raises(InvalidFrameError, match=REASONS[name]):
        warm.process(frame)
    after = snapshot(warm)
    assert after.keys() == before.keys()
    for tid in before:
        assert np.array_equal(after[tid][0], before[tid][0]) and after[tid][1:] == before[tid][1:]
    assert warm.frames_processed == frames_before


def test_not_a_frame_is_rejected():
    with pytest.raises(InvalidFrameError, match="CameraFrame"):
        SceneGraphBuilder().process({"rgb": None})  # type: ignore[arg-type]


def test_partly_invalid_depth_is_ignored_not_rejected():
    frame = good_frame()
    frame.depth = frame.depth.copy()
    rows = slice(0, INTR.height // 2)
    frame.depth[rows] = np.nan
    frame.depth[INTR.height // 2:, :10] = np.inf
    frame.depth[INTR.height // 2:, 10:20] = -1.0
    obs = SceneGraphBuilder().process(frame)
    assert obs and all(np.all(np.isfinite(o.position)) for o in obs)


def test_depth_beyond_range_is_dropped():
    frame = good_frame()
    builder = SceneGraphBuilder(PerceptionConfig(max_depth=0.5))
    with pytest.raises(InvalidFrameError, match="no valid depth"):
        builder.process(frame)


def test_labels_for_absent_instances_are_ignored():
    frame = good_frame()
    frame.labels = dict(frame.labels)
    frame.labels[99] = InstanceLabel("Spaceship")  # not in the mask: harmless
    assert SceneGraphBuilder().process(frame)


def test_known_types_can_be_restricted():
    builder = SceneGraphBuilder(PerceptionConfig(known_types=frozenset({"CounterTop"})))
    with pytest.raises(InvalidFrameError, match="'Apple'"):
        builder.process(good_frame())


def test_any_handedness_accepts_a_right_handed_pose():
    frame = good_frame()
    flip = np.diag([1.0, -1.0, 1.0, 1.0])
    frame.world_from_camera = frame.world_from_camera @ flip  # det +1
    SceneGraphBuilder(PerceptionConfig(pose_handedness="any")).process(frame)
    with pytest.raises(InvalidFrameError, match="map_pose_to_thor"):
        SceneGraphBuilder().process(frame)


def test_pose_matrix_rotations_and_thor_conversion():
    q = (0.0, 0.0, math.sin(math.pi / 4), math.cos(math.pi / 4))  # 90° about z
    T = pose_matrix((1.0, 2.0, 3.0), q)
    assert np.allclose(T[:3, :3] @ [1, 0, 0], [0, 1, 0])
    assert np.allclose(T[:3, 3], [1, 2, 3])
    assert np.linalg.det(T[:3, :3]) == pytest.approx(1.0)
    thor = map_pose_to_thor(T)
    assert np.linalg.det(thor[:3, :3]) == pytest.approx(-1.0)
    check_rigid(thor, handedness="left")


@pytest.mark.parametrize("q, match", [
    ((0, 0, 0, 0), "norm 0"),
    ((0, 0, 0, 1.01), "norm 1.01"),
    ((1, 1, 1, 1), "norm 2"),
    ((0, 0, math.nan, 1), "finite"),
    ((0, 0, 1), "4 finite"),
    (("a", 0, 0, 1), "numbers"),
])
def test_pose_matrix_rejects_non_unit_quaternions(q, match):
    with pytest.raises(InvalidFrameError, match=match):
        pose_matrix((0, 0, 0), q)


def test_pose_matrix_rejects_bad_positions():
    with pytest.raises(InvalidFrameError, match="position"):
        pose_matrix((0, math.inf, 0), (0, 0, 0, 1))
    with pytest.raises(InvalidFrameError, match="position"):
        pose_matrix((0, 0), (0, 0, 0, 1))


@pytest.mark.parametrize("kwargs, match", [
    ({"min_depth": -1.0}, "min_depth"),
    ({"min_depth": 5.0, "max_depth": 4.0}, "min_depth"),
    ({"voxel_size": 0.0}, "voxel_size"),
    ({"voxel_size": 2.0}, "voxel sizes"),
    ({"fusion_voxel_size": math.nan}, "fusion_voxel_size"),
    ({"min_instance_pixels": 0}, "min_instance_pixels"),
    ({"outlier_neighbors": 2.5}, "outlier_neighbors"),
    ({"removal_misses": 0}, "removal_misses"),
    ({"min_overlap": 1.5}, "min_overlap"),
    ({"use_hungarian": "yes"}, "use_hungarian"),
    ({"position_mode": "median"}, "position_mode"),
    ({"pose_handedness": "right"}, "pose_handedness"),
    ({"known_types": frozenset()}, "known_types"),
    ({"receptacle_types": "CounterTop"}, "receptacle_types"),
    ({"near_radius": True}, "near_radius"),
    ({"rigid_tolerance": 0.5}, "rigid_tolerance"),
    ({"box_trim": 0.5}, "box_trim"),
    ({"box_min_hits": 0}, "box_min_hits"),
    ({"size_prior_slack": -1.0}, "size_prior_slack"),
])
def test_config_range_checks(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        PerceptionConfig(**kwargs)


def test_config_from_mapping():
    cfg = PerceptionConfig.from_mapping({"voxel_size": 0.02, "receptacle_types": ["Plate"]})
    assert cfg.voxel_size == 0.02 and cfg.receptacle_types == frozenset({"Plate"})
    with pytest.raises(ConfigError, match="voxle_size"):
        PerceptionConfig.from_mapping({"voxle_size": 0.02})
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.voxel_size = 1.0  # type: ignore[misc]


def test_frame_is_not_mutated_by_processing():
    frame = good_frame()
    copies = copy.deepcopy((frame.rgb, frame.depth, frame.instances, frame.labels, frame.world_from_camera))
    SceneGraphBuilder(PerceptionConfig(mask_erosion_px=1)).process(frame)
    for a, b in zip(copies, (frame.rgb, frame.depth, frame.instances, frame.labels, frame.world_from_camera)):
        if isinstance(a, np.ndarray):
            assert np.array_equal(a, b)
        else:
            assert a == b
