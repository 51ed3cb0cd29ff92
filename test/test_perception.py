"""SceneGraphBuilder end to end on synthetic RGB-D frames of boxes: tracks, fusion, relations, moves, removals."""

from __future__ import annotations

import math

import numpy as np
import pytest

from karma_memory.core.perception import PerceptionConfig, SceneGraphBuilder, thor_camera_pose
from karma_memory.core.perception.synthetic import SyntheticBox, synthetic_frame
from karma_memory.core.types import CameraIntrinsics, ObservationKind

INTR = CameraIntrinsics.from_fov(320, 240, 90.0)
FLOOR = SyntheticBox((-6.0, -0.05, -6.0), (6.0, 0.0, 8.0), 0)  # background


def kitchen(with_ids: bool = True) -> list[SyntheticBox]:
    """A counter with an apple, a plate holding a tomato, a bowl holding an egg, and a fridge with a potato."""
    boxes = [
        FLOOR,
        SyntheticBox((-0.8, 0.0, 1.6), (0.8, 0.9, 2.2), 1, "CounterTop", "CounterTop|1"),
        SyntheticBox((-0.50, 0.90, 1.75), (-0.42, 0.98, 1.83), 2, "Apple", "Apple|1"),
        SyntheticBox((0.10, 0.90, 1.70), (0.34, 0.92, 1.94), 3, "Plate", "Plate|1"),
        SyntheticBox((0.18, 0.92, 1.78), (0.25, 0.99, 1.85), 4, "Tomato", "Tomato|1"),
        SyntheticBox((-0.20, 0.90, 1.75), (-0.02, 0.98, 1.93), 5, "Bowl", "Bowl|1"),
        SyntheticBox((-0.14, 0.91, 1.81), (-0.09, 0.99, 1.86), 6, "Egg", "Egg|1"),
        SyntheticBox((1.2, 0.0, 1.7), (1.9, 1.8, 2.4), 7, "Fridge", "Fridge|1"),
    ]
    if not with_ids:
        boxes = [SyntheticBox(b.lo, b.hi, b.instance_id, b.object_type, None) for b in boxes]
    return boxes


def sweep(n: int = 10, radius: float = 1.6, centre=(0.3, 2.0)) -> list[np.ndarray]:
    """Camera poses on an arc in front of the counter, all looking at ``centre`` from 1.5 m height."""
    poses = []
    for k in range(n):
        ang = math.radians(-50 + 100 * k / max(1, n - 1))
        x = centre[0] + radius * math.sin(ang)
        z = centre[1] - radius * math.cos(ang)
        yaw = math.degrees(math.atan2(centre[0] - x, centre[1] - z))
        poses.append(thor_camera_pose((x, 1.5, z), yaw, 30.0))
    return poses


def run(builder: SceneGraphBuilder, boxes, poses, with_ids: bool = True, start: float = 0.0):
    out = []
    for i, pose in enumerate(poses):
        out.append(builder.process(synthetic_frame(boxes, INTR, pose, stamp=start + i, with_ids=with_ids)))
    return out


def box_centre(b: SyntheticBox) -> np.ndarray:
    return (np.array(b.lo) + np.array(b.hi)) / 2


def test_first_frame_adds_every_visible_object_then_sees_them():
    builder = SceneGraphBuilder()
    boxes = kitchen()
    first, second = run(builder, boxes, sweep(2))
    assert {o.kind for o in first} == {ObservationKind.ADDED}
    added = {o.object_id for o in first}
    assert {"CounterTop|1", "Apple|1", "Plate|1", "Tomato|1", "Bowl|1"} <= added
    assert all(o.source == "perception" and o.stamp == 0.0 for o in first)
    assert {o.kind for o in second if o.object_id in added} <= {ObservationKind.SEEN}
    apple = builder.tracks["Apple|1"]
    assert apple.movable and not builder.tracks["CounterTop|1"].movable


def test_fused_centroids_and_sizes_match_the_boxes():
    builder = SceneGraphBuilder()
    boxes = kitchen()
    run(builder, boxes, sweep(6))
    for b in boxes[1:6]:  # the egg hides in the bowl: only its top is ever seen
        track = builder.tracks[b.object_id]
        err = np.linalg.norm(track.position() - box_centre(b))
        assert err < 0.03, (b.object_id, err)
        size = np.array(b.hi) - np.array(b.lo)
        assert np.all(track.box.size <= size + 0.03), b.object_id


def test_partial_views_grow_the_box_instead_of_averaging():
    # a long counter: the left view sees its left half, the right view its right half
    counter = SyntheticBox((-2.0, 0.0, 2.0), (2.0, 0.9, 2.6), 1, "CounterTop", "CounterTop|1")
    boxes = [FLOOR, counter]
    left = thor_camera_pose((-1.4, 1.5, 1.2), 0.0, 35.0)
    right = thor_camera_pose((1.4, 1.5, 1.2), 0.0, 35.0)
    builder = SceneGraphBuilder()
    run(builder, boxes, [left])
    width_left = builder.tracks["CounterTop|1"].box.size[0]
    assert width_left < 3.5
    run(builder, boxes, [right], start=1)
    track = builder.tracks["CounterTop|1"]
    assert track.box.size[0] > width_left + 0.5
    assert track.box.size[0] == pytest.approx(4.0, abs=0.06)
    assert track.position()[0] == pytest.approx(0.0, abs=0.05)


def test_relations_on_inside_near():
    builder = SceneGraphBuilder()
    obs = run(builder, kitchen(), sweep(6))[-1]
    rel = {o.object_id: o.relations for o in obs}
    rel["Egg|1"] = builder.relations_of("Egg|1")  # maybe hidden in the last view
    assert rel["Apple|1"][0].predicate == "on" and rel["Apple|1"][0].target_id == "CounterTop|1"
    assert (rel["Tomato|1"][0].predicate, rel["Tomato|1"][0].target_id) == ("on", "Plate|1")
    assert (rel["Egg|1"][0].predicate, rel["Egg|1"][0].target_id) == ("inside", "Bowl|1")
    assert (rel["Plate|1"][0].predicate, rel["Plate|1"][0].target_id) == ("on", "CounterTop|1")
    near = {r.target_id for r in rel["Tomato|1"] if r.predicate == "near"}
    assert "Plate|1" not in near  # the support is not repeated as near
    assert all(r.predicate == "near" for r in rel["Apple|1"][1:])
    assert rel["CounterTop|1"] == ()  # furniture gets no relations
    assert len(rel["Apple|1"]) <= 1 + builder.config.max_near


def test_object_inside_an_open_fridge():
    fridge_body = SyntheticBox((1.2, 0.0, 2.0), (1.9, 1.8, 2.4), 7, "Fridge", "Fridge|1")  # open front: no door
    shelf = SyntheticBox((1.2, 0.0, 1.7), (1.9, 0.6, 2.0), 7, "Fridge", "Fridge|1")  # lower part of the body
    potato = SyntheticBox((1.45, 0.6, 1.8), (1.55, 0.7, 1.9), 8, "Potato", "Potato|1")
    builder = SceneGraphBuilder()
    poses = [thor_camera_pose((1.55, 1.2, 0.6), 0.0, 30.0), thor_camera_pose((1.2, 1.2, 0.7), 20.0, 30.0)]
    obs = run(builder, [FLOOR, fridge_body, shelf, potato], poses)[-1]
    potato_obs = next(o for o in obs if o.object_id == "Potato|1")
    assert (potato_obs.relations[0].predicate, potato_obs.relations[0].target_id) == ("inside", "Fridge|1")


def test_unlabelled_objects_make_no_duplicates_over_ten_viewpoints():
    builder = SceneGraphBuilder()
    boxes = kitchen(with_ids=False)
    run(builder, boxes, sweep(10), with_ids=False)
    types = sorted(t.object_type for t in builder.tracks.values())
    assert types == sorted(b.object_type for b in boxes[1:])
    for track in builder.tracks.values():
        assert "|track-" in track.track_id and not track.labelled
    # every instance maps to one track in the last frame
    assert len(set(builder.last_assignment.values())) == len(builder.last_assignment)


def test_two_adjacent_objects_of_one_type_stay_two_tracks():
    doors = [FLOOR] + [SyntheticBox((-0.9 + 0.45 * k, 0.0, 2.0), (-0.9 + 0.45 * (k + 1), 0.85, 2.5), k + 1,
                                    "Cabinet") for k in range(4)]
    builder = SceneGraphBuilder()
    poses = [thor_camera_pose((x, 1.4, 0.6), 0.0, 30.0) for x in (-0.8, -0.3, 0.2, 0.7)]
    run(builder, doors, poses, with_ids=False)
    assert len(builder.tracks) == 4
    centres = sorted(t.position()[0] for t in builder.tracks.values())
    assert np.allclose(centres, [-0.675, -0.225, 0.225, 0.675], atol=0.04)


def test_partial_view_duplicate_is_merged_when_a_later_view_bridges_it():
    counter = SyntheticBox((-2.5, 0.0, 2.0), (2.5, 0.9, 2.6), 1, "CounterTop")
    boxes = [FLOOR, counter]
    builder = SceneGraphBuilder()
    # two narrow views of the two ends: too far apart to associate -> two tracks
    run(builder, boxes, [thor_camera_pose((-2.0, 1.2, 1.6), 0.0, 50.0)], with_ids=False)
    run(builder, boxes, [thor_camera_pose((2.0, 1.2, 1.6), 0.0, 50.0)], with_ids=False, start=1)
    assert len(builder.tracks) == 2
    # a wide view of the whole counter re-observes both: they are one object
    obs = run(builder, boxes, [thor_camera_pose((0.0, 2.5, -0.8), 0.0, 40.0)], with_ids=False, start=2)[0]
    assert len(builder.tracks) == 1
    survivor = next(iter(builder.tracks.values()))
    assert survivor.track_id == "CounterTop|track-1"
    kinds = {o.object_id: o.kind for o in obs}
    assert kinds["CounterTop|track-2"] == ObservationKind.REMOVED  # the duplicate is withdrawn
    assert kinds["CounterTop|track-1"] == ObservationKind.SEEN
    assert survivor.box.size[0] == pytest.approx(5.0, abs=0.1)


def test_labelled_object_that_moves_restarts_its_track():
    boxes = kitchen()
    builder = SceneGraphBuilder()
    run(builder, boxes, sweep(3))
    moved = list(boxes)
    moved[2] = SyntheticBox((0.50, 0.90, 1.75), (0.58, 0.98, 1.83), 2, "Apple", "Apple|1")
    obs = run(builder, moved, sweep(3)[1:2], start=10)[0]
    apple = next(o for o in obs if o.object_id == "Apple|1")
    assert apple.kind == ObservationKind.MOVED
    assert apple.position[0] == pytest.approx(0.54, abs=0.03)
    assert builder.tracks["Apple|1"].box.size[0] < 0.1  # old cloud forgotten


def test_removed_after_n_consecutive_clear_views():
    boxes = kitchen()
    builder = SceneGraphBuilder(PerceptionConfig(removal_misses=3))
    poses = sweep(3)
    run(builder, boxes, poses)
    gone = [b for b in boxes if b.object_id != "Apple|1"]
    kinds = []
    for i in range(3):
        obs = run(builder, gone, [poses[1]], start=10 + i)[0]
        kinds.append([o.kind for o in obs if o.object_id == "Apple|1"])
    assert kinds[:2] == [[], []]
    assert kinds[2] == [ObservationKind.REMOVED]
    assert "Apple|1" not in builder.tracks


def test_not_removed_when_occluded_or_out_of_view():
    boxes = kitchen()
    builder = SceneGraphBuilder(PerceptionConfig(removal_misses=2))
    poses = sweep(3)
    run(builder, boxes, poses)
    # the apple vanishes, but a tall box now stands between camera and apple
    gone = [b for b in boxes if b.object_id != "Apple|1"]
    cam = poses[1][:3, 3]
    apple_c = box_centre(boxes[2])
    mid = (cam + apple_c) / 2
    wall = SyntheticBox(tuple(mid - [0.3, 0.6, 0.02]), tuple(mid + [0.3, 0.6, 0.02]), 9, "Box", "Box|1")
    for i in range(4):
        run(builder, gone + [wall], [poses[1]], start=10 + i)
    assert "Apple|1" in builder.tracks
    # looking away: no evidence either
    away = thor_camera_pose((0.3, 1.5, 0.4), 180.0, 0.0)
    for i in range(4):
        run(builder, [FLOOR], [away], start=20 + i)
    assert "Apple|1" in builder.tracks and builder.tracks["Apple|1"].misses == 0


def test_miss_counter_resets_when_seen_again():
    boxes = kitchen()
    builder = SceneGraphBuilder(PerceptionConfig(removal_misses=3))
    poses = sweep(3)
    run(builder, boxes, poses)
    gone = [b for b in boxes if b.object_id != "Apple|1"]
    run(builder, gone, [poses[1], poses[1]], start=10)
    assert builder.tracks["Apple|1"].misses == 2
    run(builder, boxes, [poses[1]], start=12)
    assert builder.tracks["Apple|1"].misses == 0
    run(builder, gone, [poses[1], poses[1]], start=13)
    assert "Apple|1" in builder.tracks


def test_states_from_metadata_and_state_changes():
    boxes = kitchen()
    meta = [{"objectId": "Apple|1", "objectType": "Apple", "sliceable": True, "isSliced": False},
            {"objectId": "Fridge|1", "objectType": "Fridge", "openable": True, "isOpen": False}]
    builder = SceneGraphBuilder()
    pose = sweep(3)[1]
    first = builder.process(synthetic_frame(boxes, INTR, pose, stamp=0, metadata_objects=meta))
    apple = next(o for o in first if o.object_id == "Apple|1")
    assert apple.states == ("none",) and apple.kind == ObservationKind.ADDED
    meta[0] = dict(meta[0], isSliced=True)
    second = builder.process(synthetic_frame(boxes, INTR, pose, stamp=1, metadata_objects=meta))
    apple = next(o for o in second if o.object_id == "Apple|1")
    assert apple.kind == ObservationKind.STATE_CHANGED and apple.states == ("sliced",)
    third = builder.process(synthetic_frame(boxes, INTR, pose, stamp=2))  # no metadata: states kept
    apple = next(o for o in third if o.object_id == "Apple|1")
    assert apple.kind == ObservationKind.SEEN and apple.states == ("sliced",)
    assert builder.last_state_estimate is not None and builder.last_state_estimate.reason


def test_empty_mask_frame_is_processed():
    builder = SceneGraphBuilder()
    frame = synthetic_frame([FLOOR], INTR, sweep(3)[1])
    assert frame.labels == {} and not frame.instances.any()
    assert builder.process(frame) == []
    assert builder.frames_processed == 1


def test_reset_forgets_everything():
    builder = SceneGraphBuilder()
    run(builder, kitchen(with_ids=False), sweep(2), with_ids=False)
    assert builder.tracks
    builder.reset()
    assert not builder.tracks and builder.frames_processed == 0
    run(builder, kitchen(with_ids=False), sweep(1), with_ids=False)
    assert any(tid.endswith("|track-1") for tid in builder.tracks)


def test_greedy_and_hungarian_agree_on_a_clear_scene():
    results = []
    for hungarian in (True, False):
        builder = SceneGraphBuilder(PerceptionConfig(use_hungarian=hungarian))
        run(builder, kitchen(with_ids=False), sweep(5), with_ids=False)
        results.append(sorted((t.object_type, tuple(np.round(t.position(), 2))) for t in builder.tracks.values()))
    assert results[0] == results[1]


def test_split_mask_with_one_object_id_is_one_detection():
    # an occluder (pole) splits the counter's mask in two: both halves carry the same object id
    counter_l = SyntheticBox((-1.0, 0.0, 2.0), (1.0, 0.9, 2.5), 1, "CounterTop", "CounterTop|1")
    counter_r = SyntheticBox((-1.0, 0.0, 2.0), (1.0, 0.9, 2.5), 2, "CounterTop", "CounterTop|1")
    pole = SyntheticBox((-0.05, 0.0, 1.5), (0.05, 2.0, 1.6), 3, "FloorLamp", "FloorLamp|1")
    frame = synthetic_frame([FLOOR, counter_l, pole], INTR, thor_camera_pose((0.0, 1.5, 0.5), 0.0, 30.0))
    right_half = frame.instances == 1
    right_half[:, : INTR.width // 2] = False
    frame.instances[right_half] = 2
    frame.labels[2] = frame.labels[1]
    builder = SceneGraphBuilder()
    obs = builder.process(frame)
    counters = [o for o in obs if o.object_type == "CounterTop"]
    assert len(counters) == 1 and counters[0].size[0] > 1.5
    assert builder.last_assignment[1] == builder.last_assignment[2] == "CounterTop|1"
    del counter_r


def test_relations_of_an_unknown_track_is_an_error():
    from karma_memory.core.errors import UnknownObjectError

    with pytest.raises(UnknownObjectError, match="Apple|9"):
        SceneGraphBuilder().relations_of("Apple|9")


def test_floor_fragments_are_one_track_without_ids():
    floor = SyntheticBox((-6.0, -0.05, -6.0), (6.0, 0.0, 8.0), 10, "Floor")
    pillar = SyntheticBox((-0.3, 0.0, 1.5), (0.3, 2.5, 1.8), 11, "Fridge")  # splits the floor in the view
    builder = SceneGraphBuilder()
    poses = [thor_camera_pose((x, 1.5, 0.0), 0.0, 40.0) for x in (-2.0, 2.0, 0.0)]
    run(builder, [floor, pillar], poses, with_ids=False)
    floors = [t for t in builder.tracks.values() if t.object_type == "Floor"]
    assert len(floors) == 1 and floors[0].box.size[0] > 3.0
