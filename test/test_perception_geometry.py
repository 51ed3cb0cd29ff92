"""Geometry, relations and association units of the perception core, on hand-built boxes and clouds."""

from __future__ import annotations

import numpy as np
import pytest

from karma_memory.core.perception import Box, BoxedObject, PerceptionConfig, RelationIndex, support_of
from karma_memory.core.perception.geometry import (
    backproject_pixels,
    clean_points,
    dilated_keys,
    merge_voxelized,
    thor_camera_pose,
    transform_points,
    voxel_keys,
)
from karma_memory.core.perception.tracking import Detection, Track, associate
from karma_memory.core.types import CameraIntrinsics

CFG = PerceptionConfig()


def obj(oid: str, otype: str, lo, hi) -> BoxedObject:
    return BoxedObject(oid, otype, Box(np.array(lo, float), np.array(hi, float)))


COUNTER = obj("CounterTop|1", "CounterTop", (-1, 0.86, 0), (1, 0.90, 0.6))
CABINET = obj("Cabinet|1", "Cabinet", (-0.5, 0.0, 0.05), (0.0, 0.86, 0.6))
PLATE = obj("Plate|1", "Plate", (0.2, 0.90, 0.2), (0.44, 0.92, 0.44))
FRIDGE = obj("Fridge|1", "Fridge", (2.0, 0.0, 0.0), (2.8, 1.8, 0.7))
SOFA = obj("Sofa|1", "Sofa", (-3, 0.0, 3), (-1, 0.9, 3.9))
DRAWER = obj("Drawer|1", "Drawer", (-0.4, 0.5, 0.1), (-0.1, 0.7, 0.55))


# ---------------------------------------------------------------------------------------------- boxes
def test_box_helpers():
    a = Box(np.zeros(3), np.ones(3))
    assert a.gap(Box(np.array([1.0, 0, 0]), np.array([2.0, 1, 1]))) == 0.0
    assert a.gap(Box(np.array([2.0, 2, 1]), np.array([3.0, 3, 2]))) == pytest.approx(np.sqrt(2))
    assert a.footprint_overlap(Box(np.array([0.5, -5, 0]), np.array([2.0, -4, 1]))) == pytest.approx(0.5)
    assert a.contains(np.array([0.5, 0.5, 0.5])) and not a.contains(np.array([1.5, 0.5, 0.5]))
    assert a.corners().shape == (8, 3) and a.volume == pytest.approx(1.0)


def test_camera_pose_looks_where_thor_looks():
    T = thor_camera_pose((0.0, 1.5, 0.0), 90.0, 0.0)  # yaw 90: facing +x
    assert np.allclose(T[:3, 2], [1, 0, 0], atol=1e-9)
    assert np.linalg.det(T[:3, :3]) == pytest.approx(-1.0)
    down = thor_camera_pose((0.0, 1.5, 0.0), 0.0, 90.0)  # horizon 90: straight down
    assert np.allclose(down[:3, 2], [0, -1, 0], atol=1e-9)


def test_backprojection_inverts_projection():
    intr = CameraIntrinsics.from_fov(64, 48, 90.0)
    rng = np.random.default_rng(1)
    u, v, z = rng.uniform(0, 63, 50), rng.uniform(0, 47, 50), rng.uniform(0.3, 5, 50)
    p = backproject_pixels(u, v, z, intr)
    assert np.allclose(intr.fx * p[:, 0] / p[:, 2] + intr.cx, u)
    assert np.allclose(intr.fy * p[:, 1] / p[:, 2] + intr.cy, v)
    T = thor_camera_pose((1.0, 2.0, 3.0), 30.0, 10.0)
    back = transform_points(np.linalg.inv(T), transform_points(T, p))
    assert np.allclose(back, p)


def test_clean_points_drops_outliers_and_caps_big_clouds():
    rng = np.random.default_rng(2)
    plane = np.c_[rng.uniform(0, 0.5, 4000), np.zeros(4000), rng.uniform(0, 0.5, 4000)]
    cloud = np.vstack([plane, [[0.25, 3.0, 0.25]]])  # one flying pixel
    kept, voxel = clean_points(cloud, 0.015, 10, 3.0)
    assert voxel == 0.015
    assert kept[:, 1].max() < 0.01
    assert len(kept) < 4000
    capped, coarse = clean_points(cloud, 0.005, 10, 3.0, max_points=300)
    assert coarse > 0.005
    assert len(capped) <= 330
    assert np.ptp(capped[:, 0]) > 0.45  # extent kept
    tiny, _ = clean_points(np.array([[0, 0, 0], [0.1, 0, 0.0]]), 0.015, 10, 3.0)
    assert len(tiny) == 2  # too few points for statistics: the filter is skipped


def test_voxel_union_keeps_both_parts():
    a = np.array([[0.0, 0, 0], [0.05, 0, 0]])
    ka = np.unique(voxel_keys(a, 0.02))
    b = np.array([[0.001, 0, 0], [1.0, 0, 0]])
    pts, keys, hits = merge_voxelized(a, ka, b, 0.02)
    assert len(pts) == 3 and np.all(np.diff(keys) > 0)
    assert sorted(hits.tolist()) == [1, 1, 2]  # the voxel at the origin was seen twice
    assert [0.0, 0, 0] in pts.tolist()  # the older point wins its voxel
    assert len(dilated_keys(ka[:1])) == 27
    assert np.unique(voxel_keys(np.array([[-0.001, 0, 0], [0.001, 0, 0]]), 0.02)).size == 2


# ------------------------------------------------------------------------------------------ relations
def test_highest_support_wins_plate_over_counter_over_cabinet():
    apple = obj("Apple|1", "Apple", (0.28, 0.905, 0.28), (0.36, 0.98, 0.36))
    rel = support_of(apple, [COUNTER, CABINET, PLATE], CFG)
    assert (rel.predicate, rel.target_id) == ("on", "Plate|1")
    apple2 = obj("Apple|2", "Apple", (-0.3, 0.91, 0.3), (-0.22, 0.99, 0.38))
    rel = support_of(apple2, [COUNTER, CABINET, PLATE], CFG)
    assert (rel.predicate, rel.target_id) == ("on", "CounterTop|1")


def test_inside_a_container_and_smallest_receptacle_wins():
    in_fridge = obj("Apple|3", "Apple", (2.3, 1.2, 0.2), (2.38, 1.28, 0.28))  # on a fridge shelf
    plate_in_fridge = obj("Plate|2", "Plate", (2.2, 0.98, 0.1), (2.5, 1.0, 0.4))
    rel = support_of(in_fridge, [FRIDGE, COUNTER, plate_in_fridge], CFG)
    assert (rel.predicate, rel.target_id) == ("inside", "Fridge|1")
    on_plate = obj("Apple|4", "Apple", (2.3, 1.0, 0.2), (2.38, 1.08, 0.28))
    rel = support_of(on_plate, [FRIDGE, plate_in_fridge], CFG)
    assert (rel.predicate, rel.target_id) == ("on", "Plate|2")  # smaller than the fridge
    in_drawer = obj("Spoon|1", "Spoon", (-0.3, 0.52, 0.2), (-0.15, 0.55, 0.25))
    rel = support_of(in_drawer, [DRAWER, CABINET, COUNTER], CFG)
    assert (rel.predicate, rel.target_id) == ("inside", "Drawer|1")


def test_on_top_of_a_closed_container_is_on():
    on_fridge = obj("Box|1", "Box", (2.2, 1.8, 0.2), (2.5, 2.0, 0.5))
    assert (support_of(on_fridge, [FRIDGE], CFG).predicate) == "on"


def test_resting_within_a_non_container_receptacle_is_on():
    pillow = obj("Pillow|1", "Pillow", (-2.5, 0.45, 3.2), (-2.1, 0.65, 3.5))  # on the seat, under the backrest
    rel = support_of(pillow, [SOFA], CFG)
    assert (rel.predicate, rel.target_id) == ("on", "Sofa|1")


def test_no_support_when_floating_or_not_a_receptacle():
    floating = obj("Apple|5", "Apple", (0.0, 1.6, 0.3), (0.08, 1.68, 0.38))  # 70 cm above the counter
    assert support_of(floating, [COUNTER, CABINET], CFG) is None
    on_apple = obj("Egg|1", "Egg", (0.0, 0.98, 0.3), (0.05, 1.03, 0.35))
    apple = obj("Apple|6", "Apple", (-0.02, 0.90, 0.28), (0.07, 0.98, 0.37))
    assert support_of(on_apple, [apple], CFG) is None  # apples are not receptacles
    custom = PerceptionConfig(receptacle_types=frozenset({"Apple"}))
    assert support_of(on_apple, [apple], custom).target_id == "Apple|6"
    assert support_of(floating, [], CFG) is None


def test_occluded_bottom_falls_back_to_the_surface_below():
    top_only = obj("Plunger|1", "Plunger", (0.0, 1.3, 0.3), (0.08, 1.45, 0.38))  # lower part never seen
    rel = support_of(top_only, [COUNTER, CABINET], CFG)
    assert (rel.predicate, rel.target_id) == ("on", "CounterTop|1")
    assert support_of(top_only, [COUNTER], PerceptionConfig(support_search_depth=0.0)) is None


def test_hanging_from_a_towel_holder_and_a_pot_over_two_burners():
    holder = obj("TowelHolder|1", "TowelHolder", (0.0, 1.0, 0.0), (0.6, 1.04, 0.1))
    towel = obj("Towel|1", "Towel", (0.05, 0.5, 0.1), (0.55, 1.05, 0.14))
    assert support_of(towel, [holder, COUNTER], CFG).target_id == "TowelHolder|1"
    burners = [obj(f"StoveBurner|{k}", "StoveBurner", (0.3 * k, 0.90, 0.0), (0.3 * k + 0.25, 0.93, 0.25))
               for k in range(2)]
    pot = obj("Pot|1", "Pot", (0.2, 0.93, 0.0), (0.5, 1.1, 0.25))  # mostly over burner 1
    assert support_of(pot, burners + [COUNTER], CFG).target_id == "StoveBurner|1"
    hidden = obj("StoveBurner|9", "StoveBurner", (0.45, 0.90, 0.0), (0.5, 0.93, 0.05))  # seen only at an edge
    assert support_of(pot, [hidden, COUNTER], CFG).target_id == "StoveBurner|9"


def test_near_relations_are_sorted_capped_and_exclude_the_support():
    apple = obj("Apple|1", "Apple", (0.28, 0.905, 0.28), (0.36, 0.98, 0.36))
    others = [COUNTER, PLATE] + [obj(f"Egg|{k}", "Egg", (0.4 + 0.1 * k, 0.9, 0.3), (0.45 + 0.1 * k, 0.95, 0.35))
                                 for k in range(8)]
    rels = RelationIndex(others, PerceptionConfig(max_near=3)).relations(apple)
    assert rels[0].target_id == "Plate|1"
    near = [r.target_id for r in rels[1:]]
    assert len(near) == 3 and "Plate|1" not in near
    assert near[0] in {"Egg|0", "CounterTop|1"}
    assert RelationIndex(others, PerceptionConfig(max_near=0)).relations(apple) == rels[:1]
    far = RelationIndex([obj("Egg|9", "Egg", (5, 0, 5), (5.1, 0.1, 5.1))], CFG).relations(apple)
    assert far == ()


# ---------------------------------------------------------------------------------------- association
def det(otype: str, centre, half=0.04, n=200, seed=0) -> Detection:
    rng = np.random.default_rng(seed)
    pts = np.asarray(centre) + rng.uniform(-half, half, (n, 3))
    return Detection((1,), otype, None, pts, Box.of_points(pts), n)


def track(tid: str, otype: str, centre, half=0.04) -> Track:
    return Track.start(tid, det(otype, centre, half, seed=9), CFG, 0.0)


def test_association_by_type_and_geometry():
    tracks = [track("Apple|track-1", "Apple", (0, 1, 0)), track("Apple|track-2", "Apple", (0.3, 1, 0)),
              track("Egg|track-3", "Egg", (0.6, 1, 0))]
    dets = [det("Apple", (0.31, 1, 0.01)), det("Apple", (0.01, 1, 0)), det("Egg", (0.0, 1, 0.0)),
            det("Apple", (3, 1, 3))]
    for hungarian in (True, False):
        got = associate(dets, tracks, PerceptionConfig(use_hungarian=hungarian))
        assert got == [1, 0, None, None]  # the egg is not near the egg track; the far apple is new


def test_hungarian_beats_greedy_on_a_crossing():
    # track A at x=0, track B at x=0.08; detections at 0.05 and 0.13: greedy grabs (d1, B) first
    cfg_h = PerceptionConfig(use_hungarian=True, association_distance=0.2, min_overlap=1.0, size_prior_slack=0)
    cfg_g = PerceptionConfig(use_hungarian=False, association_distance=0.2, min_overlap=1.0, size_prior_slack=0)
    tracks = [track("Cup|1", "Cup", (0.0, 1, 0), 0.01), track("Cup|2", "Cup", (0.08, 1, 0), 0.01)]
    dets = [det("Cup", (0.05, 1, 0), 0.01), det("Cup", (0.13, 1, 0), 0.01, seed=3)]
    assert associate(dets, tracks, cfg_h) == [0, 1]
    greedy = associate(dets, tracks, cfg_g)
    assert greedy[0] == 1 and greedy[1] is None


def test_association_with_nothing():
    assert associate([], [track("Apple|1", "Apple", (0, 1, 0))], CFG) == []
    assert associate([det("Apple", (0, 1, 0))], [], CFG) == [None]


def test_size_prior_joins_two_faces_of_one_table_but_not_two_apples():
    # the near and far faces of a table seen from opposite sides share no surface
    near_face = Track.start("DiningTable|track-1", det("DiningTable", (0.0, 0.4, 0.0), 0.3), CFG, 0.0)
    far_face = det("DiningTable", (0.0, 0.4, 0.9), 0.3, seed=4)
    assert associate([far_face], [near_face], CFG) == [0]
    assert associate([far_face], [near_face], PerceptionConfig(size_prior_slack=0.0)) == [None]
    apple = track("Apple|track-2", "Apple", (0.0, 1.0, 0.0))
    other_apple = det("Apple", (0.25, 1.0, 0.0))  # 25 cm away: no apple is 33 cm long
    assert associate([other_apple], [apple], CFG) == [None]


def test_min_hits_box_ignores_noise_seen_once():
    cfg = PerceptionConfig(box_min_hits=2)
    rng = np.random.default_rng(6)
    base = rng.uniform(0, 0.3, (400, 3))
    t = Track.start("Box|track-1", Detection((1,), "Box", None, base, Box.of_points(base), 400), cfg, 0.0)
    for k in range(3):
        stray = np.vstack([base, [[1.0 + k, 0.1, 0.1]]])  # a different flying point in every view
        t.fuse(Detection((1,), "Box", None, stray, Box.of_points(stray), 401), cfg, float(k + 1))
    assert t.box.hi[0] < 0.31
    assert Track.start("Box|track-2", Detection((1,), "Box", None, base, Box.of_points(base), 400),
                       PerceptionConfig(), 0.0).box.hi[0] == base[:, 0].max()


def test_box_trim_ignores_stray_points():
    rng = np.random.default_rng(5)
    pts = np.vstack([rng.uniform(0, 1, (2000, 3)), [[5.0, 0.5, 0.5]]])
    assert Box.of_points(pts).hi[0] == 5.0
    assert Box.of_points(pts, trim=0.01).hi[0] < 1.0
    assert Box.of_points(pts[:10], trim=0.01).hi[0] == pts[:10, 0].max()  # too few points: exact


def test_perception_core_never_imports_rclpy():
    """Static check of every import in the package: ROS-free, and only core modules of karma_memory."""
    import ast
    from pathlib import Path

    import karma_memory.core.perception as pkg

    files = sorted(Path(pkg.__file__).parent.glob("*.py"))
    assert len(files) >= 9
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            for name in names:
                assert not name.startswith(("rclpy", "rosidl", "karma_interfaces")), (path.name, name)
                assert not name.startswith("karma_memory") or name.startswith("karma_memory.core"), (path.name, name)


def test_oriented_boxes_per_detection_and_per_track():
    from karma_memory.core.perception import SceneGraphBuilder, extract_detections
    from karma_memory.core.perception.synthetic import SyntheticBox, synthetic_frame
    from karma_memory.core.perception.validation import validate_frame

    intr = CameraIntrinsics.from_fov(160, 120, 90.0)
    boxes = [SyntheticBox((-0.5, 0.0, 1.5), (0.5, 0.9, 2.0), 1, "CounterTop", "CounterTop|1")]
    frame = synthetic_frame(boxes, intr, thor_camera_pose((0.3, 1.5, 0.5), -10.0, 30.0))
    cfg = PerceptionConfig(fit_oriented_boxes=True)
    dets = extract_detections(frame, validate_frame(frame, cfg), cfg)
    assert len(dets) == 1 and dets[0].obb is not None
    assert np.all(np.asarray(dets[0].obb.extent) > 0.3)
    plain = extract_detections(frame, validate_frame(frame, CFG), CFG)
    assert plain[0].obb is None
    builder = SceneGraphBuilder()
    builder.process(frame)
    obb = builder.tracks["CounterTop|1"].obb
    assert obb is not None and np.allclose(np.sort(obb.extent)[::-1][:1], [1.0], atol=0.1)
